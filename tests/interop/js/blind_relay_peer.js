// blind-relay 1.6.1 over hyperdht 6, for the Rust <-> JS relay tests. Prints JSON lines.
// usage:
//   node js/blind_relay_peer.js relay <bootstrap host:port>
//       runs a blind-relay server on a hyperdht server (relay streams from dht.createRawStream, sessions named
//       by the connection's remote public key, as hyperdht's relayThrough expects); prints {"relay": pkHex},
//       then {"paired": n} after every matched pairing. Runs until stdin closes.
//   node js/blind_relay_peer.js pair <bootstrap> <relay pk hex> <bytes>
//       two peers of one node connect to the relay (two connections, two key pairs), pair one raw stream
//       each (initiator and not) with one token, connect the raw streams to their relay streams
//       (connectRawStream), then both send <bytes> pattern bytes and end. Prints {"initiatorId",
//       "responderId", "receivedA": n, "receivedB": n, "ok": bool} or {"error"}.
//   node js/blind_relay_peer.js self <bootstrap> <relay pk hex>
//       connects to the relay naming the relay itself as relayThrough (what an app that passes relayThrough to
//       every dht.connect does when hyperdht opens its connection to the relay); prints {"connected": true}
//       once the connection opened, then {"alive": true} if it is still open 2 s later.
// The pattern byte i is (i * 7 + (i >> 10)) & 0xff. HYPERDHT_HOST (default 127.0.0.1): the address the DHT binds.
'use strict'
const DHT = require('hyperdht')
const relay = require('blind-relay')
const b4a = require('b4a')

function pattern(start, len) {
  const b = b4a.alloc(len)
  for (let k = 0; k < len; k++) {
    const i = start + k
    b[k] = (i * 7 + Math.floor(i / 1024)) & 0xff
  }
  return b
}

// Sends `total` pattern bytes and ends; resolves with what came back once the remote ended too.
function exchange(raw, total) {
  return new Promise((resolve) => {
    let received = 0
    let ok = true
    raw.on('data', (d) => {
      if (ok && !b4a.equals(d, pattern(received, d.length))) ok = false
      received += d.length
    })
    raw.on('end', () => resolve({ received, ok }))
    raw.on('error', (e) => resolve({ received, ok: false, error: String(e) }))
    let sent = 0
    while (sent < total) {
      const n = Math.min(65536, total - sent)
      raw.write(pattern(sent, n))
      sent += n
    }
    raw.end()
  })
}

function parseBootstrap(s) {
  return s.split(',').map((a) => {
    const [host, port] = a.split(':')
    return { host, port: Number(port) }
  })
}

async function runRelay(bootstrap) {
  const dht = new DHT({ bootstrap, host: process.env.HYPERDHT_HOST || '127.0.0.1' })
  await dht.fullyBootstrapped()
  let paired = 0
  const server = new relay.Server({ createStream: (opts) => dht.createRawStream(opts) })
  const s = dht.createServer((socket) => {
    socket.on('error', () => {})
    const session = server.accept(socket, { id: socket.remotePublicKey })
    session.on('error', () => {})
    session.on('pair', () => {
      paired++
      console.log(JSON.stringify({ paired }))
    })
  })
  const kp = DHT.keyPair()
  await s.listen(kp)
  console.log(JSON.stringify({ relay: b4a.toString(kp.publicKey, 'hex') }))
  process.stdin.resume()
  process.stdin.on('end', async () => {
    await s.close()
    await dht.destroy({ force: true })
    process.exit(0)
  })
}

function pairOne(dht, socket, isInitiator, token) {
  return new Promise((resolve, reject) => {
    const raw = dht.createRawStream()
    const client = relay.Client.from(socket, { id: socket.publicKey })
    client
      .pair(isInitiator, token, raw)
      .on('error', reject)
      .on('data', (remoteId) => {
        DHT.connectRawStream(socket, raw, remoteId)
        resolve({ raw, remoteId })
      })
  })
}

async function runPair(bootstrap, relayKey, total) {
  const dht = new DHT({ bootstrap, host: process.env.HYPERDHT_HOST || '127.0.0.1' })
  await dht.fullyBootstrapped()
  const a = dht.connect(relayKey, { keyPair: DHT.keyPair() })
  const b = dht.connect(relayKey, { keyPair: DHT.keyPair() })
  a.on('error', () => {})
  b.on('error', () => {})
  await Promise.all([a.opened, b.opened])
  const token = relay.token()
  const [pa, pb] = await Promise.all([pairOne(dht, a, true, token), pairOne(dht, b, false, token)])
  // A relay stream learns its peer from the peer's first packet: both sides send.
  const [ra, rb] = await Promise.all([exchange(pa.raw, total), exchange(pb.raw, total)])
  const result = { receivedA: ra.received, receivedB: rb.received, ok: ra.ok && rb.ok, error: ra.error || rb.error }
  console.log(JSON.stringify({ initiatorId: pa.remoteId, responderId: pb.remoteId, ...result }))
  await dht.destroy({ force: true })
  process.exit(0)
}

async function runSelf(bootstrap, relayKey) {
  const dht = new DHT({ bootstrap, ephemeral: true, host: process.env.HYPERDHT_HOST || '127.0.0.1' })
  const conn = dht.connect(relayKey, { relayThrough: relayKey })
  let closed = false
  conn.on('error', () => {})
  conn.on('close', () => {
    closed = true
  })
  await new Promise((resolve, reject) => {
    conn.once('open', resolve)
    conn.once('error', reject)
  })
  console.log(JSON.stringify({ connected: true }))
  await new Promise((resolve) => setTimeout(resolve, 2000))
  console.log(JSON.stringify({ alive: !closed }))
  await dht.destroy({ force: true })
  process.exit(0)
}

const [mode, bs, ...rest] = process.argv.slice(2)
const bootstrap = parseBootstrap(bs)
const fail = (e) => {
  console.log(JSON.stringify({ error: e.code || String(e) }))
  process.exit(1)
}
if (mode === 'relay') runRelay(bootstrap).catch(fail)
else if (mode === 'pair') runPair(bootstrap, b4a.from(rest[0], 'hex'), Number(rest[1])).catch(fail)
else if (mode === 'self') runSelf(bootstrap, b4a.from(rest[0], 'hex')).catch(fail)
else fail(new Error('unknown mode ' + mode))
