// A JS hyperdht peer for the Rust <-> JS connection tests. Prints JSON lines.
// usage:
//   node js/hyperdht_peer.js server <bootstrap host:port> <seed hex> <bytes> [reject-pk-hex]
//       listens on keyPair(seed): prints {"listening": pkHex}; for each connection sends <bytes> pattern bytes,
//       ends, checks what it receives against the pattern and prints {"received": n, "ok": bool, "remote": hex};
//       a peer its firewall rejects is printed as {"rejected": hex}. Runs until stdin closes.
//   node js/hyperdht_peer.js client <bootstrap> <server pk hex> <seed hex> <bytes>
//       connects, same exchange, prints {"received": n, "ok": bool, "remote": hex} or {"error": code}, exits.
//   node js/hyperdht_peer.js put <bootstrap>   -> {"hash": hex, "mutablePk": hex}
//       (immutablePut "hello from js", mutablePut(keyPair(0x01 * 32), "mutable from js", seq 3))
//   node js/hyperdht_peer.js get <bootstrap> <hash hex> <mutable pk hex> -> {"immutable": text|null,
//       "mutable": text|null, "seq": n}
// HYPERDHT_HOST (default 127.0.0.1) is the address the DHT binds; 0.0.0.0 makes a JS peer that cannot take the
// LAN shortcut on loopback (it advertises the machine's interface addresses), so connections holepunch.
// The pattern byte i is (i * 7 + (i >> 10)) & 0xff.
'use strict'
const DHT = require('hyperdht')
const b4a = require('b4a')

function pattern(start, len) {
  const b = b4a.alloc(len)
  for (let k = 0; k < len; k++) {
    const i = start + k
    b[k] = (i * 7 + Math.floor(i / 1024)) & 0xff
  }
  return b
}

function exchange(sock, total) {
  return new Promise((resolve) => {
    let received = 0
    let ok = true
    sock.on('data', (d) => {
      if (ok && !b4a.equals(d, pattern(received, d.length))) ok = false
      received += d.length
    })
    let ended = false
    sock.on('end', () => {
      ended = true
    })
    // Resolve once both directions are done (our writes flushed and acknowledged, theirs ended).
    sock.on('close', () => {
      if (ended) resolve({ received, ok, remote: b4a.toString(sock.remotePublicKey, 'hex') })
      else resolve({ error: 'closed before end', received })
    })
    sock.on('error', (err) => resolve({ error: err.code || String(err) }))
    let sent = 0
    const CHUNK = 65536
    function write() {
      while (sent < total) {
        const n = Math.min(CHUNK, total - sent)
        const more = sock.write(pattern(sent, n))
        sent += n
        if (!more) return sock.once('drain', write)
      }
      sock.end()
    }
    write()
  })
}

function out(o) {
  process.stdout.write(JSON.stringify(o) + '\n')
}

async function main() {
  const [cmd, bs] = process.argv.slice(2, 4)
  const [host, port] = bs.split(':')
  const dht = new DHT({
    bootstrap: [{ host, port: Number(port) }],
    host: process.env.HYPERDHT_HOST || '127.0.0.1'
  })
  await dht.fullyBootstrapped()

  if (cmd === 'server') {
    const seed = b4a.from(process.argv[4], 'hex')
    const total = Number(process.argv[5])
    const reject = process.argv[6] || null
    const server = dht.createServer({
      firewall(remotePublicKey) {
        const hex = b4a.toString(remotePublicKey, 'hex')
        if (reject && hex === reject) {
          out({ rejected: hex })
          return true
        }
        return false
      }
    })
    server.on('connection', async (sock) => {
      // open: whether the server told this client it is reachable (then the client connects directly).
      const open = dht.remoteAddress() !== null
      out({ ...(await exchange(sock, total)), open })
    })
    const kp = DHT.keyPair(seed)
    await server.listen(kp)
    out({ listening: b4a.toString(kp.publicKey, 'hex') })
    process.stdin.resume()
    process.stdin.on('end', async () => {
      await server.close()
      await dht.destroy()
      process.exit(0)
    })
  } else if (cmd === 'client') {
    const pk = b4a.from(process.argv[4], 'hex')
    const kp = DHT.keyPair(b4a.from(process.argv[5], 'hex'))
    const total = Number(process.argv[6])
    const sock = dht.connect(pk, { keyPair: kp })
    out(await exchange(sock, total))
    await dht.destroy()
    process.exit(0)
  } else if (cmd === 'put') {
    const { hash } = await dht.immutablePut(b4a.from('hello from js'))
    const mk = DHT.keyPair(b4a.alloc(32, 1))
    await dht.mutablePut(mk, b4a.from('mutable from js'), { seq: 3 })
    out({ hash: b4a.toString(hash, 'hex'), mutablePk: b4a.toString(mk.publicKey, 'hex') })
    await dht.destroy()
    process.exit(0)
  } else if (cmd === 'get') {
    const imm = await dht.immutableGet(b4a.from(process.argv[4], 'hex'))
    const mut = await dht.mutableGet(b4a.from(process.argv[5], 'hex'))
    out({
      immutable: imm ? b4a.toString(imm.value) : null,
      mutable: mut ? b4a.toString(mut.value) : null,
      seq: mut ? mut.seq : -1
    })
    await dht.destroy()
    process.exit(0)
  }
}

main().catch((err) => {
  out({ error: err.code || String(err) })
  process.exit(1)
})
