// A protomux-wakeup 2.9.0 peer (the wakeup protocol of autobase 7) over @hyperswarm/secret-stream on TCP
// 127.0.0.1, for tests/interop/tests/it/protomux_wakeup_interop.rs.
//
// usage: node js/wakeup_peer.js <listen|connect> <port|0> <capability hex>
// Prints `port <n>` when listening, then one line per event:
//   vectors <ns0 hex> <ns1 hex>                   crypto.namespace('wakeup', 2), at start
//   peer-add <active>                             a peer's channel opened and its capability proof checked
//   peer-active | peer-inactive                   the peer's topic became (in)active
//   lookup <hash hex|null>                        the peer asked for our writers; answered with an announce of
//                                                 [{key: 0x11 * 32, length: 5}, {key: 0x22 * 32, length: 300}]
//   announce <key hex>:<length>,...               the peer announced its writers
//   peer-remove                                   the peer's channel closed
//   end                                           the stream closed
// After a peer is added, sends it a lookup (no hash).
const net = require('net')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const crypto = require('hypercore-crypto')
const b4a = require('b4a')
const Wakeup = require('protomux-wakeup')

const [mode, portArg, capHex] = process.argv.slice(2)
const hex = (b) => b4a.toString(b, 'hex')
const say = (line) => process.stdout.write(line + '\n')
const capability = b4a.from(capHex, 'hex')

const ns = crypto.namespace('wakeup', 2)
say(`vectors ${hex(ns[0])} ${hex(ns[1])}`)

const writers = [
  { key: b4a.alloc(32, 0x11), length: 5 },
  { key: b4a.alloc(32, 0x22), length: 300 }
]

function run(socket, isInitiator) {
  const s = new NoiseSecretStream(isInitiator, socket)
  s.on('error', (err) => say(`error ${err.message}`))
  s.on('close', () => {
    say('end')
    process.exit(0)
  })
  const w = new Wakeup()
  w.session(capability, {
    onpeeradd(peer, session) {
      say(`peer-add ${peer.active}`)
      session.lookup(peer)
    },
    onpeerremove() {
      say('peer-remove')
    },
    onpeeractive() {
      say('peer-active')
    },
    onpeerinactive() {
      say('peer-inactive')
    },
    onlookup(req, peer, session) {
      say(`lookup ${req.hash ? hex(req.hash) : 'null'}`)
      session.announce(peer, writers)
    },
    onannounce(wakeup, peer) {
      say(`announce ${wakeup.map((x) => `${hex(x.key)}:${x.length}`).join(',')}`)
    }
  })
  w.addStream(s)
}

if (mode === 'listen') {
  const server = net.createServer((socket) => run(socket, false))
  server.listen(Number(portArg), '127.0.0.1', () => say(`port ${server.address().port}`))
} else {
  const socket = net.connect(Number(portArg), '127.0.0.1')
  run(socket, true)
}
