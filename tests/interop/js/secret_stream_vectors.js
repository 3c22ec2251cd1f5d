// Prints @hyperswarm/secret-stream test vectors from the JS reference: stream ids and send keys for a
// handshake hash, and sodium-secretstream frames (uint24 length + ciphertext) for a key and header.
// Regenerate crates/streams/tests/it/data/secret_stream_vectors.txt with:  node js/secret_stream_vectors.js
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const { Push, ABYTES } = require('sodium-secretstream')
const crypto = require('hypercore-crypto')
const sodium = require('sodium-universal')
const b4a = require('b4a')

const hex = (b) => b4a.toString(b, 'hex')
const lines = []

const hash = b4a.alloc(64)
for (let i = 0; i < 64; i++) hash[i] = i
lines.push(`handshake_hash ${hex(hash)}`)
lines.push(`stream_id_initiator ${hex(NoiseSecretStream.id(hash, true))}`)
lines.push(`stream_id_responder ${hex(NoiseSecretStream.id(hash, false))}`)
const [NS_INITIATOR, NS_RESPONDER, NS_SEND] = crypto.namespace('hyperswarm/secret-stream', 3)
for (const [name, ns] of [['initiator', NS_INITIATOR], ['responder', NS_RESPONDER]]) {
  const out = b4a.alloc(32)
  sodium.crypto_generichash_batch(out, [ns, NS_SEND], hash)
  lines.push(`send_key_${name} ${hex(out)}`)
}

const key = b4a.alloc(32, 0x42)
const header = b4a.alloc(24)
const push = new Push(key, undefined, header) // header is random, chosen by init_push
lines.push(`key ${hex(key)}`)
lines.push(`header ${hex(header)}`)
const messages = [b4a.alloc(0), b4a.from('hello world'), b4a.alloc(1000, 0xab), b4a.alloc(0)]
for (const m of messages) {
  // framed exactly as NoiseSecretStream._write lays it out
  const wrapped = b4a.alloc(m.byteLength + 3 + ABYTES)
  const n = wrapped.byteLength - 3
  wrapped[0] = n & 255
  wrapped[1] = (n >>> 8) & 255
  wrapped[2] = (n >>> 16) & 255
  push.next(m, wrapped.subarray(3))
  lines.push(`plaintext ${hex(m)}`)
  lines.push(`frame ${hex(wrapped)}`)
}
process.stdout.write(lines.join('\n') + '\n')
