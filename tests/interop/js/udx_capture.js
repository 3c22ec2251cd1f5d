// Opens one udx-native stream (local id 5) to a Rust UDX stream (id 9) at 127.0.0.1:<port>, sends an unordered
// message, writes "hello" and ends; prints what it receives ("data:<utf8>", "end", "message:<utf8>", "close")
// one per line. With a second argument "sack" it only reads and ends after the remote's END; with "sink" it also
// prints only the byte count and its MTU at the end; with "source:<n>" it writes n bytes and ends. Used by tests/interop/tests/it/udx_vectors.rs to capture real udx-native datagrams.
const UDX = require('udx-native')

const port = Number(process.argv[2])
const u = new UDX()
const socket = u.createSocket()
socket.bind(0, '127.0.0.1')
const stream = u.createStream(5)

const sink = process.argv[3] === 'sink'
let total = 0
stream.on('data', (d) => {
  if (sink) total += d.length
  else console.log('data:' + d.toString())
})
if (sink) stream.on('end', () => console.log('total:' + total + ' mtu:' + stream.mtu))
stream.on('end', () => console.log('end'))
stream.on('message', (m) => console.log('message:' + m.toString()))
stream.on('error', (e) => console.log('error:' + e.message))
stream.on('close', () => {
  console.log('close')
  socket.close()
})

stream.connect(socket, 9, port, '127.0.0.1')
stream.trySend(Buffer.from('msg'))
if (process.argv[3] && process.argv[3].startsWith('source:')) {
  // Writes that many bytes (0x5a) and ends.
  const n = Number(process.argv[3].slice(7))
  stream.write(Buffer.alloc(n, 0x5a))
  stream.end()
} else if (process.argv[3] === 'sack' || sink) {
  // Only receive (the Rust side sends hand-made out-of-order packets), then end.
  stream.on('end', () => stream.end())
} else {
  stream.write(Buffer.from('hello'))
  stream.end()
}

setTimeout(() => {
  console.log('timeout')
  process.exit(1)
}, 10000).unref()
