//! Stored blocks of an encrypted base from a hostile peer: any bytes read as a version-2 block (header type,
//! key id) and as a default-layout block of a writer or view core. No panic; a block that decrypts encrypts
//! back to the same bytes.
#![no_main]

use holepunch::autobase::encryption::{
    decrypt_v2, encrypt_v2, v2_hash_key, view_encryption, writer_encryption, V2Header,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let index = data.first().copied().unwrap_or(0) as u64;
    let key = [3u8; 32];
    if let Ok(plain) = decrypt_v2(index, data, |_| key) {
        assert_eq!(plain.len() + 8, data.len());
        if let Ok(V2Header::Encrypted { id }) = holepunch::autobase::encryption::v2_header(data) {
            let again = encrypt_v2(index, &plain, id, &key, &v2_hash_key(&key));
            assert_eq!(again[8..], data[8..]);
        }
    }
    for e in [writer_encryption(&[1; 32], &[2; 32]), view_encryption(&[1; 32], &[2; 32], "view")] {
        if let Ok(plain) = e.decrypt(index, data) {
            assert_eq!(plain.len() + 8, data.len());
        }
    }
});
