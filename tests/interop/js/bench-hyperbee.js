// Hyperbee throughput in JS, the same workload as crates/holepunch/examples/hyperbee_bench.rs: N single puts, N puts in
// batches of 1000, N gets of random existing keys. usage: node js/bench-hyperbee.js DIR [N]
const path = require('path')
const b4a = require('b4a')
const crypto = require('hypercore-crypto')
const Hypercore = require('hypercore')
const Hyperbee = require('hyperbee')

function key(i) {
  const k = (BigInt(i) * 2654435761n) % 100000000n
  return b4a.from('key-' + k.toString().padStart(8, '0'))
}

async function main() {
  const dir = process.argv[2]
  const n = Number(process.argv[3] || 10000)
  const value = b4a.alloc(64, 0x61)

  let core = new Hypercore(path.join(dir, 'single'), { keyPair: crypto.keyPair(b4a.alloc(32, 7)) })
  let bee = new Hyperbee(core, { extension: false })
  await bee.ready()
  let t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await bee.put(key(i), value)
  const puts = n / (Number(process.hrtime.bigint() - t) / 1e9)
  await bee.close()

  core = new Hypercore(path.join(dir, 'batch'), { keyPair: crypto.keyPair(b4a.alloc(32, 8)) })
  bee = new Hyperbee(core, { extension: false })
  await bee.ready()
  t = process.hrtime.bigint()
  for (let i = 0; i < n; ) {
    const b = bee.batch()
    for (let j = 0; j < 1000 && i < n; j++, i++) await b.put(key(i), value)
    await b.flush()
  }
  const batchPuts = n / (Number(process.hrtime.bigint() - t) / 1e9)

  t = process.hrtime.bigint()
  let found = 0
  for (let j = 0; j < n; j++) {
    const i = Number((BigInt(j) * 7919n) % BigInt(n))
    if (await bee.get(key(i))) found++
  }
  const gets = n / (Number(process.hrtime.bigint() - t) / 1e9)
  if (found !== n) throw new Error(`only ${found} of ${n} keys found`)
  console.log(
    `impl=js n=${n} puts_per_sec=${puts.toFixed(0)} batch_puts_per_sec=${batchPuts.toFixed(0)} gets_per_sec=${gets.toFixed(0)}`
  )
  await bee.close()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
