// Prints the key pairs, keys and discovery keys JS corestore 7 derives for named cores, for a fixed primary key,
// as one JSON line: {"primaryKey": hex, "cores": [{"ns": [names...], "name": str, "namespace": hex,
// "publicKey": hex, "secretKey": hex, "key": hex, "discoveryKey": hex}, ...]}.
//
// usage: node js/corestore_vectors.js
'use strict'
const os = require('os')
const fs = require('fs')
const path = require('path')
const b4a = require('b4a')
const Corestore = require('corestore')

const CASES = [
  { ns: [], name: 'default' },
  { ns: [], name: 'hello' },
  { ns: ['app'], name: 'default' },
  { ns: ['app'], name: 'hello' },
  { ns: ['app', 'sub'], name: 'hello' },
  { ns: ['ünïcode'], name: 'naïve 🌍' }
]

async function main () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corestore-vectors-'))
  const primaryKey = b4a.alloc(32)
  for (let i = 0; i < 32; i++) primaryKey[i] = i
  const store = new Corestore(dir, { primaryKey, unsafe: true })
  await store.ready()
  const cores = []
  for (const c of CASES) {
    let s = store
    for (const n of c.ns) s = s.namespace(n)
    const core = s.get({ name: c.name })
    await core.ready()
    cores.push({
      ns: c.ns,
      name: c.name,
      namespace: b4a.toString(s.ns, 'hex'),
      publicKey: b4a.toString(core.keyPair.publicKey, 'hex'),
      secretKey: b4a.toString(core.keyPair.secretKey, 'hex'),
      key: b4a.toString(core.key, 'hex'),
      discoveryKey: b4a.toString(core.discoveryKey, 'hex')
    })
    await core.close()
  }
  await store.close()
  fs.rmSync(dir, { recursive: true, force: true })
  console.log(JSON.stringify({ primaryKey: b4a.toString(primaryKey, 'hex'), cores }))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
