#!/usr/bin/env node
// Generates the JS-checked vectors for crates/wire/src/flat_tree.rs and crates/cores/src/hypercore/:
//   crates/cores/tests/it/vectors/flat_tree.json  flat-tree index math
//   crates/cores/tests/it/vectors/hypercore.json  hypercore 11 cores (compat and manifest) with fixed key pairs: the
//                                        tree after each append/truncate, signatures, and encoded proofs
//
// Run from tests/interop:   node js/gen-hypercore-vectors.js
// Deterministic (fixed seeds, blocks and requests), so re-running gives the same files.

'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const c = require('compact-encoding')
const flat = require('flat-tree')
const crypto = require('hypercore-crypto')
const Hypercore = require('hypercore')
const caps = require('hypercore/lib/caps')
const m = require('hypercore/lib/messages')
const Verifier = require('hypercore/lib/verifier')

const DIR = process.env.VECTORS_DIR || path.join(__dirname, '..', '..', '..', 'crates', 'cores', 'tests', 'it', 'vectors')
const hex = (b) => b4a.toString(b, 'hex')

function write (name, doc) {
  fs.writeFileSync(path.join(DIR, name), JSON.stringify(doc, null, 1) + '\n')
}

// ---- flat-tree ----
function flatTreeVectors () {
  const indices = []
  for (let i = 0; i < 130; i++) indices.push(i)
  for (const i of [255, 256, 511, 1023, 1024, 4095, 65535, 65536, 1048575, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 7, 2 ** 40 - 1]) indices.push(i)
  const nodes = indices.map((i) => ({
    index: i,
    depth: flat.depth(i),
    offset: flat.offset(i),
    parent: flat.parent(i),
    sibling: flat.sibling(i),
    children: flat.children(i),
    leftSpan: flat.leftSpan(i),
    rightSpan: flat.rightSpan(i),
    count: flat.count(i),
    countLeaves: flat.countLeaves(i),
    nextLeaf: flat.nextLeaf(i)
  }))
  const fullRoots = []
  for (let i = 0; i <= 300; i += 2) fullRoots.push({ index: i, roots: flat.fullRoots(i) })
  for (const i of [2 ** 20, 2 ** 33 + 6, 2 ** 40 + 2 ** 20 + 2]) fullRoots.push({ index: i, roots: flat.fullRoots(i) })

  // Iterator walks: a fixed sequence of moves from several starts, recording (index, offset, factor).
  const moves = ['parent', 'sibling', 'leftChild', 'rightChild', 'parent', 'parent', 'nextTree', 'parent', 'prev', 'next', 'leftSpan', 'parent', 'rightSpan', 'prevTree', 'parent', 'sibling']
  const walks = []
  for (const start of [0, 1, 2, 3, 6, 7, 10, 23, 31, 100]) {
    const ite = flat.iterator(start)
    const steps = []
    for (const mv of moves) {
      ite[mv]()
      steps.push([mv, ite.index, ite.offset, ite.factor, ite.contains(start), ite.countLeaves()])
    }
    walks.push({ start, steps })
  }
  const fullRootWalks = []
  for (let len = 0; len <= 40; len++) {
    const seen = []
    for (const ite = flat.iterator(0); ite.fullRoot(2 * len); ite.nextTree()) seen.push(ite.index)
    fullRootWalks.push({ length: len, roots: seen })
  }
  return { nodes, fullRoots, walks, fullRootWalks }
}

// ---- hypercore ----
function block (i, n) {
  const b = b4a.alloc(n)
  for (let j = 0; j < n; j++) b[j] = (i * 31 + j * 7) & 0xff
  return b
}

const node = (n) => ({ index: n.index, size: n.size, hash: hex(n.hash) })

function encodeRequest (r) {
  return {
    id: 0,
    fork: 0,
    block: r.block || null,
    hash: r.hash || null,
    seek: r.seek || null,
    upgrade: r.upgrade || null,
    manifest: !!r.manifest,
    priority: 0
  }
}

// hypercore 11.37.1's core.proof() cannot answer seeks: its read batch is flushed before the async seek walk
// reads from it. MerkleTree.proof() with a read "batch" that flushes every read on its own gives the same proof
// the replicator would send.
async function seekProof (core, r) {
  const { MerkleTree } = require('hypercore/lib/merkle-tree')
  const rx = {
    getTreeNode (index) {
      const one = core.state.storage.read()
      const p = one.getTreeNode(index)
      one.tryFlush()
      return p
    }
  }
  const proof = await (await MerkleTree.proof(core.state, rx, r)).settle()
  if (proof.block) proof.block.value = await core.get(r.block.index)
  return proof
}

async function coreVectors (compat, seedByte) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hc-vectors-'))
  const keyPair = crypto.keyPair(b4a.alloc(32, seedByte))
  const core = new Hypercore(dir, { keyPair, compat })
  await core.ready()

  const doc = {
    compat,
    seed: hex(b4a.alloc(32, seedByte)),
    key: hex(core.key),
    discoveryKey: hex(core.discoveryKey),
    manifest: hex(c.encode(m.manifest, core.manifest)),
    manifestHash: hex(Verifier.manifestHash(core.manifest)),
    steps: [],
    proofs: []
  }

  async function snap (op) {
    const roots = core.state.roots.map(node)
    doc.steps.push({
      ...op,
      length: core.length,
      byteLength: core.byteLength,
      fork: core.fork,
      treeHash: hex(await core.treeHash()),
      roots,
      signature: hex(core.state.signature),
      signable: hex(compat
        ? caps.treeSignableCompat(await core.treeHash(), core.length, core.fork)
        : caps.treeSignable(core.key, await core.treeHash(), core.length, core.fork))
    })
  }

  let next = 0
  async function append (sizes) {
    const blocks = sizes.map((n) => block(next++, n))
    await core.append(blocks)
    await snap({ op: 'append', blocks: blocks.map(hex) })
  }

  await append([5])
  await append([0, 17, 1024])
  await append([3, 3, 3, 3, 3, 3, 3])
  await core.truncate(6)
  next = 6
  await snap({ op: 'truncate', truncate: 6 })
  await append([100, 200, 300, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])

  const len = core.length
  const requests = [
    { block: { index: 0, nodes: 0 }, upgrade: { start: 0, length: len } },
    { block: { index: 5, nodes: 0 }, upgrade: { start: 0, length: len } },
    { block: { index: len - 1, nodes: 0 }, upgrade: { start: 0, length: len } },
    { block: { index: 3, nodes: 0 }, upgrade: { start: 7, length: len - 7 } },
    { block: { index: 12, nodes: 0 }, upgrade: { start: 7, length: len - 7 } },
    { block: { index: 9, nodes: 0 }, upgrade: { start: 3, length: 9 } },
    { block: { index: 2, nodes: 2 } },
    { block: { index: 17, nodes: 1 } },
    { hash: { index: 5, nodes: 0 }, upgrade: { start: 0, length: len } },
    { hash: { index: 19, nodes: 0 } },
    { upgrade: { start: 0, length: len } },
    { upgrade: { start: 5, length: 10 } },
    { upgrade: { start: 16, length: len - 16 } },
    { seek: { bytes: 1100, padding: 0 }, upgrade: { start: 0, length: len } },
    { seek: { bytes: 1500, padding: 0 }, upgrade: { start: 0, length: len } },
    { seek: { bytes: 1500, padding: 0 }, upgrade: { start: 6, length: len - 6 } },
    { block: { index: 8, nodes: 2 }, seek: { bytes: 1400, padding: 0 } },
    { block: { index: 9, nodes: 3 }, seek: { bytes: 1100, padding: 0 } },
    { hash: { index: 19, nodes: 1 }, seek: { bytes: 1600, padding: 0 } },
    { block: { index: 1, nodes: 0 }, seek: { bytes: 30, padding: 0 } },
    { block: { index: 0, nodes: 0 }, upgrade: { start: 0, length: 1 }, manifest: true }
  ]
  for (const r of requests) {
    let proof
    try {
      proof = r.seek ? await seekProof(core, r) : await core.proof(r)
    } catch (err) {
      // Requests JS refuses: the Rust side must refuse them too.
      doc.proofs.push({ request: hex(c.encode(m.wire.request, encodeRequest(r))), error: err.message })
      continue
    }
    // As the replicator (lib/replicator.js): the manifest goes out only for non-compat cores.
    if (r.manifest && !core.core.compat) proof.manifest = core.manifest
    const data = { request: 0, ...proof }
    doc.proofs.push({ request: hex(c.encode(m.wire.request, encodeRequest(r))), data: hex(c.encode(m.wire.data, data)) })
  }

  // Seeks over the final tree.
  doc.seeks = []
  for (const bytes of [0, 1, 5, 6, 1045, 1046, 1100, core.byteLength - 1, core.byteLength, core.byteLength + 1]) {
    const res = bytes > core.byteLength ? null : await core.seek(bytes)
    doc.seeks.push({ bytes, result: res })
  }

  await core.close()
  fs.rmSync(dir, { recursive: true, force: true })
  return doc
}

// Encrypted cores: the stored (encrypted) blocks, tree hash and signature for a fixed encryption key.
async function encryptedVectors (compat, isBlockKey) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hc-vectors-'))
  const seed = b4a.alloc(32, 3)
  const encryptionKey = b4a.alloc(32, 0x5a)
  const core = new Hypercore(dir, { keyPair: crypto.keyPair(seed), compat, encryption: { key: encryptionKey, block: isBlockKey } })
  await core.ready()
  const blocks = [block5(0), block5(1), b4a.alloc(0), block5(3)]
  await core.append(blocks.slice(0, 2))
  await core.truncate(1)
  await core.append(blocks.slice(1))
  const stored = []
  for (let i = 0; i < core.length; i++) {
    // The block as stored and hashed: 8-byte header then ciphertext (core.get strips the header).
    const rx = core.state.storage.read()
    const p = rx.getBlock(i)
    rx.tryFlush()
    stored.push(hex(await p))
  }
  const doc = {
    compat,
    block: isBlockKey,
    seed: hex(seed),
    encryptionKey: hex(encryptionKey),
    key: hex(core.key),
    blocks: blocks.map(hex),
    stored,
    length: core.length,
    fork: core.fork,
    byteLength: core.byteLength,
    treeHash: hex(await core.treeHash()),
    signature: hex(core.state.signature),
    seeks: []
  }
  for (const bytes of [0, 3, 20, 21, 30, core.byteLength]) {
    doc.seeks.push({ bytes, result: await core.seek(bytes) })
  }
  await core.close()
  fs.rmSync(dir, { recursive: true, force: true })
  return doc

  function block5 (i) {
    return block(100 + i, 20 + i)
  }
}

async function main () {
  write('flat_tree.json', flatTreeVectors())
  const tree = caps.treeSignableCompat(b4a.alloc(32), 0, 0).subarray(0, 32)
  write('hypercore.json', {
    caps: {
      tree: hex(tree),
      manifest: hex(caps.MANIFEST),
      defaultNamespace: hex(caps.DEFAULT_NAMESPACE),
      defaultEncryption: hex(caps.DEFAULT_ENCRYPTION)
    },
    cores: [await coreVectors(true, 1), await coreVectors(false, 2)],
    encrypted: [await encryptedVectors(true, false), await encryptedVectors(false, false), await encryptedVectors(true, true)]
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
