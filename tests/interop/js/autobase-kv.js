#!/usr/bin/env node
// autobase-kv: a multi-writer key-value store on one hyperbee view, on JS autobase 7 (issue #16's probe, the
// twin of the Rust `autobase-kv`, same commands, same encodings, same store layout).
//
// usage:
//   node js/autobase-kv.js create DIR [--encryption-key HEX]
//                                                        prints the base key, then the local writer key
//   node js/autobase-kv.js join BASE_KEY DIR [--encryption-key HEX]
//                                                        prints the local writer key
//   (--encryption-key: autobase's `encryptionKey`; autobase keeps it in the local core's user data, so
//   later commands need not repeat it)
//   node js/autobase-kv.js add-writer DIR WRITER_KEY [--indexer]
//   node js/autobase-kv.js remove-writer DIR WRITER_KEY
//   node js/autobase-kv.js put DIR KEY VALUE [--optimistic]
//                                                        --optimistic: base.append(op, { optimistic: true }),
//                                                        also from a store that is not a writer (yet)
//   node js/autobase-kv.js fill DIR COUNT PREFIX         COUNT puts PREFIX<i> = <i> (one process; for tests)
//   node js/autobase-kv.js del DIR KEY
//   node js/autobase-kv.js get DIR KEY                   prints the value (exit 1 when the key is not set)
//   node js/autobase-kv.js list DIR                      one `key<TAB>value` line per entry, in key order
//   node js/autobase-kv.js info DIR                      JSON: key, local key, writable, isIndexer, view and
//                                                        system lengths (signed too), the indexed system
//                                                        length, the system's indexers, heads and members,
//                                                        and what the store holds of each member's core
//                                                        (writers: length, contiguousLength)
//   node js/autobase-kv.js sync DIR [--bootstrap HOST:PORT[,...]] [--seconds N]
//                                                        joins the swarm on the base's discovery key,
//                                                        replicates, and after N seconds (default 10; or on
//                                                        SIGINT/SIGTERM) applies what it has and exits;
//                                                        prints {"fastForward":{"to":N,"from":M}} when the
//                                                        base fast-forwards
//
// DIR is a corestore. Writer blocks are JSON (`valueEncoding: 'json'`): {"op":"put","key":K,"value":V},
// {"op":"del","key":K}, {"op":"add-writer","key":HEX,"indexer":BOOL}, {"op":"remove-writer","key":HEX}.
// The view is a hyperbee named `view` with utf-8 keys and values.
'use strict'
const path = require('path')
const b4a = require('b4a')
const Corestore = require('corestore')
const Hyperbee = require('hyperbee')
const Autobase = require('autobase')

function usage(msg) {
  if (msg) process.stderr.write(`autobase-kv: ${msg}\n`)
  process.stderr.write(
    'usage: autobase-kv create DIR [--encryption-key HEX] | join BASE_KEY DIR [--encryption-key HEX] | add-writer DIR KEY [--indexer] | remove-writer DIR KEY |\n' +
      '       put DIR K V [--optimistic] | del DIR K | get DIR K | list DIR | info DIR | sync DIR [--bootstrap B] [--seconds N]\n'
  )
  process.exit(2)
}

function open(store) {
  return new Hyperbee(store.get('view'), {
    keyEncoding: 'utf-8',
    valueEncoding: 'utf-8',
    extension: false
  })
}

// A value from any writer that is not an op of the form above, has a key that is not 64 hex characters, or
// would remove the last indexer is skipped, as the Rust apply does (crates/cores/src/autobase/kv.rs), so no
// writer can stop the others' apply.
//
// Optimistic nodes (`put --optimistic` from a store that is not a member; the base is opened with
// `optimistic: true`): an optimistic put is applied and acks its writer (host.ackWriter: a removed member at
// that length, so it stays unable to write plainly); any other optimistic op is neither applied nor acked,
// so autobase drops it. A member's nodes come without the flag set and are applied as usual.
const HEX_KEY = /^[0-9a-fA-F]{64}$/

async function apply(nodes, view, host) {
  for (const node of nodes) {
    const op = node.value
    if (!op || typeof op !== 'object') continue
    if (node.optimistic) {
      if (op.op === 'put' && typeof op.key === 'string' && typeof op.value === 'string') {
        await host.ackWriter(node.from.key)
        await view.put(op.key, op.value)
      }
      continue
    }
    if (op.op === 'add-writer' && HEX_KEY.test(op.key)) {
      await host.addWriter(b4a.from(op.key, 'hex'), { indexer: op.indexer === true })
    } else if (op.op === 'remove-writer' && HEX_KEY.test(op.key)) {
      const key = b4a.from(op.key, 'hex')
      if (host.removeable(key)) await host.removeWriter(key)
    } else if (op.op === 'put' && typeof op.key === 'string' && typeof op.value === 'string') {
      await view.put(op.key, op.value)
    } else if (op.op === 'del' && typeof op.key === 'string') {
      await view.del(op.key)
    }
  }
}

function parseKey(s) {
  if (!/^[0-9a-fA-F]{64}$/.test(s || '')) usage(`not a 64-character hex key: ${s}`)
  return b4a.from(s, 'hex')
}

// Removes `--encryption-key HEX` from argv and returns the key (null when absent).
function takeEncryptionKey(argv) {
  const i = argv.indexOf('--encryption-key')
  if (i === -1) return null
  const key = parseKey(argv[i + 1])
  argv.splice(i, 2)
  return key
}

async function withBase(dir, key, fn, opts = {}) {
  const store = new Corestore(path.resolve(dir))
  const base = new Autobase(store, key, {
    open,
    apply,
    optimistic: true,
    valueEncoding: 'json',
    ackInterval: opts.ackInterval || 0,
    encryptionKey: opts.encryptionKey || null
  })
  try {
    await base.ready()
    return await fn(base, store)
  } finally {
    await base.close()
    await store.close()
  }
}

async function append(dir, value) {
  await withBase(dir, null, async (base) => {
    if (!base.writable) {
      process.stderr.write('autobase-kv: this store is not a writer of its base (yet): add its key first\n')
      process.exitCode = 1
      return
    }
    await base.append(value)
    await base.update()
  })
}

async function appendOptimistic(dir, value) {
  await withBase(dir, null, async (base) => {
    await base.append(value, { optimistic: true })
    await base.update()
  })
}

async function main() {
  const argv = process.argv.slice(2)
  const cmd = argv.shift()
  const hex = (b) => b4a.toString(b, 'hex')
  switch (cmd) {
    case 'create': {
      const encryptionKey = takeEncryptionKey(argv)
      if (argv.length !== 1) usage()
      await withBase(
        argv[0],
        null,
        async (base) => {
          process.stdout.write(hex(base.key) + '\n' + hex(base.local.key) + '\n')
        },
        { encryptionKey }
      )
      break
    }
    case 'join': {
      const encryptionKey = takeEncryptionKey(argv)
      if (argv.length !== 2) usage()
      await withBase(
        argv[1],
        parseKey(argv[0]),
        async (base) => {
          process.stdout.write(hex(base.local.key) + '\n')
        },
        { encryptionKey }
      )
      break
    }
    case 'add-writer': {
      const indexer = argv.includes('--indexer')
      const rest = argv.filter((a) => a !== '--indexer')
      if (rest.length !== 2) usage()
      parseKey(rest[1])
      await append(rest[0], { op: 'add-writer', key: rest[1].toLowerCase(), indexer })
      break
    }
    case 'remove-writer': {
      if (argv.length !== 2) usage()
      parseKey(argv[1])
      await append(argv[0], { op: 'remove-writer', key: argv[1].toLowerCase() })
      break
    }
    case 'put': {
      const o = argv.indexOf('--optimistic')
      if (o !== -1) argv.splice(o, 1)
      if (argv.length !== 3) usage()
      const op = { op: 'put', key: argv[1], value: argv[2] }
      if (o !== -1) await appendOptimistic(argv[0], op)
      else await append(argv[0], op)
      break
    }
    case 'fill': {
      if (argv.length !== 3) usage()
      const count = Number(argv[1])
      if (!(count >= 0)) usage('COUNT takes a number')
      await withBase(argv[0], null, async (base) => {
        for (let i = 0; i < count; i++) {
          await base.append({ op: 'put', key: argv[2] + String(i).padStart(6, '0'), value: String(i) })
        }
        await base.update()
      })
      break
    }
    case 'del': {
      if (argv.length !== 2) usage()
      await append(argv[0], { op: 'del', key: argv[1] })
      break
    }
    case 'get': {
      if (argv.length !== 2) usage()
      await withBase(argv[0], null, async (base) => {
        await base.update()
        const node = await base.view.get(argv[1])
        if (node === null) {
          process.exitCode = 1
          return
        }
        process.stdout.write(node.value + '\n')
      })
      break
    }
    case 'list': {
      if (argv.length !== 1) usage()
      await withBase(argv[0], null, async (base) => {
        await base.update()
        for await (const { key, value } of base.view.createReadStream()) {
          process.stdout.write(`${key}\t${value}\n`)
        }
      })
      break
    }
    case 'info': {
      if (argv.length !== 1) usage()
      await withBase(argv[0], null, async (base, store) => {
        await base.update()
        const members = []
        const writers = []
        for await (const { key, value } of base.system.list()) {
          members.push({ key: hex(key), isIndexer: !!value.isIndexer, isRemoved: !!value.isRemoved, length: value.length })
          const core = store.get({ key, active: false })
          await core.ready()
          writers.push({ key: hex(key), length: core.length, contiguousLength: core.contiguousLength })
          await core.close()
        }
        process.stdout.write(
          JSON.stringify({
            key: hex(base.key),
            localKey: hex(base.local.key),
            writable: base.writable,
            isIndexer: base.isIndexer,
            viewLength: base.view.core.length,
            viewSignedLength: base.view.core.signedLength,
            systemLength: base.system.core.length,
            systemSignedLength: base.system.core.signedLength,
            indexedLength: base.indexedLength,
            indexers: base.system.indexers.map((w) => ({ key: hex(w.key), length: w.length })),
            heads: base.system.heads.map((h) => ({ key: hex(h.key), length: h.length })),
            members,
            writers
          }) + '\n'
        )
      })
      break
    }
    case 'sync': {
      const dir = argv.shift()
      if (!dir) usage()
      let bootstrap = null
      let seconds = 10
      while (argv.length) {
        const flag = argv.shift()
        if (flag === '--bootstrap') {
          bootstrap = (argv.shift() || '').split(',').map((a) => {
            const [host, port] = a.split(':')
            return { host, port: Number(port) }
          })
        } else if (flag === '--seconds') {
          seconds = Number(argv.shift())
          if (!(seconds >= 0)) usage('--seconds takes a number')
        } else usage(`unknown flag ${flag}`)
      }
      const Hyperswarm = require('hyperswarm')
      await withBase(
        dir,
        null,
        async (base, store) => {
          const swarm = new Hyperswarm(bootstrap ? { bootstrap } : {})
          // a fast-forwarded view's blocks are read on demand: download them while connected, so that `list`
          // (which runs offline) reads the whole view
          const downloadView = () => {
            const core = base.view.core
            if (core.contiguousLength < core.length) core.download({ start: 0, end: core.length })
          }
          base.on('fast-forward', (to, from) => {
            process.stdout.write(JSON.stringify({ fastForward: { to, from } }) + '\n')
            downloadView()
          })
          downloadView()
          swarm.on('connection', (conn) => {
            conn.on('error', () => {})
            base.replicate(conn)
          })
          swarm.join(base.discoveryKey)
          await swarm.flush()
          await new Promise((resolve) => {
            const t = setTimeout(resolve, seconds * 1000)
            const stop = () => {
              clearTimeout(t)
              resolve()
            }
            process.once('SIGINT', stop)
            process.once('SIGTERM', stop)
          })
          await base.update()
          if (base.isIndexer) await base.ack()
          await base.update()
          await swarm.destroy()
        },
        { ackInterval: 1000 }
      )
      break
    }
    default:
      usage(cmd ? `unknown command ${cmd}` : null)
  }
}

main().catch((err) => {
  process.stderr.write(`autobase-kv: ${err.message}\n`)
  process.exit(1)
})
