// The hyperbeam 3.1.0 bin (node_modules/hyperbeam/bin.js) on a given DHT network:
//   node js/hyperbeam.js HOST:PORT[,HOST:PORT...] [PASSPHRASE] [-r]
// The bin has no bootstrap option, so this builds the Hyperbeam with `dht: new DHT({ bootstrap })` bound to
// 127.0.0.1 (the tests stay on loopback; the Rust connector has no NAT holepunching, only the LAN shortcut),
// and otherwise behaves as the bin: same stderr lines, stdin -> beam -> stdout, the far side's end ends this
// side, and the same SIGINT handling (before the peer connected: destroy and exit; after: end this side; a
// second SIGINT kills the process).
const Hyperbeam = require('hyperbeam')
const DHT = require('hyperdht')

const [list, ...rest] = process.argv.slice(2)
const bootstrap = list.split(',')
const reuse = rest.includes('-r')
const key = rest.find(a => a !== '-r')

// HYPERBEAM_HOST (default 127.0.0.1): the address the DHT binds (the NAT lab uses 0.0.0.0).
const dht = new DHT({ bootstrap, ephemeral: true, host: process.env.HYPERBEAM_HOST || '127.0.0.1' })
// HYPERBEAM_RELAY (hex public key): both sides pair through this blind relay as well (hyperdht's
// relayThrough, which hyperbeam does not expose: passed by wrapping the node's connect/createServer).
if (process.env.HYPERBEAM_RELAY) {
  const relayThrough = Buffer.from(process.env.HYPERBEAM_RELAY, 'hex')
  const connect = dht.connect.bind(dht)
  // Not the connection to the relay itself: hyperdht opens that with this same dht.connect, and a
  // connection to the relay paired through the relay recursed (a relayed connection per connection to the
  // relay) until a direct one won; under load the JS side's pairing then failed now and then.
  dht.connect = (publicKey, opts = {}) =>
    relayThrough.equals(publicKey) ? connect(publicKey, opts) : connect(publicKey, { ...opts, relayThrough })
  const createServer = dht.createServer.bind(dht)
  dht.createServer = (opts = {}, onconnection) =>
    typeof opts === 'function'
      ? createServer({ relayThrough }, opts)
      : createServer({ ...opts, relayThrough }, onconnection)
}
const options = { announce: reuse, dht }
// Hyperbeam takes the options as first argument when there is no key.
const beam = key ? new Hyperbeam(key, options) : new Hyperbeam(options)

if (beam.announce) {
  console.error('[hyperbeam] Run hyperbeam ' + beam.key + ' to connect')
  console.error('[hyperbeam] To restart this side of the pipe with the same key add -r to the above')
} else {
  console.error('[hyperbeam] Connecting pipe...')
}
beam.on('remote-address', ({ host, port }) => {
  if (!host) console.error('[hyperbeam] Could not detect remote address')
  else console.error('[hyperbeam] Joined the DHT - remote address is ' + host + ':' + port)
})
beam.on('connected', () => {
  console.error('[hyperbeam] Success! Encrypted tunnel established to remote peer')
  // HYPERBEAM_DEBUG=1: how the connection reached the peer, as the Rust bin prints it. A stream on one of
  // the DHT's own sockets is direct (or LAN); on a holepunch socket of the pool it was punched.
  if (process.env.HYPERBEAM_DEBUG) {
    const conn = beam._out || beam._inc
    const raw = conn && conn.rawStream
    if (raw) {
      const own = raw.socket === dht.io.serverSocket || raw.socket === dht.io.clientSocket
      const path = own ? 'direct' : 'holepunch'
      console.error('[hyperbeam] path: ' + path + ' ' + raw.remoteHost + ':' + raw.remotePort)
    }
  }
})
beam.on('error', (e) => {
  console.error('[hyperbeam] Error:', e.message)
  process.exit(1)
})
beam.on('end', () => beam.end())

process.stdin.pipe(beam).pipe(process.stdout)
if (typeof process.stdin.unref === 'function') process.stdin.unref()

process.once('SIGINT', () => {
  if (!beam.connected) closeASAP()
  else beam.end()
})

function closeASAP () {
  console.error('[hyperbeam] Shutting down beam...')
  const timeout = setTimeout(() => process.exit(1), 2000)
  beam.destroy()
  beam.on('close', () => clearTimeout(timeout))
}
