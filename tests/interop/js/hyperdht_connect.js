// A JS hyperdht server and client that find each other through the DHT given as argv[2] ("host:port",
// a network of Rust nodes): the server listens on a key pair (announcing itself), the client connects
// by public key (findPeer, then handshake and holepunch messages routed by the DHT nodes), they exchange
// one message over the encrypted stream. Prints one JSON line.
'use strict'
const DHT = require('hyperdht')
const b4a = require('b4a')

const freePort = require('./free-port')

async function main() {
  const [host, port] = process.argv[2].split(':')
  const bootstrap = [{ host, port: Number(port) }]
  const a = new DHT({ bootstrap, host: '127.0.0.1', port: await freePort() })
  const b = new DHT({ bootstrap, host: '127.0.0.1', port: await freePort() })
  await a.fullyBootstrapped()
  await b.fullyBootstrapped()

  const keyPair = DHT.keyPair(b4a.alloc(32, 9))
  const server = a.createServer((sock) => {
    sock.on('data', (d) => sock.write(b4a.concat([b4a.from('echo:'), d])))
    sock.on('error', () => {})
  })
  await server.listen(keyPair)

  const sock = b.connect(keyPair.publicKey)
  sock.on('error', (err) => {
    console.log(JSON.stringify({ error: String(err) }))
    process.exit(1)
  })
  await new Promise((resolve) => sock.once('open', resolve))
  sock.write(b4a.from('hi'))
  const data = await new Promise((resolve) => sock.once('data', resolve))
  console.log(
    JSON.stringify({
      echo: b4a.toString(data),
      remotePublicKey: b4a.toString(sock.remotePublicKey, 'hex'),
      serverPublicKey: b4a.toString(keyPair.publicKey, 'hex')
    })
  )
  sock.destroy()
  await server.close()
  await a.destroy()
  await b.destroy()
  process.exit(0)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
