//! Hyperbee's block codecs: the protobuf messages of JS hyperbee's `lib/messages.js` (`Header`, `Node`,
//! `YoloIndex`), encoded exactly as `protocol-buffers-encodings` writes them.
//!
//! - Block 0 is a [`Header`]: `protocol = "hyperbee"` (field 1) and optional [`Metadata`] (field 2).
//! - Every other block is a [`Node`]: `index` (field 1, bytes: an encoded [`YoloIndex`]), `key` (field 2) and an
//!   optional `value` (field 3; absent for deletions and for `put` without a value).
//! - A [`YoloIndex`] lists the tree nodes a block stores, one [`Level`] (field 1, repeated) each; a level holds
//!   its keys as packed varint seqs (field 1) and its children as packed varint `(seq, offset)` pairs (field 2).
//!   Empty lists are omitted, as the JS encoder does.
//!
//! Decoders skip unknown fields (wire types 0, 1, 2, 5) like the JS ones and never panic on untrusted input.

/// Errors decoding a hyperbee block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The input ended inside a field.
    #[error("truncated protobuf message")]
    Truncated,
    /// A varint longer than 10 bytes or over 64 bits.
    #[error("varint overflow")]
    VarintOverflow,
    /// A wire type the decoder cannot skip (3, 4, 6, 7).
    #[error("unknown protobuf wire type {0}")]
    WireType(u8),
    /// A required field is missing.
    #[error("missing required field {0}")]
    Missing(&'static str),
    /// The header's protocol string is not UTF-8.
    #[error("protocol is not UTF-8")]
    Utf8,
    /// A children list with an odd number of varints.
    #[error("odd number of child pointer varints")]
    OddChildren,
}

type Result<T> = std::result::Result<T, MessageError>;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over a protobuf message.
struct Pb<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Pb<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(MessageError::Truncated)?;
            self.pos += 1;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(MessageError::VarintOverflow);
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(MessageError::VarintOverflow)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| MessageError::Truncated)?;
        let end = self.pos.checked_add(len).ok_or(MessageError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(MessageError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u8) -> Result<()> {
        let n = match wire {
            0 => return self.varint().map(drop),
            1 => 8,
            2 => return self.bytes().map(drop),
            5 => 4,
            w => return Err(MessageError::WireType(w)),
        };
        let end = self.pos.checked_add(n).ok_or(MessageError::Truncated)?;
        if end > self.buf.len() {
            return Err(MessageError::Truncated);
        }
        self.pos = end;
        Ok(())
    }

    /// Next (field number, wire type).
    fn tag(&mut self) -> Result<(u64, u8)> {
        let t = self.varint()?;
        Ok((t >> 3, (t & 7) as u8))
    }

    fn packed(&mut self, out: &mut Vec<u64>) -> Result<()> {
        let data = self.bytes()?;
        let mut inner = Pb::new(data);
        while !inner.done() {
            out.push(inner.varint()?);
        }
        Ok(())
    }
}

/// Optional header metadata (`Header.Metadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Key of a content core (hyperdrive's blobs), field 1.
    pub content_feed: Option<Vec<u8>>,
    /// Free-form user data, field 2.
    pub user_data: Option<Vec<u8>>,
}

/// Block 0 of a hyperbee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Always `"hyperbee"` for bees.
    pub protocol: String,
    /// Optional metadata.
    pub metadata: Option<Metadata>,
}

impl Header {
    /// The header JS hyperbee writes (`protocol: "hyperbee"`, `metadata` as given).
    pub fn hyperbee(metadata: Option<Metadata>) -> Self {
        Self {
            protocol: "hyperbee".into(),
            metadata,
        }
    }

    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, 10, self.protocol.as_bytes());
        if let Some(m) = &self.metadata {
            let mut inner = Vec::new();
            if let Some(c) = &m.content_feed {
                put_bytes(&mut inner, 10, c);
            }
            if let Some(u) = &m.user_data {
                put_bytes(&mut inner, 18, u);
            }
            put_bytes(&mut out, 18, &inner);
        }
        out
    }

    /// Decodes a header block.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut pb = Pb::new(buf);
        let mut protocol = None;
        let mut metadata = None;
        while !pb.done() {
            match pb.tag()? {
                (1, _) => {
                    let s = std::str::from_utf8(pb.bytes()?).map_err(|_| MessageError::Utf8)?;
                    protocol = Some(s.to_owned());
                }
                (2, _) => {
                    let mut inner = Pb::new(pb.bytes()?);
                    let mut m = Metadata::default();
                    while !inner.done() {
                        match inner.tag()? {
                            (1, _) => m.content_feed = Some(inner.bytes()?.to_vec()),
                            (2, _) => m.user_data = Some(inner.bytes()?.to_vec()),
                            (_, w) => inner.skip(w)?,
                        }
                    }
                    metadata = Some(m);
                }
                (_, w) => pb.skip(w)?,
            }
        }
        Ok(Self {
            protocol: protocol.ok_or(MessageError::Missing("protocol"))?,
            metadata,
        })
    }
}

/// One tree node stored in a block (`YoloIndex.Level`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Level {
    /// Seqs of the blocks holding this node's keys, in key order.
    pub keys: Vec<u64>,
    /// `(seq, offset)` of each child node: the block and the level inside it.
    pub children: Vec<(u64, u64)>,
}

/// The tree nodes a block stores; level 0 is the root of the tree as of that block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YoloIndex {
    /// The nodes.
    pub levels: Vec<Level>,
}

impl YoloIndex {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut level = Vec::new();
        let mut packed = Vec::new();
        for l in &self.levels {
            level.clear();
            if !l.keys.is_empty() {
                packed.clear();
                for &k in &l.keys {
                    put_varint(&mut packed, k);
                }
                put_bytes(&mut level, 10, &packed);
            }
            if !l.children.is_empty() {
                packed.clear();
                for &(s, o) in &l.children {
                    put_varint(&mut packed, s);
                    put_varint(&mut packed, o);
                }
                put_bytes(&mut level, 18, &packed);
            }
            put_bytes(&mut out, 10, &level);
        }
        out
    }

    /// Encoded length, without encoding.
    pub fn encoded_len(&self) -> usize {
        self.levels
            .iter()
            .map(|l| {
                let k: usize = l.keys.iter().map(|&k| varint_len(k)).sum();
                let c: usize = l
                    .children
                    .iter()
                    .map(|&(s, o)| varint_len(s) + varint_len(o))
                    .sum();
                let mut len = 0;
                if k > 0 {
                    len += 1 + varint_len(k as u64) + k;
                }
                if c > 0 {
                    len += 1 + varint_len(c as u64) + c;
                }
                1 + varint_len(len as u64) + len
            })
            .sum()
    }

    /// Decodes an index.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut pb = Pb::new(buf);
        let mut levels = Vec::new();
        while !pb.done() {
            match pb.tag()? {
                (1, _) => {
                    let mut inner = Pb::new(pb.bytes()?);
                    let mut keys = Vec::new();
                    let mut flat = Vec::new();
                    while !inner.done() {
                        match inner.tag()? {
                            (1, _) => inner.packed(&mut keys)?,
                            (2, _) => inner.packed(&mut flat)?,
                            (_, w) => inner.skip(w)?,
                        }
                    }
                    if flat.len() % 2 != 0 {
                        return Err(MessageError::OddChildren);
                    }
                    let children = flat.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                    levels.push(Level { keys, children });
                }
                (_, w) => pb.skip(w)?,
            }
        }
        Ok(Self { levels })
    }
}

/// A hyperbee entry block (`Node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Encoded [`YoloIndex`].
    pub index: Vec<u8>,
    /// The key this block puts or deletes.
    pub key: Vec<u8>,
    /// The value; `None` for deletions.
    pub value: Option<Vec<u8>>,
}

impl Node {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.index.len() + self.key.len() + self.value.as_ref().map_or(0, Vec::len) + 16,
        );
        put_bytes(&mut out, 10, &self.index);
        put_bytes(&mut out, 18, &self.key);
        if let Some(v) = &self.value {
            put_bytes(&mut out, 26, v);
        }
        out
    }

    /// Decodes an entry block.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut pb = Pb::new(buf);
        let (mut index, mut key, mut value) = (None, None, None);
        while !pb.done() {
            match pb.tag()? {
                (1, _) => index = Some(pb.bytes()?.to_vec()),
                (2, _) => key = Some(pb.bytes()?.to_vec()),
                (3, _) => value = Some(pb.bytes()?.to_vec()),
                (_, w) => pb.skip(w)?,
            }
        }
        Ok(Self {
            index: index.ok_or(MessageError::Missing("index"))?,
            key: key.ok_or(MessageError::Missing("key"))?,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_vector() {
        // Header.encode({ protocol: 'hyperbee', metadata: null }) in JS.
        let h = Header::hyperbee(None);
        assert_eq!(hex::encode(h.encode()), "0a086879706572626565");
        assert_eq!(Header::decode(&h.encode()), Ok(h));
    }

    /// Vectors printed by JS hyperbee 2.27.3's `lib/messages.js`.
    #[test]
    fn js_vectors() {
        let h = Header::hyperbee(Some(Metadata {
            content_feed: Some(vec![1; 4]),
            user_data: Some(b"hi".to_vec()),
        }));
        assert_eq!(
            hex::encode(h.encode()),
            "0a086879706572626565120a0a040101010112026869"
        );
        assert_eq!(Header::decode(&h.encode()), Ok(h));
        let empty_meta = Header::hyperbee(Some(Metadata::default()));
        assert_eq!(hex::encode(empty_meta.encode()), "0a0868797065726265651200");

        let idx = YoloIndex {
            levels: vec![
                Level {
                    keys: vec![1, 300],
                    children: vec![(2, 0), (5, 1), (7, 2)],
                },
                Level::default(),
                Level {
                    keys: vec![200_000],
                    children: vec![],
                },
            ],
        };
        let idx_hex = "0a0d0a0301ac0212060200050107020a000a050a03c09a0c";
        assert_eq!(hex::encode(idx.encode()), idx_hex);
        assert_eq!(idx.encoded_len(), idx_hex.len() / 2);
        let mut node = Node {
            index: idx.encode(),
            key: b"k".to_vec(),
            value: Some(Vec::new()),
        };
        assert_eq!(
            hex::encode(node.encode()),
            format!("0a18{idx_hex}12016b1a00")
        );
        assert_eq!(Node::decode(&node.encode()), Ok(node.clone()));
        node.value = None;
        assert_eq!(hex::encode(node.encode()), format!("0a18{idx_hex}12016b"));
        assert_eq!(Node::decode(&node.encode()), Ok(node));
    }

    #[test]
    fn truncations_fail() {
        let node = Node {
            index: vec![10, 0],
            key: b"key".to_vec(),
            value: Some(b"v".to_vec()),
        }
        .encode();
        // The optional value field is the last 3 bytes: cutting exactly before it leaves a valid node.
        let without_value = node.len() - 3;
        for cut in 0..node.len() {
            // Every other prefix misses a required field or cuts one short.
            assert_eq!(
                Node::decode(&node[..cut]).is_ok(),
                cut == without_value,
                "prefix {cut}"
            );
        }
        assert_eq!(
            Pb::new(&[0xff; 11]).varint(),
            Err(MessageError::VarintOverflow)
        );
        assert_eq!(Header::decode(&[10, 1, 0xff]), Err(MessageError::Utf8));
        assert_eq!(Header::decode(&[]), Err(MessageError::Missing("protocol")));
        assert_eq!(Node::decode(&[0x23]), Err(MessageError::WireType(3)));
    }

    #[test]
    fn index_roundtrip() {
        let idx = YoloIndex {
            levels: vec![
                Level {
                    keys: vec![1, 300],
                    children: vec![(2, 0), (5, 1), (7, 2)],
                },
                Level::default(),
            ],
        };
        let enc = idx.encode();
        assert_eq!(enc.len(), idx.encoded_len());
        assert_eq!(YoloIndex::decode(&enc), Ok(idx));
    }

    #[test]
    fn odd_children_rejected() {
        // level { children: [1] }
        assert_eq!(
            YoloIndex::decode(&[10, 3, 18, 1, 1]),
            Err(MessageError::OddChildren)
        );
    }
}
