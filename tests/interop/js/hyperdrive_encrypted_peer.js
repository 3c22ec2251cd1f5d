// A JS hyperdrive 13 peer (corestore 7) with an encryption key (`encryptionKey`), replicating over
// @hyperswarm/secret-stream on a plain TCP connection.
//
//   node hyperdrive_encrypted_peer.js writer DIR ENCKEYHEX (listen | connect PORT)
//       writes /secret.txt (TEXT repeated to 200000 bytes) and /hello.txt ("hello encrypted"), then serves;
//       prints {"key","contentKey","version","dbLength","blobsLength"} (hex keys)
//   node hyperdrive_encrypted_peer.js reader DIR KEYHEX (ENCKEYHEX | none) (listen | connect PORT)
//       prints {"ready":true} once a peer is connected and the drive updated
//
// {"port"} first when listening. Stdin commands, one JSON object per line, each answered by one JSON line:
//   {"cmd":"dump"}                    {"entries":[{key,size,hash}],"version"} or {"error"} (e.g. without the key)
//   {"cmd":"put","path":P,"text":T}   writer: {"version"}
//   {"cmd":"wait","version":V}        waits until the drive has version >= V: {"version"}
// Closing stdin exits.
'use strict'
const net = require('net')
const readline = require('readline')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const SecretStream = require('@hyperswarm/secret-stream')
const sodium = require('sodium-native')
const b4a = require('b4a')

const TEXT = 'PLAINTEXT-MARKER-js-5c1d '
const [mode, dir, ...rest] = process.argv.slice(2)

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function hash(buf) {
  const h = b4a.alloc(32)
  sodium.crypto_generichash(h, buf)
  return b4a.toString(h, 'hex')
}

async function dump(drive) {
  const entries = []
  for await (const e of drive.list('/')) {
    const content = e.value.blob ? await drive.get(e.key) : null
    entries.push({ key: e.key, size: content ? content.length : null, hash: content ? hash(content) : null })
  }
  return { entries, version: drive.version }
}

async function main() {
  const store = new Corestore(dir)
  let drive
  let how
  let port
  if (mode === 'writer') {
    let enc
    ;[enc, how, port] = rest
    drive = new Hyperdrive(store, { encryptionKey: b4a.from(enc, 'hex') })
    await drive.ready()
    await drive.put('/secret.txt', b4a.from(TEXT.repeat(Math.ceil(200000 / TEXT.length)).slice(0, 200000)))
    await drive.put('/hello.txt', b4a.from('hello encrypted'))
  } else {
    let key, enc
    ;[key, enc, how, port] = rest
    const opts = enc === 'none' ? {} : { encryptionKey: b4a.from(enc, 'hex') }
    drive = new Hyperdrive(store, b4a.from(key, 'hex'), opts)
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
    const blobs = await drive.getBlobs()
    out({
      key: b4a.toString(drive.key, 'hex'),
      contentKey: b4a.toString(drive.contentKey, 'hex'),
      version: drive.version,
      dbLength: drive.core.length,
      blobsLength: blobs.core.length
    })
  } else {
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
        out(await dump(drive))
      } else if (c.cmd === 'put') {
        await drive.put(c.path, b4a.from(c.text))
        out({ version: drive.version })
      } else if (c.cmd === 'wait') {
        while (drive.version < c.version) {
          await drive.update({ wait: true })
          if (drive.version < c.version) await new Promise((resolve) => drive.core.once('append', resolve))
        }
        out({ version: drive.version })
      } else {
        out({ error: 'unknown command ' + c.cmd })
      }
    } catch (err) {
      out({ error: String((err && err.message) || err) })
    }
  }
  await drive.close()
  process.exit(0)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
