// A hyperdht testnet on 127.0.0.1 (as hyperdht/testnet builds it: persistent, unfirewalled nodes, but
// on free ports instead of hyperdht's default 49737) plus a client node. Prints {"bootstrap": "127.0.0.1:port", "nodes": [...]} when ready, then answers commands read
// from stdin, one per line, with one JSON line each:
//   put                       JS stores data: immutablePut("hello from js"), mutablePut(seed 0x01,
//                             "mutable from js", seq 3), announce(topic 0x0a.., seed 0x02)
//                             -> {"hash": hex, "mutablePk": hex, "announcePk": hex}
//   immget <hex hash>         -> {"value": "utf8 text" | null}
//   mutget <hex public key>   -> {"value": "utf8 text" | null, "seq": n}
//   lookup <hex topic>        -> {"keys": [hex public keys found]}
'use strict'
const DHT = require('hyperdht')
const b4a = require('b4a')
const readline = require('readline')

const N = Number(process.argv[2] || 8)

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

  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', async (line) => {
    const [cmd, arg] = line.trim().split(' ')
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
  })
  rl.on('close', async () => {
    await client.destroy()
    for (const n of nodes.reverse()) await n.destroy()
    process.exit(0)
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
