// The JS drives 2.9.1 CLI (node_modules/drives/bin.js, with its own bundled hyperswarm and hyperdht), unmodified,
// kept off the public network: its commands that open a hyperdrive (ls, get, entry, put, info, mirror, seed,
// download, serve) join a swarm on the public bootstrap nodes, and only `mirror` takes a bootstrap option
// (`--bootstrap PORT`). This swaps the `hyperdht` class its hyperswarm requires for one bound to 127.0.0.1 on a
// free port, whose bootstrap list is the command's own when it gave one, else DRIVES_JS_BOOTSTRAP
// (HOST:PORT[,HOST:PORT...]), else none (a DHT of its own that finds no peer, as on a machine with no
// internet). Everything else (flags, output, exit codes, stores) is the CLI's own code.
//   node js/drives-cli.js ARGS...
'use strict'
const path = require('path')
const freePort = require('./free-port')

const dir = path.dirname(require.resolve('drives/package.json'))
const swarmDir = path.dirname(require.resolve('hyperswarm/package.json', { paths: [dir] }))
const dhtPath = require.resolve('hyperdht', { paths: [swarmDir] })
const HyperDHT = require(dhtPath)
const list = process.env.DRIVES_JS_BOOTSTRAP
const fallback = list ? list.split(',') : []

freePort().then((port) => {
  class LoopbackDHT extends HyperDHT {
    constructor (opts = {}) {
      super({ ...opts, bootstrap: opts.bootstrap || fallback, host: '127.0.0.1', port })
    }
  }
  require.cache[dhtPath].exports = LoopbackDHT

  const bin = path.join(dir, 'bin.js')
  process.argv = [process.argv[0], bin, ...process.argv.slice(2)]
  require(bin)
})
