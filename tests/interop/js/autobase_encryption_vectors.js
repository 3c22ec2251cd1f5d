// Prints the block encryption JS autobase 7.28.1 asks hypercore for, for fixed keys, as one JSON document:
// the key of each core kind (writer cores: hypercore's default derivation from the encryption key and the
// writer's key; the system and view cores of version-1 manifests: `getCompatBlockKey(bootstrap, encryptionKey,
// name)` used as the block key; version-2 cores: `getBlockKey(bootstrap, encryptionKey, entropy, key)` with the
// type-1 layout of `lib/encryption.js`), and stored blocks encrypted with them at given index and fork.
//
// usage: node js/autobase_encryption_vectors.js > crates/cores/tests/it/vectors/autobase_encryption.json
'use strict'
const b4a = require('b4a')
const crypto = require('hypercore-crypto')
const HypercoreEncryption = require('hypercore/lib/default-encryption.js')
const { AutobaseEncryption, EncryptionView } = require('autobase/lib/encryption.js')
const SystemView = require('autobase/lib/system.js')
const { NS_HASH_KEY } = require('autobase/lib/caps.js')

const hex = (b) => b4a.toString(b, 'hex')
const fill = (n, f) => {
  const b = b4a.alloc(n)
  for (let i = 0; i < n; i++) b[i] = f(i) & 0xff
  return b
}

const bootstrap = fill(32, (i) => i)
const encryptionKey = fill(32, (i) => 100 + i)
const writerKey = fill(32, (i) => 200 + i)
const coreKey = fill(32, (i) => 7 * i + 3)
const PLAIN = [b4a.from(''), b4a.from('hello'), fill(100, (i) => i * 3)]
const POSITIONS = [
  [0, 0],
  [1, 0],
  [5, 2],
  [4294967296, 1]
]

function stored(blockKey, blindingKey) {
  const out = []
  for (const [index, fork] of POSITIONS) {
    for (const p of PLAIN) {
      const buf = b4a.concat([b4a.alloc(8), p])
      HypercoreEncryption.encrypt(index, buf, fork, blockKey, blindingKey)
      out.push({ index, fork, plaintext: hex(p), stored: hex(buf) })
    }
  }
  return out
}

async function main() {
  const writer = HypercoreEncryption.deriveKeys(encryptionKey, writerKey)
  const views = []
  for (const name of ['_system', 'view', 'db']) {
    const block = EncryptionView.getBlockKey(bootstrap, encryptionKey, b4a.from(name), b4a.alloc(0))
    // getCompatBlockKey(bootstrap, encryptionKey, name) is hash(NS_VIEW_BLOCK_KEY, bootstrap, key, name)
    const blinding = crypto.hash(block)
    views.push({ name, blockKey: hex(block), blindingKey: hex(blinding), blocks: stored(block, blinding) })
  }

  // version-2 cores: the type-1 layout, key id = the encryption view's length
  const entropies = [SystemView.GENESIS_ENTROPY, fill(32, (i) => 50 + i)]
  const provider = {
    id: 1,
    base: { bootstrap, encryptionKey },
    get: async (id) => entropies[id],
    blockKey: (entropy, ctx) => EncryptionView.getBlockKey(bootstrap, encryptionKey, entropy, ctx.key)
  }
  const ctx = { key: coreKey, manifest: { version: 2, userData: null } }
  const v2 = []
  for (const id of [0, 1]) {
    provider.id = id
    const enc = new AutobaseEncryption(provider)
    for (const [index, fork] of POSITIONS) {
      for (const p of PLAIN) {
        const buf = b4a.concat([b4a.alloc(8), p])
        await enc.encrypt(index, buf, fork, ctx)
        const back = b4a.from(buf)
        await enc.decrypt(index, back, ctx)
        if (!b4a.equals(back.subarray(8), p)) throw new Error('round trip')
        v2.push({ id, index, fork, plaintext: hex(p), stored: hex(buf) })
      }
    }
  }
  const keys = entropies.map((e) => {
    const block = EncryptionView.getBlockKey(bootstrap, encryptionKey, e, coreKey)
    return { entropy: hex(e), blockKey: hex(block), hashKey: hex(crypto.hash([NS_HASH_KEY, block])) }
  })

  const doc = {
    bootstrap: hex(bootstrap),
    encryptionKey: hex(encryptionKey),
    writer: {
      key: hex(writerKey),
      blockKey: hex(writer.block),
      blindingKey: hex(writer.blinding),
      blocks: stored(writer.block, writer.blinding)
    },
    views,
    v2: { coreKey: hex(coreKey), keys, blocks: v2 },
    namespace: entropies.map((e) => hex(EncryptionView.namespace(e)))
  }
  process.stdout.write(JSON.stringify(doc, null, 1) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
