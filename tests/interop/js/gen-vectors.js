#!/usr/bin/env node
// Generates crates/wire/tests/it/vectors/compact_encoding.json by running the pinned JS compact-encoding
// (and compact-encoding-bitfield) over a broad set of values.
//
// Run from tests/interop:   node js/gen-vectors.js
//
// Every case is { codec, params?, value, hex, decoded?, decode_only? } or { codec, params?, hex, error: true }.
// Integers are written as decimal strings (JSON numbers would lose precision above 2^53), floats as the JS
// String() form ("NaN", "-0", "Infinity"...), buffers as hex, addresses as "host:port" / "[host]:port".
// `decoded` is present when decoding does not give `value` back (lossy lexint, bitfield, non-canonical input).
// The script also checks that JS fails to decode every strict prefix of every encoding, which the Rust test
// checks too.

'use strict'

const fs = require('fs')
const path = require('path')
const c = require('compact-encoding')
const bitfield = require('compact-encoding-bitfield')
const b4a = require('b4a')

// VECTORS_DIR overrides the output directory (the Rust test that checks the committed files are fresh uses it).
const OUT = path.join(process.env.VECTORS_DIR || path.join(__dirname, '..', '..', '..', 'crates', 'wire', 'tests', 'it', 'vectors'), 'compact_encoding.json')

const cases = []

const hex = (b) => b4a.toString(b, 'hex')
const fromHex = (h) => b4a.from(h, 'hex')
const str = (v) => (typeof v === 'bigint' ? v.toString() : Object.is(v, -0) ? '-0' : String(v))

function checkPrefixesFail(enc, buf, label) {
  for (let i = 0; i < buf.byteLength; i++) {
    let ok = false
    try {
      c.decode(enc, buf.subarray(0, i))
      ok = true
    } catch {}
    if (ok) throw new Error(`JS decoded a ${i}-byte prefix of ${label} ${hex(buf)}`)
  }
}

// Adds a case: encodes `input` with `enc`, decodes it back and records both.
// `toJson` maps a JS value (input or decoded) to the JSON form of the vector.
function add(codec, enc, inputs, toJson = str, params) {
  for (const input of inputs) {
    const buf = c.encode(enc, input)
    const back = c.decode(enc, buf)
    const value = toJson(input)
    const decoded = toJson(back)
    const entry = { codec }
    if (params) entry.params = params
    entry.value = value
    entry.hex = hex(buf)
    if (JSON.stringify(decoded) !== JSON.stringify(value)) entry.decoded = decoded
    checkPrefixesFail(enc, buf, codec)
    cases.push(entry)
  }
}

// Bytes JS decodes to something: the Rust decoder must give the same.
function decodeOnly(codec, enc, hexes, toJson = str, params) {
  for (const h of hexes) {
    const entry = { codec }
    if (params) entry.params = params
    entry.value = toJson(c.decode(enc, fromHex(h)))
    entry.hex = h
    entry.decode_only = true
    cases.push(entry)
  }
}

// Bytes JS refuses to decode: the Rust decoder must refuse them too.
function decodeError(codec, enc, hexes, params) {
  for (const h of hexes) {
    let threw = false
    try {
      c.decode(enc, fromHex(h))
    } catch {
      threw = true
    }
    if (!threw) throw new Error(`expected JS to fail decoding ${codec} ${h}`)
    const entry = { codec }
    if (params) entry.params = params
    entry.hex = h
    entry.error = true
    cases.push(entry)
  }
}

const P = (n) => 2 ** n

// ---- unsigned integers ----
add('uint', c.uint, [
  0, 1, 0x7f, 0x80, 0xfb, 0xfc, 0xfd, 0xfe, 0xff, 0x100, 0x1234, 0xfffe, 0xffff, 0x10000, 0x10001, 0x123456,
  0xfffffffe, 0xffffffff, P(32), P(32) + 1, P(40), P(48) - 1, P(52), P(53) - 1
])
decodeOnly('uint', c.uint, ['fd0000', 'fd0500', 'fdfc00', 'fe05000000', 'feffff0000', 'ff0500000000000000', 'ff0000000001000000'])
add('uint8', c.uint8, [0, 1, 0x7f, 0x80, 0xfe, 0xff])
add('uint16', c.uint16, [0, 1, 0xff, 0x100, 0x1234, 0x8000, 0xffff])
add('uint24', c.uint24, [0, 1, 0xff, 0x100, 0xffff, 0x10000, 0x123456, 0x800000, 0xffffff])
add('uint32', c.uint32, [0, 1, 0xff, 0x100, 0x10000, 0x12345678, 0x80000000, 0xffffffff])
add('uint32be', c.uint32be, [0, 1, 0xff, 0x100, 0x10000, 0x12345678, 0x80000000, 0xffffffff])
add('uint40', c.uint40, [0, 1, 0xff, 0x100, 0xffffffff, P(32), 0x0102030405, P(40) - 1])
add('uint48', c.uint48, [0, 1, 0xffff, 0x10000, P(32) + 5, 0x010203040506, P(48) - 1])
add('uint56', c.uint56, [0, 1, 0xffffff, 0x1000000, 0x01020304050607, P(53) - 1])
add('uint64', c.uint64, [0, 1, 0xffffffff, P(32), 0x1f203040506070, P(53) - 1])
add('uint64be', c.uint64be, [0, 1, 0xffffffff, P(32), 0x1f203040506070, P(53) - 1])
// biguint64 is the full-range uint64: the same bytes as Rust's `uint64`.
add('biguint64', c.biguint64, [0n, 1n, 2n ** 53n, 0x0102030405060708n, 2n ** 63n, 2n ** 64n - 1n])

// ---- zig-zag integers ----
add('int', c.int, [
  0, -1, 1, -2, 2, 63, -64, 64, -65, 126, -126, -127, 127, 128, -128, 0x7fff, -0x8000, -0x8001, 0x8000,
  P(31) - 1, -P(31), P(31), -P(31) - 1, P(40), -P(40), P(52) - 1, -P(52)
])
add('int8', c.int8, [0, -1, 1, 63, -64, 127, -128])
add('int16', c.int16, [0, -1, 1, 0x7fff, -0x8000, 300, -300])
add('int24', c.int24, [0, -1, 1, P(23) - 1, -P(23), 0x12345, -0x12345])
add('int32', c.int32, [0, -1, 1, P(31) - 1, -P(31), 0x1234567, -0x1234567])
add('int40', c.int40, [0, -1, 1, P(39) - 1, -P(39), P(33) + 7, -P(33) - 7])
add('int48', c.int48, [0, -1, 1, P(47) - 1, -P(47), P(41) + 3])
add('int56', c.int56, [0, -1, 1, P(52) - 1, -P(52), P(49) + 9])
add('int64', c.int64, [0, -1, 1, P(52) - 1, -P(52), -P(49) - 9])
// bigint64 is the full-range int64.
add('bigint64', c.bigint64, [0n, -1n, 1n, 2n ** 63n - 1n, -(2n ** 63n), -(2n ** 53n) - 3n])

// ---- bool ----
add('bool', c.bool, [false, true], (v) => v)
decodeOnly('bool', c.bool, ['02', 'ff', '00', '01'], (v) => v)

// ---- floats ----
add('float32', c.float32, [
  0, -0, 1, -1, 1.5, -2.25, Math.fround(0.1), Math.fround(Math.PI), NaN, Infinity, -Infinity,
  3.4028234663852886e38, 1.401298464324817e-45, 1.1754943508222875e-38
])
add('float64', c.float64, [
  0, -0, 1, -1, 0.1, Math.PI, -Math.E, NaN, Infinity, -Infinity, Number.MAX_VALUE, Number.MIN_VALUE,
  2.2250738585072014e-308, P(53), 1e21, 123456.789
])

// ---- buffers and strings ----
const bytes = (n, seed = 7) => {
  const b = b4a.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}
add('buffer', c.buffer, [b4a.alloc(0), fromHex('00'), fromHex('deadbeef'), bytes(0xfc), bytes(0xfd), bytes(300)], hex)
add('optional_buffer', c.optionalBuffer, [null, fromHex('ab'), bytes(0xfd, 3)], (v) => (v ? hex(v) : null))
// An empty buffer is written as length 0 and reads back as null.
add('optional_buffer', c.optionalBuffer, [b4a.alloc(0)], (v) => (v ? hex(v) : null))
add(
  'string',
  c.string,
  [
    '',
    'a',
    'hello world',
    'héllo',
    '日本語',
    'emoji 😀🦀',
    '\u0000nul\u0000',
    'tab\tnewline\n',
    'a'.repeat(56),
    'a'.repeat(57),
    'a'.repeat(64),
    'a'.repeat(65),
    'é'.repeat(60),
    'x'.repeat(300),
    'ascii then ü'
  ],
  (v) => v
)
decodeError('string', c.string, ['', '05616263', 'fd0001'])
for (const n of [8, 16, 24, 32, 64]) {
  add('fixed', c.fixed(n), [bytes(n), b4a.alloc(n, 0xff)], hex, { n })
}

// ---- arrays ----
add('array_uint', c.array(c.uint), [[], [0], [1, 300, 70000, P(40)], Array.from({ length: 300 }, (_, i) => i * 997)], (v) =>
  v.map(str)
)
add('array_string', c.array(c.string), [[], ['a', 'bc', ''], ['日本', 'ü']], (v) => v)
add('array_buffer', c.array(c.buffer), [[fromHex('01'), b4a.alloc(0), fromHex('ffee')]], (v) => v.map(hex))
decodeError('array_uint', c.array(c.uint), ['fe01001000', '0501', 'ff0000000000000100'])

// ---- typed arrays ----
add('uint16array', c.uint16array, [new Uint16Array([]), new Uint16Array([1]), new Uint16Array([0xffff, 0, 0x1234, 300])], (v) => Array.from(v, str))
add(
  'uint32array',
  c.uint32array,
  [new Uint32Array([]), new Uint32Array([1]), new Uint32Array([0xffffffff, 0, 0x12345678]), Uint32Array.from({ length: 70 }, (_, i) => i * 0x01010101)],
  (v) => Array.from(v, str)
)
decodeError('uint32array', c.uint32array, ['0201000000', '01', 'ff0000000000000040'])
decodeError('uint16array', c.uint16array, ['02010001', '0101'])

// ---- addresses ----
const v4hosts = ['0.0.0.0', '127.0.0.1', '10.1.2.3', '192.168.255.1', '255.255.255.255']
const v6hosts = [
  '::',
  '::1',
  'fe80::1',
  '2001:db8::ff00:42:8329',
  '1:2:3:4:5:6:7:8',
  'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  'fe80::abcd:ef01',
  'FE80::ABCD'
]
// Hosts are normalised through Node's URL parser so that the Rust side can parse them with std.
const v6norm = (h) => h.toLowerCase()
add('ipv4', c.ipv4, v4hosts, (v) => v)
add('ipv6', c.ipv6, v6hosts, (v) => new URL(`http://[${v}]/`).hostname.slice(1, -1))
add('ip', c.ip, [...v4hosts, ...v6hosts], (v) => (v.includes(':') ? new URL(`http://[${v}]/`).hostname.slice(1, -1) : v))
const ports = [0, 1, 80, 49737, 65535]
const addrJson = (m) => (m.host.includes(':') ? `[${new URL(`http://[${m.host}]/`).hostname.slice(1, -1)}]:${m.port}` : `${m.host}:${m.port}`)
add('ipv4_address', c.ipv4Address, v4hosts.map((host, i) => ({ host, port: ports[i % ports.length] })), addrJson)
add('ipv6_address', c.ipv6Address, v6hosts.map((host, i) => ({ host, port: ports[i % ports.length] })), addrJson)
add(
  'ip_address',
  c.ipAddress,
  [...v4hosts, ...v6hosts].map((host, i) => ({ host, port: ports[(i + 2) % ports.length] })),
  addrJson
)
add(
  'array_ipv4_address',
  c.array(c.ipv4Address),
  [[], [{ host: '1.2.3.4', port: 5 }, { host: '127.0.0.1', port: 49737 }]],
  (v) => v.map(addrJson)
)
void v6norm

// ---- bit arrays and bitfields ----
const bits = (n, f) => Array.from({ length: n }, (_, i) => f(i))
add(
  'bitarray',
  c.bitarray,
  [[], [true], [false], bits(7, (i) => i % 2 === 0), bits(8, () => true), bits(9, (i) => i === 8), bits(17, (i) => i % 3 === 0), bits(300, (i) => i % 7 === 1)],
  (v) => v
)
decodeError('bitarray', c.bitarray, ['09ff', '1100'])
for (const [length, values] of [
  [1, [0, 1]],
  [7, [0, 1, 0x55, 0x7f]],
  [8, [0, 0x80, 0xff]],
  [16, [0, 0x1234, 0xffff]],
  [17, [0, 0x1ffff]],
  [32, [0, 0xdeadbeef]],
  [33, [P(32)]],
  [64, [0, P(53) - 1]]
]) {
  add('bitfield', bitfield(length), values, (v) => (typeof v === 'number' ? str(v) : hex(v)), { length })
}
decodeOnly('bitfield', bitfield(7), ['00', '7f', 'fd0100', 'fe01020304', 'ff0102030405060708'], hex, { length: 7 })
decodeOnly('bitfield', bitfield(16), ['fd3412', 'fe01020304'], hex, { length: 16 })

// ---- lexint ----
// JS lexint mis-encodes [2^32, 2^32 + 251): the exponent comes out as -1 and is written as byte 0xff, which no
// decoder can read back. Those values are left out; the Rust encoder writes exponent 0 for them instead.
const lexints = [0, 1, 250, 251, 252, 255, 256, 0x1234, 0xffff, 0x10000, 0x10000 + 251, 0xffffff, 0x1000000, 0xfffffffe, 0xffffffff]
for (let k = 33; k <= 53; k++) lexints.push(P(k), P(k) + 251, P(k) + 250, P(k) + 252, P(k) + 1000)
lexints.push(P(32) + 251, P(32) + 252, P(32) + 1000, P(44) + 251, P(48) - 1, P(52), P(53) - 1, 123456789012345)
add('lexint', c.lexint, lexints.filter((n) => n < P(53)))

// ---- frames ----
add('frame_string', c.frame(c.string), ['', 'hello', 'x'.repeat(300)], (v) => v)
add('frame_array_uint', c.frame(c.array(c.uint)), [[], [1, 2, 70000]], (v) => v.map(str))
decodeOnly('frame_string', c.frame(c.string), ['0400ffffff', '070568656c6c6f21'], (v) => v)
decodeError('frame_string', c.frame(c.string), ['0102', '03056162'])

fs.mkdirSync(path.dirname(OUT), { recursive: true })
const out = {
  generator: 'tests/interop/js/gen-vectors.js',
  packages: {
    'compact-encoding': require('compact-encoding/package.json').version,
    'compact-encoding-bitfield': require('compact-encoding-bitfield/package.json').version
  },
  cases
}
fs.writeFileSync(OUT, JSON.stringify(out, null, 1) + '\n')
console.log(`wrote ${cases.length} cases to ${path.relative(process.cwd(), OUT)}`)
