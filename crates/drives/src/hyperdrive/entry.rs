//! The value of a hyperdrive 13 entry: JSON (the bee's `valueEncoding: 'json'`), written by JS as
//! `JSON.stringify({ executable, linkname, blob, metadata })` with the blob id in the field order hyperblobs
//! creates it (`blockOffset, byteOffset, blockLength, byteLength[, blockMap]`).
//!
//! [`EntryValue::encode`] writes exactly those bytes; [`EntryValue::decode`] accepts any field order, ignores
//! unknown fields and checks every type (a hostile writer can put anything in the bee).

use serde_json::Value;

use crate::hyperblobs::BlobId;

/// Why an entry value does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not JSON.
    #[error("entry is not JSON: {0}")]
    Json(String),
    /// JSON, but not an object of the expected shape.
    #[error("bad entry field {0}")]
    Field(&'static str),
}

/// An entry's value: a file (with a blob), a symlink (with a linkname) or an entry with neither.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntryValue {
    /// The executable bit.
    pub executable: bool,
    /// Symlink target (as given to `symlink`, not normalized).
    pub linkname: Option<String>,
    /// Where the content is in the blobs core (`None` for symlinks).
    pub blob: Option<BlobId>,
    /// User metadata (any JSON; `None` is `null`).
    pub metadata: Option<Value>,
}

fn u53(v: &Value, field: &'static str) -> Result<u64, EntryError> {
    // JS numbers are doubles: integers up to 2^53 survive; reject negatives, fractions and bigger values.
    let n = v.as_u64().ok_or(EntryError::Field(field))?;
    if n > (1u64 << 53) {
        return Err(EntryError::Field(field));
    }
    Ok(n)
}

/// The JSON form of a blob id in an entry (hyperdrive's `blob` field).
trait BlobJson: Sized {
    fn from_json(v: &Value) -> Result<Self, EntryError>;
    fn write_json(&self, out: &mut String);
}

impl BlobJson for BlobId {
    fn from_json(v: &Value) -> Result<Self, EntryError> {
        let o = v.as_object().ok_or(EntryError::Field("blob"))?;
        let get = |name: &'static str| -> Result<u64, EntryError> {
            u53(o.get(name).ok_or(EntryError::Field(name))?, name)
        };
        let block_map = match o.get("blockMap") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(EntryError::Field("blockMap")),
        };
        let id = Self {
            block_offset: get("blockOffset")?,
            byte_offset: get("byteOffset")?,
            block_length: get("blockLength")?,
            byte_length: get("byteLength")?,
            block_map,
        };
        id.block_offset
            .checked_add(id.block_length)
            .ok_or(EntryError::Field("blockLength"))?;
        id.byte_offset
            .checked_add(id.byte_length)
            .ok_or(EntryError::Field("byteLength"))?;
        Ok(id)
    }

    fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "{{\"blockOffset\":{},\"byteOffset\":{},\"blockLength\":{},\"byteLength\":{}",
            self.block_offset, self.byte_offset, self.block_length, self.byte_length
        );
        if self.block_map {
            out.push_str(",\"blockMap\":true");
        }
        out.push('}');
    }
}

impl EntryValue {
    /// A file entry.
    pub fn file(blob: BlobId, executable: bool, metadata: Option<Value>) -> Self {
        Self {
            executable,
            linkname: None,
            blob: Some(blob),
            metadata,
        }
    }

    /// A symlink entry.
    pub fn symlink(linkname: &str, metadata: Option<Value>) -> Self {
        Self {
            executable: false,
            linkname: Some(linkname.to_owned()),
            blob: None,
            metadata,
        }
    }

    /// The JSON bytes JS hyperdrive writes for this entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::with_capacity(160);
        out.push_str("{\"executable\":");
        out.push_str(if self.executable { "true" } else { "false" });
        out.push_str(",\"linkname\":");
        match &self.linkname {
            Some(l) => out.push_str(&Value::String(l.clone()).to_string()),
            None => out.push_str("null"),
        }
        out.push_str(",\"blob\":");
        match &self.blob {
            Some(b) => b.write_json(&mut out),
            None => out.push_str("null"),
        }
        out.push_str(",\"metadata\":");
        match &self.metadata {
            Some(m) => out.push_str(&m.to_string()),
            None => out.push_str("null"),
        }
        out.push('}');
        out.into_bytes()
    }

    /// Decodes an entry value from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        match decode_plain_file(bytes) {
            Some(v) => Ok(v),
            None => Self::decode_json(bytes),
        }
    }

    /// [`decode`](Self::decode) through a JSON tree: any field order, unknown fields, any metadata.
    fn decode_json(bytes: &[u8]) -> Result<Self, EntryError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Json(e.to_string()))?;
        let o = v.as_object().ok_or(EntryError::Field("entry"))?;
        let executable = match o.get("executable") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(EntryError::Field("executable")),
        };
        let linkname = match o.get("linkname") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(EntryError::Field("linkname")),
        };
        let blob = match o.get("blob") {
            None | Some(Value::Null) => None,
            Some(b) => Some(BlobId::from_json(b)?),
        };
        let metadata = match o.get("metadata") {
            None | Some(Value::Null) => None,
            Some(m) => Some(m.clone()),
        };
        Ok(Self {
            executable,
            linkname,
            blob,
            metadata,
        })
    }
}

/// The value JS writes for a plain file (no link, no metadata: nearly every entry of a big drive), read
/// without building a JSON tree; `None` for any other bytes, which then go through the JSON decoder. It
/// accepts exactly the bytes [`EntryValue::encode`] writes for such a value, with the decoder's checks.
fn decode_plain_file(bytes: &[u8]) -> Option<EntryValue> {
    let rest = bytes.strip_prefix(b"{\"executable\":")?;
    let (executable, rest) = match rest.strip_prefix(b"true") {
        Some(r) => (true, r),
        None => (false, rest.strip_prefix(b"false")?),
    };
    let rest = rest.strip_prefix(b",\"linkname\":null,\"blob\":{\"blockOffset\":")?;
    let (block_offset, rest) = json_u53(rest)?;
    let (byte_offset, rest) = json_u53(rest.strip_prefix(b",\"byteOffset\":")?)?;
    let (block_length, rest) = json_u53(rest.strip_prefix(b",\"blockLength\":")?)?;
    let (byte_length, rest) = json_u53(rest.strip_prefix(b",\"byteLength\":")?)?;
    let (block_map, rest) = match rest.strip_prefix(b",\"blockMap\":true") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest != b"},\"metadata\":null}" {
        return None;
    }
    block_offset.checked_add(block_length)?;
    byte_offset.checked_add(byte_length)?;
    let blob = BlobId {
        block_offset,
        byte_offset,
        block_length,
        byte_length,
        block_map,
    };
    Some(EntryValue::file(blob, executable, None))
}

/// A JSON integer in `0..=2^53` at the start of `b` (no sign, fraction, exponent or leading zero), and the
/// bytes after it.
fn json_u53(b: &[u8]) -> Option<(u64, &[u8])> {
    let len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 || len > 16 || (len > 1 && b[0] == b'0') {
        return None;
    }
    let (digits, rest) = b.split_at(len);
    if matches!(rest.first(), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    let n = digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    (n <= 1 << 53).then_some((n, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_file_path_decodes_as_the_json_decoder() {
        let blob = |o, b, l, n, m| BlobId {
            block_offset: o,
            byte_offset: b,
            block_length: l,
            byte_length: n,
            block_map: m,
        };
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for v in [
            EntryValue::file(blob(0, 0, 0, 0, false), false, None),
            EntryValue::file(blob(12, 3456, 1, 200, false), true, None),
            EntryValue::file(blob(1 << 53, 0, 0, 1 << 53, true), false, None),
            EntryValue::file(
                blob(5, 6, 7, 8, false),
                false,
                Some(serde_json::json!({"a": 1})),
            ),
            EntryValue::symlink("/x", None),
        ] {
            inputs.push(v.encode());
        }
        for text in [
            r#"{"executable":false,"linkname":null,"blob":{"blockOffset":01,"byteOffset":0,"blockLength":0,"byteLength":0},"metadata":null}"#,
            r#"{"executable":false,"linkname":null,"blob":{"blockOffset":1.5,"byteOffset":0,"blockLength":0,"byteLength":0},"metadata":null}"#,
            r#"{"executable":false,"linkname":null,"blob":{"blockOffset":1e3,"byteOffset":0,"blockLength":0,"byteLength":0},"metadata":null}"#,
            r#"{"executable":false,"linkname":null,"blob":{"blockOffset":9007199254740993,"byteOffset":0,"blockLength":0,"byteLength":0},"metadata":null}"#,
            r#"{"executable":false,"linkname":null,"blob":{"blockOffset":9007199254740992,"byteOffset":0,"blockLength":9007199254740992,"byteLength":0},"metadata":null}"#,
            r#"{"executable":false,"linkname":null,"blob":{"blockOffset":1,"byteOffset":2,"blockLength":3,"byteLength":4,"blockMap":false},"metadata":null}"#,
            r#"{"executable":false,"linkname":null,"blob":{"blockOffset":1,"byteOffset":2,"blockLength":3,"byteLength":4},"metadata":null} "#,
            r#"{"executable":true,"linkname":null,"blob":{"blockOffset":1,"byteOffset":2,"blockLength":3,"byteLength":4},"metadata":null,"executable":false}"#,
        ] {
            inputs.push(text.as_bytes().to_vec());
        }
        // Every truncation and one-byte change of a plain file's bytes too.
        let base = EntryValue::file(blob(123, 45678, 9, 1011, false), true, None).encode();
        for i in 0..base.len() {
            inputs.push(base[..i].to_vec());
            for c in [b'0', b'9', b'"', b',', b'}', b' ', b'-', b'.'] {
                let mut m = base.clone();
                m[i] = c;
                inputs.push(m);
            }
        }
        for bytes in &inputs {
            assert_eq!(
                EntryValue::decode(bytes),
                EntryValue::decode_json(bytes),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn encodes_as_js_json_stringify() {
        let v = EntryValue::file(
            BlobId {
                block_offset: 1,
                byte_offset: 2,
                block_length: 3,
                byte_length: 4,
                block_map: false,
            },
            true,
            None,
        );
        assert_eq!(
            String::from_utf8_lossy(&v.encode()),
            r#"{"executable":true,"linkname":null,"blob":{"blockOffset":1,"byteOffset":2,"blockLength":3,"byteLength":4},"metadata":null}"#
        );
        assert_eq!(EntryValue::decode(&v.encode()), Ok(v));
        let s = EntryValue::symlink("../\"x\"\n", Some(serde_json::json!({"z": 1, "a": [true]})));
        assert_eq!(
            String::from_utf8_lossy(&s.encode()),
            r#"{"executable":false,"linkname":"../\"x\"\n","blob":null,"metadata":{"z":1,"a":[true]}}"#
        );
        assert_eq!(EntryValue::decode(&s.encode()), Ok(s));
    }

    #[test]
    fn rejects_bad_shapes() {
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{\"executable\":1}",
            b"{\"linkname\":5}",
            b"{\"blob\":{\"blockOffset\":-1,\"byteOffset\":0,\"blockLength\":0,\"byteLength\":0}}",
            b"{\"blob\":{\"blockOffset\":0.5,\"byteOffset\":0,\"blockLength\":0,\"byteLength\":0}}",
            b"{\"blob\":{\"blockOffset\":0}}",
            b"{\"blob\":{\"blockOffset\":9007199254740993,\"byteOffset\":0,\"blockLength\":0,\"byteLength\":0}}",
        ] {
            assert!(EntryValue::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
