// Autobase linearizer throughput in JS autobase 7.28.1, the same workload as
// crates/holepunch/examples/autobase_linearizer_bench.rs: 6 writers (3 indexers), ROUNDS rounds of one node per
// writer, writers in pairs (0-1, 2-3, 4-5) linking the heads as they were before the pair (so each pair's
// nodes are concurrent), indexers acking on odd rounds, an update per round with the
// indexed nodes shifted off their writers. The nodes' links are resolved as Writer._ensureNodeDependencies
// does, without its awaits. usage: node js/bench-autobase-linearizer.js [ROUNDS]
const b4a = require('b4a')
const Linearizer = require('autobase/lib/linearizer.js')
const Writer = require('autobase/lib/writer.js')

const WRITERS = 6
const INDEXERS = 3

function main() {
  const rounds = Number(process.argv[2] || 3000)
  const base = {}
  const writers = []
  const byKey = new Map()
  for (let i = 0; i < WRITERS; i++) {
    const w = new Writer(base, { key: b4a.alloc(32, i + 1) }, 0, false)
    w.isActiveIndexer = i < INDEXERS
    writers.push(w)
    byKey.set(b4a.toString(w.core.key, 'hex'), w)
  }
  const lin = new Linearizer(writers.slice(0, INDEXERS), {})
  let indexed = 0
  const t = process.hrtime.bigint()
  for (let r = 0; r < rounds; r++) {
    let heads = null
    for (let i = 0; i < WRITERS; i++) {
      if (i % 2 === 0) heads = lin.getHeads()
      const w = writers[i]
      const length = w.nodes.length + 1
      const kept = []
      const deps = new Set()
      for (const h of heads) {
        const n = byKey.get(b4a.toString(h.key, 'hex')).nodes.get(h.length - 1)
        if (!n) continue // indexed and shifted off: dropped
        kept.push(h)
        deps.add(n)
      }
      if (length - 1 > w.indexed) deps.add(w.nodes.get(length - 2))
      const value = i < INDEXERS && r % 2 === 1 ? null : b4a.alloc(8, r & 255)
      const node = Linearizer.createNode(w, length, value, kept, 1, deps, false)
      node.actualHeads = heads.slice(0)
      w.nodes.push(node)
      w.available = w.nodes.length
      lin.addHead(w.advance())
    }
    const u = lin.update()
    if (u) {
      indexed += u.indexed.length
      for (const n of u.indexed) if (n.batch === 1) n.writer.shift()
    }
  }
  const secs = Number(process.hrtime.bigint() - t) / 1e9
  const nodes = rounds * WRITERS
  console.log(
    `impl=js nodes=${nodes} indexed=${indexed} tip=${lin.tip.tip.length} ms=${(secs * 1000).toFixed(0)} nodes_per_sec=${(nodes / secs).toFixed(0)}`
  )
}

main()
