// A JS hyperdrive 13 peer (corestore 7) replicating over @hyperswarm/secret-stream on a plain TCP connection.
//
//   node hyperdrive_peer.js writer DIR (listen | connect PORT)     builds the fixture drive, then serves it
//   node hyperdrive_peer.js reader DIR KEYHEX (listen | connect PORT)
//   node hyperdrive_peer.js vectors DIR                             fixture (small) with primary key 0..31; prints
//                                                                   {key, contentKey, db: [hex], blobs: [hash]}
//
// Output is JSON lines: {"port"} when listening; a writer then prints {"key","contentKey","version"}, a reader
// {"ready":true} once connected. Stdin commands, one JSON object per line, each answered by one JSON line:
//   {"cmd":"dump"[,"version":V]}  {"entries":[{key,seq,executable,linkname,blob,metadata,size,hash}],"version"}
//                                  (hash = hex BLAKE2b-256 of the content, null without blob; reads everything)
//   {"cmd":"get","path":P}          {"hash","size"} of one file (sparse read)
//   {"cmd":"range","path":P,"start":S,"length":L} or with "end":E  {"hex": the bytes}
//   {"cmd":"put","path":P,"text":T} writer: {"version"}
//   {"cmd":"del","path":P}          writer: {"version"}
//   {"cmd":"update"}                {"version"}
//   {"cmd":"wait","version":V}      waits until the drive has version >= V: {"version"}
//   {"cmd":"readdir","path":P}      {"names"}
//   {"cmd":"stats"}                 {"dbLength","blobsLength","blobsStored"}
//   {"cmd":"tryget","path":P,"timeout":MS}  like get, but {"error"} when the content cannot be had in time
//   {"cmd":"remoteHas","path":P}    how many of the file's blob blocks the (first) peer advertises: {"has","blocks"}
//   {"cmd":"clear","path":P}        drive.clear(P, { diff: true }): {"cleared"}
//   {"cmd":"dedup","path":P,"size":N,"insertAt":K,"insertLen":L}  writer: pattern(N) (with L bytes of
//                                  pattern(L) ^ 0x5a inserted at K, a multiple of 65536) through
//                                  createWriteStream(P, { dedup: true }) in 65536-byte pieces (the inserted
//                                  bytes one piece): a block-map blob re-using P's previous blocks;
//                                  {"version","blob","blobsLength"}
// Closing stdin exits.
'use strict'
const net = require('net')
const readline = require('readline')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const SecretStream = require('@hyperswarm/secret-stream')
const sodium = require('sodium-native')
const b4a = require('b4a')

const [mode, dir, ...rest] = process.argv.slice(2)

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function hash(buf) {
  const h = b4a.alloc(32)
  sodium.crypto_generichash(h, buf)
  return b4a.toString(h, 'hex')
}

// Deterministic incompressible-looking bytes: byte i = (i * 2654435761 mod 2^32) >> 24.
function pattern(n) {
  const buf = b4a.alloc(n)
  for (let i = 0; i < n; i++) buf[i] = Math.imul(i, 2654435761) >>> 24
  return buf
}

// The small fixture: only put/symlink/del (the Rust side replays it for byte-identical blocks).
async function smallFixture(drive) {
  await drive.put('/README.md', b4a.from('hello drive\n'))
  await drive.put('docs/guide/intro.txt', b4a.from('intro\n'.repeat(100)))
  await drive.put('/ünïcödé/日本語 ファイル.txt', b4a.from('unicode ✓\n'))
  await drive.put('/empty', b4a.alloc(0))
  await drive.put('/bin/run.sh', b4a.from('#!/bin/sh\necho hi\n'), { executable: true })
  await drive.symlink('/link', '/README.md')
  await drive.put('/meta.json', b4a.from('{}'), { metadata: { mtime: 1700000000000, tags: ['a', 'b'], n: null } })
  await drive.put('/tmp.txt', b4a.from('temporary'))
  const before = drive.version
  await drive.del('/tmp.txt')
  await drive.put('/big.bin', pattern(200000))
  return before
}

async function fullFixture(drive) {
  const before = await smallFixture(drive)
  await drive.put('/multi/mb.bin', pattern(3 * 1024 * 1024 + 12345))
  // A write stream appends the chunks it is given as blocks: 50000-byte blocks here.
  const ws = drive.createWriteStream('/streamed.bin')
  const data = pattern(300000)
  for (let i = 0; i < data.length; i += 50000) ws.write(data.subarray(i, i + 50000))
  ws.end()
  await new Promise((resolve, reject) => {
    ws.on('close', resolve)
    ws.on('error', reject)
  })
  return before
}

async function dump(drive) {
  const entries = []
  for await (const e of drive.list('/')) {
    const v = e.value
    let content = null
    if (v.blob) content = await drive.get(e.key)
    entries.push({
      key: e.key,
      seq: e.seq,
      executable: v.executable,
      linkname: v.linkname,
      blob: v.blob,
      metadata: v.metadata,
      size: content ? content.length : null,
      hash: content ? hash(content) : null
    })
  }
  return { entries, version: drive.version }
}

async function main() {
  if (mode === 'vectors') {
    const primaryKey = b4a.alloc(32)
    for (let i = 0; i < 32; i++) primaryKey[i] = i
    const store = new Corestore(dir, { primaryKey, unsafe: true })
    const drive = new Hyperdrive(store)
    await drive.ready()
    await smallFixture(drive)
    const db = []
    for (let i = 0; i < drive.core.length; i++) db.push(b4a.toString(await drive.core.get(i), 'hex'))
    const blobs = []
    for (let i = 0; i < drive.blobs.core.length; i++) {
      blobs.push(hash(await drive.blobs.core.get(i)))
    }
    out({
      key: b4a.toString(drive.key, 'hex'),
      contentKey: b4a.toString(drive.contentKey, 'hex'),
      discoveryKey: b4a.toString(drive.discoveryKey, 'hex'),
      db,
      blobs
    })
    await drive.close()
    process.exit(0)
  }

  const store = new Corestore(dir)
  let drive
  let how
  let port
  let beforeDel = null
  if (mode === 'writer') {
    ;[how, port] = rest
    drive = new Hyperdrive(store)
    await drive.ready()
    beforeDel = await fullFixture(drive)
  } else {
    let key
    ;[key, how, port] = rest
    drive = new Hyperdrive(store, b4a.from(key, 'hex'))
    await drive.ready()
  }

  const onsocket = (socket, isInitiator) => {
    socket.setNoDelay(true)
    const stream = new SecretStream(isInitiator, socket)
    stream.on('error', () => {})
    store.replicate(stream)
  }

  if (how === 'listen') {
    const server = net.createServer((socket) => onsocket(socket, false))
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    out({ port: server.address().port })
  } else {
    const socket = net.connect(Number(port), '127.0.0.1')
    socket.on('error', () => {})
    onsocket(socket, true)
  }

  if (mode === 'writer') {
    out({
      key: b4a.toString(drive.key, 'hex'),
      contentKey: b4a.toString(drive.contentKey, 'hex'),
      version: drive.version,
      beforeDel
    })
  } else {
    // Ready once the writer is connected and its head known.
    if (drive.core.peers.length === 0) await new Promise((resolve) => drive.core.once('peer-add', resolve))
    await drive.update({ wait: true })
    out({ ready: true })
  }

  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    if (!line.trim()) continue
    const c = JSON.parse(line)
    try {
      if (c.cmd === 'dump') {
        if (mode === 'reader') await drive.update({ wait: true })
        const d = c.version ? drive.checkout(c.version) : drive
        out(await dump(d))
      } else if (c.cmd === 'get') {
        const content = await drive.get(c.path)
        out({ hash: content ? hash(content) : null, size: content ? content.length : null })
      } else if (c.cmd === 'range') {
        const opts = { start: c.start }
        if (c.length !== undefined) opts.length = c.length
        if (c.end !== undefined) opts.end = c.end
        const parts = []
        for await (const chunk of drive.createReadStream(c.path, opts)) parts.push(chunk)
        out({ hex: b4a.toString(b4a.concat(parts), 'hex') })
      } else if (c.cmd === 'put') {
        await drive.put(c.path, b4a.from(c.text))
        out({ version: drive.version })
      } else if (c.cmd === 'del') {
        await drive.del(c.path)
        out({ version: drive.version })
      } else if (c.cmd === 'update') {
        await drive.update({ wait: true })
        out({ version: drive.version })
      } else if (c.cmd === 'wait') {
        while (drive.version < c.version) {
          await drive.update({ wait: true })
          if (drive.version >= c.version) break
          await new Promise((resolve) => drive.core.once('append', resolve))
        }
        out({ version: drive.version })
      } else if (c.cmd === 'readdir') {
        const names = []
        for await (const n of drive.readdir(c.path)) names.push(n)
        out({ names })
      } else if (c.cmd === 'tryget') {
        const content = await drive.get(c.path, { timeout: c.timeout })
        out({ hash: content ? hash(content) : null, size: content ? content.length : null })
      } else if (c.cmd === 'remoteHas') {
        const blobs = await drive.getBlobs()
        const entry = await drive.entry(c.path)
        const { blockOffset, blockLength } = entry.value.blob
        const peer = blobs.core.peers[0]
        let has = 0
        for (let i = blockOffset; i < blockOffset + blockLength; i++) {
          if (peer && (i < peer._remoteContiguousLength || peer.remoteBitfield.get(i))) has++
        }
        out({ has, blocks: blockLength })
      } else if (c.cmd === 'clear') {
        out({ cleared: await drive.clear(c.path, { diff: true }) })
      } else if (c.cmd === 'dedup') {
        const data = pattern(c.size)
        const pieces = []
        for (let i = 0; i < data.length; i += 65536) {
          if (c.insertLen && i === c.insertAt) pieces.push(b4a.from(pattern(c.insertLen).map((x) => x ^ 0x5a)))
          pieces.push(data.subarray(i, i + 65536))
        }
        const ws = drive.createWriteStream(c.path, { dedup: true })
        for (const p of pieces) ws.write(p)
        ws.end()
        await new Promise((resolve, reject) => {
          ws.on('close', resolve)
          ws.on('error', reject)
        })
        const entry = await drive.entry(c.path)
        out({ version: drive.version, blob: entry.value.blob, blobsLength: drive.blobs.core.length })
      } else if (c.cmd === 'stats') {
        const blobs = await drive.getBlobs()
        let stored = 0
        for (let i = 0; i < blobs.core.length; i++) if (await blobs.core.has(i)) stored++
        out({ dbLength: drive.core.length, blobsLength: blobs.core.length, blobsStored: stored })
      } else {
        out({ error: 'unknown command' })
      }
    } catch (err) {
      out({ error: String(err && err.message) })
    }
  }
  process.exit(0)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
