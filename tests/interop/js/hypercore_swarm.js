// A JS hyperswarm 4.17.2 + hypercore 11 peer on a local testnet, for the hypercore-cat tests and bench.
//
//   node hypercore_swarm.js BOOTSTRAP seed DIR N     writes a core of N blocks (block i = `block number ${i} `
//                                                    repeated i % 7 + 1 times), joins its discovery key as a
//                                                    server, prints {"key"} once announced; seeds until stdin
//                                                    closes.
//   node hypercore_swarm.js BOOTSTRAP get KEY DIR    joins KEY's discovery key as a client, downloads every
//                                                    block, prints {"length","hash"} (hash = BLAKE2b-256 of
//                                                    all blocks concatenated), exits.
//   node hypercore_swarm.js BOOTSTRAP seed-stdin DIR stdin -> a core in DIR in blocks of 64 KiB, then as `seed`
//                                                    (seeds until killed).
//   node hypercore_swarm.js BOOTSTRAP cat KEY DIR    as `get`, but writes the blocks to stdout (the JS side of
//                                                    benches/hypercore-download.sh).
//   node hypercore_swarm.js BOOTSTRAP mirror KEY DIR joins KEY's discovery key as client and server, downloads
//                                                    every block, prints {"key","length","publicKey"} once it
//                                                    holds them all and is announced; seeds until stdin closes.
// `seed` also prints the swarm's "publicKey". `get KEY DIR n` waits for n peers before downloading and adds
// "from": {remote public key hex: blocks downloaded from it} to its output.
// BOOTSTRAP is HOST:PORT[,HOST:PORT...]. The DHT binds 127.0.0.1.
const Hyperswarm = require('hyperswarm')
const DHT = require('hyperdht')
const Hypercore = require('hypercore')
const sodium = require('sodium-native')
const b4a = require('b4a')

const [list, mode, a, b, c] = process.argv.slice(2)
const bootstrap = list.split(',')

function block(i) {
  return b4a.from(`block number ${i} `.repeat((i % 7) + 1))
}

async function main() {
  const dht = new DHT({ bootstrap, ephemeral: true, host: '127.0.0.1' })
  const swarm = new Hyperswarm({ dht })
  let core
  if (mode === 'seed-stdin') {
    core = new Hypercore(a)
    await core.ready()
    await appendStdin(core)
  } else if (mode === 'seed') {
    core = new Hypercore(a)
    await core.ready()
    const n = Number(b)
    for (let i = 0; i < n; i += 1000) {
      const batch = []
      for (let j = i; j < Math.min(n, i + 1000); j++) batch.push(block(j))
      await core.append(batch)
    }
  } else {
    core = new Hypercore(b, b4a.from(a, 'hex'))
    await core.ready()
  }
  const from = {}
  core.on('download', (index, bytes, peer) => {
    const k = peer && peer.remotePublicKey ? b4a.toString(peer.remotePublicKey, 'hex') : '?'
    from[k] = (from[k] || 0) + 1
  })
  const publicKey = b4a.toString(swarm.keyPair.publicKey, 'hex')
  let connectedAt = 0
  swarm.on('connection', (conn) => {
    if (!connectedAt) connectedAt = Date.now()
    conn.on('error', () => {})
    core.replicate(conn)
  })
  if (mode === 'mirror') {
    const discovery = swarm.join(core.discoveryKey, { server: true, client: true })
    while (core.length === 0 || swarm.connections.size === 0) {
      await core.update({ wait: true })
      if (core.length === 0) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await core.download({ start: 0, end: core.length }).done()
    await discovery.flushed()
    process.stdout.write(JSON.stringify({ key: a, length: core.length, publicKey }) + '\n')
    process.stdin.resume()
    process.stdin.on('end', async () => {
      await swarm.destroy()
      process.exit(0)
    })
    return
  }
  const server = mode === 'seed' || mode === 'seed-stdin'
  const discovery = swarm.join(core.discoveryKey, { server, client: !server })
  if (server) {
    await discovery.flushed()
    process.stdout.write(JSON.stringify({ key: b4a.toString(core.key, 'hex'), publicKey }) + '\n')
    if (mode === 'seed-stdin') return
    process.stdin.resume()
    process.stdin.on('end', async () => {
      await swarm.destroy()
      process.exit(0)
    })
    return
  }
  await swarm.flush()
  const peers = Number(c || 0)
  await new Promise((resolve) => {
    const check = () => {
      if (core.peers.length < peers) return
      core.off('peer-add', check)
      resolve()
    }
    core.on('peer-add', check)
    check()
  })
  while (core.length === 0 || swarm.connections.size === 0) {
    await core.update({ wait: true })
    if (core.length === 0) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  await core.download({ start: 0, end: core.length }).done()
  if (mode === 'cat') {
    // The replication phase alone, for benches/hypercore-download.sh.
    console.error(`[transfer] ${(Date.now() - connectedAt) / 1000}`)
    for (let i = 0; i < core.length; i++) {
      if (!process.stdout.write(await core.get(i))) await new Promise((resolve) => process.stdout.once('drain', resolve))
    }
    await swarm.destroy()
    process.exit(0)
  }
  const parts = []
  for (let i = 0; i < core.length; i++) parts.push(await core.get(i))
  const h = b4a.alloc(32)
  sodium.crypto_generichash(h, b4a.concat(parts))
  const res = { length: core.length, hash: b4a.toString(h, 'hex') }
  if (peers) res.from = from
  process.stdout.write(JSON.stringify(res) + '\n')
  await swarm.destroy()
  process.exit(0)
}

async function appendStdin(core) {
  const BLOCK = 65536
  let pending = []
  let buffered = 0
  let batch = []
  const flush = async (final) => {
    while (buffered >= BLOCK || (final && buffered > 0)) {
      const all = b4a.concat(pending)
      const n = Math.min(BLOCK, all.length)
      batch.push(all.subarray(0, n))
      pending = [all.subarray(n)]
      buffered = all.length - n
      if (batch.length === 64) {
        await core.append(batch)
        batch = []
      }
    }
    if (final && batch.length) await core.append(batch)
  }
  for await (const chunk of process.stdin) {
    pending.push(chunk)
    buffered += chunk.length
    if (buffered >= BLOCK) await flush(false)
  }
  await flush(true)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
