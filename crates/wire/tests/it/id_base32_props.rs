//! Property tests for the text codecs: `z32`, `id_encoding` and `base32` round-trip, and their decoders return
//! errors, never panic, on arbitrary, truncated or mutated strings.

use holepunch_wire::{base32, id_encoding, z32};
use proptest::prelude::*;

/// Strings near the valid ones: alphabet characters, hex digits, padding, a few foreign and non-ASCII ones.
fn near_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(z32::ALPHABET.to_vec()).prop_map(char::from),
            proptest::sample::select(base32::ALPHABET.to_vec()).prop_map(char::from),
            proptest::sample::select(b"0123456789abcdefABCDEF=/: ".to_vec()).prop_map(char::from),
            any::<char>(),
        ],
        0..80,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn z32_round_trips(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        prop_assert_eq!(z32::decode(&z32::encode(&data)), Ok(data));
    }

    #[test]
    fn base32_round_trips(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        let s = base32::encode(&data);
        prop_assert_eq!(s.len() % 8, 0);
        prop_assert_eq!(base32::decode(&s), Ok(data.clone()));
        prop_assert_eq!(base32::hyperbeam_decode(&base32::hyperbeam_encode(&data)), Ok(data));
    }

    #[test]
    fn ids_round_trip(key in any::<[u8; 32]>()) {
        let id = id_encoding::encode(&key);
        prop_assert_eq!(id.len(), 52);
        prop_assert_eq!(id_encoding::decode(&id), Ok(key));
        prop_assert_eq!(id_encoding::decode(&hex::encode(key)), Ok(key));
        prop_assert_eq!(id_encoding::normalize(&format!("pear://{}/x", hex::encode_upper(key))), Ok(id));
    }

    #[test]
    fn arbitrary_strings_never_panic(s in near_text()) {
        let _ = z32::decode(&s);
        let _ = base32::decode(&s);
        let _ = base32::hyperbeam_key_pair(&s);
        if let Ok(key) = id_encoding::decode(&s) {
            // Whatever is accepted normalises to an id that decodes to the same key.
            prop_assert_eq!(id_encoding::decode(&id_encoding::encode(&key)), Ok(key));
        }
        let _ = id_encoding::decode_bytes(s.as_bytes());
        // Decoded lengths follow the documented formulas.
        if let Ok(b) = z32::decode(&s) {
            let n = s.len();
            prop_assert_eq!(b.len(), n / 8 * 5 + [0, 1, 1, 2, 2, 3, 4, 4][n % 8]);
        }
    }

    #[test]
    fn mutated_ids_never_panic(
        key in any::<[u8; 32]>(),
        hex_form in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let id = if hex_form { hex::encode(key) } else { id_encoding::encode(&key) };
        let mut chars: Vec<char> = id.chars().collect();
        for (at, c) in edits {
            let i = at.index(chars.len());
            chars[i] = c;
        }
        chars.truncate(cut.index(chars.len() + 1).max(chars.len() - 2));
        let s: String = chars.into_iter().collect();
        let _ = id_encoding::decode(&s);
        let _ = id_encoding::normalize(&s);
        let _ = z32::decode(&s);
        let _ = base32::decode(&s.to_uppercase());
    }
}
