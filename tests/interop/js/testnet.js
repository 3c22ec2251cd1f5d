// Local testnets on 127.0.0.1 for the Rust interop tests. Each prints one JSON line when ready and runs until
// stdin closes (or SIGTERM/SIGINT), so a test that dies takes its testnet with it.
//
// usage: node js/testnet.js [SIZE=5] [--port PORT]
//   hyperdht/testnet as is (interop::JsTestnet). Prints {"bootstrap": ["127.0.0.1:PORT", ...]}.
//
// usage: node js/testnet.js --dht-rpc [SIZE=10]
//   A dht-rpc bootstrapper and SIZE-1 persistent nodes. Every node answers custom command 42 with "echo:" + value
//   (and UNKNOWN_COMMAND otherwise). Prints {"bootstrap": "127.0.0.1:port", "nodes": [...], "ids": [hex...]},
//   then answers commands read from stdin, one per line:
//     has <host:port>    -> {"has": <number of nodes whose table contains that node's id>}
//     find <hex target>  -> {"closest": ["host:port", ...]} from a findNode on the last node
//
// usage: node js/testnet.js --hyperdht [SIZE=8]
//   SIZE hyperdht nodes as hyperdht/testnet builds them (persistent, unfirewalled), but on free ports instead of
//   hyperdht's default 49737, plus a client node. Prints {"bootstrap": "127.0.0.1:port", "nodes": [...]}, then
//   answers commands read from stdin, one per line, with one JSON line each ({"error": "..."} on failure):
//     put                       JS stores data: immutablePut("hello from js"), mutablePut(seed 0x01,
//                               "mutable from js", seq 3), announce(topic 0x0a.., seed 0x02)
//                               -> {"hash": hex, "mutablePk": hex, "announcePk": hex}
//     immget <hex hash>         -> {"value": "utf8 text" | null}
//     mutget <hex public key>   -> {"value": "utf8 text" | null, "seq": n}
//     lookup <hex topic>        -> {"keys": [hex public keys found]}
'use strict'
const b4a = require('b4a')
const readline = require('readline')
const freePort = require('./free-port')

const args = process.argv.slice(2)
const flag = (name) => {
  const i = args.indexOf(name)
  if (i === -1) return false
  args.splice(i, 1)
  return true
}
const option = (name) => {
  const i = args.indexOf(name)
  if (i === -1) return null
  const value = args[i + 1]
  args.splice(i, 2)
  return value
}

// Runs `onLine` for each stdin line and `onClose` once stdin closes (or on SIGTERM/SIGINT), then exits.
function commandLoop (onLine, onClose) {
  let closing = false
  const close = async () => {
    if (closing) return
    closing = true
    await onClose()
    process.exit(0)
  }
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    const [cmd, arg] = line.trim().split(' ')
    onLine(cmd, arg)
  })
  rl.on('close', close)
  process.on('SIGTERM', close)
  process.on('SIGINT', close)
}

async function hyperdhtTestnet () {
  const createTestnet = require('hyperdht/testnet')
  const port = Number(option('--port') || 0)
  const size = Number(args[0] || 5)
  const testnet = await createTestnet(size, { host: '127.0.0.1', port })
  const bootstrap = testnet.bootstrap.map((b) => b.host + ':' + b.port)
  process.stdout.write(JSON.stringify({ bootstrap }) + '\n')
  commandLoop(() => {}, () => testnet.destroy())
}

async function dhtRpcTestnet () {
  const DHT = require('dht-rpc')
  const peer = require('dht-rpc/lib/peer')
  const N = Number(args[0] || 10)
  const ECHO = 42
  const serve = (node) => {
    node.on('request', (req) => {
      if (req.command === ECHO) req.reply(b4a.concat([b4a.from('echo:'), req.value || b4a.alloc(0)]))
      else req.error(DHT.ERROR_UNKNOWN_COMMAND)
    })
  }

  const nodes = []
  const bootstrapper = DHT.bootstrapper(await freePort(), '127.0.0.1', { host: '127.0.0.1' })
  await bootstrapper.fullyBootstrapped()
  serve(bootstrapper)
  nodes.push(bootstrapper)
  const bootstrap = ['127.0.0.1:' + bootstrapper.address().port]
  for (let i = 1; i < N; i++) {
    const node = new DHT({ bootstrap, ephemeral: false, firewalled: false, host: '127.0.0.1' })
    serve(node)
    await node.fullyBootstrapped()
    nodes.push(node)
  }
  // Let the tables settle: one more refresh round each.
  for (const node of nodes) await node.findNode(node.table.id).finished()

  const addr = (n) => '127.0.0.1:' + n.address().port
  console.log(JSON.stringify({ bootstrap: bootstrap[0], nodes: nodes.map(addr), ids: nodes.map((n) => b4a.toString(n.id, 'hex')) }))

  commandLoop(async (cmd, arg) => {
    if (cmd === 'has') {
      const [host, port] = arg.split(':')
      const id = peer.id(host, Number(port))
      console.log(JSON.stringify({ has: nodes.filter((n) => n.table.get(id)).length }))
    } else if (cmd === 'find') {
      const q = nodes[nodes.length - 1].findNode(b4a.from(arg, 'hex'))
      await q.finished()
      console.log(JSON.stringify({ closest: q.closestReplies.map((r) => r.from.host + ':' + r.from.port) }))
    }
  }, async () => {
    for (const n of nodes) await n.destroy()
  })
}

async function hyperdhtWithClient () {
  const DHT = require('hyperdht')
  const N = Number(args[0] || 8)
  const nodes = []
  const bootstrap = []
  for (let i = 0; i < N; i++) {
    const opts = { ephemeral: false, firewalled: false, bootstrap, host: '127.0.0.1', port: await freePort() }
    const node = new DHT(opts)
    await node.fullyBootstrapped()
    if (i === 0) bootstrap.push({ host: '127.0.0.1', port: node.address().port })
    nodes.push(node)
  }
  const client = new DHT({ bootstrap, host: '127.0.0.1', port: await freePort() })
  await client.fullyBootstrapped()
  console.log(
    JSON.stringify({
      bootstrap: '127.0.0.1:' + bootstrap[0].port,
      nodes: nodes.map((n) => '127.0.0.1:' + n.address().port)
    })
  )

  commandLoop(async (cmd, arg) => {
    try {
      if (cmd === 'put') {
        const { hash } = await client.immutablePut(b4a.from('hello from js'))
        const mk = DHT.keyPair(b4a.alloc(32, 1))
        await client.mutablePut(mk, b4a.from('mutable from js'), { seq: 3 })
        const ak = DHT.keyPair(b4a.alloc(32, 2))
        await client.announce(b4a.alloc(32, 0x0a), ak, []).finished()
        console.log(
          JSON.stringify({
            hash: b4a.toString(hash, 'hex'),
            mutablePk: b4a.toString(mk.publicKey, 'hex'),
            announcePk: b4a.toString(ak.publicKey, 'hex')
          })
        )
      } else if (cmd === 'immget') {
        const r = await client.immutableGet(b4a.from(arg, 'hex'))
        console.log(JSON.stringify({ value: r ? b4a.toString(r.value) : null }))
      } else if (cmd === 'mutget') {
        const r = await client.mutableGet(b4a.from(arg, 'hex'))
        console.log(JSON.stringify({ value: r ? b4a.toString(r.value) : null, seq: r ? r.seq : -1 }))
      } else if (cmd === 'lookup') {
        const keys = new Set()
        for await (const data of client.lookup(b4a.from(arg, 'hex'))) {
          for (const p of data.peers) keys.add(b4a.toString(p.publicKey, 'hex'))
        }
        console.log(JSON.stringify({ keys: [...keys] }))
      }
    } catch (err) {
      console.log(JSON.stringify({ error: String(err) }))
    }
  }, async () => {
    await client.destroy()
    for (const n of nodes.reverse()) await n.destroy()
  })
}

const main = flag('--dht-rpc') ? dhtRpcTestnet : flag('--hyperdht') ? hyperdhtWithClient : hyperdhtTestnet

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
