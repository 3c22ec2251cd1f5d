//! Bootstrap lists (`--bootstrap` / `HYPERDHT_BOOTSTRAP`) from arbitrary input: parsing never panics, and
//! every accepted list prints back to a list that parses to the same nodes.
#![no_main]

use holepunch::hyperdht::bootstrap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(nodes) = bootstrap::parse_list(s) {
        let printed = nodes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(bootstrap::parse_list(&printed), Ok(nodes));
    }
});
