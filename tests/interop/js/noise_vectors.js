// Prints Noise handshake test vectors computed by the JS reference (noise-handshake + noise-curve-ed) with
// fixed static and ephemeral keys. Output: one `case <name>` line per case, then `<field> <hex>` lines.
// Regenerate crates/streams/tests/it/data/noise_vectors.txt with:  node js/noise_vectors.js  (cwd tests/interop)
const Noise = require('noise-handshake')
const curve = require('noise-curve-ed')
const b4a = require('b4a')

function seed (n) {
  return b4a.alloc(32, n)
}

function hex (b) {
  return b4a.toString(b, 'hex')
}

function run (name, pattern, prologue, payloads) {
  const is = curve.generateKeyPair(seed(1))
  const rs = curve.generateKeyPair(seed(2))
  const i = new Noise(pattern, true, is, { curve })
  const r = new Noise(pattern, false, rs, { curve })
  i.initialise(prologue, pattern === 'IK' ? rs.publicKey : undefined)
  r.initialise(prologue)
  // noise-handshake only creates an ephemeral key when `e` is still null: inject fixed ones
  i.e = curve.generateKeyPair(seed(3))
  r.e = curve.generateKeyPair(seed(4))

  const lines = [`case ${name}`, `pattern ${pattern}`, `prologue ${hex(prologue)}`,
    `initiator_seed ${hex(seed(1))}`, `responder_seed ${hex(seed(2))}`,
    `initiator_ephemeral_seed ${hex(seed(3))}`, `responder_ephemeral_seed ${hex(seed(4))}`]
  let from = i
  let to = r
  let n = 0
  while (!(i.complete && r.complete)) {
    const payload = payloads[n] || b4a.alloc(0)
    const msg = from.send(payload)
    // recorded before recv: on completion noise-handshake zero-fills the remote ephemeral key, which is a
    // view into the received message
    lines.push(`payload ${hex(payload)}`)
    lines.push(`message ${hex(msg)}`)
    const got = to.recv(msg)
    if (!b4a.equals(got, payload)) throw new Error('payload mismatch')
    const t = from
    from = to
    to = t
    n++
  }
  lines.push(`initiator_tx ${hex(i.tx)}`)
  lines.push(`initiator_rx ${hex(i.rx)}`)
  lines.push(`hash ${hex(i.hash)}`)
  if (!b4a.equals(i.tx, r.rx) || !b4a.equals(i.rx, r.tx) || !b4a.equals(i.hash, r.hash)) throw new Error('split mismatch')
  return lines.join('\n')
}

const out = [
  run('xx-empty', 'XX', b4a.alloc(0), []),
  run('xx-payloads', 'XX', b4a.from('a prologue'), [b4a.from('one'), b4a.from('two two'), b4a.from('three three three')]),
  run('ik-empty', 'IK', b4a.alloc(0), []),
  // hyperdht's peer handshake prologue is NS.PEER_HANDSHAKE; any bytes exercise the same path
  run('ik-payloads', 'IK', b4a.alloc(32, 7), [b4a.from('hello responder'), b4a.from('hello initiator')])
]
process.stdout.write(out.join('\n') + '\n')
