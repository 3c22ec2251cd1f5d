// Starts a local HyperDHT testnet on 127.0.0.1 and prints one JSON line: {"bootstrap":["127.0.0.1:PORT",...]}.
// Runs until stdin closes or SIGTERM/SIGINT, so a test that dies takes its testnet with it.
// usage: node js/testnet.js [SIZE=5] [--port PORT]
const createTestnet = require('hyperdht/testnet')

async function main () {
  const size = Number(process.argv[2] || 5)
  const i = process.argv.indexOf('--port')
  const port = i === -1 ? 0 : Number(process.argv[i + 1])
  const testnet = await createTestnet(size, { host: '127.0.0.1', port })
  const bootstrap = testnet.bootstrap.map((b) => b.host + ':' + b.port)
  process.stdout.write(JSON.stringify({ bootstrap }) + '\n')

  let closing = false
  const close = async () => {
    if (closing) return
    closing = true
    await testnet.destroy()
    process.exit(0)
  }
  process.stdin.on('end', close)
  process.stdin.on('close', close)
  process.stdin.resume()
  process.on('SIGTERM', close)
  process.on('SIGINT', close)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
