#!/usr/bin/env node
// Append benchmark for JS hypercore (RocksDB through hypercore-storage), the counterpart of
// crates/holepunch/examples/hypercore_append.rs (cpu_seconds: user+sys of the whole process, every thread, during the
// appends). Usage: node js/bench-hypercore-append.js DIR BATCHES BATCH SIZE
'use strict'

const Hypercore = require('hypercore')
const crypto = require('hypercore-crypto')
const b4a = require('b4a')

async function main () {
  const [dir, batches = '200', batch = '100', size = '1024'] = process.argv.slice(2)
  const core = new Hypercore(dir, { keyPair: crypto.keyPair(b4a.alloc(32, 7)) })
  await core.ready()
  const block = b4a.alloc(Number(size), 0xab)
  const blocks = new Array(Number(batch)).fill(block)
  const start = process.hrtime.bigint()
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < Number(batches); i++) await core.append(blocks)
  const secs = Number(process.hrtime.bigint() - start) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const cpuSecs = (cpu.user + cpu.system) / 1e6
  const n = Number(batches) * Number(batch)
  console.log(`js blocks=${n} batch=${batch} size=${size} seconds=${secs.toFixed(3)} cpu_seconds=${cpuSecs.toFixed(3)} appends_per_sec=${(n / secs).toFixed(0)}`)
  await core.close()
}

main().catch((err) => { console.error(err); process.exit(1) })
