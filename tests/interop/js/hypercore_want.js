// JS hypercore 11 peers for the want/unwant and extension interop tests, over @hyperswarm/secret-stream on
// plain TCP (127.0.0.1). Block i is `block ${i}`. Output is JSON lines.
//
//   node hypercore_want.js seeder DIR N INDEX
//     Makes a writer core of N blocks (DIR/w) and a second core with its key (DIR/s) that downloads only
//     block INDEX from the writer over an in-memory stream, which is then closed. Serves the sparse copy:
//     prints {"port","key","length","contiguous","stored"} once listening. Stdin `fetch I` has it download
//     block I from the writer the same way, then prints {"fetched": I}.
//   node hypercore_want.js reader DIR KEYHEX INDICES PORT
//     Connects to PORT and reads only the blocks INDICES (comma separated), in order: prints
//     {"index","value","length","contiguous","wantsSent","downloads"} after each.
//   node hypercore_want.js ext DIR KEYHEX PORT
//     Connects to PORT with a reader of KEY that registers extension `x` (default encoding, c.buffer) and
//     `y`; on the peer sends `x` "ping 1" then "ping 2" (the second goes with an empty name) after a `y`
//     message the Rust side has not registered; prints {"got": message} for each `x` message received and
//     exits after two.
// Stdin command `stats` prints {"uploads","downloads","length","contiguous"}; closing stdin exits.
const net = require('net')
const readline = require('readline')
const Hypercore = require('hypercore')
const SecretStream = require('@hyperswarm/secret-stream')
const b4a = require('b4a')

const [mode, dir, ...args] = process.argv.slice(2)

function block(i) {
  return b4a.from(`block ${i}`)
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function serve(core, isInitiator, socket) {
  socket.setNoDelay(true)
  socket.on('error', () => {})
  const stream = new SecretStream(isInitiator, socket)
  stream.on('error', () => {})
  core.replicate(stream)
  return stream
}

function connect(core, port) {
  return serve(core, true, net.connect(Number(port), '127.0.0.1'))
}

async function stdinCommands(core, counters, fetch = null) {
  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    const [cmd, arg] = line.trim().split(/\s+/)
    if (cmd === 'stats') {
      out({ ...counters, length: core.length, contiguous: core.contiguousLength })
    } else if (cmd === 'fetch' && fetch) {
      await fetch(Number(arg))
      out({ fetched: Number(arg) })
    }
  }
  await core.close()
  process.exit(0)
}

async function seeder() {
  const [n, index] = args.map(Number)
  const w = new Hypercore(dir + '/w')
  await w.ready()
  for (let i = 0; i < n; i += 1000) {
    const batch = []
    for (let j = i; j < Math.min(n, i + 1000); j++) batch.push(block(j))
    await w.append(batch)
  }
  const s = new Hypercore(dir + '/s', w.key)
  await s.ready()
  const fetch = async (i) => {
    const a = w.replicate(true)
    const b = s.replicate(false)
    a.pipe(b).pipe(a)
    await s.get(i)
    a.destroy()
    b.destroy()
  }
  await fetch(index)

  const counters = { uploads: 0, downloads: 0 }
  s.on('upload', () => counters.uploads++)
  s.on('download', () => counters.downloads++)
  const server = net.createServer((socket) => serve(s, false, socket))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  let stored = 0
  for (let i = 0; i < s.length; i++) if (await s.has(i)) stored++
  out({
    port: server.address().port,
    key: b4a.toString(s.key, 'hex'),
    length: s.length,
    contiguous: s.contiguousLength,
    stored
  })
  await stdinCommands(s, counters, fetch)
}

async function reader() {
  const [key, indices, port] = args
  const core = new Hypercore(dir, b4a.from(key, 'hex'))
  await core.ready()
  let downloads = 0
  core.on('download', () => downloads++)
  connect(core, port)
  for (const index of indices.split(',').map(Number)) {
    const value = await core.get(index)
    out({
      index,
      value: b4a.toString(value),
      length: core.length,
      contiguous: core.contiguousLength,
      wantsSent: core.replicator.stats.wireWant.tx,
      downloads
    })
  }
  await stdinCommands(core, { uploads: 0, downloads })
}

async function ext() {
  const [key, port] = args
  const core = new Hypercore(dir, b4a.from(key, 'hex'))
  await core.ready()
  let got = 0
  const x = core.registerExtension('x', {
    onmessage(message) {
      out({ got: b4a.toString(message) })
      // Close the storage before exiting: exiting under a native storage write can crash the process.
      if (++got === 2) core.close().then(() => process.exit(0))
    }
  })
  const y = core.registerExtension('y', {})
  core.on('peer-add', (peer) => {
    y.send(b4a.from('for nobody'), peer)
    x.send(b4a.from('ping 1'), peer)
    x.send(b4a.from('ping 2'), peer)
  })
  connect(core, port)
}

const modes = { seeder, reader, ext }
modes[mode]().catch((err) => {
  console.error(err)
  process.exit(1)
})
