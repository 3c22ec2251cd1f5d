// Drives JS autobase 7.28.1's Linearizer (lib/linearizer.js, with lib/consensus.js, lib/topolist.js) and its
// Writer node buffers (lib/writer.js: _ensureNodeDependencies, advance, shift) directly, no cores, and prints
// every update, for the Rust linearizer tests (tests/interop/tests/it/autobase_linearizer.rs).
// stdin: { cases: [{ writers: [hex32], indexers: [i], steps: [step] }] }   a node is [writer index, length]
//   step: { op: 'add', writer: i, heads: [[w, len]], batch, value: hex | null, optimistic }
//           the writer's next block: loaded as Writer.update does, joins the DAG (addHead) once its batch is whole
//       | { op: 'update' }   linearizer.update(); then every indexed node ending a batch shifts its writer (as the
//           apply does); prints { u: null | { shared, undo, length, indexed, tip, causal }, heads, acks }
//           (causal: each indexed node's causalDependencies(), acks / pendingAcks: shouldAck(writer, false / true)
//           for every writer)
//       | { op: 'remove', writer: i }   the system removed the writer (writer.isRemoved)
//       | { op: 'reboot', indexers: [i], heads: [[w, len]] }   a new Linearizer for a new indexer set over the
//           indexed state (heads: the system's heads), each writer reopened at its indexed length
// stdout: { cases: [[output of each update, then { error } if JS threw]] }
const b4a = require('b4a')
const Linearizer = require('autobase/lib/linearizer.js')
const Writer = require('autobase/lib/writer.js')

async function run(c, out) {
  const keys = c.writers.map((k) => b4a.from(k, 'hex'))
  const index = new Map(c.writers.map((k, i) => [k, i]))
  const base = {
    linearizer: null,
    byKey: new Map(),
    async _getWriterByKey(key) {
      return this.byKey.get(b4a.toString(key, 'hex')) || null
    },
    _ensureWakeup() {}
  }
  let writers = []
  const open = (i, length, removed) => {
    const w = new Writer(base, { key: keys[i] }, length, removed)
    base.byKey.set(c.writers[i], w)
    return w
  }
  const makeLinearizer = (indexers, heads) => {
    for (const w of writers) w.isActiveIndexer = false
    for (const i of indexers) writers[i].isActiveIndexer = true
    base.linearizer = new Linearizer(
      indexers.map((i) => writers[i]),
      { heads: heads.map(([i, length]) => ({ key: keys[i], length })) }
    )
  }
  writers = keys.map((_, i) => open(i, 0, false))
  makeLinearizer(c.indexers, [])

  const ref = (n) => [index.get(b4a.toString(n.writer.core.key, 'hex')), n.length]
  for (const step of c.steps) {
    const lin = base.linearizer
    if (step.op === 'add') {
      const w = writers[step.writer]
      const heads = step.heads.map(([i, length]) => ({ key: keys[i], length }))
      const value = step.value === null ? null : b4a.from(step.value, 'hex')
      w.node = Linearizer.createNode(
        w,
        w.nodes.length + 1,
        value,
        heads,
        step.batch,
        new Set(),
        step.optimistic,
        null
      )
      if (!(await w._ensureNodeDependencies(false))) throw new Error('missing dependency')
      w.nodes.push(w.node)
      if (w.node.batch === 1) w.available = w.nodes.length
      w.node = null
      let node = w.advance()
      while (node !== null) {
        lin.addHead(node)
        if (node.batch === 1) break
        node = w.advance()
      }
    } else if (step.op === 'update') {
      const u = lin.update()
      let o = null
      if (u) {
        o = {
          shared: u.shared,
          undo: u.undo,
          length: u.length,
          indexed: u.indexed.map(ref),
          tip: u.tip.map(ref),
          causal: u.indexed.map((n) => n.causalDependencies().map(ref))
        }
        for (const n of u.indexed) if (n.batch === 1) n.writer.shift()
      }
      out.push({
        u: o,
        heads: lin.getHeads().map((h) => [index.get(b4a.toString(h.key, 'hex')), h.length]),
        acks: writers.map((w) => lin.shouldAck(w, false)),
        pendingAcks: writers.map((w) => lin.shouldAck(w, true))
      })
    } else if (step.op === 'remove') {
      writers[step.writer].isRemoved = true
    } else if (step.op === 'reboot') {
      writers = writers.map((w, i) => open(i, w.indexed, w.isRemoved))
      makeLinearizer(step.indexers, step.heads)
    } else {
      throw new Error('bad step ' + step.op)
    }
  }
}

let input = ''
process.stdin.on('data', (d) => (input += d))
process.stdin.on('end', async () => {
  const req = JSON.parse(input)
  const cases = []
  for (const c of req.cases) {
    const out = []
    try {
      await run(c, out)
    } catch (err) {
      // JS refused a step: the Rust side fed it something JS does not take, shown as a difference
      out.push({ error: String(err && err.message) })
    }
    cases.push(out)
  }
  process.stdout.write(JSON.stringify({ cases }) + '\n')
})
