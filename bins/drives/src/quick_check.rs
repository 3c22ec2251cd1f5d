//! Where `drives mirror` keeps its quick check's state (see `holepunch::mirror_state`): one file per
//! source/destination pair in `STORAGE/mirror-state/`, named by a BLAKE2b of the pair (a drive by its key, a
//! folder by its absolute path). Beside the corestore, not in it: the JS CLI never looks there.

use std::path::{Path, PathBuf};

use holepunch::crypto;

use crate::hyper::AnyDrive;

/// The state file of a mirror from `src` to `dst`; `None` for a folder to folder mirror (no store involved,
/// nothing is written into one).
pub(crate) fn state_file(storage: &Path, src: &AnyDrive, dst: &AnyDrive) -> Option<PathBuf> {
    if matches!((src, dst), (AnyDrive::Local(_), AnyDrive::Local(_))) {
        return None;
    }
    let id = |d: &AnyDrive| match d {
        AnyDrive::Local(l) => std::path::absolute(l.root())
            .ok()
            .map(|p| format!("folder:{}", p.display())),
        AnyDrive::Hyper(h) => Some(format!("drive:{}", to_hex(&h.key()))),
    };
    let (s, d) = (id(src)?, id(dst)?);
    let mut name = [0u8; 16];
    crypto::blake2b_into(&mut name, &[], &[s.as_bytes(), b"\0", d.as_bytes()]).ok()?;
    Some(storage.join("mirror-state").join(to_hex(&name)))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
