// Imports a folder into a new JS hyperdrive 13 the way `drives mirror FOLDER KEY` does (mirror-drive from a
// localdrive), and prints {"impl":"js","seconds","files","bytes"}.
//
// usage: node js/bench-hyperdrive-import.js SRC STORE_DIR
'use strict'
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const Localdrive = require('localdrive')
const MirrorDrive = require('mirror-drive')

async function main() {
  const [src, dir] = process.argv.slice(2)
  const store = new Corestore(dir)
  const drive = new Hyperdrive(store)
  await drive.ready()
  const start = process.hrtime.bigint()
  const mirror = new MirrorDrive(new Localdrive(src), drive)
  await mirror.done()
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  let files = 0
  let bytes = 0
  for await (const e of drive.list('/')) {
    files++
    bytes += e.value.blob ? e.value.blob.byteLength : 0
  }
  console.log(JSON.stringify({ impl: 'js', seconds, files, bytes }))
  await drive.close()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
