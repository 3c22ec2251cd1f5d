// Bootstraps an ephemeral HyperDHT node through BOOTSTRAP (HOST:PORT[,...]), runs a findNode query for a random
// target and prints "ok N" with the number of nodes that answered. Exits 0 on success.
const DHT = require('hyperdht')
const crypto = require('hypercore-crypto')

async function main () {
  const bootstrap = process.argv[2].split(',')
  const node = new DHT({ bootstrap, host: '127.0.0.1' })
  await node.fullyBootstrapped()
  let replies = 0
  for await (const reply of node.findNode(crypto.randomBytes(32))) if (reply) replies++
  console.log('ok ' + replies)
  await node.destroy()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
