#!/usr/bin/env node
// Runs the JS id/base32/crypto functions on requests from tests/interop/tests/it/text_codecs_interop.rs.
//
// stdin:  a JSON array of { kind, input }   kind: z32 | base32 | id | hyperbeam | keypair | blake2b
// stdout: a JSON array of { ok } or { error }
//
// Run from tests/interop so that require() finds node_modules.

'use strict'

const b4a = require('b4a')
const z32 = require('z32')
const b32 = require('hi-base32')
const id = require('hypercore-id-encoding')
const crypto = require('hypercore-crypto')
const sodium = require('sodium-universal')
const DHT = require('hyperdht')

const hex = (b) => b4a.toString(b, 'hex')

function run({ kind, input }) {
  switch (kind) {
    case 'z32':
      return hex(z32.decode(input))
    case 'base32':
      return hex(b4a.from(b32.decode.asBytes(input)))
    case 'id':
      return id.normalize(input)
    case 'hyperbeam': {
      // hyperbeam's fromBase32, then DHT.keyPair(seed)
      const seed = b4a.from(b32.decode.asBytes(input.toUpperCase()))
      return hex(DHT.keyPair(seed).secretKey)
    }
    case 'keypair': {
      const kp = crypto.keyPair(b4a.from(input.seed, 'hex'))
      const msg = b4a.from(input.message, 'hex')
      return [hex(kp.secretKey), hex(crypto.discoveryKey(kp.publicKey)), hex(crypto.sign(msg, kp.secretKey))].join(':')
    }
    case 'blake2b': {
      const out = b4a.alloc(input.out_len)
      const parts = input.parts.map((p) => b4a.from(p, 'hex'))
      if (input.key) sodium.crypto_generichash_batch(out, parts, b4a.from(input.key, 'hex'))
      else sodium.crypto_generichash_batch(out, parts)
      return hex(out)
    }
    default:
      throw new Error('unknown kind ' + kind)
  }
}

let data = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (d) => {
  data += d
})
process.stdin.on('end', () => {
  const out = JSON.parse(data).map((req) => {
    try {
      return { ok: run(req) }
    } catch (err) {
      // Messages can hold half a surrogate pair (z32 quotes the bad UTF-16 unit), which is not valid JSON text.
      return { error: err.message.replace(/[\ud800-\udfff]/g, '?') }
    }
  })
  // Exit once the reply is flushed (a pipe write can be asynchronous).
  process.stdout.write(JSON.stringify(out), () => process.exit(0))
})
