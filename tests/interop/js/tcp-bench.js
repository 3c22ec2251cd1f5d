// TCP endpoints for benches/hypertele.sh.
//   node js/tcp-bench.js sink
//     Listens on 127.0.0.1 (prints the port), and for every connection counts the bytes until the client's
//     end, then answers "<count>\n" and ends.
//   node js/tcp-bench.js source PORT BYTES
//     Connects to 127.0.0.1:PORT, sends BYTES bytes (a pseudo-random 1 MiB block repeated), ends, waits for the
//     sink's answer and prints {"bytes": N, "received": N, "seconds": S, "mbps": MB/s (10^6 bytes per s)}.
'use strict'
const net = require('net')

const [mode, ...args] = process.argv.slice(2)

if (mode === 'sink') {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    let count = 0
    socket.on('data', (d) => { count += d.length })
    socket.on('end', () => socket.end(count + '\n'))
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1', () => console.log(server.address().port))
} else if (mode === 'source') {
  const port = Number(args[0])
  const total = Number(args[1])
  const block = Buffer.alloc(1024 * 1024)
  let x = 0x2545f491
  for (let i = 0; i < block.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    block[i] = x & 0xff
  }
  const started = process.hrtime.bigint()
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  let sent = 0
  let answer = ''
  const pump = () => {
    while (sent < total) {
      const n = Math.min(block.length, total - sent)
      sent += n
      if (!socket.write(n === block.length ? block : block.subarray(0, n))) return
    }
    socket.end()
  }
  socket.on('connect', pump)
  socket.on('drain', pump)
  socket.on('data', (d) => { answer += d })
  socket.on('end', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const received = Number(answer.trim() || 0)
    console.log(JSON.stringify({ bytes: total, received, seconds, mbps: received / seconds / 1e6 }))
    process.exit(received === total ? 0 : 1)
  })
  socket.on('error', (err) => {
    console.log(JSON.stringify({ error: err.message }))
    process.exit(1)
  })
} else {
  console.error('usage: node js/tcp-bench.js sink | source PORT BYTES')
  process.exit(2)
}
