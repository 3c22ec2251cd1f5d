// A JS hyperdht client on 127.0.0.1 that bootstraps through argv[2] ("host:port") — a network of Rust
// nodes serving hyperdht storage — and uses it: immutable and mutable values, announce/lookup,
// announcing itself/findPeer, unannounce. Prints one JSON line with what it read back.
'use strict'
const DHT = require('hyperdht')
const b4a = require('b4a')
const sodium = require('sodium-universal')

const freePort = require('./free-port')

function hash(data) {
  const out = b4a.alloc(32)
  sodium.crypto_generichash(out, data)
  return out
}

async function main() {
  const [host, port] = process.argv[2].split(':')
  const client = new DHT({ bootstrap: [{ host, port: Number(port) }], host: '127.0.0.1', port: await freePort() })
  await client.fullyBootstrapped()
  const out = {}

  const { hash: immHash, closestNodes } = await client.immutablePut(b4a.from('imm from js'))
  out.immPutNodes = closestNodes.length
  const imm = await client.immutableGet(immHash)
  out.imm = imm ? b4a.toString(imm.value) : null

  const mk = DHT.keyPair(b4a.alloc(32, 5))
  await client.mutablePut(mk, b4a.from('mut v5'), { seq: 5 })
  await client.mutablePut(mk, b4a.from('mut v4'), { seq: 4 }) // refused: SEQ_TOO_LOW
  const mut = await client.mutableGet(mk.publicKey)
  out.mut = mut ? b4a.toString(mut.value) : null
  out.mutSeq = mut ? mut.seq : -1

  const topic = b4a.alloc(32, 0x0c)
  const ak = DHT.keyPair(b4a.alloc(32, 6))
  await client.announce(topic, ak, [{ host: '1.2.3.4', port: 5 }]).finished()
  const found = []
  for await (const data of client.lookup(topic)) {
    for (const p of data.peers) {
      found.push(b4a.toString(p.publicKey, 'hex') + '@' + p.relayAddresses.map((a) => a.host + ':' + a.port).join('|'))
    }
  }
  out.lookup = [...new Set(found)]

  const sk = DHT.keyPair(b4a.alloc(32, 7))
  await client.announce(hash(sk.publicKey), sk, []).finished()
  let peerFound = null
  for await (const data of client.findPeer(sk.publicKey)) {
    peerFound = b4a.toString(data.peer.publicKey, 'hex')
    break
  }
  out.findPeer = peerFound

  await client.unannounce(topic, ak)
  const after = []
  for await (const data of client.lookup(topic)) after.push(...data.peers)
  out.afterUnannounce = after.length

  out.announcePk = b4a.toString(ak.publicKey, 'hex')
  out.selfPk = b4a.toString(sk.publicKey, 'hex')
  console.log(JSON.stringify(out))
  await client.destroy()
  process.exit(0)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
