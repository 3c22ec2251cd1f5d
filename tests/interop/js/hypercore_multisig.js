#!/usr/bin/env node
// Multi-signer cores as autobase makes them, written by JS hypercore 11 (lib/multisig.js, lib/verifier.js),
// for the Rust hypercore to check byte for byte. Prints one JSON object:
//   seeds: [hex] (key pair seeds of signers 0..2), blocks: [hex] (11 blocks)
//   multi: { manifest, key, partials: [{ signer, signature, patch, nodes: [{ index, size, hash }] | null }],
//            assembled, jsVerifies, proof (wire.data: block 5 + upgrade 0..8 signed by `assembled`) }
//     manifest v1, quorum 2 of 3, allowPatch; signer 0's core has blocks 0..8, signer 1's 0..11; the
//     assembled signature signs length 8 (signer 1 with a patch of 3).
//   prologue: { manifest, key, proofs: [wire.data: block 1 + upgrade 0..3 without signature,
//               block 4 + upgrade 3..5 signed by `assembled`], assembled }
//     manifest v1, quorum 1 of 2, prologue = the tree of blocks 0..3.
//   anchor: { manifest, key, block }: an autobase anchor core's manifest (v2, quorum 0, prologue of 1 block).
//   userData: what core.getUserData returns after set, set again, set/unset; signedLength, contiguousLength.
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const c = require('compact-encoding')
const crypto = require('hypercore-crypto')
const Hypercore = require('hypercore')
const m = require('hypercore/lib/messages')
const { MerkleTree } = require('hypercore/lib/merkle-tree')
const multisig = require('hypercore/lib/multisig')
const caps = require('hypercore/lib/caps')

const hex = (b) => (b ? b4a.toString(b, 'hex') : null)
const nodesJson = (nodes) =>
  nodes ? nodes.map((n) => ({ index: n.index, size: n.size, hash: hex(n.hash) })) : null

function block (i) {
  const len = ((i * 53) % 300) + 1
  const b = b4a.alloc(len)
  for (let j = 0; j < len; j++) b[j] = (i * 7 + j * 13) & 0xff
  return b
}

async function proof (core, req, signature, manifest) {
  const rx = core.state.storage.read()
  const p = MerkleTree.proof(core.state, rx, req)
  rx.tryFlush()
  const settled = await (await p).settle()
  if (settled.block) settled.block.value = await core.get(req.block.index)
  if (settled.upgrade) settled.upgrade.signature = signature
  settled.manifest = manifest
  return hex(c.encode(m.wire.data, { request: 0, priority: 0, ...settled }))
}

async function main () {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hc-multisig-'))
  const seeds = [1, 2, 3].map((i) => b4a.alloc(32, i))
  const kps = seeds.map((s) => crypto.keyPair(s))
  const blocks = Array.from({ length: 11 }, (_, i) => block(i))
  const signer = (kp) => ({ signature: 'ed25519', namespace: caps.DEFAULT_NAMESPACE, publicKey: kp.publicKey })
  const out = { seeds: seeds.map(hex), blocks: blocks.map(hex) }
  const open = []
  try {
    // Quorum 2 of 3 with patches.
    const manifest = {
      version: 1,
      hash: 'blake2b',
      allowPatch: true,
      quorum: 2,
      signers: kps.map(signer),
      prologue: null,
      linked: null,
      userData: null
    }
    const a = new Hypercore(path.join(tmp, 'a'), { manifest, keyPair: kps[0] })
    const b = new Hypercore(path.join(tmp, 'b'), { manifest, keyPair: kps[1] })
    open.push(a, b)
    await a.ready()
    await b.ready()
    await a.append(blocks.slice(0, 8))
    await b.append(blocks.slice(0, 11))
    const pa = await multisig.partialSignature(a.core, 0, 8)
    const pb = await multisig.partialSignature(b.core, 1, 8)
    const assembled = a.core.verifier.assemble([pa, pb])
    const jsVerifies = a.core.verifier.verify(a.state.createTreeBatch(), assembled)
    out.multi = {
      manifest: hex(c.encode(m.manifest, manifest)),
      key: hex(a.key),
      partials: [pa, pb].map((p) => ({
        signer: p.signer,
        signature: hex(p.signature),
        patch: p.patch,
        nodes: nodesJson(p.nodes)
      })),
      assembled: hex(assembled),
      jsVerifies,
      proof: await proof(a, { block: { index: 5, nodes: 0 }, upgrade: { start: 0, length: 8 } }, assembled, manifest)
    }

    // A prologue: the first 3 blocks are trusted by their tree hash.
    const pmanifest = {
      version: 1,
      hash: 'blake2b',
      allowPatch: false,
      quorum: 1,
      signers: [kps[0], kps[1]].map(signer),
      prologue: { hash: await a.treeHash(3), length: 3 },
      linked: null,
      userData: null
    }
    const p = new Hypercore(path.join(tmp, 'p'), { manifest: pmanifest, keyPair: kps[0] })
    open.push(p)
    await p.ready()
    await p.append(blocks.slice(0, 3))
    const first = await proof(p, { block: { index: 1, nodes: 0 }, upgrade: { start: 0, length: 3 } }, null, pmanifest)
    await p.append(blocks.slice(3, 5))
    const passembled = p.core.verifier.assemble([await multisig.partialSignature(p.core, 0, 5)])
    out.prologue = {
      manifest: hex(c.encode(m.manifest, pmanifest)),
      key: hex(p.key),
      assembled: hex(passembled),
      jsVerifies: p.core.verifier.verify(p.state.createTreeBatch(), passembled),
      proofs: [first, await proof(p, { block: { index: 4, nodes: 0 }, upgrade: { start: 3, length: 2 } }, passembled, null)]
    }

    // An autobase anchor core: manifest version 2, no signers, quorum 0, a prologue of one block, user data.
    const anchorBlock = block(42)
    const anchorManifest = {
      version: 2,
      hash: 'blake2b',
      prologue: { hash: crypto.tree([{ index: 0, size: anchorBlock.byteLength, hash: crypto.data(anchorBlock) }]), length: 1 },
      allowPatch: false,
      quorum: 0,
      signers: [],
      userData: b4a.from('manifest data'),
      linked: null
    }
    out.anchor = {
      manifest: hex(c.encode(m.manifest, anchorManifest)),
      key: hex(Hypercore.key(anchorManifest)),
      block: hex(anchorBlock)
    }

    // User data.
    await a.setUserData('referrer', b4a.from('one'))
    await a.setUserData('referrer', b4a.from('two'))
    await a.setUserData('gone', b4a.from('x'))
    await a.setUserData('gone', null)
    out.userData = {
      referrer: hex(await a.getUserData('referrer')),
      gone: hex(await a.getUserData('gone')),
      signedLength: a.signedLength,
      contiguousLength: a.contiguousLength
    }
  } finally {
    for (const core of open) await core.close()
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  console.log(JSON.stringify(out))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
