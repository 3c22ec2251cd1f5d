// Builds a small JS autobase 7 (two indexer writers and a non-indexer that writes and is then removed, a
// hyperbee view named `view`), lets the peers append, replicate and ack until the view is signed, and prints every block of every core it knows, as JSON, for the
// Rust decoders (tests/interop/tests/it/autobase_fixture.rs).
// usage: node autobase_fixture.js DIR    (DIR: where the two corestores are kept, `DIR/a`, `DIR/b`, `DIR/c`; left on
//                                         disk so the stores can be inspected)
// stdout: { bases: [base], cores: [core], derived: {...} }
//   base: { name, key, discoveryKey, localKey, bootRecord: hex, systemKey, viewKey, systemLength, signedLength,
//           viewEntries: [[key, value]] }
//   core: { role, key, manifest, length, signedLength, blocks: [hex] }   (role: writer-a, writer-b, writer-c, system, view)
//   derived: what lib/store.js and lib/system.js derive keys from (indexers, entropy, namespaces, static hashes)
const path = require('path')
const b4a = require('b4a')
const c = require('compact-encoding')
const crypto = require('hypercore-crypto')
const Corestore = require('corestore')
const Hyperbee = require('hyperbee')
const Autobase = require('autobase')
const caps = require('autobase/lib/caps.js')
const SystemView = require('autobase/lib/system.js')

const hex = (b) => (b === null || b === undefined ? null : b4a.toString(b, 'hex'))

function open(store) {
  return new Hyperbee(store.get('view'), {
    keyEncoding: 'utf-8',
    valueEncoding: 'utf-8',
    extension: false
  })
}

async function apply(nodes, view, host) {
  for (const node of nodes) {
    const op = node.value
    if (op.op === 'add-writer') {
      await host.addWriter(b4a.from(op.key, 'hex'), { indexer: !!op.indexer })
    } else if (op.op === 'remove-writer') {
      await host.removeWriter(b4a.from(op.key, 'hex'))
    } else if (op.op === 'put') {
      await view.put(op.key, op.value)
    } else if (op.op === 'del') {
      await view.del(op.key)
    }
  }
}

function makeBase(store, key) {
  return new Autobase(store, key, { open, apply, valueEncoding: 'json', ackInterval: 0 })
}

function manifestJson(m) {
  if (!m) return null
  return {
    version: m.version,
    allowPatch: !!m.allowPatch,
    quorum: m.quorum,
    prologue: m.prologue ? { hash: hex(m.prologue.hash), length: m.prologue.length } : null,
    signers: m.signers.map((s) => ({ namespace: hex(s.namespace), publicKey: hex(s.publicKey) })),
    linked: m.linked ? m.linked.map(hex) : null,
    userData: m.userData ? hex(m.userData) : null
  }
}

const clockJson = (arr) => arr.map((x) => ({ key: hex(x.key), length: x.length }))

async function systemJson(sys) {
  const list = []
  for await (const e of sys.list()) {
    list.push({ key: hex(e.key), isIndexer: e.value.isIndexer, isRemoved: e.value.isRemoved, length: e.value.length })
  }
  return {
    length: sys.core.length,
    version: sys.version,
    members: sys.members,
    pendingIndexers: sys.pendingIndexers.map(hex),
    indexers: clockJson(sys.indexers),
    heads: clockJson(sys.heads),
    views: clockJson(sys.views),
    list
  }
}

async function flushesJson(core) {
  const out = []
  for await (const { length, info } of SystemView.flushes(core.session(), { wait: false })) {
    out.push({ length, members: info.members, indexers: clockJson(info.indexers), heads: clockJson(info.heads) })
  }
  return out
}

async function dumpCore(store, role, key, session = null) {
  // the base's own session of a view also has the blocks applied but not yet signed
  const core = session || store.get({ key, active: false })
  await core.ready()
  const blocks = []
  for (let i = 0; i < core.length; i++) {
    blocks.push(hex(await core.get(i, { wait: false, valueEncoding: 'binary' })))
  }
  const out = {
    role,
    key: hex(core.key),
    manifest: manifestJson(core.manifest),
    length: core.length,
    signedLength: core.signedLength,
    blocks
  }
  if (!session) await core.close()
  return out
}

// Replication between the stores runs on the event loop: wait a little between rounds, bounded by time
// rather than by a count of rounds (1000 immediate ticks were a few milliseconds, too short when the machine
// is busy with other tests).
const tick = () => new Promise((resolve) => setTimeout(resolve, 5))
const LIMIT_MS = 60000
const within = (start) => Date.now() - start < LIMIT_MS

async function settled(bases) {
  // every base applied everything the others wrote: same system length, view length and heads
  for (const start = Date.now(); within(start); ) {
    for (const b of bases) await b.update()
    const same = (f) => bases.every((b) => f(b) === f(bases[0]))
    const heads = (b) => JSON.stringify(b.system.heads.map((h) => [hex(h.key), h.length]))
    if (same((b) => b.system.core.length) && same((b) => b.view.core.length) && same(heads)) return
    await tick()
  }
  throw new Error('bases did not converge')
}

async function main() {
  const dir = process.argv[2]
  if (!dir) throw new Error('usage: autobase_fixture.js DIR')

  const storeA = new Corestore(path.join(dir, 'a'))
  const storeB = new Corestore(path.join(dir, 'b'))
  const storeC = new Corestore(path.join(dir, 'c'))

  const a = makeBase(storeA, null)
  await a.ready()
  const b = makeBase(storeB, a.key)
  await b.ready()

  const w3 = makeBase(storeC, a.key)
  await w3.ready()

  const s1 = storeA.replicate(true)
  const s2 = storeB.replicate(false)
  s1.pipe(s2).pipe(s1)
  const s3 = storeA.replicate(true)
  const s4 = storeC.replicate(false)
  s3.pipe(s4).pipe(s3)

  await a.append({ op: 'add-writer', key: hex(b.local.key), indexer: true })
  for (const start = Date.now(); within(start) && !b.writable; ) {
    await a.update()
    await b.update()
    if (!b.writable) await tick()
  }
  if (!b.writable) throw new Error('b never became writable')

  // concurrent writes, then syncs and acks, a few times over: both indexers sign checkpoints
  for (let i = 0; i < 3; i++) {
    await a.append({ op: 'put', key: 'a' + i, value: 'from a ' + i })
    await b.append({ op: 'put', key: 'b' + i, value: 'from b ' + i })
    await settled([a, b])
    await a.ack()
    await settled([a, b])
    await b.ack()
    await settled([a, b])
  }
  // a writer that is not an indexer writes, then is removed
  await b.append({ op: 'add-writer', key: hex(w3.local.key), indexer: false })
  for (const start = Date.now(); within(start) && !w3.writable; ) {
    await settled([a, b, w3])
    if (!w3.writable) await tick()
  }
  if (!w3.writable) throw new Error('c never became writable')
  await w3.append({ op: 'put', key: 'c0', value: 'from c' })
  await settled([a, b, w3])
  await a.append({ op: 'remove-writer', key: hex(w3.local.key) })
  await settled([a, b, w3])
  await a.append({ op: 'del', key: 'a0' })
  await b.append({ op: 'put', key: 'shared', value: 'last' })
  for (let i = 0; i < 3; i++) {
    await settled([a, b])
    await a.ack()
    await settled([a, b])
    await b.ack()
  }
  await settled([a, b])

  const bases = []
  for (const [name, base] of [
    ['a', a],
    ['b', b]
  ]) {
    const entries = []
    for await (const e of base.view.createReadStream()) entries.push([e.key, e.value])
    bases.push({
      name,
      key: hex(base.key),
      discoveryKey: hex(base.discoveryKey),
      localKey: hex(base.local.key),
      bootRecord: hex(await base.local.getUserData('autobase/boot')),
      systemKey: hex(base.system.core.key),
      viewKey: hex(base.view.core.key),
      systemLength: base.system.core.length,
      signedLength: base.system.core.signedLength,
      viewEntries: entries,
      // what lib/system.js reports: the state at the system core's length, and every member it lists
      system: await systemJson(base.system)
    })
  }

  const cores = [
    await dumpCore(storeA, 'writer-a', a.local.key),
    await dumpCore(storeA, 'writer-b', b.local.key),
    await dumpCore(storeA, 'writer-c', w3.local.key),
    await dumpCore(storeA, 'system', null, a.system.core),
    await dumpCore(storeA, 'view', null, a.view.core)
  ]

  // the inputs of the key derivations in lib/store.js (_deriveNamespace, _deriveStaticHash) and lib/system.js
  const [NS_SIGNER_NAMESPACE] = crypto.namespace('autobase', 1)
  // version 1 systems have no entropy: the first indexer's first signer namespace stands in for it
  const entropy = a.system.entropy || b4a.from(cores[0].manifest.signers[0].namespace, 'hex')
  const namespace = (name, ent) =>
    crypto.hash([
      NS_SIGNER_NAMESPACE,
      c.encode(c.uint, 1),
      a.key,
      crypto.hash(b4a.alloc(0)),
      ent,
      b4a.from(name)
    ])
  const derived = {
    // AutoStore.getBootstrapSystemKey(): the system core's key before the first indexer was added
    bootstrapSystemKey: hex(a._viewStore.getBootstrapSystemKey()),
    systemVersion: a.system.version,
    entropy: hex(a.system.entropy),
    indexers: a.system.indexers.map((i) => ({ key: hex(i.key), length: i.length })),
    caps: {
      signer: hex(caps.NS_SIGNER_NAMESPACE),
      viewBlockKey: hex(caps.NS_VIEW_BLOCK_KEY),
      hashKey: hex(caps.NS_HASH_KEY),
      encryption: hex(caps.NS_ENCRYPTION)
    },
    genesisEntropy: hex(SystemView.GENESIS_ENTROPY),
    // what a version 2 system would take as entropy if its indexers changed at length 7 (lib/system.js)
    entropyAt7: hex(a.system.getEntropy(a.system.indexers, 7)),
    staticHash: {
      _system: hex(crypto.hash([a.key, b4a.from('_system')])),
      view: hex(crypto.hash([a.key, b4a.from('view')]))
    },
    namespaces: entropy
      ? { _system: hex(namespace('_system', entropy)), view: hex(namespace('view', entropy)) }
      : null
  }

  const systemFlushes = await flushesJson(a.system.core)

  process.stdout.write(JSON.stringify({ bases, cores, derived, systemFlushes }) + '\n')

  await a.close()
  await b.close()
  await w3.close()
  await storeA.close()
  await storeB.close()
  await storeC.close()
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  }
)
