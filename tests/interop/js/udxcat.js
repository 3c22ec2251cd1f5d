#!/usr/bin/env node
// udxcat on udx-native: pipes stdin into a UDX stream and the stream into stdout.
//
//   node udxcat.js --bind HOST:PORT --connect HOST:PORT --id N --remote-id M
//
// Prints "udxcat: bound HOST:PORT" on stderr once bound (so --bind HOST:0 can be used by tests), exits 0
// once both directions have ended (stdin at EOF, the remote's END received, and our END acknowledged),
// and exits 1 with a message on any error.
'use strict'

const UDX = require('udx-native')

function usage(msg) {
  if (msg) process.stderr.write(`udxcat.js: ${msg}\n`)
  process.stderr.write('usage: udxcat.js --bind HOST:PORT --connect HOST:PORT --id N --remote-id M\n')
  process.exit(2)
}

function parseAddr(s, name) {
  const i = s ? s.lastIndexOf(':') : -1
  if (i <= 0) usage(`${name} must be HOST:PORT`)
  const host = s.slice(0, i).replace(/^\[|\]$/g, '')
  const port = Number(s.slice(i + 1))
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`bad port in ${name}`)
  return { host, port }
}

function parseId(s, name) {
  const n = Number(s)
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) usage(`${name} must be a u32`)
  return n
}

const args = {}
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i]
  if (!k.startsWith('--') || i + 1 >= argv.length) usage(`bad argument ${k}`)
  args[k.slice(2)] = argv[i + 1]
}
for (const k of ['bind', 'connect', 'id', 'remote-id']) if (!(k in args)) usage(`missing --${k}`)

const bind = parseAddr(args.bind, '--bind')
const connect = parseAddr(args.connect, '--connect')
const id = parseId(args.id, '--id')
const remoteId = parseId(args['remote-id'], '--remote-id')

function fail(err) {
  process.stderr.write(`udxcat.js: ${err && err.message ? err.message : err}\n`)
  process.exit(1)
}

const udx = new UDX()
const socket = udx.createSocket()
try {
  socket.bind(bind.port, bind.host)
} catch (err) {
  fail(err)
}
const addr = socket.address()
process.stderr.write(`udxcat: bound ${addr.host}:${addr.port}\n`)

const stream = udx.createStream(id)
stream.on('error', fail)
stream.connect(socket, remoteId, connect.port, connect.host)

// A libudx peer forgets a stream as soon as it has everything, so if its last ACK is lost our END is never
// acknowledged and the stream would only fail with ETIMEDOUT a minute later. Once all our data is acknowledged
// (flush) and the remote's END arrived, give our END a short grace period and then leave successfully.
const END_ACK_GRACE_MS = 4000
let dataAcked = false
let remoteEnded = false
function maybeGrace() {
  if (!dataAcked || !remoteEnded) return
  setTimeout(() => {
    process.stderr.write('udxcat.js: our END was not acknowledged (the remote had closed); all data was acknowledged\n')
    process.exit(0)
  }, END_ACK_GRACE_MS).unref()
}
stream.on('end', () => {
  remoteEnded = true
  maybeGrace()
})

process.stdin.on('error', fail)
process.stdout.on('error', fail)
process.stdin.pipe(stream, { end: false })
process.stdin.on('end', () => {
  stream.flush().then(() => {
    dataAcked = true
    stream.end()
    maybeGrace()
  }, fail)
})
stream.pipe(process.stdout)

stream.on('close', () => {
  // 'close' comes after both sides ended and our writes were acked; let stdout drain, then leave.
  socket.close().then(
    () => {
      if (process.stdout.writableLength === 0) process.exit(0)
      process.stdout.once('drain', () => process.exit(0))
    },
    fail
  )
})
