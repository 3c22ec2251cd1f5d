// A raw HyperDHT peer speaking hypertele's --compress framing with Node's zlib, to check a server's framing:
//   node js/hypertele_gzip_peer.js HOST:PORT[,...] SERVER_PUBLIC_KEY_HEX TEXT...
// Connects, sends each TEXT as one secret-stream message holding one gzip member (zlib.gzipSync), keeps its
// write side open until it has received back as many bytes as it sent (every message received must be one
// gzip stream; they are gunzipped and concatenated), then ends and prints {"received": "<text>",
// "messages": N} (or {"error": "..."}) and exits.
'use strict'
const zlib = require('zlib')
const DHT = require('hyperdht')
const freePort = require('./free-port')

const [list, key, ...texts] = process.argv.slice(2)
const expected = texts.join('').length

async function main () {
  const dht = new DHT({ bootstrap: list.split(','), host: '127.0.0.1', port: await freePort() })
  const stream = dht.connect(Buffer.from(key, 'hex'))
  let received = ''
  let messages = 0
  const done = async (out) => {
    console.log(JSON.stringify(out))
    await dht.destroy()
    process.exit(0)
  }
  stream.on('open', () => {
    for (const t of texts) stream.write(zlib.gzipSync(Buffer.from(t)))
  })
  stream.on('data', (d) => {
    messages++
    try {
      received += zlib.gunzipSync(d).toString()
    } catch (err) {
      done({ error: 'not gzip: ' + err.message })
      return
    }
    if (received.length >= expected) stream.end()
  })
  stream.on('end', () => done({ received, messages }))
  stream.on('error', (err) => done({ error: err.message }))
}

main().catch((err) => {
  console.log(JSON.stringify({ error: err.message }))
  process.exit(1)
})
