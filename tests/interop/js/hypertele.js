// The hypertele 1.1.4 bins (node_modules/hypertele/server.js and client.js), unmodified, on a given DHT network:
//   node js/hypertele.js server|client HOST:PORT[,HOST:PORT...] [ARGS...]
// The bins only take `--bootstrap PORT` (127.0.0.1) and bind their DHT to every interface; this swaps the
// `hyperdht` class they require for one that uses the given bootstrap list and binds to 127.0.0.1, so the
// tests stay on loopback, on a free port (hyperdht would otherwise take 49737, the default other local
// testnets want). Everything else (flags, output, exit codes, piping) is the bin's own code. HYPERDHT_HOST
// (default 127.0.0.1) is the address the DHT binds (0.0.0.0 in the network-namespace labs).
'use strict'
const path = require('path')
const freePort = require('./free-port')

const [role, list, ...rest] = process.argv.slice(2)
const bins = { server: 'server.js', client: 'client.js' }
if (!bins[role] || !list) {
  console.error('usage: node js/hypertele.js server|client HOST:PORT[,HOST:PORT...] [ARGS...]')
  process.exit(2)
}

const dir = path.dirname(require.resolve('hypertele/package.json'))
const dhtPath = require.resolve('hyperdht', { paths: [dir] })
const HyperDHT = require(dhtPath)
const bootstrap = list.split(',')

freePort().then((port) => {
  class LoopbackDHT extends HyperDHT {
    constructor (opts = {}) {
      super({ ...opts, bootstrap, host: process.env.HYPERDHT_HOST || '127.0.0.1', port })
    }
  }
  require.cache[dhtPath].exports = LoopbackDHT

  const bin = path.join(dir, bins[role])
  process.argv = [process.argv[0], bin, ...rest]
  require(bin)
})
