//! `core.setUserData(key, value)` / `core.getUserData(key)`: small named values kept with a core (autobase
//! keeps `referrer`, `autobase/local`, `autobase/view` and its encryption keys there; corestore its names).
//!
//! A JS store (hypercore 10's files) keeps them in the oplog header, as JS does: each change is one oplog entry
//! (an empty value removes the key, as hypercore 10 treats it). A native core keeps them in a `user-data` file
//! beside `meta`, replaced atomically (write, fsync, rename) on each change:
//!
//! ```text
//! frame(uint version = 1, array(string key, buffer value))
//! ```

use std::path::Path;

use crate::compact_encoding::{DecodeError, Reader, Writer};

use super::{js_storage, storage, Backend, Hypercore, HypercoreError, Result};

const USER_DATA_FILE: &str = "user-data";

/// Encodes the pairs as the `user-data` file's payload.
pub fn encode(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = Writer::new();
    w.uint(1);
    w.array(pairs, |w, (k, v)| {
        w.string(k).buffer(v);
    });
    w.into_vec()
}

/// Decodes a `user-data` payload (untrusted bytes: a damaged file must not crash the reader).
pub fn decode(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, DecodeError> {
    let mut r = Reader::new(bytes);
    if r.uint()? != 1 {
        return Err(DecodeError::Invalid("user data version"));
    }
    let pairs = r.array(|r| Ok((r.string()?.to_owned(), r.buffer()?.to_vec())))?;
    r.finish()?;
    Ok(pairs)
}

/// The user data of the native core in `dir` (none when the file is absent).
pub(super) fn load(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let path = dir.join(USER_DATA_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let payload = storage::read_framed(&path)?;
    decode(&payload).map_err(|e| HypercoreError::Corrupt(format!("{}: {e}", path.display())))
}

fn put(pairs: &mut Vec<(String, Vec<u8>)>, key: &str, value: Option<&[u8]>) {
    match (pairs.iter().position(|(k, _)| k == key), value) {
        (Some(i), Some(v)) => pairs[i].1 = v.to_vec(),
        (Some(i), None) => {
            pairs.remove(i);
        }
        (None, Some(v)) => pairs.push((key.to_owned(), v.to_vec())),
        (None, None) => {}
    }
}

impl Hypercore {
    /// `core.getUserData(key)`.
    pub fn get_user_data(&self, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .user_data
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Every user data pair, in the order they were first set.
    pub fn user_data(&self) -> Vec<(String, Vec<u8>)> {
        self.lock().user_data.clone()
    }

    /// `core.setUserData(key, value)`: sets (None or an empty value: removes) a user data value, durably
    /// before returning. Setting the value already there writes nothing.
    pub fn set_user_data(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let value = value.filter(|v| !v.is_empty());
        let mut log = self.log_lock();
        let mut pairs = self.lock().user_data.clone();
        let before = pairs.clone();
        put(&mut pairs, key, value);
        if pairs == before {
            return Ok(());
        }
        match &mut *log {
            Backend::Native(_) => {
                let framed = storage::frame(&encode(&pairs))?;
                storage::write_atomic(&self.dir().join(USER_DATA_FILE), &framed)?;
            }
            Backend::Js(js) => js.write(&js_storage::Change {
                entries: vec![js_storage::OplogEntry {
                    user_data: Some((key.to_owned(), value.unwrap_or_default().to_vec())),
                    ..js_storage::OplogEntry::default()
                }],
                ..js_storage::Change::default()
            })?,
        }
        self.lock().user_data = pairs;
        Ok(())
    }
}
