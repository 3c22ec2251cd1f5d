//! What a mirror left equal, remembered for the next run of the same mirror: its quick check.
//!
//! mirror-drive compares every file's content, since a hyperdrive entry has no modification time; a re-mirror
//! of a big tree with nothing changed then reads every byte twice. A [`MirrorState`] records, for each key a
//! run left equal (compared or written), a [`fingerprint`] of the source entry and one of the destination
//! entry. The next run takes a key whose two entries still have those fingerprints as equal without reading
//! either content; any other key is compared as before (so a file only touched is still not rewritten).
//!
//! Fingerprints identify content exactly, not by a guess on times:
//!
//! - a folder's file: its device, inode, size, modification *and change* times, executable bit (a write, a
//!   rename over it or a `touch` changes the change time, which cannot be set back);
//! - a hyperdrive entry: its stored value (the blob's position in the append-only blobs core, the
//!   executable bit, link name and metadata);
//! - other entries have none and are always compared.
//!
//! The file lives beside the store (the CLI keeps one per source/destination pair), is written whole to a
//! temporary file and renamed over the old one at the end of a run, and ends with a BLAKE2b checksum: a
//! missing, truncated or corrupt file reads as empty (every key compared again), never as a wrong record.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::crypto;
use crate::drive::Entry;

/// A 128-bit BLAKE2b of what identifies an entry's content (see the module docs).
pub type Fingerprint = [u8; 16];

/// Records in `records` that `key` was left equal: `src` in the source, `dst` in the destination (entries
/// without fingerprints are not recorded).
pub fn record(records: &mut Records, key: &str, src: &Entry, dst: &Entry) {
    if let (Some(s), Some(d)) = (fingerprint(src), fingerprint(dst)) {
        records.insert(key.to_string(), (s, d));
    }
}

/// The file's first bytes.
const MAGIC: &[u8; 20] = b"drives-mirror-state1";

/// The fingerprint of `entry`, `None` when it has nothing that identifies its content.
pub fn fingerprint(entry: &Entry) -> Option<Fingerprint> {
    let mut out = [0u8; 16];
    let len = entry.byte_length.unwrap_or(u64::MAX).to_le_bytes();
    let link = entry.linkname.as_deref().unwrap_or("").as_bytes();
    let has_link = [u8::from(entry.linkname.is_some())];
    let exec = [u8::from(entry.executable)];
    let res = if let Some(st) = entry.stat {
        crypto::blake2b_into(
            &mut out,
            &[],
            &[
                b"folder",
                &st.dev.to_le_bytes(),
                &st.ino.to_le_bytes(),
                &st.mtime_ns.to_le_bytes(),
                &st.ctime_ns.to_le_bytes(),
                &len,
                &exec,
                &has_link,
                link,
            ],
        )
    } else if entry.blob.is_some() || entry.linkname.is_some() || entry.seq.is_some() {
        let value = entry.value().encode();
        crypto::blake2b_into(&mut out, &[], &[b"hyperdrive", &value])
    } else {
        return None;
    };
    res.ok().map(|()| out)
}

/// The records of one mirror (source/destination pair): key -> (source, destination) fingerprints.
pub type Records = HashMap<String, (Fingerprint, Fingerprint)>;

/// A mirror's state file and the records of its last run (this run's go to a [`Records`] map, stored with
/// [`save`](Self::save)).
#[derive(Debug, Default)]
pub struct MirrorState {
    path: Option<PathBuf>,
    old: Records,
}

impl MirrorState {
    /// The state stored at `path` (empty when the file is missing or does not decode).
    pub fn load(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let old = match std::fs::read(&path) {
            Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
                tracing::debug!(path = %path.display(), "mirror state does not decode: ignored");
                Records::new()
            }),
            Err(_) => Records::new(),
        };
        MirrorState {
            path: Some(path),
            old,
        }
    }

    /// A state that is never stored (every key compared).
    pub fn none() -> Self {
        MirrorState::default()
    }

    /// Whether the last run left `key` equal with these same two entries.
    pub fn known_equal(&self, key: &str, src: &Entry, dst: &Entry) -> bool {
        let Some((s, d)) = self.old.get(key) else {
            return false;
        };
        fingerprint(src).is_some_and(|f| f == *s) && fingerprint(dst).is_some_and(|f| f == *d)
    }

    /// [`known_equal`](Self::known_equal) with the entries' fingerprints (source, destination).
    pub fn known(&self, key: &str, fps: &(Fingerprint, Fingerprint)) -> bool {
        self.old.get(key) == Some(fps)
    }

    /// Records of the last run.
    pub fn records(&self) -> &Records {
        &self.old
    }

    /// Stores `new` (this run's records) in place of the last run's: written to a temporary file, then
    /// renamed over it.
    pub fn save(&self, new: &Records) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = tmp_path(path);
        std::fs::write(&tmp, encode(new))?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// The file's bytes: magic, record count (u64 LE), records (key length u32 LE, key, source and destination
/// fingerprints), then a 16-byte BLAKE2b of everything before it.
pub fn encode(records: &Records) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + records.len() * 64 + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(records.len() as u64).to_le_bytes());
    let mut keys: Vec<&String> = records.keys().collect();
    keys.sort();
    for k in keys {
        let (s, d) = &records[k];
        out.extend_from_slice(&u32::try_from(k.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(s);
        out.extend_from_slice(d);
    }
    let mut sum = [0u8; 16];
    if crypto::blake2b_into(&mut sum, &[], &[&out]).is_err() {
        return Vec::new();
    }
    out.extend_from_slice(&sum);
    out
}

/// Decodes a state file's bytes; `None` for anything [`encode`] did not write (bad magic or checksum,
/// truncated, lengths past the end, a key that is not UTF-8). Never panics.
pub fn decode(bytes: &[u8]) -> Option<Records> {
    let body_len = bytes.len().checked_sub(16)?;
    let (body, sum) = bytes.split_at(body_len);
    let mut want = [0u8; 16];
    crypto::blake2b_into(&mut want, &[], &[body]).ok()?;
    if want != sum {
        return None;
    }
    let rest = body.strip_prefix(MAGIC.as_slice())?;
    let (count, mut rest) = take::<8>(rest)?;
    let count = u64::from_le_bytes(count);
    // Each record takes at least 36 bytes: a count past that is a lie.
    if count > (rest.len() / 36) as u64 {
        return None;
    }
    let mut out = Records::with_capacity(usize::try_from(count).ok()?);
    for _ in 0..count {
        let (len, r) = take::<4>(rest)?;
        let len = usize::try_from(u32::from_le_bytes(len)).ok()?;
        if r.len() < len {
            return None;
        }
        let (key, r) = r.split_at(len);
        let key = std::str::from_utf8(key).ok()?.to_string();
        let (s, r) = take::<16>(r)?;
        let (d, r) = take::<16>(r)?;
        out.insert(key, (s, d));
        rest = r;
    }
    rest.is_empty().then_some(out)
}

fn take<const N: usize>(b: &[u8]) -> Option<([u8; N], &[u8])> {
    if b.len() < N {
        return None;
    }
    let (head, rest) = b.split_at(N);
    Some((head.try_into().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::FileStat;

    fn folder_file(ino: u64) -> Entry {
        Entry {
            stat: Some(FileStat {
                dev: 1,
                ino,
                mtime_ns: 5,
                ctime_ns: 6,
            }),
            ..Entry::file("/a", 3, false)
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let mut r = Records::new();
        r.insert("/a".into(), ([1; 16], [2; 16]));
        r.insert("/b/c".into(), ([3; 16], [4; 16]));
        let bytes = encode(&r);
        assert_eq!(decode(&bytes), Some(r));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert_eq!(decode(&flipped), None);
        assert_eq!(decode(&encode(&Records::new())), Some(Records::new()));
    }

    #[test]
    fn fingerprints_follow_what_identifies_content() {
        let a = folder_file(7);
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&folder_file(8)));
        let mut touched = a.clone();
        touched.stat = touched.stat.map(|s| FileStat { ctime_ns: 9, ..s });
        assert_ne!(fingerprint(&a), fingerprint(&touched));
        let mut exec = a.clone();
        exec.executable = true;
        assert_ne!(fingerprint(&a), fingerprint(&exec));
        // An entry with nothing identifying it has no fingerprint.
        assert_eq!(fingerprint(&Entry::file("/x", 1, false)), None);
    }
}
