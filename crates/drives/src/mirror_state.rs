//! What a mirror left equal, remembered for the next run of the same mirror: its quick check.
//!
//! mirror-drive compares every file's content, since a hyperdrive entry has no modification time; a re-mirror
//! of a big tree with nothing changed then reads every byte twice. A state file records, for each key a
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
//! The file lives beside the store (the CLI keeps one per source/destination pair). Its records are sorted
//! by key, so a mirror, which walks its drives in key order, never holds them in memory: a [`StateWriter`]
//! writes this run's records to a temporary file as the run goes and renames it over the old one at the
//! end (or removes it when it holds exactly what the old one holds: a no-op run); a [`StateReader`] reads
//! the old one through once to check it, then record by record alongside the mirror's merge. The file ends
//! with its record count and a BLAKE2b checksum: a missing, truncated or corrupt file (or one of the first
//! format, `drives-mirror-state1`) reads as empty (every key compared again), never as a wrong record.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::crypto;
use crate::drive::Entry;

/// A 128-bit BLAKE2b of what identifies an entry's content (see the module docs).
pub type Fingerprint = [u8; 16];

/// The file's first bytes.
const MAGIC: &[u8; 20] = b"drives-mirror-state2";

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

/// The records of one mirror (source/destination pair), whole in memory: key -> (source, destination)
/// fingerprints, in key order (what [`encode`] and [`decode`] work on; a mirror reads and writes its state
/// file record by record instead, with [`StateReader`] and [`StateWriter`]).
pub type Records = BTreeMap<String, (Fingerprint, Fingerprint)>;

/// A record: key, source and destination fingerprints.
pub type Record = (String, (Fingerprint, Fingerprint));

/// The longest key a state file holds (a longer one is not recorded: its file is compared every run).
pub const MAX_KEY: usize = 1 << 16;

/// The file's bytes, written record by record in key order: magic, records (key length u32 LE (never 0),
/// key, source and destination fingerprints), a 0 u32 LE, the record count (u64 LE), then a 16-byte BLAKE2b
/// of everything before it.
pub fn encode(records: &Records) -> Vec<u8> {
    let Ok(mut enc) = Encoder::new(Vec::with_capacity(MAGIC.len() + records.len() * 64 + 28))
    else {
        return Vec::new();
    };
    for (k, fps) in records {
        // (Keys of a map are in order; a key too long is left out, as a mirror leaves it out.)
        if enc.push(k, fps).is_err() {
            return Vec::new();
        }
    }
    enc.finish().map(|(out, _)| out).unwrap_or_default()
}

/// Decodes a state file's bytes; `None` for anything [`encode`] did not write (bad magic or checksum,
/// truncated, lengths past the end, keys not UTF-8 or not in strictly increasing order, a wrong count,
/// bytes after the checksum). Never panics.
pub fn decode(bytes: &[u8]) -> Option<Records> {
    let mut dec = Decoder::new(bytes).ok()??;
    let mut out = Records::new();
    while let Some((k, fps)) = dec.next_record().ok()? {
        out.insert(k, fps);
    }
    Some(out)
}

fn hasher() -> blake2b_simd::State {
    blake2b_simd::Params::new().hash_length(16).to_state()
}

/// Writes a state file's bytes record by record into `W` (see [`encode`] for the layout), hashing as it
/// goes.
struct Encoder<W: Write> {
    out: W,
    hash: blake2b_simd::State,
    count: u64,
    last: Option<String>,
}

impl<W: Write> Encoder<W> {
    fn new(out: W) -> std::io::Result<Self> {
        let mut enc = Encoder {
            out,
            hash: hasher(),
            count: 0,
            last: None,
        };
        enc.put(MAGIC)?;
        Ok(enc)
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    /// Appends a record; `Ok(false)` (nothing written) for a key not after the last one, empty or longer
    /// than [`MAX_KEY`].
    fn push(&mut self, key: &str, (s, d): &(Fingerprint, Fingerprint)) -> std::io::Result<bool> {
        if key.is_empty() || key.len() > MAX_KEY || self.last.as_deref() >= Some(key) {
            return Ok(false);
        }
        self.put(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes())?;
        self.put(key.as_bytes())?;
        self.put(s)?;
        self.put(d)?;
        self.count += 1;
        match &mut self.last {
            Some(l) => {
                l.clear();
                l.push_str(key);
            }
            None => self.last = Some(key.to_string()),
        }
        Ok(true)
    }

    /// Ends the file; returns the writer and the checksum.
    fn finish(mut self) -> std::io::Result<(W, [u8; 16])> {
        self.put(&0u32.to_le_bytes())?;
        self.put(&self.count.to_le_bytes())?;
        let mut sum = [0u8; 16];
        sum.copy_from_slice(self.hash.finalize().as_bytes());
        self.out.write_all(&sum)?;
        Ok((self.out, sum))
    }
}

/// Why a state file stopped decoding.
#[derive(Debug)]
struct Invalid;

/// Reads a state file's records one by one from `R`, checking as it goes (see [`decode`]); the checksum and
/// the count are only checked at the end: a caller that must not use a record of a corrupt file reads it
/// through once first ([`validate`]).
struct Decoder<R: Read> {
    input: R,
    hash: blake2b_simd::State,
    count: u64,
    last: String,
    ended: bool,
}

impl<R: Read> Decoder<R> {
    /// `Ok(None)` when the magic is not there.
    fn new(mut input: R) -> std::io::Result<Option<Self>> {
        let mut magic = [0u8; MAGIC.len()];
        if read_exact_or_eof(&mut input, &mut magic)? < magic.len() || &magic != MAGIC {
            return Ok(None);
        }
        let mut hash = hasher();
        hash.update(&magic);
        Ok(Some(Decoder {
            input,
            hash,
            count: 0,
            last: String::new(),
            ended: false,
        }))
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], Invalid> {
        let mut b = [0u8; N];
        match read_exact_or_eof(&mut self.input, &mut b) {
            Ok(n) if n == N => {
                self.hash.update(&b);
                Ok(b)
            }
            _ => Err(Invalid),
        }
    }

    /// The next record, `Ok(None)` after the last one (the count, checksum and end of input checked),
    /// `Err` for anything [`encode`] did not write.
    fn next_record(&mut self) -> Result<Option<Record>, Invalid> {
        if self.ended {
            return Ok(None);
        }
        let len = u32::from_le_bytes(self.take::<4>()?) as usize;
        if len == 0 {
            let count = u64::from_le_bytes(self.take::<8>()?);
            let mut sum = [0u8; 16];
            if read_exact_or_eof(&mut self.input, &mut sum).ok() != Some(16)
                || sum != self.hash.finalize().as_bytes()
                || count != self.count
            {
                return Err(Invalid);
            }
            let mut extra = [0u8; 1];
            if read_exact_or_eof(&mut self.input, &mut extra).ok() != Some(0) {
                return Err(Invalid);
            }
            self.ended = true;
            return Ok(None);
        }
        if len > MAX_KEY {
            return Err(Invalid);
        }
        let mut key = vec![0u8; len];
        match read_exact_or_eof(&mut self.input, &mut key) {
            Ok(n) if n == len => self.hash.update(&key),
            _ => return Err(Invalid),
        };
        let key = String::from_utf8(key).map_err(|_| Invalid)?;
        if self.count > 0 && key <= self.last {
            return Err(Invalid);
        }
        let s = self.take::<16>()?;
        let d = self.take::<16>()?;
        self.count += 1;
        self.last.clear();
        self.last.push_str(&key);
        Ok(Some((key, (s, d))))
    }
}

/// Reads up to `buf.len()` bytes (fewer only at the end of the input); returns how many.
fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads `input` through: its record count and checksum when it is a whole, valid state file.
fn validate(input: impl Read) -> Option<(u64, [u8; 16])> {
    let mut dec = Decoder::new(input).ok()??;
    while dec.next_record().ok()?.is_some() {}
    let mut sum = [0u8; 16];
    sum.copy_from_slice(dec.hash.finalize().as_bytes());
    // (The decoder hashed everything before the checksum: that is the checksum it compared.)
    Some((dec.count, sum))
}

/// The last run's records, read from the state file in key order as a mirror asks for them: the whole file
/// is read through and checked once when opened (a corrupt or truncated file reads as empty, never as a
/// wrong record), then record by record, never whole in memory.
#[derive(Debug)]
pub struct StateReader {
    path: PathBuf,
    /// The records left to read (`None`: none).
    dec: Option<DecoderState>,
    /// The record read last, not yet asked for.
    head: Option<Record>,
    /// The last key asked for (a smaller one starts again from the file's start).
    asked: Option<String>,
    /// Records and checksum of the file.
    summary: Option<(u64, [u8; 16])>,
}

/// A decoder of the state file (boxed: the hash state is big).
struct DecoderState(Box<Decoder<BufReader<File>>>);

impl std::fmt::Debug for DecoderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecoderState")
    }
}

impl StateReader {
    /// The state stored at `path` (empty when the file is missing or does not decode whole).
    pub fn open(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let summary = File::open(&path)
            .ok()
            .and_then(|f| validate(BufReader::with_capacity(1 << 16, f)));
        if summary.is_none() && path.exists() {
            tracing::debug!(path = %path.display(), "mirror state does not decode: ignored");
        }
        let mut r = StateReader {
            path,
            dec: None,
            head: None,
            asked: None,
            summary,
        };
        r.rewind();
        r
    }

    /// A state with no records (every key compared).
    pub fn none() -> Self {
        StateReader {
            path: PathBuf::new(),
            dec: None,
            head: None,
            asked: None,
            summary: None,
        }
    }

    /// Records of the file, and its checksum (`None` without a valid file).
    pub fn summary(&self) -> Option<(u64, [u8; 16])> {
        self.summary
    }

    fn rewind(&mut self) {
        self.head = None;
        self.asked = None;
        self.dec = None;
        if self.summary.is_none() {
            return;
        }
        // (Read again through a new handle: the file checked is the file read, unless it is rewritten in
        // place meanwhile, which a mirror never does: it renames a new one over it.)
        if let Ok(f) = File::open(&self.path) {
            if let Ok(Some(d)) = Decoder::new(BufReader::with_capacity(1 << 16, f)) {
                self.dec = Some(DecoderState(Box::new(d)));
            }
        }
    }

    /// The last run's record of `key`. Asked in key order, the file is read once; a key before the last
    /// one asked reads it again from its start.
    pub fn get(&mut self, key: &str) -> Option<(Fingerprint, Fingerprint)> {
        self.summary?;
        if self.asked.as_deref() > Some(key) {
            self.rewind();
        }
        match &mut self.asked {
            Some(a) => {
                a.clear();
                a.push_str(key);
            }
            None => self.asked = Some(key.to_string()),
        }
        loop {
            if let Some((k, fps)) = &self.head {
                match k.as_str().cmp(key) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Some(*fps),
                    std::cmp::Ordering::Greater => return None,
                }
            }
            let dec = self.dec.as_mut()?;
            match dec.0.next_record() {
                Ok(Some(r)) => self.head = Some(r),
                // The end, or the file changed since it was checked: no more records.
                Ok(None) | Err(Invalid) => {
                    self.head = None;
                    self.dec = None;
                    return None;
                }
            }
        }
    }
}

/// This run's records, written to a temporary file beside the state file as they come (in key order; a key
/// not after the last one written is left out), renamed over it by [`finish`](Self::finish).
pub struct StateWriter {
    path: PathBuf,
    tmp: PathBuf,
    enc: Option<Encoder<BufWriter<File>>>,
}

impl std::fmt::Debug for StateWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl StateWriter {
    /// Starts a new state for `path` (its folder created).
    pub fn create(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = tmp_path(&path);
        let file = File::create(&tmp)?;
        Ok(StateWriter {
            path,
            tmp,
            enc: Some(Encoder::new(BufWriter::with_capacity(1 << 16, file))?),
        })
    }

    /// Records that `key` was left equal with these fingerprints (source, destination). An error stops the
    /// recording: [`finish`](Self::finish) then keeps the old file.
    pub fn push(&mut self, key: &str, fps: &(Fingerprint, Fingerprint)) {
        let Some(enc) = &mut self.enc else {
            return;
        };
        if let Err(e) = enc.push(key, fps) {
            tracing::warn!("mirror: could not write the quick check's state: {e}");
            self.enc = None;
        }
    }

    /// Records that `key` was left equal: `src` in the source, `dst` in the destination (entries without
    /// fingerprints are not recorded).
    pub fn record(&mut self, key: &str, src: &Entry, dst: &Entry) {
        if let (Some(s), Some(d)) = (fingerprint(src), fingerprint(dst)) {
            self.push(key, &(s, d));
        }
    }

    /// Ends the file and renames it over the state file, unless it holds exactly what that file holds
    /// (`old`: its [`StateReader::summary`]): then it is removed and the state file left as it is.
    pub fn finish(mut self, old: Option<(u64, [u8; 16])>) -> std::io::Result<()> {
        let Some(enc) = self.enc.take() else {
            return Err(std::io::Error::other("the state was not written whole"));
        };
        let count = enc.count;
        let (out, sum) = enc.finish()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        drop(file);
        if old == Some((count, sum)) {
            let _ = std::fs::remove_file(&self.tmp);
            return Ok(());
        }
        std::fs::rename(&self.tmp, &self.path).inspect_err(|_| {
            let _ = std::fs::remove_file(&self.tmp);
        })
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        // Not finished (or finished with an error): the temporary file goes.
        if self.enc.is_some() || self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A temporary name beside `path`, of this process and this writer (a writer is open for a whole run: two
/// runs of one process never share one).
fn tmp_path(path: &Path) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
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
