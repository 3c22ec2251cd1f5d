// A JS hypercore 11 peer replicating over @hyperswarm/secret-stream on a plain TCP connection.
//
//   node hypercore_replicate.js writer DIR N (listen | connect PORT)
//   node hypercore_replicate.js reader DIR KEYHEX (listen | connect PORT)
//
// The writer creates a core with N blocks (block i = `block number ${i} ` repeated i % 7 + 1 times).
// The reader downloads every block of KEY. Output is JSON lines: {"port"} when listening, {"key","length"}
// for a writer once ready, {"length","hash"} for a reader each time it holds every block (hash = BLAKE2b-256
// of all blocks concatenated). Stdin commands (one per line):
//   append K     writer: append K more blocks, prints {"length"}
//   truncate N   writer: truncate to N blocks (a new fork), prints {"length","fork"}
//   stats        prints {"uploads","downloads","length","contiguous"}
//   wait LEN     reader: wait until the core has exactly LEN blocks, download them, print {"length","hash"}
// Closing stdin exits.
//
// With GET=i,j,... a reader reads only those blocks (sparse) and prints {"index","value"} for each (value as
// UTF-8), then {"length","contiguous"}, instead of downloading everything.
//
// With CORES=K in the environment the writer makes K cores (core j has N + j blocks, in DIR/j), all replicated
// on the one connection, and prints {"keys": [...]} instead of {"key","length"}.
const net = require('net')
const readline = require('readline')
const Hypercore = require('hypercore')
const SecretStream = require('@hyperswarm/secret-stream')
const sodium = require('sodium-native')
const b4a = require('b4a')

const [mode, dir, arg, how, port] = process.argv.slice(2)

function block(i) {
  return b4a.from(`block number ${i} `.repeat((i % 7) + 1))
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

async function hashAll(core) {
  const parts = []
  for (let i = 0; i < core.length; i++) parts.push(await core.get(i))
  const h = b4a.alloc(32)
  sodium.crypto_generichash(h, b4a.concat(parts))
  return b4a.toString(h, 'hex')
}

async function appendBlocks(core, n) {
  const start = core.length
  for (let i = start; i < start + n; i += 1000) {
    const batch = []
    for (let j = i; j < Math.min(start + n, i + 1000); j++) batch.push(block(j))
    await core.append(batch)
  }
}

async function main() {
  let core
  let uploads = 0
  let downloads = 0
  const extra = []
  if (mode === 'writer' && process.env.CORES) {
    for (let j = 1; j < Number(process.env.CORES); j++) {
      const c = new Hypercore(dir + '/' + j)
      await c.ready()
      await appendBlocks(c, Number(arg) + j)
      extra.push(c)
    }
  }
  if (mode === 'writer') {
    core = new Hypercore(process.env.CORES ? dir + '/0' : dir)
    await core.ready()
    await appendBlocks(core, Number(arg))
  } else {
    core = new Hypercore(dir, b4a.from(arg, 'hex'))
    await core.ready()
  }
  core.on('upload', () => uploads++)
  core.on('download', () => downloads++)

  const onsocket = (socket, isInitiator) => {
    socket.setNoDelay(true)
    const stream = new SecretStream(isInitiator, socket)
    stream.on('error', () => {})
    core.replicate(stream)
    for (const c of extra) c.replicate(stream)
  }

  if (how === 'listen') {
    const server = net.createServer((socket) => onsocket(socket, false))
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    out({ port: server.address().port })
  } else {
    const socket = net.connect(Number(port), '127.0.0.1')
    socket.on('error', () => {})
    onsocket(socket, true)
  }

  if (mode === 'writer' && process.env.CORES) {
    out({ keys: [core, ...extra].map((c) => b4a.toString(c.key, 'hex')) })
  } else if (mode === 'writer') {
    out({ key: b4a.toString(core.key, 'hex'), length: core.length })
  } else if (process.env.GET) {
    for (const i of process.env.GET.split(',').map(Number)) {
      const value = await core.get(i)
      out({ index: i, value: b4a.toString(value) })
    }
    out({ length: core.length, contiguous: core.contiguousLength })
  } else {
    await waitFor(core, 1, false)
  }

  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    const [cmd, n] = line.trim().split(/\s+/)
    if (cmd === 'append') {
      await appendBlocks(core, Number(n))
      out({ length: core.length })
    } else if (cmd === 'truncate') {
      await core.truncate(Number(n))
      out({ length: core.length, fork: core.fork })
    } else if (cmd === 'stats') {
      out({ uploads, downloads, length: core.length, contiguous: core.contiguousLength })
    } else if (cmd === 'wait') {
      await waitFor(core, Number(n), true)
    }
  }
  process.exit(0)
}

async function waitFor(core, len, exact) {
  // `exact`: after a truncation on the writer the length may go down first (a new fork).
  const ok = () => (exact ? core.length === len : core.length >= len)
  while (!ok()) {
    await core.update({ wait: true })
    if (ok()) break
    await new Promise((resolve) => {
      const done = () => {
        core.off('append', done)
        core.off('truncate', done)
        resolve()
      }
      core.on('append', done)
      core.on('truncate', done)
    })
  }
  await core.download({ start: 0, end: core.length }).done()
  out({ length: core.length, hash: await hashAll(core) })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
