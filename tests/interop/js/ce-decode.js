#!/usr/bin/env node
// Decodes Rust-encoded compact-encoding values with the JS package, for tests/interop/tests/it/compact_encoding_interop.rs.
//
// stdin:  a JSON array of { codec, params?, hex }       (codec names as in gen-vectors.js)
// stdout: a JSON array of { value, hex } or { error }   value in the vector JSON form, hex = JS re-encoding
//
// Run from tests/interop so that require() finds node_modules.

'use strict'

const c = require('compact-encoding')
const bitfield = require('compact-encoding-bitfield')
const b4a = require('b4a')

const hex = (b) => b4a.toString(b, 'hex')
const str = (v) => (typeof v === 'bigint' ? v.toString() : Object.is(v, -0) ? '-0' : String(v))
const same = (v) => v
const v6 = (h) => new URL(`http://[${h}]/`).hostname.slice(1, -1)
const host = (h) => (h.includes(':') ? v6(h) : h)
const addr = (m) => (m.host.includes(':') ? `[${v6(m.host)}]:${m.port}` : `${m.host}:${m.port}`)

function codec(name, params = {}) {
  switch (name) {
    case 'uint':
    case 'uint8':
    case 'uint16':
    case 'uint24':
    case 'uint32':
    case 'uint32be':
    case 'uint40':
    case 'uint48':
    case 'uint56':
    case 'uint64':
    case 'uint64be':
    case 'biguint64':
    case 'int':
    case 'int8':
    case 'int16':
    case 'int24':
    case 'int32':
    case 'int40':
    case 'int48':
    case 'int56':
    case 'int64':
    case 'bigint64':
    case 'float32':
    case 'float64':
    case 'lexint':
      return [c[name], str]
    case 'bool':
      return [c.bool, same]
    case 'buffer':
      return [c.buffer, hex]
    case 'optional_buffer':
      return [c.optionalBuffer, (v) => (v ? hex(v) : null)]
    case 'string':
      return [c.string, same]
    case 'fixed':
      return [c.fixed(params.n), hex]
    case 'array_uint':
      return [c.array(c.uint), (v) => v.map(str)]
    case 'array_string':
      return [c.array(c.string), same]
    case 'array_buffer':
      return [c.array(c.buffer), (v) => v.map(hex)]
    case 'array_ipv4_address':
      return [c.array(c.ipv4Address), (v) => v.map(addr)]
    case 'uint16array':
      return [c.uint16array, (v) => Array.from(v, str)]
    case 'uint32array':
      return [c.uint32array, (v) => Array.from(v, str)]
    case 'ipv4':
      return [c.ipv4, same]
    case 'ipv6':
      return [c.ipv6, v6]
    case 'ip':
      return [c.ip, host]
    case 'ipv4_address':
      return [c.ipv4Address, addr]
    case 'ipv6_address':
      return [c.ipv6Address, addr]
    case 'ip_address':
      return [c.ipAddress, addr]
    case 'bitarray':
      return [c.bitarray, same]
    case 'bitfield':
      return [bitfield(params.length), hex]
    case 'frame_string':
      return [c.frame(c.string), same]
    case 'frame_array_uint':
      return [c.frame(c.array(c.uint)), (v) => v.map(str)]
    default:
      throw new Error('unknown codec ' + name)
  }
}

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (d) => {
  input += d
})
process.stdin.on('end', () => {
  const out = JSON.parse(input).map(({ codec: name, params, hex: h }) => {
    try {
      const [enc, toJson] = codec(name, params)
      const buf = b4a.from(h, 'hex')
      const state = c.state(0, buf.byteLength, buf)
      const value = enc.decode(state)
      if (state.start !== buf.byteLength) throw new Error(`${buf.byteLength - state.start} trailing bytes`)
      return { value: toJson(value), hex: hex(c.encode(enc, value)) }
    } catch (err) {
      return { error: err.message }
    }
  })
  process.stdout.write(JSON.stringify(out))
})
