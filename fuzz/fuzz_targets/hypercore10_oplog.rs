//! Hypercore 10's on-disk files (JS `drives` 2.9.1 stores) from arbitrary bytes: the oplog (both header slots,
//! framed entries with their CRCs), a header or entry payload alone, tree nodes and bitfield pages. Decoding never
//! panics; what decodes re-encodes to a payload that decodes to the same value.
#![no_main]

use holepunch::hypercore::js_storage::{
    decode_oplog, decode_tree, parse_manifest, read_frame, Bitfield, OplogEntry, OplogHeader,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(log) = decode_oplog(bytes) {
        assert!(log.entries_len <= bytes.len() as u64);
        if let Some(h) = &log.header {
            if h.external.is_none() {
                assert_eq!(OplogHeader::decode(&h.encode(None)).as_ref(), Ok(h));
            }
        }
        for e in &log.entries {
            assert_eq!(OplogEntry::decode(&e.encode()).as_ref(), Ok(e));
        }
    }
    let _ = read_frame(bytes);
    if let Ok(h) = OplogHeader::decode(bytes) {
        if let Some(m) = &h.manifest {
            let _ = parse_manifest(m);
        }
    }
    let _ = OplogEntry::decode(bytes);
    let _ = decode_tree(bytes);
    let field = Bitfield::from_bytes(bytes.to_vec());
    let n = field.set_bits(bytes.len() as u64 * 8).count();
    assert!(n <= bytes.len() * 8);
});
