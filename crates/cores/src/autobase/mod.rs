//! Autobase: many writers, one view, compatible with JS autobase 7.28.1 (issue #16). This module holds the
//! base everything else builds on: the encodings of every record autobase keeps ([`messages`]), the key
//! derivations of its cores ([`keys`]), the digest and checkpoint pointers of writer blocks, written and
//! resolved ([`checkpoints`]), and the order of the causal DAG's un-indexed nodes ([`topolist`]). The
//! consensus (which nodes are indexed), apply, replication (wakeup) and the `Autobase` type itself are still to
//! come.
//!
//! What follows is what JS autobase 7.28.1 keeps where (read from its `index.js`, `lib/` and the hyperschema
//! spec in `encoding/spec/autobase`, and checked against a base JS builds in
//! `tests/interop/tests/it/autobase_fixture.rs`).
//!
//! # Cores
//!
//! - **Writer cores.** Each writer appends to its own hypercore, a plain single-signer core: the corestore's
//!   core named `local` (or one from a given key pair). The base's **bootstrap key** (`base.key`) is the key of
//!   its creator's writer core; the base's discovery key is that core's discovery key. Every block is an
//!   [`OplogMessage`](messages::OplogMessage) (see below). The writer core's hypercore user data holds
//!   `referrer` (the bootstrap key), `autobase/local` (on the bootstrap core: the local writer's key),
//!   `autobase/boot` (the [`BootRecord`](messages::BootRecord)) and, for encrypted bases, `autobase/encryption`
//!   (the 32-byte key) or `autobase/blind-encryption`. Its storage's local key space holds pending
//!   [`LinearizerUpdate`](messages::LinearizerUpdate)s under [`encode_linearizer_key`](messages::encode_linearizer_key)
//!   keys (prefix 1, index-encoder sortable uints).
//! - **The system core** (the view named `_system`): a hyperbee with binary keys (`extension: false`) holding
//!   the state of the base: under `[0, 0] "info"` the [`Info`](messages::Info) record (members, pending
//!   indexers, indexers with their indexed lengths, the DAG heads, the user views' keys and lengths, and in
//!   version 2 the encryption core's length and the entropy), and under `[1, 0] <writer key>` one
//!   [`Member`](messages::Member) per writer (indexer and removed flags, the length applied). Each flush of the
//!   apply writes the changed members, then `info`, in one hyperbee batch, so the `info` entries in the system
//!   core's history mark its flush points.
//! - **View cores.** `open(store)` names views (`store.get('view')`); each is a manifest core whose key is
//!   derived from the bootstrap key, the name and the indexers ([`keys`]): before the base has indexers a
//!   signer-less core with a static prologue; afterwards one signer per indexer with a majority quorum. When the
//!   indexer set changes, every view (the system core included) moves to a new key whose manifest carries the
//!   old core's tree hash and length as its prologue; the new core starts with the same blocks. The user views
//!   are listed, in `open` order, in `info.views`; the order gives each view's index in checkpoints and traces.
//! - **The encryption core** (`_encryption`), for encrypted bases with manifest version 2+: linked from the
//!   system core's manifest; its blocks are [`EncryptionDescriptor`](messages::EncryptionDescriptor)s.
//! - **Anchor cores** (`createAnchor`): signer-less one-block cores whose manifest `userData` is a
//!   [`ManifestData`](messages::ManifestData) with the anchor's namespace.
//!
//! # Writer blocks: `@autobase/oplog-message` version 2
//!
//! `uint version (2), node, uint flags, frame(checkpoint)? (flag 1), frame(digest)? (flag 2), optimistic (flag 4),
//! frame(trace)? (flag 8)`, where `node` is `{ clock heads, uint batch, optionalBuffer value }` (`clock` =
//! `array { fixed32 key, uint length }`): the heads of the DAG the writer had seen, the nodes left in its
//! atomic batch (1 on the last), and the application's value in its `valueEncoding` (`None` for an ack).
//! Every block carries a digest (the system core key the writer saw, or a pointer `pointer` blocks back to the
//! block that names it). Indexers' blocks also carry checkpoints: for the system core, the encryption core and
//! each user view either an [`IndexCheckpoint`](messages::IndexCheckpoint) (`fixed64 signature, uint length`:
//! the indexer's signature of the view at that length, a partial of the view's multisig) or a pointer to the
//! block that has the latest one. Versions 0 and 1 (autobase 6) are decoded to the same fields and never
//! written.
//!
//! # Boot record (`autobase/boot`)
//!
//! `uint version (3), fixed32 systemKey, uint systemLength, uint flags (1 indexersUpdated, 2 fastForwarding, 4
//! recoveries), uint recoveries?`: which system core and how much of it was indexed when this peer last
//! flushed; a base reopens from it.
//!
//! # Linearizing (for the next step)
//!
//! Nodes form a DAG through their heads (and the previous node of their own writer while it is not indexed).
//! [`topolist`] orders them as JS does: a node comes after everything it links to; nodes not linked either way
//! are ordered by writer key (bytewise, lowest first), then by length (`lib/topolist.js`; `lib/linearizer.js`
//! `tieBreak`: "lowest key wins"). The indexers' acks (null-value nodes) confirm a prefix once a majority of
//! indexers has seen it (`lib/consensus.js`, vector clocks, not yet ported); the confirmed prefix is applied to
//! the views and signed in checkpoints; the unconfirmed tail may be reordered and re-applied as new nodes
//! arrive.

pub mod checkpoints;
pub mod clock;
pub mod consensus;
pub mod keys;
pub mod linearizer;
pub mod messages;
pub mod topolist;
