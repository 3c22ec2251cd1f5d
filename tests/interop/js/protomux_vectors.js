// Frames written by protomux 3.12.1 for known scenarios, as `name hex` lines (for crates/streams/tests/it/protomux_vectors.rs).
// usage: node js/protomux_vectors.js > ../../crates/streams/tests/it/data/protomux_vectors.txt
const { EventEmitter } = require('events')
const Protomux = require('protomux')
const c = require('compact-encoding')
const b4a = require('b4a')

class FakeStream extends EventEmitter {
  constructor () {
    super()
    this.userData = null
    this.destroyed = false
    this.frames = []
  }

  write (buf) { this.frames.push(b4a.from(buf)); return true }
  pause () {}
  resume () {}
  end () {}
  destroy () { this.destroyed = true }
  take () { const f = this.frames; this.frames = []; return f }
}

const out = []
function emit (name, frames) {
  frames.forEach((f, i) => out.push(`${name}${frames.length > 1 ? '.' + i : ''} ${b4a.toString(f, 'hex')}`))
}

const a = new FakeStream()
const muxA = new Protomux(a)
const b = new FakeStream()
const muxB = new Protomux(b)

// 1. open without id or handshake
const ch1 = muxA.createChannel({ protocol: 'hypershell', messages: [{ encoding: c.raw }, { encoding: c.string }] })
ch1.open()
emit('open_plain', a.take())

// 2. open with id and a uint handshake
const id = b4a.alloc(32, 0xaa)
const ch2 = muxA.createChannel({ protocol: 'hypercore/alpha', id, handshake: c.uint, messages: [{ encoding: c.raw }] })
ch2.open(1000)
emit('open_id_handshake', a.take())

// 3. messages on channel 1 (local id 1): raw then string
ch1.messages[0].send(b4a.from('hello'))
emit('message_raw', a.take())
ch1.messages[1].send('world')
emit('message_string', a.take())

// 4. batch: two messages on ch1, one on ch2, then a close of ch1, all corked
muxA.cork()
ch1.messages[0].send(b4a.from('a'))
ch1.messages[1].send('bc')
ch2.messages[0].send(b4a.alloc(3, 7))
ch1.close()
muxA.uncork()
emit('batch', a.take())

// 5. close (channel 2)
ch2.close()
emit('close', a.take())

// 6. reject: B gets an open nobody waits for
const a2 = new FakeStream()
const muxA2 = new Protomux(a2)
const chR = muxA2.createChannel({ protocol: 'nobody-home' })
chR.open()
for (const f of a2.take()) {
  emit('open_nobody', [f])
  b.emit('data', f)
}
emit('reject', b.take())

// 7. a channel opened from both sides: A opens first, B's open pairs with it
const chA = muxA2.createChannel({ protocol: 'both', id: b4a.from('x') })
chA.open()
const openA = a2.take()
const chB = muxB.createChannel({ protocol: 'both', id: b4a.from('x') })
chB.open()
emit('both_open_a', openA)
emit('both_open_b', b.take())

// 8. many local ids: the 300th open carries a 3-byte uint id
const many = []
for (let i = 0; i < 300; i++) {
  const ch = muxB.createChannel({ protocol: 'many', unique: false })
  ch.open()
  many.push(ch)
}
const frames = b.take()
emit('open_id_300', [frames[frames.length - 1]])
many[299].messages.length = 0
muxB.cork()
many[299].close()
muxB.uncork()
emit('batch_close_300', b.take())

// 9. corked opens, and the batch of rejects they get back (a received batch is answered corked)
const a3 = new FakeStream()
const muxA3 = new Protomux(a3)
const b3 = new FakeStream()
new Protomux(b3) // eslint-disable-line no-new
muxA3.cork()
muxA3.createChannel({ protocol: 'r1' }).open()
muxA3.createChannel({ protocol: 'r2' }).open()
muxA3.uncork()
const opens = a3.take()
emit('batch_opens', opens)
b3.emit('data', opens[0])

setImmediate(() => {
  emit('batch_rejects', b3.take())
  process.stdout.write(out.join('\n') + '\n')
})
