// Runs a scripted autobase-kv scenario on JS autobase 7 with partitions: bases append while disconnected, and
// `sync` steps connect the named bases, wait until every one has every writer's blocks applied, and
// disconnect, so the DAG the writers build is fixed by the script (tests/interop/tests/it/autobase_apply.rs
// runs the same script on the Rust Autobase and compares).
// usage: node autobase_scenario.js DIR < scenario.json       (or { scenarios: [scenario] }: one result per line,
//                                                              stores in DIR/<index>)
//   scenario: { bases: [{ name, seed }], steps: [step] }   (the first base creates, the others join it)
//   step: { append: NAME, value: JSON-or-null, optimistic? } | { append: NAME, batch: [JSON] } | { sync: [NAME] }
//   (optimistic: append(value, { optimistic: true }); the apply acks the writer of an optimistic put and drops
//   any other optimistic op, as autobase-kv's)   ("@NAME" in a value: that base's writer key)
// stdout: { appends: [true|false], bases: { NAME: { key, localKey, writable, systemKey, viewKey, view: [[k, v]], system, indexedLength,
//           blocks: [{ heads: [{ key, length }], batch, value }] } } }
const path = require('path')
const b4a = require('b4a')
const Corestore = require('corestore')
const Hyperbee = require('hyperbee')
const Autobase = require('autobase')
const { OplogMessage } = require('autobase/lib/messages.js')

// The system core's blocks as hex
async function systemBlocks(core) {
  const blocks = []
  for (let i = 0; i < core.length; i++) {
    const raw = await core.get(i, { valueEncoding: 'binary', wait: false })
    blocks.push(b4a.toString(raw, 'hex'))
  }
  return blocks
}

const hex = (b) => (b ? b4a.toString(b, 'hex') : null)
const clock = (arr) => arr.map((x) => ({ key: hex(x.key), length: x.length }))

function open(store) {
  return new Hyperbee(store.get('view'), { keyEncoding: 'utf-8', valueEncoding: 'utf-8', extension: false })
}

async function apply(nodes, view, host) {
  for (const node of nodes) {
    const op = node.value
    if (!op || typeof op !== 'object') continue
    if (node.optimistic) {
      if (op.op === 'put') {
        await host.ackWriter(node.from.key)
        await view.put(op.key, op.value)
      }
      continue
    }
    if (op.op === 'add-writer') {
      await host.addWriter(b4a.from(op.key, 'hex'), { indexer: !!op.indexer })
    } else if (op.op === 'remove-writer') {
      const key = b4a.from(op.key, 'hex')
      if (host.removeable(key)) await host.removeWriter(key)
    } else if (op.op === 'put') {
      await view.put(op.key, op.value)
    } else if (op.op === 'del') {
      await view.del(op.key)
    }
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5))
const LIMIT_MS = Number(process.env.SCENARIO_LIMIT_MS || 60000)

async function sync(bases) {
  const streams = []
  for (let i = 0; i < bases.length; i++) {
    for (let j = i + 1; j < bases.length; j++) {
      const s1 = bases[i].store.replicate(true)
      const s2 = bases[j].store.replicate(false)
      s1.pipe(s2).pipe(s1)
      streams.push(s1, s2)
    }
  }
  // settled: every base has every writer core at its writer's length, has applied it all (same heads and
  // system length), and no pending indexer still owes its first ack
  const start = Date.now()
  for (;;) {
    // a writer that is not a member (an optimistic one) is found through wakeup, which these plain store
    // streams do not carry: hinted as the wakeup channel would (only for non-members, so the order in which
    // members' writers are met stays as it was)
    for (const b of bases) {
      for (const o of bases) {
        if (o === b || o.base.local.length === 0) continue
        if (await b.base.system.get(o.base.local.key)) continue
        b.base.hintWakeup([{ key: o.base.local.key, length: o.base.local.length }])
      }
    }
    for (const b of bases) await b.base.update()
    const writers = new Map()
    for (const b of bases) writers.set(hex(b.base.local.key), b.base.local.length)
    let ok = true
    for (const b of bases) {
      if (b.base._applyState && b.base._applyState.isLocalPendingIndexer()) ok = false
      for (const [key, length] of writers) {
        if (key === hex(b.base.local.key)) continue
        const member = await b.base.system.get(b4a.from(key, 'hex'))
        // a non-member's blocks (optimistic ones, dropped or not) are awaited too, once hinted
        if (!member && length === 0) continue
        const core = b.store.get({ key: b4a.from(key, 'hex'), active: false })
        await core.ready()
        const have = core.length
        await core.close()
        if (have < length) ok = false
      }
    }
    const same = (f) => bases.every((b) => f(b) === f(bases[0]))
    const heads = (b) => JSON.stringify(clock(b.base.system.heads))
    if (ok && same(heads) && same((b) => b.base.system.core.length)) break
    if (Date.now() - start > LIMIT_MS) throw new Error('bases did not settle: ' + JSON.stringify(bases.map((b) => [heads(b), b.base.system.core.length, ok])))
    await tick()
  }
  for (const s of streams) s.destroy()
  await tick()
}

async function main() {
  const dir = process.argv[2]
  let input = ''
  for await (const chunk of process.stdin) input += chunk
  const parsed = JSON.parse(input)
  if (!parsed.scenarios) {
    process.stdout.write(JSON.stringify(await run(dir, parsed)) + '\n')
    return
  }
  for (let i = 0; i < parsed.scenarios.length; i++) {
    const result = await run(path.join(dir, String(i)), parsed.scenarios[i])
    process.stdout.write(JSON.stringify(result) + '\n')
  }
}

async function run(dir, scenario) {
  const bases = new Map()
  let key = null
  for (const { name, seed } of scenario.bases) {
    const store = new Corestore(path.join(dir, name), { primaryKey: b4a.alloc(32, seed), unsafe: true })
    const base = new Autobase(store, key, {
      open,
      apply,
      optimistic: true,
      valueEncoding: 'json',
      ackInterval: 0,
      fastForward: false
    })
    await base.ready()
    if (key === null) key = base.key
    bases.set(name, { name, store, base })
  }
  // "@NAME" in a value stands for that base's local writer key
  const subst = (v) => {
    if (typeof v === 'string' && v.startsWith('@')) return hex(bases.get(v.slice(1)).base.local.key)
    if (v && typeof v === 'object') for (const k of Object.keys(v)) v[k] = subst(v[k])
    return v
  }
  const appends = []
  for (const step of scenario.steps) {
    if (step.append) {
      const b = bases.get(step.append)
      // { append, batch: [values] }: one atomic batch (append with an array)
      const value = step.batch ? step.batch.map(subst) : subst(step.value)
      try {
        await b.base.append(value, step.optimistic ? { optimistic: true } : undefined)
        appends.push(true)
      } catch {
        appends.push(false)
      }
    } else if (step.sync) {
      await sync(step.sync.map((n) => bases.get(n)))
    }
  }
  const out = { appends, bases: {} }
  for (const [name, { base }] of bases) {
    await base.update()
    const view = []
    for await (const e of base.view.createReadStream()) view.push([e.key, e.value])
    const blocks = []
    const rawBlocks = []
    for (let i = 0; i < base.local.length; i++) {
      const raw = await base.local.get(i, { valueEncoding: 'binary' })
      rawBlocks.push(b4a.toString(raw, 'hex'))
      const m = OplogMessage.decode({ start: 0, end: raw.byteLength, buffer: raw })
      blocks.push({
        heads: clock(m.node.heads),
        batch: m.node.batch,
        value: m.node.value ? b4a.toString(m.node.value) : null
      })
    }
    const sys = base.system
    out.bases[name] = {
      key: hex(base.key),
      localKey: hex(base.local.key),
      writable: base.writable,
      systemKey: hex(sys.core.key),
      viewKey: hex(base.view.core.key),
      view,
      system: {
        length: sys.core.length,
        members: sys.members,
        pendingIndexers: sys.pendingIndexers.map(hex),
        indexers: clock(sys.indexers),
        heads: clock(sys.heads)
      },
      indexedLength: base.indexedLength,
      signedLength: { system: sys.core.signedLength, view: base.view.core.signedLength },
      blocks,
      rawBlocks,
      systemBlocks: await systemBlocks(sys.core)
    }
  }
  for (const { base, store } of bases.values()) {
    await base.close()
    await store.close()
  }
  return out
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  }
)
