// Behaviour vectors for kademlia-routing-table and nat-sampler, as run by the JS packages.
// Run from tests/interop: node js/dht_table_vectors.js > ../../crates/dht/tests/it/vectors/dht_table.txt
//   add <i> <1|0>                    adding id(i) to the table succeeded or not (row full)
//   closest <t> <k> <i,i,...>        table.closest(id(t), k) as insertion indices
//   remove <i> <1|0>                 table.remove(id(i))
//   nat <n> <host|-> <port>          nat-sampler host/port after the n-th sample
// id(i) is dht-rpc's peer.id('10.<i>>>8>.<i&255>.1', 1000 + i) (the same in Rust: node_id).
'use strict'
const Table = require('kademlia-routing-table')
const NatSampler = require('nat-sampler')
const peer = require('dht-rpc/lib/peer')
const b4a = require('b4a')

const addr = (i) => ({ host: '10.' + (i >> 8) + '.' + (i & 255) + '.1', port: 1000 + i })
const id = (i) => peer.id(addr(i).host, addr(i).port)
const out = []

const table = new Table(id(100000))
const N = 600
const index = new Map()
for (let i = 0; i < N; i++) {
  const ok = table.add({ id: id(i), i })
  index.set(b4a.toString(id(i), 'hex'), i)
  out.push('add ' + i + ' ' + (ok ? 1 : 0))
}
for (const i of [3, 50, 77, 599]) out.push('remove ' + i + ' ' + (table.remove(id(i)) ? 1 : 0))
out.push('remove 100001 ' + (table.remove(id(100001)) ? 1 : 0))
for (const t of [100000, 100001, 100002, 5, 77]) {
  for (const k of [20, 50]) {
    out.push('closest ' + t + ' ' + k + ' ' + table.closest(id(t), k).map((n) => n.i).join(','))
  }
}

// nat-sampler: a deterministic mix of hosts and ports.
let x = 12345
const rand = (n) => {
  x = (x * 1103515245 + 12345) % 2147483648
  return x % n
}
const hosts = ['1.1.1.1', '2.2.2.2', '3.3.3.3']
for (const phase of [0, 1, 2]) {
  const s = new NatSampler()
  for (let n = 0; n < 80; n++) {
    let host, port
    if (phase === 0) {
      host = hosts[rand(10) === 0 ? 1 : 0]
      port = rand(8) === 0 ? 4000 + rand(3) : 4000
    } else if (phase === 1) {
      host = hosts[rand(3)]
      port = 5000
    } else {
      host = hosts[n < 40 ? 0 : 2]
      port = n < 40 ? 6000 + rand(50) : 7000
    }
    s.add(host, port)
    out.push('nat ' + phase + ' ' + n + ' ' + host + ' ' + port + ' ' + (s.host || '-') + ' ' + s.port)
  }
}
console.log(out.join('\n'))
