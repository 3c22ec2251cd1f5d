//! The digests and checkpoints in writer blocks, both ways (JS autobase 7.28.1 `lib/apply-state.js`,
//! `CheckpointCore`), sans-IO.
//!
//! A writer names the system core it has seen in every block, and an indexer carries its latest signatures of
//! the system core, the encryption core and each user view. Both are written once and then pointed at: a
//! pointer `p` in the block that makes the writer's core `length` long refers to the block that made it
//! `length - p` long, which must carry the value itself (pointers do not chain).
//!
//! - Writing: [`LocalCheckpoints`] keeps what this writer last wrote and makes the fields of its next block
//!   ([`LocalCheckpoints::make_digest`], [`LocalCheckpoints::make_checkpoint`]).
//! - Reading: [`inflate_digest`] and [`inflate_checkpoint`] resolve a block's fields to the value and the length
//!   of the block carrying it, given a way to read earlier blocks of the same writer; `None` when the pointer
//!   leads nowhere (before the core's start, or to a block without the value), as JS returns `null`.

use super::messages::{Checkpoint, Checkpointer, Digest, OplogMessage};

/// A system core key and the writer length of the block that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestAt {
    /// The system core key.
    pub key: [u8; 32],
    /// The writer's length with the block that carries it.
    pub at: u64,
}

/// A signature of a view at `length` and the writer length of the block that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureAt {
    /// The indexer's signature (a partial of the view's multisig).
    pub signature: [u8; 64],
    /// The signed length of the view.
    pub length: u64,
    /// The writer's length with the block that carries it.
    pub at: u64,
}

/// Which checkpoint of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The system core's.
    System,
    /// The encryption core's.
    Encryption,
    /// The user view at this index of the system's `views`.
    User(usize),
}

fn slot_of(c: &Checkpoint, slot: Slot) -> Option<&Checkpointer> {
    match slot {
        Slot::System => c.system.as_ref(),
        Slot::Encryption => c.encryption.as_ref(),
        Slot::User(i) => c.user.as_ref()?.get(i),
    }
}

/// `_inflateDigest`: the system key the digest of the block making the writer `length` long stands for.
/// `block(len)` returns the writer's block that made it `len` long.
pub fn inflate_digest<'a>(
    length: u64,
    digest: &Digest,
    block: impl FnOnce(u64) -> Option<&'a OplogMessage>,
) -> Option<DigestAt> {
    if digest.pointer == 0 {
        return digest.key.map(|key| DigestAt { key, at: length });
    }
    let len = length.checked_sub(digest.pointer).filter(|l| *l > 0)?;
    let key = block(len)?.digest.as_ref()?.key?;
    Some(DigestAt { key, at: len })
}

/// `_inflate*Checkpoint`: the signature a block's checkpoint for `slot` stands for (the block making the
/// writer `length` long). `block(len)` returns the writer's block that made it `len` long.
pub fn inflate_checkpoint<'a>(
    length: u64,
    chk: &Checkpointer,
    slot: Slot,
    block: impl FnOnce(u64) -> Option<&'a OplogMessage>,
) -> Option<SignatureAt> {
    if let Some(c) = &chk.checkpoint {
        return Some(SignatureAt {
            signature: c.signature,
            length: c.length,
            at: length,
        });
    }
    let len = length.checked_sub(chk.checkpointer).filter(|l| *l > 0)?;
    let target = block(len)?;
    let c = slot_of(target.checkpoint.as_ref()?, slot)?.checkpoint?;
    Some(SignatureAt {
        signature: c.signature,
        length: c.length,
        at: len,
    })
}

/// What a writer last wrote: the digest, and (indexers) its latest signatures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalCheckpoints {
    /// The last digest written with its key.
    pub digest: Option<DigestAt>,
    /// The latest system core signature.
    pub system: Option<SignatureAt>,
    /// The latest encryption core signature.
    pub encryption: Option<SignatureAt>,
    /// The latest signature of each user view.
    pub user: Vec<Option<SignatureAt>>,
}

impl LocalCheckpoints {
    /// `makeDigest`: the digest of the block making the writer `length` long, naming system core `key`
    /// (the key the first time, then a pointer back to that block).
    pub fn make_digest(&mut self, length: u64, key: [u8; 32]) -> Digest {
        if let Some(d) = self.digest.filter(|d| d.key == key) {
            return Digest {
                pointer: length.saturating_sub(d.at),
                key: None,
            };
        }
        self.digest = Some(DigestAt { key, at: length });
        Digest {
            pointer: 0,
            key: Some(key),
        }
    }

    /// `updateInternalSignatures`: new system/encryption signatures, carried by the block making the writer
    /// `length` long (`None` keeps the previous one).
    pub fn update_internal_signatures(
        &mut self,
        length: u64,
        system: Option<([u8; 64], u64)>,
        encryption: Option<([u8; 64], u64)>,
    ) {
        let at = |s: Option<([u8; 64], u64)>, old: Option<SignatureAt>| {
            s.map(|(signature, l)| SignatureAt {
                signature,
                length: l,
                at: length,
            })
            .or(old)
        };
        self.system = at(system, self.system);
        self.encryption = at(encryption, self.encryption);
    }

    /// `updateUserSignatures`: one entry per user view (`None` keeps that view's previous signature).
    pub fn update_user_signatures(&mut self, length: u64, signatures: &[Option<([u8; 64], u64)>]) {
        let old = std::mem::take(&mut self.user);
        self.user = signatures
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.map(|(signature, l)| SignatureAt {
                    signature,
                    length: l,
                    at: length,
                })
                .or_else(|| old.get(i).copied().flatten())
            })
            .collect();
    }

    /// `makeCheckpoints`: the checkpoint of the block making the writer `length` long.
    pub fn make_checkpoint(&self, length: u64) -> Checkpoint {
        let make = |s: &Option<SignatureAt>| {
            s.map(|s| {
                let checkpointer = length.saturating_sub(s.at);
                Checkpointer {
                    checkpointer,
                    checkpoint: (checkpointer == 0).then_some(super::messages::IndexCheckpoint {
                        signature: s.signature,
                        length: s.length,
                    }),
                }
            })
        };
        Checkpoint {
            system: make(&self.system),
            encryption: make(&self.encryption),
            // JS writes `null` for an empty list; a view without a signature yet has no entry to write
            user: if self.user.is_empty() {
                None
            } else {
                Some(
                    self.user
                        .iter()
                        .map(|s| make(s).unwrap_or_default())
                        .collect(),
                )
            },
        }
    }

    /// `signedLength()`: the system length this indexer last signed.
    pub fn signed_length(&self) -> u64 {
        self.system.map_or(0, |s| s.length)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::autobase::messages::{IndexCheckpoint, Node};

    fn block(digest: Digest, checkpoint: Option<Checkpoint>) -> OplogMessage {
        OplogMessage {
            version: 2,
            node: Node {
                batch: 1,
                ..Default::default()
            },
            digest: Some(digest),
            checkpoint,
            ..Default::default()
        }
    }

    #[test]
    fn digests_point_back_to_their_key() {
        let mut local = LocalCheckpoints::default();
        let mut blocks = Vec::new();
        for (len, key) in [
            (1, [1; 32]),
            (2, [1; 32]),
            (3, [1; 32]),
            (4, [2; 32]),
            (5, [2; 32]),
        ] {
            blocks.push(block(local.make_digest(len, key), None));
        }
        assert_eq!(blocks[2].digest.unwrap().pointer, 2);
        assert_eq!(blocks[3].digest.unwrap().key, Some([2; 32]));
        for (i, b) in blocks.iter().enumerate() {
            let len = i as u64 + 1;
            let d = inflate_digest(len, b.digest.as_ref().unwrap(), |l| {
                blocks.get(l as usize - 1)
            })
            .unwrap();
            assert_eq!(d.key, if len < 4 { [1; 32] } else { [2; 32] });
        }
        // a pointer before the core's start, or to a block without a key, leads nowhere
        let bad = Digest {
            pointer: 9,
            key: None,
        };
        assert_eq!(
            inflate_digest(3, &bad, |l| blocks.get(l as usize - 1)),
            None
        );
        let to_pointer = Digest {
            pointer: 1,
            key: None,
        };
        assert_eq!(
            inflate_digest(3, &to_pointer, |l| blocks.get(l as usize - 1)),
            None
        );
    }

    #[test]
    fn checkpoints_point_back_to_their_signature() {
        let mut local = LocalCheckpoints::default();
        local.update_internal_signatures(2, Some(([7; 64], 5)), Some(([8; 64], 0)));
        local.update_user_signatures(2, &[Some(([9; 64], 3))]);
        let at2 = local.make_checkpoint(2);
        assert_eq!(at2.system.unwrap().checkpoint.unwrap().length, 5);
        let at4 = local.make_checkpoint(4);
        assert_eq!(at4.system.unwrap().checkpointer, 2);
        assert_eq!(at4.user.as_ref().unwrap()[0].checkpointer, 2);
        let blocks = [
            block(Digest::default(), None),
            block(Digest::default(), Some(at2)),
            block(Digest::default(), None),
            block(Digest::default(), Some(at4.clone())),
        ];
        let get = |l: u64| blocks.get(l as usize - 1);
        let s = inflate_checkpoint(4, at4.system.as_ref().unwrap(), Slot::System, get).unwrap();
        assert_eq!((s.length, s.at), (5, 2));
        let u = inflate_checkpoint(4, &at4.user.as_ref().unwrap()[0], Slot::User(0), get).unwrap();
        assert_eq!((u.length, u.signature), (3, [9; 64]));
        assert_eq!(
            inflate_checkpoint(4, &at4.user.as_ref().unwrap()[0], Slot::User(1), get),
            None
        );
        let nowhere = Checkpointer {
            checkpointer: 1,
            checkpoint: None,
        };
        assert_eq!(inflate_checkpoint(4, &nowhere, Slot::System, get), None);
        assert_eq!(local.signed_length(), 5);
        // a new system signature alone keeps the others
        local.update_internal_signatures(5, Some(([1; 64], 6)), None);
        let at5 = local.make_checkpoint(5);
        assert_eq!(at5.encryption.unwrap().checkpointer, 3);
        assert_eq!(
            at5.system.unwrap().checkpoint,
            Some(IndexCheckpoint {
                signature: [1; 64],
                length: 6
            })
        );
    }
}
