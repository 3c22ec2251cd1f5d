//! The apply of `autobase-kv` (issue #16): a multi-writer key-value store on one hyperbee view named `view`
//! with utf-8 keys and values. Writer blocks are JSON (`valueEncoding: 'json'`):
//! `{"op":"put","key":K,"value":V}`, `{"op":"del","key":K}`, `{"op":"add-writer","key":HEX,"indexer":BOOL}`
//! and `{"op":"remove-writer","key":HEX}`; the JS twin is `tests/interop/js/autobase-kv.js`.
//!
//! Optimistic appends (`autobase-kv put --optimistic`, from a writer that is not a member): the apply takes
//! optimistic nodes ([`Handlers::optimistic`], JS's `optimistic: true`), and the rule of the example is that an
//! optimistic `put` is applied and acks its writer ([`Host::ack_writer`]: the writer is recorded as a removed
//! member at that length, so it stays unable to write plainly), while any other optimistic op is neither
//! applied nor acked, so the base drops it. A member's nodes are applied as usual whatever their flag.
//!
//! Values come from any writer: one that is not JSON, names an unknown op, lacks a field, has a key that is not
//! 32 bytes of hex, or would remove the last indexer is skipped (nothing applied, no error), so no writer can
//! stop the others' apply.

use serde_json::Value;

use crate::hyperbee::Hyperbee;

use super::base::{ApplyNode, Handlers, Host, Result, ViewStore};

/// An operation as a writer appends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// Set `key` to `value`.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Delete `key`.
    Del {
        /// Key.
        key: String,
    },
    /// Add a writer.
    AddWriter {
        /// Its key.
        key: [u8; 32],
        /// As an indexer.
        indexer: bool,
    },
    /// Remove a writer.
    RemoveWriter {
        /// Its key.
        key: [u8; 32],
    },
}

impl KvOp {
    /// The JSON bytes JS's `c.json` writes for the op (`JSON.stringify` of an object with these fields in this
    /// order).
    pub fn to_json(&self) -> Vec<u8> {
        let v = match self {
            Self::Put { key, value } => {
                serde_json::json!({"op": "put", "key": key, "value": value})
            }
            Self::Del { key } => serde_json::json!({"op": "del", "key": key}),
            Self::AddWriter { key, indexer } => {
                serde_json::json!({"op": "add-writer", "key": hex::encode(key), "indexer": indexer})
            }
            Self::RemoveWriter { key } => {
                serde_json::json!({"op": "remove-writer", "key": hex::encode(key)})
            }
        };
        v.to_string().into_bytes()
    }

    /// Reads an op from a writer's value (`None` for anything else).
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        let s = |f: &str| v.get(f).and_then(Value::as_str).map(str::to_string);
        let k32 = || -> Option<[u8; 32]> { hex::decode(s("key")?).ok()?.try_into().ok() };
        match v.get("op")?.as_str()? {
            "put" => Some(Self::Put {
                key: s("key")?,
                value: s("value")?,
            }),
            "del" => Some(Self::Del { key: s("key")? }),
            "add-writer" => Some(Self::AddWriter {
                key: k32()?,
                indexer: v.get("indexer").and_then(Value::as_bool).unwrap_or(false),
            }),
            "remove-writer" => Some(Self::RemoveWriter { key: k32()? }),
            _ => None,
        }
    }
}

/// The autobase-kv application.
#[derive(Debug, Default, Clone, Copy)]
pub struct Kv;

impl Handlers for Kv {
    type View = Hyperbee;

    fn open(&mut self, store: &mut ViewStore<'_>) -> Result<Hyperbee> {
        Ok(Hyperbee::new(store.get("view")?))
    }

    fn apply(&mut self, nodes: &[ApplyNode], view: &Hyperbee, host: &mut Host<'_>) -> Result<()> {
        for node in nodes {
            if node.optimistic {
                if let Some(KvOp::Put { key, value }) = KvOp::from_json(&node.value) {
                    host.ack_writer(node.from)?;
                    view.put(key.as_bytes(), Some(value.as_bytes()))?;
                }
                continue;
            }
            match KvOp::from_json(&node.value) {
                Some(KvOp::Put { key, value }) => {
                    view.put(key.as_bytes(), Some(value.as_bytes()))?;
                }
                Some(KvOp::Del { key }) => {
                    view.del(key.as_bytes())?;
                }
                Some(KvOp::AddWriter { key, indexer }) => host.add_writer(key, indexer)?,
                Some(KvOp::RemoveWriter { key }) if host.removeable(&key) => {
                    host.remove_writer(key)?;
                }
                Some(KvOp::RemoveWriter { .. }) | None => {}
            }
        }
        Ok(())
    }

    fn optimistic(&self) -> bool {
        true
    }
}
