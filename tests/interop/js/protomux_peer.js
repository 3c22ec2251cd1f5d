// A protomux 3.12.1 peer over @hyperswarm/secret-stream on TCP 127.0.0.1, for tests/interop/tests/it/protomux_interop.rs.
//
// usage: node js/protomux_peer.js <listen|connect> <port|0>
// Prints `port <n>` when listening, then one line per event:
//   opened <protocol> <remote handshake hex> | message <protocol> <type> <hex> | closed <protocol> <isRemote>
//   | rejected <protocol> | end
// Behaviour:
//   - pairs `echo` (any id): echoes type 0 messages on type 0; on a type 1 message m, sends m+[0], m+[1], m+[2]
//     on type 0 in one corked batch. Its handshake is `js-hs`.
//   - opens `both` (id "b", handshake `both-js`) at once and sends `from-js` on it when it is open.
//   - opens `nobody` (expects the peer to reject it).
//   - opens `js-to-rust` (id "r") and sends `hello-rust` on it when it is open.
//   - pairs `bulk`: counts the bytes of type 0 messages, answers a type 1 message with the count (c.uint).
const net = require('net')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const Protomux = require('protomux')
const c = require('compact-encoding')
const b4a = require('b4a')

const [mode, portArg] = process.argv.slice(2)
const hex = (b) => b4a.toString(b, 'hex')
const say = (line) => process.stdout.write(line + '\n')

function run (socket, isInitiator) {
  const s = new NoiseSecretStream(isInitiator, socket)
  s.on('error', (err) => say(`error ${err.message}`))
  const mux = new Protomux(s)
  // after protomux's own close handler, which closes the channels
  s.on('close', () => {
    say('end')
    process.exit(0)
  })

  mux.pair({ protocol: 'echo' }, (id) => {
    const ch = mux.createChannel({
      protocol: 'echo',
      id,
      handshake: c.raw,
      messages: [
        { encoding: c.raw, onmessage (m) { say(`message echo 0 ${hex(m)}`); ch.messages[0].send(m) } },
        {
          encoding: c.raw,
          onmessage (m) {
            say(`message echo 1 ${hex(m)}`)
            ch.cork()
            for (let i = 0; i < 3; i++) ch.messages[0].send(b4a.concat([m, b4a.from([i])]))
            ch.uncork()
          }
        }
      ],
      onopen (hs) { say(`opened echo ${hex(hs)}`) },
      onclose (remote) { say(`closed echo ${remote}`) }
    })
    if (ch) ch.open(b4a.from('js-hs'))
  })

  // bulk: counts type 0 bytes; a type 1 message is answered with the count (uint) on type 1
  mux.pair({ protocol: 'bulk' }, () => {
    let received = 0
    const ch = mux.createChannel({
      protocol: 'bulk',
      messages: [
        { encoding: c.raw, onmessage (m) { received += m.byteLength } },
        { encoding: c.raw, onmessage () { ch.messages[1].send(c.encode(c.uint, received)) } }
      ]
    })
    if (ch) ch.open()
  })

  const both = mux.createChannel({
    protocol: 'both',
    id: b4a.from('b'),
    handshake: c.raw,
    messages: [{ encoding: c.raw, onmessage (m) { say(`message both 0 ${hex(m)}`) } }],
    onopen (hs) {
      say(`opened both ${hex(hs)}`)
      both.messages[0].send(b4a.from('from-js'))
    },
    onclose (remote) { say(`closed both ${remote}`) }
  })
  both.open(b4a.from('both-js'))

  const nobody = mux.createChannel({ protocol: 'nobody' })
  nobody.open()
  nobody.fullyOpened().then((ok) => say(ok ? 'opened nobody' : 'rejected nobody'))

  const toRust = mux.createChannel({
    protocol: 'js-to-rust',
    id: b4a.from('r'),
    messages: [{ encoding: c.raw }],
    onopen () {
      say('opened js-to-rust')
      toRust.messages[0].send(b4a.from('hello-rust'))
    },
    onclose (remote) { say(`closed js-to-rust ${remote}`) }
  })
  toRust.open()
}

if (mode === 'listen') {
  const server = net.createServer((socket) => {
    server.close()
    run(socket, false)
  })
  server.listen(0, '127.0.0.1', () => say(`port ${server.address().port}`))
} else {
  run(net.connect({ port: Number(portArg), host: '127.0.0.1' }), true)
}
setTimeout(() => { say('error timeout'); process.exit(1) }, 60000).unref()
