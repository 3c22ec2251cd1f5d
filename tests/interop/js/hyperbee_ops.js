// Runs a sequence of hyperbee operations with JS hyperbee on a fresh core and prints every block, the core's
// tree hash and the answers to the queries, as JSON, for the Rust differential tests.
// stdin: { seed: hex32, ops: [op], queries: [query] }
//   op: { op: 'put', key: hex, value: hex|null } | { op: 'del', key: hex } | { op: 'batch', ops: [op] }
//       | { op: 'sub', name: hex, ops: [op] } (ops inside a sub-database)
//       | { op: 'cas_put', key: hex, value: hex } (put only if the key is absent or its value differs)
//       | { op: 'cas_del', key: hex } (delete only if the value starts with an even byte)
//   alwaysDuplicate (optional, default true): hyperbee's option
//   metadata (optional): { contentFeed: hex|null, userData: hex|null } for the header
//   query: { q: 'get', key: hex, version?: n, sub?: hex } | { q: 'range', gt?, gte?, lt?, lte?, reverse?, limit?,
//       version?, sub? } | { q: 'diff', right: version, version?, gt?, gte?, lt?, lte?, limit? } | { q: 'history', gt?, gte?, lt?, lte?, reverse?, limit? }
// stdout: { key: hex, treeHash: hex, blocks: [hex], results: [...] }
const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const crypto = require('hypercore-crypto')
const Hypercore = require('hypercore')
const Hyperbee = require('hyperbee')

const hex = (b) => (b === null || b === undefined ? null : b4a.toString(b, 'hex'))
const buf = (h) => (h === null || h === undefined ? null : b4a.from(h, 'hex'))

async function apply(db, op) {
  if (op.op === 'put') return db.put(buf(op.key), op.value === null ? null : buf(op.value))
  if (op.op === 'del') return db.del(buf(op.key))
  if (op.op === 'cas_put') {
    return db.put(buf(op.key), buf(op.value), {
      cas: (prev, next) => prev.value === null || !b4a.equals(prev.value, next.value)
    })
  }
  if (op.op === 'cas_del') {
    // delete only entries whose value starts with an even byte
    return db.del(buf(op.key), {
      cas: (prev) => prev.value !== null && prev.value.length > 0 && (prev.value[0] & 1) === 0
    })
  }
  if (op.op === 'sub') {
    const sub = db.sub(buf(op.name))
    for (const o of op.ops) await apply(sub, o)
    return
  }
  if (op.op === 'batch') {
    const b = db.batch()
    for (const o of op.ops) {
      if (o.op === 'put') await b.put(buf(o.key), o.value === null ? null : buf(o.value))
      else await b.del(buf(o.key))
    }
    return b.flush()
  }
  throw new Error('unknown op ' + op.op)
}

function entry(e) {
  return e && { seq: e.seq, key: hex(e.key), value: hex(e.value) }
}

async function query(db, q) {
  let view = q.version ? db.checkout(q.version) : db
  if (q.sub) view = view.sub(buf(q.sub))
  if (q.q === 'get') return entry(await view.get(buf(q.key)))
  if (q.q === 'diff') {
    const out = []
    const dopts = {}
    for (const k of ['gt', 'gte', 'lt', 'lte']) if (q[k] !== undefined) dopts[k] = buf(q[k])
    if (q.limit !== undefined) dopts.limit = q.limit
    for await (const d of view.createDiffStream(q.right, dopts)) out.push({ left: entry(d.left), right: entry(d.right) })
    return out
  }
  const opts = {}
  for (const k of ['gt', 'gte', 'lt', 'lte']) if (q[k] !== undefined) opts[k] = q.q === 'history' ? q[k] : buf(q[k])
  if (q.reverse) opts.reverse = true
  if (q.limit !== undefined) opts.limit = q.limit
  const out = []
  const s = q.q === 'range' ? view.createReadStream(opts) : view.createHistoryStream(opts)
  for await (const e of s) out.push(q.q === 'history' ? { type: e.type, ...entry(e) } : entry(e))
  return out
}

async function main() {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyperbee-'))
  const core = new Hypercore(dir, { keyPair: crypto.keyPair(buf(input.seed)) })
  const metadata = input.metadata
    ? { contentFeed: buf(input.metadata.contentFeed), userData: buf(input.metadata.userData) }
    : null
  const db = new Hyperbee(core, { extension: false, metadata, alwaysDuplicate: input.alwaysDuplicate !== false })
  await db.ready()
  for (const op of input.ops) await apply(db, op)
  const blocks = []
  for (let i = 0; i < core.length; i++) blocks.push(hex(await core.get(i)))
  const results = []
  for (const q of input.queries || []) results.push(await query(db, q))
  const treeHash = hex(await core.treeHash())
  process.stdout.write(JSON.stringify({ key: hex(core.key), treeHash, blocks, results }))
  await db.close()
  fs.rmSync(dir, { recursive: true, force: true })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
