#!/usr/bin/env node
// Generates the JS-checked vectors for crates/wire/src/{crypto,z32,id_encoding,base32}.rs:
//   crates/wire/tests/it/vectors/crypto.json       hypercore-crypto + sodium (key pairs, signatures, BLAKE2b, ...)
//   crates/wire/tests/it/vectors/id_encoding.json  hypercore-id-encoding and z32
//   crates/wire/tests/it/vectors/base32.json      hi-base32 and hyperbeam's passphrase -> key pair
//
// Run from tests/interop:   node js/gen-crypto-vectors.js
// Everything is deterministic (fixed seeds and inputs), so re-running gives the same files.

'use strict'

const fs = require('fs')
const path = require('path')
const b4a = require('b4a')
const sodium = require('sodium-universal')
const crypto = require('hypercore-crypto')
const id = require('hypercore-id-encoding')
const z32 = require('z32')
const b32 = require('hi-base32')
const DHT = require('hyperdht')

// VECTORS_DIR overrides the output directory (the Rust test that checks the committed files are fresh uses it).
const DIR = process.env.VECTORS_DIR || path.join(__dirname, '..', '..', '..', 'crates', 'wire', 'tests', 'it', 'vectors')
const hex = (b) => b4a.toString(b, 'hex')
const fromHex = (h) => b4a.from(h, 'hex')

// Deterministic pseudo-random bytes (not crypto, just varied test input).
function bytes(n, seed) {
  const b = b4a.alloc(n)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    b[i] = x & 0xff
  }
  return b
}

function write(name, doc) {
  const file = path.join(DIR, name)
  fs.mkdirSync(DIR, { recursive: true })
  fs.writeFileSync(file, JSON.stringify(doc, null, 1) + '\n')
  console.log(`wrote ${path.relative(process.cwd(), file)}`)
}

const versions = (...names) => Object.fromEntries(names.map((n) => [n, require(`${n}/package.json`).version]))

// ---------------------------------------------------------------- crypto.json

const seeds = [b4a.alloc(32, 0), b4a.alloc(32, 0xff), b4a.from('0123456789abcdef0123456789abcdef'), bytes(32, 1), bytes(32, 2), bytes(32, 3)]

const keyPairs = seeds.map((seed) => {
  const kp = crypto.keyPair(seed)
  const dht = DHT.keyPair(seed)
  if (!b4a.equals(kp.publicKey, dht.publicKey) || !b4a.equals(kp.secretKey, dht.secretKey)) throw new Error('DHT.keyPair differs')
  if (!crypto.validateKeyPair(kp)) throw new Error('invalid key pair')
  return { seed: hex(seed), public_key: hex(kp.publicKey), secret_key: hex(kp.secretKey), discovery_key: hex(crypto.discoveryKey(kp.publicKey)) }
})

const messages = [b4a.alloc(0), b4a.from('hello'), bytes(1000, 9), b4a.alloc(64, 0xaa)]
const signatures = []
for (let i = 0; i < seeds.length; i++) {
  const kp = crypto.keyPair(seeds[i])
  for (const m of messages.slice(0, i % 2 === 0 ? 4 : 2)) {
    signatures.push({ secret_key: hex(kp.secretKey), message: hex(m), signature: hex(crypto.sign(m, kp.secretKey)) })
  }
}

// verify(): valid signatures, tampering, and the encodings libsodium is strict about.
const L = (1n << 252n) + 27742317777372353535851937790883648493n
const leToBig = (b) => b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n)
const bigToLe = (n, len) => {
  const b = b4a.alloc(len)
  for (let i = 0; i < len; i++) {
    b[i] = Number(n & 0xffn)
    n >>= 8n
  }
  return b
}
const verifyCases = []
function addVerify(note, message, signature, publicKey) {
  verifyCases.push({ note, message: hex(message), signature: hex(signature), public_key: hex(publicKey), valid: crypto.verify(message, signature, publicKey) })
}
{
  const kp = crypto.keyPair(seeds[3])
  const other = crypto.keyPair(seeds[4])
  const m = b4a.from('a message to sign')
  const sig = crypto.sign(m, kp.secretKey)
  addVerify('valid', m, sig, kp.publicKey)
  addVerify('other key', m, sig, other.publicKey)
  addVerify('tampered message', b4a.from('a message to sigh'), sig, kp.publicKey)
  for (const at of [0, 31, 32, 63]) {
    const bad = b4a.from(sig)
    bad[at] ^= 1
    addVerify(`signature bit flipped at ${at}`, m, bad, kp.publicKey)
  }
  // S + L: the same scalar mod L, but not canonical.
  const s = leToBig(sig.subarray(32))
  const nonCanonical = b4a.concat([sig.subarray(0, 32), bigToLe(s + L, 32)])
  addVerify('S + L (non-canonical S)', m, nonCanonical, kp.publicKey)
  // Small-order public keys with the "signature" R = identity, S = 0, which passes a lax cofactorless check.
  const identity = b4a.concat([b4a.from([1]), b4a.alloc(31)])
  addVerify('identity public key, R = identity, S = 0', m, b4a.concat([identity, b4a.alloc(32)]), identity)
  const order2 = fromHex('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f')
  addVerify('order-2 public key', m, b4a.concat([identity, b4a.alloc(32)]), order2)
  // Non-canonical encoding of the identity (y = p + 1).
  const yP1 = fromHex('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f')
  addVerify('identity public key encoded with y = p + 1', m, b4a.concat([identity, b4a.alloc(32)]), yP1)
  addVerify('all-zero signature', m, b4a.alloc(64), kp.publicKey)
  const empty = b4a.alloc(0)
  const esig = crypto.sign(empty, other.secretKey)
  addVerify('valid, empty message', empty, esig, other.publicKey)
}

// BLAKE2b (crypto_generichash_batch): output 16..64 bytes, key none or 16..64 bytes (sodium's limits).
const blake2bCases = []
const partSets = [
  [],
  [b4a.alloc(0)],
  [b4a.from('abc')],
  [bytes(127, 4)],
  [bytes(128, 5)],
  [bytes(129, 6)],
  [bytes(100, 7), bytes(28, 8), bytes(1, 9), b4a.alloc(0), bytes(300, 10)],
  [bytes(1000, 11)]
]
for (const outLen of [16, 20, 32, 48, 64]) {
  for (const key of [null, bytes(16, 12), bytes(32, 13), bytes(64, 14)]) {
    for (const parts of partSets) {
      const out = b4a.alloc(outLen)
      if (key) sodium.crypto_generichash_batch(out, parts, key)
      else sodium.crypto_generichash_batch(out, parts)
      blake2bCases.push({ out_len: outLen, key: key ? hex(key) : '', parts: parts.map(hex), hash: hex(out) })
    }
  }
}

const hashCases = partSets.map((parts) => ({ parts: parts.map(hex), hash: hex(crypto.hash(parts)) }))
hashCases.push({ parts: [hex(b4a.from('single buffer'))], hash: hex(crypto.hash(b4a.from('single buffer'))) })

const namespaceCases = [
  ['hyperswarm/secret-stream', 1],
  ['autobase', 4],
  ['', 2]
].map(([name, count]) => ({ name: hex(b4a.from(name)), ids: Array.from({ length: count }, (_, i) => i), hashes: crypto.namespace(name, count).map(hex) }))
namespaceCases.push({ name: hex(bytes(40, 15)), ids: [7, 0, 255], hashes: crypto.namespace(bytes(40, 15), [7, 0, 255]).map(hex) })

// Merkle tree hashes.
const leaves = [b4a.alloc(0), b4a.from('a'), bytes(4096, 16)].map((d) => ({ data: hex(d), hash: hex(crypto.data(d)) }))
const node = (index, size, seed) => ({ index, size, hash: bytes(32, seed) })
const nodeJson = (n) => ({ index: n.index, size: n.size, hash: hex(n.hash) })
const parents = [
  [node(0, 10, 20), node(2, 5, 21)],
  [node(2, 5, 21), node(0, 10, 20)],
  [node(3, 1000, 22), node(11, 3, 23)],
  [node(1e9, 2 ** 40, 24), node(1e9 + 4, 7, 25)]
].map(([a, b]) => ({ a: nodeJson(a), b: nodeJson(b), hash: hex(crypto.parent(a, b)) }))
const trees = [[], [node(0, 5, 26)], [node(3, 4000, 27), node(9, 12, 28), node(12, 1, 29)]].map((roots) => ({
  roots: roots.map(nodeJson),
  hash: hex(crypto.tree(roots))
}))

write('crypto.json', {
  generator: 'tests/interop/js/gen-crypto-vectors.js',
  packages: { ...versions('hypercore-crypto', 'sodium-native', 'hyperdht') },
  key_pairs: keyPairs,
  signatures,
  verify: verifyCases,
  blake2b: blake2bCases,
  hash: hashCases,
  namespace: namespaceCases,
  data: leaves,
  parent: parents,
  tree: trees
})

// ---------------------------------------------------------------- id_encoding.json

const keys = [b4a.alloc(32, 0), b4a.alloc(32, 0xff), bytes(32, 30), bytes(32, 31), bytes(32, 32)]
const idDecode = []
function idCase(input, note) {
  try {
    const key = id.decode(input)
    idDecode.push({ note, input, key: hex(key), normalized: id.normalize(input) })
  } catch (err) {
    idDecode.push({ note, input, error: err.message })
  }
}
for (const k of keys) {
  const z = id.encode(k)
  idCase(z, 'z32')
  idCase(hex(k), 'hex')
  idCase(hex(k).toUpperCase(), 'HEX')
  idCase(`pear://${z}`, 'pear link')
  idCase(`pear://${hex(k)}/app/path?x=1`, 'pear link with hex and path')
}
{
  const z = id.encode(keys[2])
  // The last character carries 4 unused bits: changing them decodes to the same key.
  const last = z32.ALPHABET.indexOf(z[51])
  for (const v of [last ^ 1, last ^ 0xf]) idCase(z.slice(0, 51) + z32.ALPHABET[v], 'z32 with unused bits set')
  const h = hex(keys[3])
  idCase(h.slice(0, 10) + h.slice(10, 30).toUpperCase() + h.slice(30), 'mixed-case hex')
  idCase(z.slice(0, 51), '51 chars')
  idCase(z + 'y', '53 chars')
  idCase(h.slice(0, 63), '63 hex digits')
  idCase(h + '0', '65 hex digits')
  idCase('g' + h.slice(1), 'hex with a non-hex digit')
  idCase(h.slice(0, 62) + 'zz', 'hex with non-hex digits at the end')
  for (const bad of ['0', 'l', 'v', '2', 'Y', ' ', '=']) idCase(bad + z.slice(1), `z32 with ${JSON.stringify(bad)}`)
  idCase(z.slice(0, 20) + 'é' + z.slice(21), 'z32 with a non-ASCII character')
  idCase('', 'empty')
  idCase('pear://', 'pear link without id')
  idCase(`pear://${z.slice(0, 40)}/${z.slice(40)}`, 'pear link with the id cut by a slash')
  idCase(`PEAR://${z}`, 'uppercase scheme')
  idCase(` ${z.slice(1)}`, 'leading space')
}

const z32Encode = []
for (let n = 0; n <= 12; n++) z32Encode.push({ bytes: hex(bytes(n, 40 + n)), z32: z32.encode(bytes(n, 40 + n)) })
z32Encode.push({ bytes: hex(keys[4]), z32: z32.encode(keys[4]) })
const z32Decode = []
for (let n = 0; n <= 17; n++) {
  let s = ''
  const r = bytes(n, 60 + n)
  for (let i = 0; i < n; i++) s += z32.ALPHABET[r[i] & 31]
  z32Decode.push({ z32: s, bytes: hex(z32.decode(s)) })
}

write('id_encoding.json', {
  generator: 'tests/interop/js/gen-crypto-vectors.js',
  packages: versions('hypercore-id-encoding', 'z32'),
  encode: keys.map((k) => ({ key: hex(k), id: id.encode(k) })),
  decode: idDecode,
  z32_encode: z32Encode,
  z32_decode: z32Decode
})

// ---------------------------------------------------------------- base32.json

const b32Encode = []
for (let n = 0; n <= 12; n++) b32Encode.push({ bytes: hex(bytes(n, 80 + n)), base32: b32.encode(bytes(n, 80 + n)) })
for (const s of ['', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar']) b32Encode.push({ bytes: hex(b4a.from(s)), base32: b32.encode(b4a.from(s)) })
b32Encode.push({ bytes: hex(keys[2]), base32: b32.encode(keys[2]) })

const b32Decode = []
function b32Case(input, note) {
  try {
    b32Decode.push({ note, input, bytes: hex(b4a.from(b32.decode.asBytes(input))) })
  } catch (err) {
    b32Decode.push({ note, input, error: err.message })
  }
}
for (const e of b32Encode) b32Case(e.base32, 'encoded')
for (let n = 1; n <= 17; n++) {
  let s = ''
  const r = bytes(n, 100 + n)
  for (let i = 0; i < n; i++) s += 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[r[i] & 31]
  b32Case(s, `${n} chars, no padding`)
}
b32Case('MZ=XW6===', '= in the middle')
b32Case('====', 'only padding')
b32Case('MZXW6YQ', 'no padding')
b32Case('MZXW6YTBOI', 'no padding, 10 chars')
b32Case('mzxw6ytb', 'lowercase')
b32Case('MZXW6YT1', 'digit 1')
b32Case('MZXW 6YTB', 'space')
b32Case('MZXW6YTB\n', 'newline')
b32Case('MZXW6YTÉ', 'non-ASCII')

// Hyperbeam: the passphrase is lowercase base32 of a 32-byte seed; both peers derive DHT.keyPair(seed).
const toBase32 = (buf) => b32.encode(buf).replace(/=/g, '').toLowerCase()
const fromBase32 = (str) => b4a.from(b32.decode.asBytes(str.toUpperCase()))
const beams = []
function beamCase(passphrase, note) {
  try {
    const seed = fromBase32(passphrase)
    const kp = DHT.keyPair(seed)
    beams.push({ note, passphrase, seed: hex(seed), public_key: hex(kp.publicKey), secret_key: hex(kp.secretKey) })
  } catch (err) {
    beams.push({ note, passphrase, error: err.message })
  }
}
const beamSeeds = [bytes(32, 120), bytes(32, 121), b4a.alloc(32, 0)]
const beamEncode = beamSeeds.map((s) => ({ seed: hex(s), passphrase: toBase32(s) }))
for (const { passphrase } of beamEncode) beamCase(passphrase, 'generated')
{
  const p = beamEncode[0].passphrase
  beamCase(p.toUpperCase(), 'uppercase')
  beamCase(p + '====', 'with padding')
  beamCase(p.slice(0, 51), 'one char short (30 bytes)')
  beamCase(p + 'a', 'one char long (33 bytes)')
  beamCase(p + 'aaa', 'three chars long (34 bytes)')
  beamCase(p + 'aaaa', 'four chars long (35 bytes)')
  beamCase(p.slice(0, 50) + '1' + p.slice(51), 'invalid digit')
  beamCase('', 'empty')
  beamCase('hello', 'short word')
  // Unicode uppercasing: 'ſ' (long s) uppercases to 'S' and 'ı' (dotless i) to 'I'.
  const withS = p.replace(/s/g, 'ſ')
  if (withS !== p) beamCase(withS, 'long s for s')
  beamCase(p.replace(/i/g, 'ı'), 'dotless i for i')
  beamCase('ß' + p.slice(2), 'sharp s uppercases to SS')
}

write('base32.json', {
  generator: 'tests/interop/js/gen-crypto-vectors.js',
  packages: versions('hi-base32', 'hyperbeam'),
  encode: b32Encode,
  decode: b32Decode,
  hyperbeam_encode: beamEncode,
  hyperbeam_key_pair: beams
})

process.exit(0)
