// Runs DAGs through JS autobase 7.28.1's Topolist (lib/topolist.js, with lib/linearizer.js's Node) and prints
// every flush, for the Rust ordering tests (tests/interop/tests/it/autobase_topolist.rs).
// stdin: { cases: [{ writers: [hex32], steps: [step] }] }
//   step: { op: 'add', writer: i, deps: [node id], optimistic: bool }   node ids count adds from 0; a node's
//         length is its writer's count of adds so far
//       | { op: 'flush', indexed: k }   the first k tip nodes are indexed: marked yielded and sorted into the
//         indexed list in id order with Topolist.add(node, indexed, 0), as the linearizer yields them
// stdout: { cases: [[{ shared, undo, length, indexed: [id], tip: [id] }]] }
const b4a = require('b4a')
const Topolist = require('autobase/lib/topolist.js')
const Linearizer = require('autobase/lib/linearizer.js')

function run(c) {
  const writers = c.writers.map((k) => ({
    core: { key: b4a.from(k, 'hex') },
    isActiveIndexer: false,
    count: 0
  }))
  const nodes = []
  const ids = new Map()
  const list = new Topolist()
  const out = []
  for (const step of c.steps) {
    if (step.op === 'add') {
      const w = writers[step.writer]
      w.count++
      const deps = new Set(step.deps.map((i) => nodes[i]))
      const node = Linearizer.createNode(w, w.count, 'v', [], 1, deps, step.optimistic)
      ids.set(node, nodes.length)
      nodes.push(node)
      node.active()
      list.add(node)
    } else {
      const indexed = []
      const take = list.tip.slice(0, step.indexed).sort((a, b) => ids.get(a) - ids.get(b))
      for (const n of take) {
        n.yielded = true
        Topolist.add(n, indexed, 0)
      }
      const u = list.flush(indexed)
      out.push({
        shared: u.shared,
        undo: u.undo,
        length: u.length,
        indexed: u.indexed.map((n) => ids.get(n)),
        tip: u.tip.map((n) => ids.get(n))
      })
    }
  }
  return out
}

let input = ''
process.stdin.on('data', (d) => (input += d))
process.stdin.on('end', () => {
  const req = JSON.parse(input)
  process.stdout.write(JSON.stringify({ cases: req.cases.map(run) }) + '\n')
})
