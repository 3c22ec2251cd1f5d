// A UDP port on 127.0.0.1 that was free a moment ago (bound to 0, read back, closed), for the scripts that
// must give hyperdht/dht-rpc a port up front.
'use strict'
const dgram = require('dgram')

module.exports = function freePort () {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4')
    s.on('error', reject)
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}
