// N dht-rpc nodes on 127.0.0.1 that bootstrap through the node given as argv[2] ("host:port").
// When bootstrapped they ping it, send it custom command 42 with value "from-js", run a findNode for
// argv[4] (hex target) and print one JSON line with the results. Exits when stdin closes.
'use strict'
const DHT = require('dht-rpc')
const b4a = require('b4a')

const bootstrap = [process.argv[2]]
const N = Number(process.argv[3] || 5)
const target = b4a.from(process.argv[4] || '00'.repeat(32), 'hex')

async function main() {
  const nodes = []
  for (let i = 0; i < N; i++) {
    const node = new DHT({ bootstrap, ephemeral: false, firewalled: false, host: '127.0.0.1' })
    await node.fullyBootstrapped()
    nodes.push(node)
  }
  for (const node of nodes) await node.findNode(node.table.id).finished()
  // One more node with the default options (firewalled, adaptive): it stays ephemeral.
  const adaptive = new DHT({ bootstrap, host: '127.0.0.1' })
  await adaptive.fullyBootstrapped()

  const [host, port] = bootstrap[0].split(':')
  const to = { host, port: Number(port) }
  const first = nodes[0]
  const pong = await first.ping(to)
  const echo = await first.request({ command: 42, value: b4a.from('from-js') }, to)
  // Tokens: the one the Rust node handed out is accepted, a made-up one is refused with INVALID_TOKEN.
  const withToken = await first.request({ token: echo.token, command: 42, value: b4a.from('t') }, to)
  const badToken = await first.request({ token: b4a.alloc(32, 7), command: 42, value: b4a.from('t') }, to)
  let unknown = null
  try {
    const r = await first.request({ command: 43, value: null }, to)
    unknown = r.error
  } catch (err) {
    unknown = String(err)
  }
  // A PING_NAT probe to the Rust node (as dht-rpc's firewall check sends them): the reply must come
  // to the server socket port given in the value, from the Rust node.
  const serverPort = adaptive.io.serverSocket.address().port
  const seenOnServer = []
  adaptive.io.serverSocket.on('message', (buf, rinfo) => seenOnServer.push(rinfo.port))
  const natValue = b4a.alloc(2)
  natValue.writeUInt16LE(serverPort)
  const natReply = await new Promise((resolve, reject) => {
    adaptive._request(to, false, true, 1 /* PING_NAT */, null, natValue, null, resolve, reject)
  })

  const q = nodes[N - 1].findNode(target)
  await q.finished()

  console.log(
    JSON.stringify({
      nodes: nodes.map((n) => '127.0.0.1:' + n.address().port),
      persistent: nodes.map((n) => n.id !== null),
      tableSizes: nodes.map((n) => n.table.size),
      pongFromId: pong.from.id ? b4a.toString(pong.from.id, 'hex') : null,
      echo: b4a.toString(echo.value || b4a.alloc(0)),
      echoHasToken: !!echo.token,
      unknown,
      withTokenEcho: b4a.toString(withToken.value || b4a.alloc(0)),
      withTokenError: withToken.error,
      badTokenError: badToken.error,
      adaptiveEphemeral: adaptive.ephemeral,
      natReplyToPort: natReply.to.port,
      natServerPort: serverPort,
      natViaServer: seenOnServer.includes(to.port),
      closest: q.closestReplies.map((r) => r.from.host + ':' + r.from.port)
    })
  )

  process.stdin.resume()
  process.stdin.on('end', async () => {
    await adaptive.destroy()
    for (const n of nodes) await n.destroy()
    process.exit(0)
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
