// A hyperdht testnet on a given address, for the NAT lab (tests/nat/run), which runs it inside its "public"
// network namespace:
//   node js/lab_testnet.js HOST [SIZE=5]
// SIZE persistent, unfirewalled nodes as hyperdht/testnet builds them (bound to 0.0.0.0, announcing HOST).
// Prints {"bootstrap": "HOST:PORT"} when ready; runs until stdin closes or SIGTERM/SIGINT.
'use strict'
const createTestnet = require('hyperdht/testnet')

async function main() {
  const host = process.argv[2]
  const size = Number(process.argv[3] || 5)
  const testnet = await createTestnet(size, { host })
  const b = testnet.bootstrap[0]
  process.stdout.write(JSON.stringify({ bootstrap: b.host + ':' + b.port }) + '\n')
  const stop = async () => {
    await testnet.destroy()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.resume()
  process.stdin.on('end', stop)
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
