// JS hyperdrive 13 + corestore 7 + hyperswarm peer for the `drives` interop tests and bench.
//
//   node drives_peer.js BOOTSTRAP seed STORE FOLDER     imports FOLDER (localdrive -> hyperdrive with
//                                                       mirror-drive), joins the drive's discovery key,
//                                                       prints {"key","importMs","importCpuMs"} once announced; seeds until
//                                                       stdin closes.
//   node drives_peer.js BOOTSTRAP mirror KEY STORE FOLDER   joins KEY as a client, mirrors the drive into
//                                                       FOLDER, prints {"files","ms"} and exits.
//   node drives_peer.js - import STORE FOLDER           imports FOLDER into a new drive, prints
//                                                       {"key","ms","cpuMs"} (no network; the bench's JS import).
// BOOTSTRAP is HOST:PORT[,HOST:PORT...]. The DHT binds 127.0.0.1 (HYPERDHT_HOST: another address);
// HYPERDHT_RELAY (hex public key): hyperswarm's relayThrough.
const Hyperswarm = require('hyperswarm')
const DHT = require('hyperdht')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const Localdrive = require('localdrive')
const z32 = require('z32')
const id = require('hypercore-id-encoding')

const [list, mode, a, b, c] = process.argv.slice(2)

async function importFolder(store, folder) {
  const drive = new Hyperdrive(store)
  await drive.ready()
  const start = Date.now()
  const cpu = process.cpuUsage()
  const m = new Localdrive(folder).mirror(drive)
  await m.done()
  const used = process.cpuUsage(cpu)
  return { drive, ms: Date.now() - start, cpuMs: Math.round((used.user + used.system) / 1000) }
}

async function main() {
  if (mode === 'import') {
    const store = new Corestore(a)
    const { drive, ms, cpuMs } = await importFolder(store, b)
    process.stdout.write(JSON.stringify({ key: z32.encode(drive.key), ms, cpuMs }) + '\n')
    await drive.close()
    await store.close()
    return
  }
  const bootstrap = list.split(',')
  const dht = new DHT({ bootstrap, ephemeral: true, host: process.env.HYPERDHT_HOST || '127.0.0.1' })
  // HYPERDHT_RELAY (hex): hyperswarm's relayThrough (the relay is used when our NAT randomizes ports or
  // after a holepunch failed).
  const relay = process.env.HYPERDHT_RELAY ? Buffer.from(process.env.HYPERDHT_RELAY, 'hex') : null
  const swarm = new Hyperswarm({ dht, relayThrough: relay })
  if (mode === 'seed') {
    const store = new Corestore(a)
    const { drive, ms, cpuMs } = await importFolder(store, b)
    swarm.on('connection', (conn) => {
      conn.on('error', () => {})
      store.replicate(conn)
    })
    await swarm.join(drive.discoveryKey).flushed()
    process.stdout.write(JSON.stringify({ key: z32.encode(drive.key), importMs: ms, importCpuMs: cpuMs }) + '\n')
    process.stdin.resume()
    process.stdin.on('end', async () => {
      await swarm.destroy()
      process.exit(0)
    })
    return
  }
  if (mode === 'mirror') {
    const store = new Corestore(b)
    const drive = new Hyperdrive(store, id.decode(a))
    await drive.ready()
    swarm.on('connection', (conn) => {
      conn.on('error', () => {})
      store.replicate(conn)
    })
    const start = Date.now()
    swarm.join(drive.discoveryKey, { server: false, client: true })
    const done = store.findingPeers()
    swarm.flush().then(done, done)
    await drive.update({ wait: true })
    const m = drive.mirror(new Localdrive(c))
    await m.done()
    process.stdout.write(JSON.stringify({ files: m.count.files, ms: Date.now() - start }) + '\n')
    await swarm.destroy()
    process.exit(0)
  }
  throw new Error('unknown mode ' + mode)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
