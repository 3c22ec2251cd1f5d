// Autobase apply throughput in JS autobase 7.28.1, for benches/autobase.sh (issue #16; its Rust side is the
// `autobase_bench` example of crates/cores). Three writers on three corestores in one process: A (the creator,
// indexer), B (indexer) and C (not an indexer), replicating in memory. Setup: A adds B and C, until all three see
// both indexers. Then each writer appends N/3 small puts (`{"op":"put","key":"<writer>/<i>","value":"<i>"}`) in
// atomic batches of BATCH (default 100) while the indexers ack in the background every 100 ms; the run ends when
// every view has all N keys, the three agree on the heads, and every view is signed up to its length.
// PARTITIONED=1: the writers append with replication off and merge afterwards (JS's merge of a long un-indexed
// tail grows much faster than linearly: 600 puts merge in 4 s, 3000 in 67 s).
// Measured here (2 cores, helpers' builds running): N=3000 12.7 s, N=30000 91 s.
// usage: node js/bench-autobase.js [N=100000] [DIR]
// prints one JSON line: { n, appendMs, mergeMs, totalMs, viewLength, signedLength, firstKey, lastKey }
const os = require('os')
const fs = require('fs')
const path = require('path')
const b4a = require('b4a')
const Corestore = require('corestore')
const Hyperbee = require('hyperbee')
const Autobase = require('autobase')

// indexers ack in the background this often while the writers append
const ACK_MS = 100
// puts per append call (one atomic batch of nodes)
const BATCH = Number(process.env.BATCH || 100)

function open(store) {
  return new Hyperbee(store.get('view'), { keyEncoding: 'utf-8', valueEncoding: 'utf-8', extension: false })
}

async function apply(nodes, view, host) {
  for (const node of nodes) {
    const op = node.value
    if (op.op === 'add-writer') await host.addWriter(b4a.from(op.key, 'hex'), { indexer: !!op.indexer })
    else if (op.op === 'put') await view.put(op.key, op.value)
    else if (op.op === 'del') await view.del(op.key)
  }
}

function replicate(a, b) {
  const s1 = a.store.replicate(true)
  const s2 = b.store.replicate(false)
  s1.pipe(s2).pipe(s1)
  s1.on('error', () => {})
  s2.on('error', () => {})
  return () => {
    s1.destroy()
    s2.destroy()
  }
}

function connectAll(bases) {
  const stops = []
  for (let i = 0; i < bases.length; i++) {
    for (let j = i + 1; j < bases.length; j++) stops.push(replicate(bases[i], bases[j]))
  }
  return () => stops.forEach((s) => s())
}

async function until(fn) {
  for (;;) {
    if (await fn()) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

async function main() {
  const n = Number(process.argv[2] || 100000)
  const partitioned = process.env.PARTITIONED === '1'
  const dir = process.argv[3] || fs.mkdtempSync(path.join(os.tmpdir(), 'bench-autobase-'))
  const stores = ['a', 'b', 'c'].map((x) => new Corestore(path.join(dir, x)))
  const a = new Autobase(stores[0], null, { open, apply, valueEncoding: 'json', ackInterval: ACK_MS })
  await a.ready()
  const b = new Autobase(stores[1], a.key, { open, apply, valueEncoding: 'json', ackInterval: ACK_MS })
  const c = new Autobase(stores[2], a.key, { open, apply, valueEncoding: 'json', ackInterval: 0 })
  await b.ready()
  await c.ready()
  const bases = [a, b, c]

  // setup: B an indexer, C a writer, everyone knows it
  await a.append({ op: 'add-writer', key: b4a.toString(b.local.key, 'hex'), indexer: true })
  await a.append({ op: 'add-writer', key: b4a.toString(c.local.key, 'hex'), indexer: false })
  let stop = connectAll(bases)
  await until(async () => {
    for (const x of bases) await x.update()
    if (!b.writable || !c.writable) return false
    for (const x of [a, b]) if (x.isIndexer) await x.ack()
    return bases.every((x) => x.system.indexers.length === 2) && b.isIndexer
  })
  for (const x of bases) await x.update()
  if (partitioned) stop()

  // the appends (partitioned or not)
  const share = Math.floor(n / 3)
  const counts = [n - 2 * share, share, share]
  const t0 = process.hrtime.bigint()
  await Promise.all(
    bases.map(async (x, w) => {
      for (let i = 0; i < counts[w]; i += BATCH) {
        const batch = []
        for (let j = i; j < Math.min(i + BATCH, counts[w]); j++) {
          const k = String(j).padStart(6, '0')
          batch.push({ op: 'put', key: `${'abc'[w]}/${k}`, value: k })
        }
        await x.append(batch)
      }
    })
  )
  const t1 = process.hrtime.bigint()

  // merge
  if (partitioned) stop = connectAll(bases)
  const heads = (x) =>
    x.system.heads
      .map((h) => `${b4a.toString(h.key, 'hex')}:${h.length}`)
      .sort()
      .join(',')
  let lastPrint = Date.now()
  await until(async () => {
    for (const x of bases) await x.update()
    for (const x of [a, b]) await x.ack()
    for (const x of bases) await x.update()
    if (process.env.BENCH_DEBUG && Date.now() - lastPrint > 1000) {
      lastPrint = Date.now()
      console.error(bases.map((x) => `${x.view.core.length}/${x.view.core.signedLength} sys ${x.system.core.length} heads ${heads(x)}`).join(' | '))
    }
    const len = a.view.core.length
    const h = heads(a)
    if (!bases.every((x) => x.view.core.length === len && x.view.core.signedLength === len && heads(x) === h)) {
      return false
    }
    for (const x of bases) if ((await countEntries(x.view)) !== n) return false
    return true
  })
  const t2 = process.hrtime.bigint()
  stop()

  let firstKey = null
  let lastKey = null
  for await (const e of a.view.createReadStream({ limit: 1 })) firstKey = e.key
  for await (const e of a.view.createReadStream({ limit: 1, reverse: true })) lastKey = e.key
  const ms = (x) => Number(x) / 1e6
  process.stdout.write(
    JSON.stringify({
      n,
      appendMs: Math.round(ms(t1 - t0)),
      mergeMs: Math.round(ms(t2 - t1)),
      totalMs: Math.round(ms(t2 - t0)),
      viewLength: a.view.core.length,
      signedLength: a.view.core.signedLength,
      firstKey,
      lastKey
    }) + '\n'
  )
  for (const x of bases) await x.close()
  for (const s of stores) await s.close()
  if (!process.argv[3]) fs.rmSync(dir, { recursive: true, force: true })
}

const counted = new WeakMap()
async function countEntries(bee) {
  const len = bee.core.length
  const prev = counted.get(bee)
  if (prev && prev.len === len) return prev.count
  let count = 0
  for await (const _ of bee.createReadStream()) count++ // eslint-disable-line no-unused-vars
  counted.set(bee, { len, count })
  return count
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
