#!/usr/bin/env node
// Verifies proofs made by the Rust hypercore with JS hypercore: reads one JSON object on stdin,
//   { "key": hex, "proofs": [hex of wire.data, ...] }
// opens an empty JS reader core for the key, applies each proof in order (core.applyProof, the path the
// replicator takes for received data; a signed upgrade on a newer fork first goes through the replicator's
// reorg path) and prints one JSON line per proof:
//   { "ok": bool, "error": string|null, "length": n, "fork": n, "block": hex|null }
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const c = require('compact-encoding')
const Hypercore = require('hypercore')
const m = require('hypercore/lib/messages')

async function main () {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hc-verify-'))
  const core = new Hypercore(dir, b4a.from(input.key, 'hex'))
  await core.ready()
  try {
    for (const hex of input.proofs) {
      const proof = c.decode(m.wire.data, b4a.from(hex, 'hex'))
      let ok = false
      let error = null
      try {
        if (proof.fork > core.fork && proof.upgrade) {
          // Another fork: the replicator's reorg path (verifyReorg, then reorg), then the proof applies.
          const batch = await core.core.verifyReorg(proof)
          if (batch.finished) await core.core.reorg(batch)
        }
        ok = !!(await core.applyProof(proof))
      } catch (err) {
        error = err.message
      }
      let block = null
      if (ok && proof.block) {
        block = b4a.toString(await core.get(proof.block.index, { wait: false }), 'hex')
      }
      console.log(JSON.stringify({ ok, error, length: core.length, fork: core.fork, block }))
    }
  } finally {
    await core.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
