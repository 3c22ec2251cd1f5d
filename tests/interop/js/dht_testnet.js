// A dht-rpc testnet on 127.0.0.1: a bootstrapper and N-1 persistent nodes.
// Every node answers custom command 42 with "echo:" + value (and UNKNOWN_COMMAND otherwise).
// Prints one JSON line {"bootstrap": "127.0.0.1:port", "nodes": ["127.0.0.1:port", ...]} when ready, then
// reads commands from stdin, one per line:
//   has <host:port>    -> prints {"has": <number of nodes whose table contains that node's id>}
//   find <hex target>  -> prints {"closest": ["host:port", ...]} from a findNode on the last node
// and exits when stdin closes.
'use strict'
const DHT = require('dht-rpc')
const peer = require('dht-rpc/lib/peer')
const b4a = require('b4a')
const readline = require('readline')

const N = Number(process.argv[2] || 10)
const ECHO = 42

function serve(node) {
  node.on('request', (req) => {
    if (req.command === ECHO) req.reply(b4a.concat([b4a.from('echo:'), req.value || b4a.alloc(0)]))
    else req.error(DHT.ERROR_UNKNOWN_COMMAND)
  })
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = require('dgram').createSocket('udp4')
    s.on('error', reject)
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

async function main() {
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

  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', async (line) => {
    const [cmd, arg] = line.trim().split(' ')
    if (cmd === 'has') {
      const [host, port] = arg.split(':')
      const id = peer.id(host, Number(port))
      console.log(JSON.stringify({ has: nodes.filter((n) => n.table.get(id)).length }))
    } else if (cmd === 'find') {
      const q = nodes[nodes.length - 1].findNode(b4a.from(arg, 'hex'))
      await q.finished()
      console.log(JSON.stringify({ closest: q.closestReplies.map((r) => r.from.host + ':' + r.from.port) }))
    }
  })
  rl.on('close', async () => {
    for (const n of nodes) await n.destroy()
    process.exit(0)
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
