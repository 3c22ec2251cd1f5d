// Differential check of protomux 3.12.1 against the Rust MuxCore (tests/interop/tests/it/protomux_diff.rs).
// stdin: one scenario per line, frames as comma-separated `x<hex>`. For each scenario a fresh mux is set up:
//   pair({ protocol: 'p' }): creates and opens a 'p' channel when the id is 01, else does nothing
//   opens 'q' twice (unique: false) and 'p' with id 02
// then each frame is delivered (followed by a macrotask turn). stdout: one JSON line per scenario,
// [{ w: [hex of each write], d: destroyed }] with a first entry for the setup.
const { EventEmitter } = require('events')
const readline = require('readline')
const Protomux = require('protomux')
const b4a = require('b4a')

class FakeStream extends EventEmitter {
  constructor () {
    super()
    this.userData = null
    this.destroyed = false
    this.frames = []
  }

  write (buf) { this.frames.push(b4a.toString(buf, 'hex')); return true }
  pause () {}
  resume () {}
  end () {}
  destroy () { this.destroyed = true }
  take () { const f = this.frames; this.frames = []; return f }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

async function run (frames) {
  const s = new FakeStream()
  const mux = new Protomux(s)
  mux.pair({ protocol: 'p' }, (id) => {
    if (id && id.length === 1 && id[0] === 1) {
      const ch = mux.createChannel({ protocol: 'p', id })
      if (ch) ch.open()
    }
  })
  for (let i = 0; i < 2; i++) mux.createChannel({ protocol: 'q', unique: false }).open()
  mux.createChannel({ protocol: 'p', id: b4a.from([2]) }).open()
  const steps = [{ w: s.take(), d: false }]
  for (const f of frames) {
    s.emit('data', b4a.from(f, 'hex'))
    await tick()
    steps.push({ w: s.take(), d: s.destroyed })
    if (s.destroyed) break
  }
  return steps
}

async function main () {
  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    const frames = line.split(',').map((f) => f.slice(1))
    process.stdout.write(JSON.stringify(await run(frames)) + '\n')
  }
}
main()
