// Runs a JS hypershell 0.0.15 bin (tests/interop/hypershell) on a given testnet:
//   node js/hypershell_bin.js <client|server|copy|keygen> <bootstrap host:port> [bin args...]
// The bins only know the public network or `--testnet` (fixed port 40838); this wraps hyperdht so that
// every node they create uses the given bootstrap instead (bound to 127.0.0.1, or HYPERDHT_HOST). Run with HOME set to keep ~/.hypershell apart.
const path = require('path')
const Module = require('module')

const [bin, bootstrap, ...args] = process.argv.slice(2)
const root = path.join(__dirname, '..', 'hypershell', 'node_modules', 'hypershell')
const dhtPath = require.resolve('hyperdht', { paths: [root] })
const DHT = require(dhtPath)
const [host, port] = bootstrap.split(':')

class TestnetDHT extends DHT {
  constructor (opts = {}) {
    super({ ...opts, host: process.env.HYPERDHT_HOST || '127.0.0.1', bootstrap: [{ host, port: Number(port) }] })
  }
}
for (const k of Object.getOwnPropertyNames(DHT)) {
  if (!(k in TestnetDHT)) TestnetDHT[k] = DHT[k]
}
Module._cache[dhtPath].exports = TestnetDHT

const file = path.join(root, 'bin', bin + '.js')
process.argv = [process.argv[0], file, ...args]
require(file)
