// Prints fixed wire vectors for the dht-rpc request/response layout and the hyperdht message codecs,
// produced by the pinned JS packages themselves. Output: one "name hex" pair per line.
// Run from tests/interop: node js/dht_vectors.js > ../../crates/dht/tests/it/vectors/dht.txt
'use strict'
const c = require('compact-encoding')
const b4a = require('b4a')
const sodium = require('sodium-universal')
const IO = require('dht-rpc/lib/io')
const peer = require('dht-rpc/lib/peer')
const m = require('hyperdht/lib/messages')
const { NS } = require('hyperdht/lib/constants')
const Persistent = require('hyperdht/lib/persistent')

const out = []
const emit = (name, buf) => out.push(name + ' ' + b4a.toString(buf, 'hex'))
const fill = (n, byte) => b4a.alloc(n, byte)

// ---- dht-rpc: drive the real IO class with fake sockets and capture what it sends ----
function makeIO({ ephemeral, firewalled, tableId, closest }) {
  const sent = []
  const fakeUdx = { watchNetworkInterfaces: () => ({ on() {}, destroy() {} }) }
  const table = { id: tableId, closest: () => closest || [] }
  const io = new IO(table, fakeUdx, { firewalled })
  io.ephemeral = ephemeral
  const mk = (name) => ({
    name,
    trySend(buf, port, host) { sent.push({ socket: name, buf: b4a.from(buf), port, host }) },
    address: () => ({ port: 1234 })
  })
  io.clientSocket = mk('client')
  io.serverSocket = mk('server')
  io._secrets = [fill(32, 0xa1), fill(32, 0xb2)]
  return { io, sent }
}

function request(name, ioOpts, tid, args) {
  const { io, sent } = makeIO(ioOpts)
  io._tid = tid
  const req = io.createRequest(args.to, args.token || null, args.internal, args.command,
    args.target || null, args.value || null, null, 0)
  req.send(true)
  emit(name, sent[0].buf)
}

const to = { host: '10.1.2.3', port: 49737 }
const idA = fill(32, 0x11)
request('rpc_req_ping', { ephemeral: true, firewalled: true, tableId: idA }, 7,
  { to, internal: true, command: 0 })
request('rpc_req_findnode_persistent', { ephemeral: false, firewalled: false, tableId: idA }, 0xbeef,
  { to, internal: true, command: 2, target: fill(32, 0x22) })
request('rpc_req_custom_token_value', { ephemeral: false, firewalled: false, tableId: idA }, 65535,
  { to: { host: '127.0.0.1', port: 1 }, internal: false, command: 300, target: fill(32, 0x33),
    token: fill(32, 0x44), value: b4a.from('hello world') })
request('rpc_req_pingnat', { ephemeral: true, firewalled: true, tableId: idA }, 1,
  { to, internal: true, command: 1, value: b4a.from([0x39, 0x30]) })

// Replies: feed a request in through onmessage so the IO decodes it, then reply.
function replyVector(name, ioOpts, reqBuf, from, fn) {
  const { io, sent } = makeIO(ioOpts)
  let got = null
  io.onrequest = (req) => { got = req }
  io.onmessage(io.serverSocket, reqBuf, from)
  fn(got)
  emit(name, sent[0].buf)
}
const nodes = [
  { host: '1.2.3.4', port: 1000 },
  { host: '255.254.253.252', port: 65535 },
  { host: '0.0.0.0', port: 1 }
]
const reqFrom = { host: '192.168.0.9', port: 5555 }
const findReq = b4a.from(out.find((l) => l.startsWith('rpc_req_findnode_persistent ')).split(' ')[1], 'hex')
const pingReq = b4a.from(out.find((l) => l.startsWith('rpc_req_ping ')).split(' ')[1], 'hex')
replyVector('rpc_res_ping', { ephemeral: true, firewalled: true, tableId: idA }, pingReq, reqFrom,
  (req) => req.sendReply(0, null, false, false))
replyVector('rpc_res_findnode_persistent', { ephemeral: false, firewalled: false, tableId: idA, closest: nodes },
  findReq, reqFrom, (req) => req.sendReply(0, null, true, true))
replyVector('rpc_res_error', { ephemeral: true, firewalled: false, tableId: idA, closest: nodes }, findReq, reqFrom,
  (req) => req.error(1))
replyVector('rpc_res_value', { ephemeral: false, firewalled: false, tableId: idA }, findReq, reqFrom,
  (req) => req.reply(b4a.from('reply-value'), { closerNodes: false }))

// peer ids and tokens
emit('peer_id_10.1.2.3:49737', peer.id('10.1.2.3', 49737))
emit('peer_id_127.0.0.1:1', peer.id('127.0.0.1', 1))
{
  const { io } = makeIO({ ephemeral: true, firewalled: true, tableId: idA })
  emit('token_0_192.168.0.9', io.token({ host: '192.168.0.9' }, 0))
  emit('token_1_192.168.0.9', io.token({ host: '192.168.0.9' }, 1))
  // one rotation: secrets[0] <- secrets[1], secrets[1] <- hash(old secrets[0])
  io._rotateSecrets = 1
  io.congestion = { drain() {}, isFull: () => true }
  io._drain()
  emit('token_rotated_0_192.168.0.9', io.token({ host: '192.168.0.9' }, 0))
  emit('token_rotated_1_192.168.0.9', io.token({ host: '192.168.0.9' }, 1))
}

// ---- hyperdht ----
const pk = fill(32, 0x55)
const a4 = [{ host: '8.8.8.8', port: 53 }, { host: '10.0.0.1', port: 40000 }]
emit('hd_handshake_min', c.encode(m.handshake, { mode: 0, noise: b4a.from('noise!'), peerAddress: null, relayAddress: null }))
emit('hd_handshake_full', c.encode(m.handshake, { mode: 4, noise: fill(300, 7), peerAddress: a4[0], relayAddress: a4[1] }))
emit('hd_holepunch', c.encode(m.holepunch, { mode: 2, id: 1000, payload: b4a.from('payload'), peerAddress: a4[1] }))
emit('hd_holepunch_nopeer', c.encode(m.holepunch, { mode: 1, id: 0, payload: b4a.alloc(0), peerAddress: null }))
emit('hd_holepunch_payload_min', c.encode(m.holepunchPayload, { error: 0, firewall: 1, round: 0, connected: false, punching: false, addresses: null, remoteAddress: null, token: null, remoteToken: null }))
emit('hd_holepunch_payload_full', c.encode(m.holepunchPayload, { error: 3, firewall: 2, round: 200, connected: true, punching: true, addresses: a4, remoteAddress: a4[0], token: fill(32, 1), remoteToken: fill(32, 2) }))
emit('hd_noise_payload_min', c.encode(m.noisePayload, { error: 0, firewall: 0, holepunch: null, addresses4: [], addresses6: [], udx: null, secretStream: null, relayThrough: null, relayAddresses: null }))
emit('hd_noise_payload_full', c.encode(m.noisePayload, {
  error: 2, firewall: 3,
  holepunch: { id: 77, relays: [{ relayAddress: a4[0], peerAddress: a4[1] }] },
  addresses4: a4,
  addresses6: [{ host: '2001:db8::1', port: 8080 }],
  udx: { reusableSocket: true, id: 12345, seq: 0 },
  secretStream: {},
  relayThrough: { publicKey: pk, token: fill(32, 0x66) },
  relayAddresses: [a4[1]]
}))
emit('hd_noise_payload_udx_plain', c.encode(m.noisePayload, { error: 0, firewall: 1, holepunch: null, addresses4: [], addresses6: [], udx: { reusableSocket: false, id: 1, seq: 70000 }, secretStream: {}, relayThrough: null, relayAddresses: null }))
emit('hd_peer', c.encode(m.peer, { publicKey: pk, relayAddresses: a4 }))
emit('hd_peers', c.encode(m.peers, [{ publicKey: pk, relayAddresses: [] }, { publicKey: fill(32, 0x77), relayAddresses: [a4[0]] }]))
const rec1 = c.encode(m.peer, { publicKey: pk, relayAddresses: [a4[0]] })
const rec2 = c.encode(m.peer, { publicKey: fill(32, 0x77), relayAddresses: [] })
emit('hd_lookup_raw_reply', c.encode(m.lookupRawReply, { peers: [rec1, rec2], bump: 0 }))
emit('hd_lookup_raw_reply_bump', c.encode(m.lookupRawReply, { peers: [rec1], bump: 1700000000000 }))
emit('hd_announce_full', c.encode(m.announce, { peer: { publicKey: pk, relayAddresses: a4 }, refresh: fill(32, 0x88), signature: fill(64, 0x99), bump: 5 }))
emit('hd_announce_refresh_only', c.encode(m.announce, { peer: null, refresh: fill(32, 0x88), signature: null, bump: 0 }))
emit('hd_mutable_signable', c.encode(m.mutableSignable, { seq: 42, value: b4a.from('mutable') }))
emit('hd_mutable_put_request', c.encode(m.mutablePutRequest, { publicKey: pk, seq: 0xfffff, value: b4a.from('v'), signature: fill(64, 0xab) }))
emit('hd_mutable_get_response', c.encode(m.mutableGetResponse, { seq: 3, value: b4a.from('value'), signature: fill(64, 0xcd) }))
emit('hd_plugin_request', c.encode(m.pluginRequest, { plugin: 'my-plugin', version: 2, command: 9, value: b4a.from('x') }))
emit('hd_plugin_request_novalue', c.encode(m.pluginRequest, { plugin: '', version: 0, command: 0, value: null }))

for (const k of Object.keys(NS)) emit('hd_ns_' + k, NS[k])

// Signables (what gets signed with ed25519), with a fixed keypair and its signatures.
{
  const seed = fill(32, 0x42)
  const publicKey = b4a.alloc(32)
  const secretKey = b4a.alloc(64)
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  const keyPair = { publicKey, secretKey }
  emit('hd_keypair_public', publicKey)
  emit('hd_sig_mutable', Persistent.signMutable(42, b4a.from('mutable'), keyPair))
  const ann = { peer: { publicKey, relayAddresses: a4 }, refresh: fill(32, 0x88) }
  emit('hd_sig_announce', Persistent.signAnnounce(fill(32, 0x01), fill(32, 0x02), fill(32, 0x03), ann, keyPair))
  const unann = { peer: { publicKey, relayAddresses: [] }, refresh: null }
  emit('hd_sig_unannounce', Persistent.signUnannounce(fill(32, 0x01), fill(32, 0x02), fill(32, 0x03), unann, keyPair))
}

console.log(out.join('\n'))
