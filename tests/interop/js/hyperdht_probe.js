// Probes DHT nodes from a JS hyperdht node that bootstraps through argv[2] ("HOST:PORT[,HOST:PORT...]"):
// sends an internal FIND_NODE (random target) straight to each node given after it ("host:port") and
// prints one JSON line: {"replies":[{"to":"host:port","closer":["host:port",...]} | {"to":..,"error":..}],
// "inTable":[bool,...]} — the closer nodes a node returns are the ones in its routing table, so they show
// which network it joined.
'use strict'
const DHT = require('hyperdht')
const crypto = require('hypercore-crypto')
const peer = require('dht-rpc/lib/peer')

const FIND_NODE = 2

async function main() {
  const bootstrap = process.argv[2].split(',')
  const targets = process.argv.slice(3)
  const node = new DHT({ bootstrap, host: '127.0.0.1' })
  await node.fullyBootstrapped()
  const replies = []
  for (const t of targets) {
    const [host, port] = t.split(':')
    const to = { host, port: Number(port) }
    try {
      const res = await new Promise((resolve, reject) => {
        node._request(to, false, true, FIND_NODE, crypto.randomBytes(32), null, null, resolve, reject)
      })
      replies.push({ to: t, closer: res.closerNodes.map((n) => n.host + ':' + n.port) })
    } catch (err) {
      replies.push({ to: t, error: String(err) })
    }
  }
  const inTable = targets.map((t) => {
    const [host, port] = t.split(':')
    return !!node.table.get(peer.id(host, Number(port)))
  })
  console.log(JSON.stringify({ replies, inTable }))
  await node.destroy()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
