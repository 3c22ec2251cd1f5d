// A JS hyperswarm 4 peer for the Rust hyperswarm interop tests. Prints JSON lines.
//
// usage: node js/hyperswarm_peer.js [--quiet] [--delay-handshake MS] [--relay HEX] <bootstrap host:port[,...]>
//                                   <topic hex> <both|server|client|listen|none> [seed hex]
//   --delay-handshake MS: the server answers each handshake MS later (its firewall waits), so a peer dialling
//   us stays "connecting" that long (used to make two dials cross).
//   --relay HEX: the swarm's relayThrough, a function always choosing that blind relay (hyperswarm 4 passes it
//   to dht.connect and to its server).
//   Starts a swarm (its DHT bound to 127.0.0.1) with keyPair(seed) (random without a seed), prints
//   {"publicKey": hex}, joins the topic in the given mode (none: does not join; listen: swarm.listen() only),
//   waits for discovery.flushed() (or the listen) and prints {"flushed": true}.
//   Events, as they happen:
//     {"connection": remote pk hex, "client": bool}  then sends the message "js:<own pk hex>" on it (not with
//                                                     --quiet: a connection nothing was sent on yet is not
//                                                     "established" for hyperswarm's duplicate tie-break)
//     {"data": remote pk hex, "text": utf8}           each message received
//     {"closed": remote pk hex}
//   Commands on stdin, one a line, each answered with one line:
//     stats           -> {"connections": n, "remotes": [hex...]}
//     mode <m>        -> discovery.refresh({ server, client }) as <m> (both|server|client) -> {"mode": m}
//     flush           -> swarm.flush() -> {"flush": bool}
//     send <text>     -> writes <text> on every connection -> {"sent": n}
//     lookup          -> dht.lookup(topic), public keys found -> {"keys": [hex...]}
//     leave           -> swarm.leave(topic) -> {"left": true}
//     drop            -> destroys every connection -> {"dropped": n}
//     joinpeer <hex>  -> swarm.joinPeer(key) -> {"joined": hex}
//     mux             -> on every connection, a protomux channel "swarm-test" whose message 0 (a c.string)
//                        is printed as {"mux": text} and answered with "echo:" + text -> {"muxed": n}
//                        (use with --quiet: protomux owns the stream)
//   Exits (destroying the swarm) when stdin closes. HYPERSWARM_DEBUG=1 logs connection decisions on stderr.
'use strict'
const Hyperswarm = require('hyperswarm')
const DHT = require('hyperdht')
const b4a = require('b4a')
const Protomux = require('protomux')
const c = require('compact-encoding')
const readline = require('readline')

const argv = process.argv.slice(2)
let quiet = false
let delayHandshake = 0
let relayKey = null
while (argv[0] && argv[0].startsWith('--')) {
  const flag = argv.shift()
  if (flag === '--quiet') quiet = true
  else if (flag === '--delay-handshake') delayHandshake = Number(argv.shift())
  else if (flag === '--relay') relayKey = Buffer.from(argv.shift(), 'hex')
  else throw new Error('unknown flag ' + flag)
}
const [bootstrapArg, topicHex, modeArg, seedHex] = argv
const bootstrap = bootstrapArg.split(',').map((a) => {
  const [host, port] = a.split(':')
  return { host, port: Number(port) }
})
const topic = b4a.from(topicHex, 'hex')
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const hex = (b) => b4a.toString(b, 'hex')

function modeOpts(m) {
  return { server: m === 'both' || m === 'server', client: m === 'both' || m === 'client' }
}

async function main() {
  const keyPair = seedHex ? DHT.keyPair(b4a.from(seedHex, 'hex')) : DHT.keyPair()
  const dht = new DHT({ bootstrap, host: '127.0.0.1' })
  const swarm = new Hyperswarm({ dht, keyPair, relayThrough: relayKey ? () => relayKey : null })
  if (delayHandshake > 0) {
    const firewall = swarm.server.firewall
    swarm.server.firewall = async (...args) => {
      await new Promise((resolve) => setTimeout(resolve, delayHandshake))
      return firewall(...args)
    }
  }
  print({ publicKey: hex(keyPair.publicKey) })
  if (process.env.HYPERSWARM_DEBUG) {
    const log = (...a) => console.error('[js ' + Date.now() + ']', ...a)
    const orig = swarm._handleServerConnection.bind(swarm)
    swarm._handleServerConnection = (conn) => {
      const ex = swarm._allConnections.get(conn.remotePublicKey)
      log('server conn; existing:', !!ex, ex && { init: ex.isInitiator, r: ex.rawBytesRead, w: ex.rawBytesWritten })
      return orig(conn)
    }
    swarm.on('connection', (c) => {
      log('connection init', c.isInitiator)
      c.on('close', () => log('close init', c.isInitiator))
    })
  }

  swarm.on('connection', (conn, info) => {
    const remote = hex(conn.remotePublicKey)
    print({ connection: remote, client: info.client })
    conn.on('data', (d) => print({ data: remote, text: b4a.toString(d) }))
    conn.on('error', () => {})
    conn.on('close', () => print({ closed: remote }))
    if (!quiet) conn.write(b4a.from('js:' + hex(keyPair.publicKey)))
  })

  let discovery = null
  if (modeArg === 'listen') {
    await swarm.listen()
  } else if (modeArg !== 'none') {
    discovery = swarm.join(topic, modeOpts(modeArg))
    await discovery.flushed()
  }
  print({ flushed: true })

  const rl = readline.createInterface({ input: process.stdin })
  let queue = Promise.resolve()
  rl.on('line', (line) => {
    queue = queue.then(() => command(line.trim())).catch((err) => print({ error: String(err) }))
  })
  rl.on('close', async () => {
    await queue
    await swarm.destroy()
    process.exit(0)
  })

  async function command(line) {
    const [cmd, ...rest] = line.split(' ')
    if (cmd === 'stats') {
      print({ connections: swarm.connections.size, remotes: [...swarm.connections].map((c) => hex(c.remotePublicKey)) })
    } else if (cmd === 'mode') {
      await discovery.refresh(modeOpts(rest[0]))
      print({ mode: rest[0] })
    } else if (cmd === 'flush') {
      print({ flush: await swarm.flush() })
    } else if (cmd === 'send') {
      const text = rest.join(' ')
      for (const c of swarm.connections) c.write(b4a.from(text))
      print({ sent: swarm.connections.size })
    } else if (cmd === 'lookup') {
      const keys = new Set()
      for await (const data of dht.lookup(topic)) {
        for (const p of data.peers) keys.add(hex(p.publicKey))
      }
      print({ keys: [...keys] })
    } else if (cmd === 'mux') {
      for (const conn of swarm.connections) {
        const mux = Protomux.from(conn)
        const ch = mux.createChannel({ protocol: 'swarm-test' })
        const msg = ch.addMessage({
          encoding: c.string,
          onmessage(text) {
            print({ mux: text })
            msg.send('echo:' + text)
          }
        })
        ch.open()
      }
      print({ muxed: swarm.connections.size })
    } else if (cmd === 'joinpeer') {
      swarm.joinPeer(b4a.from(rest[0], 'hex'))
      print({ joined: rest[0] })
    } else if (cmd === 'drop') {
      const n = swarm.connections.size
      for (const c of swarm.connections) c.destroy()
      print({ dropped: n })
    } else if (cmd === 'leave') {
      await swarm.leave(topic)
      print({ left: true })
    } else {
      print({ error: 'unknown command ' + cmd })
    }
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
