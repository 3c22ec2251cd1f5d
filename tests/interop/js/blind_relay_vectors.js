// Prints blind-relay 1.6.1 message encodings (pair, unpair) as JSON, for crates/dht/src/blind_relay.rs tests.
const c = require('compact-encoding')
const { messages } = require('blind-relay')

const token = Buffer.alloc(32)
for (let i = 0; i < 32; i++) token[i] = i + 1

const pairs = [
  { isInitiator: true, token, id: 1, seq: 0 },
  { isInitiator: false, token, id: 0xfc, seq: 0 },
  { isInitiator: true, token, id: 0xffffffff, seq: 7 },
  { isInitiator: false, token: Buffer.alloc(32, 0xab), id: 0x12345, seq: 0x10000 }
]
const out = {
  pair: pairs.map((m) => ({
    isInitiator: m.isInitiator,
    token: m.token.toString('hex'),
    id: m.id,
    seq: m.seq,
    hex: c.encode(messages.pair, m).toString('hex')
  })),
  unpair: [{ token: token.toString('hex'), hex: c.encode(messages.unpair, { token }).toString('hex') }],
  // What the JS decoder accepts: a long-form flags field (0xfd prefix + 2 bytes)
  pairLongFlags: (() => {
    const buf = Buffer.concat([Buffer.from([0xfd, 0x01, 0x00]), token, Buffer.from([0x05, 0x00])])
    const m = c.decode(messages.pair, buf)
    return { hex: buf.toString('hex'), isInitiator: m.isInitiator, id: m.id, seq: m.seq }
  })()
}
console.log(JSON.stringify(out, null, 1))
