//! Property tests for `holepunch_wire::crypto`: signatures round-trip, `verify` never panics on arbitrary bytes and
//! refuses any change, and multi-part BLAKE2b equals one-part BLAKE2b of the concatenation.

use holepunch_wire::crypto::{self, KeyPair};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn sign_then_verify(seed in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..200)) {
        let kp = KeyPair::from_seed(&seed);
        prop_assert!(kp.is_valid());
        let sig = kp.sign(&msg);
        prop_assert!(crypto::verify(&msg, &sig, &kp.public));
        prop_assert_eq!(crypto::sign(&msg, &kp.secret), sig);
    }

    #[test]
    fn any_change_is_refused(
        seed in any::<[u8; 32]>(),
        msg in proptest::collection::vec(any::<u8>(), 1..64),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        which in 0u8..3,
    ) {
        let kp = KeyPair::from_seed(&seed);
        let mut sig = kp.sign(&msg);
        let mut msg = msg;
        let mut public = kp.public;
        match which {
            0 => sig[at.index(64)] ^= 1 << bit,
            1 => { let i = at.index(msg.len()); msg[i] ^= 1 << bit }
            _ => public[at.index(32)] ^= 1 << bit,
        }
        prop_assert!(!crypto::verify(&msg, &sig, &public));
    }

    #[test]
    fn verify_never_panics(
        msg in proptest::collection::vec(any::<u8>(), 0..64),
        sig in proptest::collection::vec(any::<u8>(), 0..70),
        public in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let _ = crypto::verify(&msg, &sig, &public);
    }

    #[test]
    fn blake2b_parts_concatenate(
        parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
        key in proptest::collection::vec(any::<u8>(), 0..=64),
        out_len in 1usize..=64,
    ) {
        let whole: Vec<u8> = parts.concat();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(
            crypto::blake2b(out_len, &key, &refs),
            crypto::blake2b(out_len, &key, &[&whole])
        );
    }
}
