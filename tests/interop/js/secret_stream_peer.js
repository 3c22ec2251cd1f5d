// A @hyperswarm/secret-stream peer over TCP on 127.0.0.1 for the Rust interop tests.
//
// usage: node js/secret_stream_peer.js <listen|connect> <port|0> <key=value>...
//   seed=<hex32>          static key pair seed
//   send=<n>              bytes to send (xorshift32 stream seeded with sendseed), then end()
//   sendseed=<n> recvseed=<n>  seeds of the byte streams sent and expected
//   pattern=XX|IK         handshake pattern (default XX)
//   remote=<hex32>        remotePublicKey option (required for an IK initiator)
//   keepalive=<ms> timeout=<ms>  setKeepAlive / setTimeout
//   delay=<ms>            stay idle this long after the handshake before sending
// Prints `port <n>` once listening, then one `result ...` line (or `error <message>`) and exits.
const net = require('net')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const b4a = require('b4a')

const [mode, portArg, ...rest] = process.argv.slice(2)
const opts = Object.fromEntries(rest.map((kv) => kv.split('=')))
const keyPair = NoiseSecretStream.keyPair(b4a.from(opts.seed, 'hex'))
const total = Number(opts.send || 0)

function xorshift (seed) {
  let s = (seed >>> 0) || 1
  return function fill (buf) {
    for (let i = 0; i < buf.length; i++) {
      s ^= s << 13
      s >>>= 0
      s ^= s >>> 17
      s ^= s << 5
      s >>>= 0
      buf[i] = s & 0xff
    }
    return buf
  }
}

function fail (msg) {
  process.stdout.write(`error ${msg}\n`)
  process.exit(1)
}

function run (socket, isInitiator) {
  const streamOpts = { keyPair }
  if (opts.pattern) streamOpts.pattern = opts.pattern
  if (opts.remote) streamOpts.remotePublicKey = b4a.from(opts.remote, 'hex')
  const s = new NoiseSecretStream(isInitiator, socket, streamOpts)
  if (opts.keepalive) s.setKeepAlive(Number(opts.keepalive))
  if (opts.timeout) s.setTimeout(Number(opts.timeout))

  const expected = xorshift(Number(opts.recvseed || 2))
  let received = 0
  let mismatch = -1
  let ended = false
  let finished = total === 0

  let printed = false
  s.on('error', (err) => fail(err.message))
  s.on('close', () => {
    if (printed) return
    printed = true
    process.stdout.write('closed\n')
    process.exit(0)
  })
  // the stream may also just run out of events (a half-open socket the peer dropped mid-handshake)
  process.on('exit', () => {
    if (!printed) process.stdout.write('closed\n')
  })
  s.on('data', (data) => {
    if (mismatch === -1) {
      const want = expected(b4a.alloc(data.byteLength))
      if (!b4a.equals(want, data)) {
        for (let i = 0; i < data.byteLength; i++) {
          if (want[i] !== data[i]) { mismatch = received + i; break }
        }
      }
    }
    received += data.byteLength
  })
  s.on('end', () => {
    if (process.env.PEER_DEBUG) console.error('js got end after', received)
    ended = true
    maybeDone()
  })

  function maybeDone () {
    if (!ended || !finished || printed) return
    printed = true
    process.stdout.write(`result received=${received} mismatch=${mismatch} ` +
      `remote=${b4a.toString(s.remotePublicKey, 'hex')} local=${b4a.toString(s.publicKey, 'hex')} ` +
      `hash=${b4a.toString(s.handshakeHash, 'hex')}\n`)
    s.end()
    s.on('close', () => process.exit(0))
    setTimeout(() => process.exit(0), 10000).unref()
  }

  s.on('connect', async () => {
    if (opts.delay) await new Promise((resolve) => setTimeout(resolve, Number(opts.delay)))
    const gen = xorshift(Number(opts.sendseed || 1))
    const sizes = xorshift(12345)
    let sent = 0
    while (sent < total) {
      // varied write sizes, up to 1 MiB: each becomes one secret-stream message
      const r = sizes(b4a.alloc(3))
      const n = Math.min(total - sent, 1 + ((r[0] | (r[1] << 8) | (r[2] << 16)) % (1 << 20)))
      const chunk = gen(b4a.alloc(n))
      sent += n
      if (!s.write(chunk)) await new Promise((resolve) => s.once('drain', resolve))
    }
    if (process.env.PEER_DEBUG) console.error('js sent', sent, 'received so far', received)
    if (total > 0) s.end()
    finished = true
    maybeDone()
  })
}

if (mode === 'listen') {
  // allowHalfOpen: the peer's end() must not end our side before we finished sending
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    server.close()
    run(socket, false)
  })
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`port ${server.address().port}\n`)
  })
} else {
  const socket = net.connect({ port: Number(portArg), host: '127.0.0.1', allowHalfOpen: true })
  run(socket, true)
}
