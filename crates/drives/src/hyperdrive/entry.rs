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

#[cfg(test)]
mod tests {
    use super::*;

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
