// Prints vectors of @hyperswarm/secret-stream's unordered messages (send/trySend, secretbox envelopes)
// using the module's own _boxMessage/_onmessage with a fixed handshake and counter.
// Regenerate crates/streams/tests/it/data/secret_stream_send_vectors.txt with:  node js/secret_stream_send_vectors.js
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const b4a = require('b4a')

const hex = (b) => b4a.toString(b, 'hex')
const hash = b4a.alloc(64)
for (let i = 0; i < 64; i++) hash[i] = 255 - i
const handshake = {
  tx: b4a.alloc(32, 1),
  rx: b4a.alloc(32, 2),
  hash,
  publicKey: b4a.alloc(32, 3),
  remotePublicKey: b4a.alloc(32, 4)
}
const initiator = new NoiseSecretStream(true, null, { handshake })
const responder = new NoiseSecretStream(false, null, {
  handshake: { ...handshake, tx: handshake.rx, rx: handshake.tx }
})
// fixed counter (bytes 64..72 of the send state) and initial value (72..80)
const counter = b4a.from('feffffffffffffff', 'hex')
initiator._sendState.set(counter, 64)
initiator._sendState.set(b4a.from('0102030405060708', 'hex'), 72)

const lines = [`handshake_hash ${hex(hash)}`, `counter ${hex(counter)}`]
const got = []
responder.on('message', (m) => got.push(b4a.from(m)))
for (const m of [b4a.alloc(0), b4a.from('unordered hello'), b4a.alloc(300, 0xcd)]) {
  const envelope = initiator._boxMessage(m)
  responder._onmessage(b4a.from(envelope))
  lines.push(`plaintext ${hex(m)}`)
  lines.push(`envelope ${hex(envelope)}`)
}
if (got.length !== 3) throw new Error('responder did not open every envelope')
process.stdout.write(lines.join('\n') + '\n')
initiator.destroy()
responder.destroy()
