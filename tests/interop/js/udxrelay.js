#!/usr/bin/env node
// A blind UDX relay on udx-native: two streams relaying to each other (stream.relayTo), as blind-relay does.
//
//   node udxrelay.js --bind HOST:PORT --id-a N --peer-a HOST:PORT --remote-a M --id-b N --peer-b HOST:PORT --remote-b M
//
// Stream id-a is connected to (remote-a, peer-a) and stream id-b to (remote-b, peer-b); whatever reaches one is
// forwarded to the other's peer with the stream id rewritten. Prints "udxrelay: bound HOST:PORT" on stderr, then
// runs until stdin closes (or both relay streams close), and exits 0.
'use strict'

const UDX = require('udx-native')

function fail(msg) {
  process.stderr.write(`udxrelay.js: ${msg}\n`)
  process.exit(2)
}

const args = {}
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i += 2) {
  if (!argv[i].startsWith('--') || i + 1 >= argv.length) fail(`bad argument ${argv[i]}`)
  args[argv[i].slice(2)] = argv[i + 1]
}
for (const k of ['bind', 'id-a', 'peer-a', 'remote-a', 'id-b', 'peer-b', 'remote-b']) {
  if (!(k in args)) fail(`missing --${k}`)
}

function addr(s) {
  const i = s.lastIndexOf(':')
  if (i <= 0) fail(`bad address ${s}`)
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) }
}

const udx = new UDX()
const socket = udx.createSocket()
const bind = addr(args.bind)
socket.bind(bind.port, bind.host)
const bound = socket.address()
process.stderr.write(`udxrelay: bound ${bound.host}:${bound.port}\n`)

const a = udx.createStream(Number(args['id-a']))
const b = udx.createStream(Number(args['id-b']))
const peerA = addr(args['peer-a'])
const peerB = addr(args['peer-b'])
a.connect(socket, Number(args['remote-a']), peerA.port, peerA.host)
b.connect(socket, Number(args['remote-b']), peerB.port, peerB.host)
a.relayTo(b)
b.relayTo(a)
a.on('error', () => {})
b.on('error', () => {})

let open = 2
function done() {
  // Relay streams never end by themselves, so socket.close() would wait forever: just leave.
  process.exit(0)
}
a.on('close', () => { if (--open === 0) done() })
b.on('close', () => { if (--open === 0) done() })
process.stdin.on('end', done)
process.stdin.on('error', done)
process.stdin.resume()
