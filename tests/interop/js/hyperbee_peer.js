// A JS hyperbee 2.27 writer (on hypercore 11) replicating over @hyperswarm/secret-stream on a plain TCP
// connection, for a Rust reader that watches it.
//
//   node hyperbee_peer.js DIR     listens on 127.0.0.1, prints {"port","key"} (key hex)
//
// Stdin commands, one JSON object per line, each answered by one JSON line:
//   {"cmd":"put","key":K,"value":V}  {"version"}   (keys and values as UTF-8 strings)
//   {"cmd":"del","key":K}            {"version"}
// Closing stdin exits.
'use strict'
const net = require('net')
const readline = require('readline')
const Hypercore = require('hypercore')
const Hyperbee = require('hyperbee')
const SecretStream = require('@hyperswarm/secret-stream')

const [dir] = process.argv.slice(2)

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

async function main() {
  const core = new Hypercore(dir)
  const bee = new Hyperbee(core, { keyEncoding: 'utf-8', valueEncoding: 'utf-8' })
  await bee.ready()
  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    const stream = new SecretStream(false, socket)
    stream.on('error', () => {})
    core.replicate(stream)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  out({ port: server.address().port, key: core.key.toString('hex') })
  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    if (!line.trim()) continue
    const c = JSON.parse(line)
    try {
      if (c.cmd === 'put') await bee.put(c.key, c.value)
      else if (c.cmd === 'del') await bee.del(c.key)
      else throw new Error('unknown command')
      out({ version: bee.version })
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
