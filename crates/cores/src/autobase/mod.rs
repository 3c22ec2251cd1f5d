//! Autobase: many writers, one view, compatible with JS autobase 7.28.1 (issue #16). The encodings of every
//! record autobase keeps ([`messages`]), the key derivations of its cores ([`keys`]), the digest and checkpoint
//! pointers of writer blocks, written and resolved ([`checkpoints`]), the order of the causal DAG's un-indexed
//! nodes ([`topolist`]), which nodes are indexed and in what order ([`linearizer`], with its [`consensus`] and
//! vector [`clock`]s), the system view ([`system`]: JS `lib/system.js`), the apply state and a minimal
//! [`Autobase`](base::Autobase) over a corestore ([`base`]: JS `_drain` and `lib/apply-state.js`), its
//! replication over protomux streams ([`replicate`]: the writer cores and protomux-wakeup), and the
//! autobase-kv application ([`kv`]; the `autobase-kv` bin in `bins/autobase-kv`).
//!
//! # What exists and what is left
//!
//! Exists, tested against JS autobase 7.28.1:
//! - [`system::SystemView`]: `info` and members over the `_system` hyperbee, `add`/`remove`/`ack`/`add_head`/
//!   `linkable`, `flush` (changed members, clock updates, `info`, one batch), `checkout`, flush points.
//!   `tests/interop/tests/it/autobase_fixture.rs` reads a JS system core's blocks and gets the members, heads,
//!   views, indexers and every flush point JS reports.
//! - [`base::Autobase`], in one process: open (new, by bootstrap key, or reopened from the boot record and
//!   the stored update records), an `open` handler creating views, an `apply` handler with a host that adds,
//!   removes and acks writers, `append`/`append_batch`, `update`, `ack`, `view`; steps 1-4 below and the reboot
//!   of step 5 (a new linearizer over the indexed state, the un-indexed tail re-added and re-applied).
//!   Replication is simulated ([`base::copy_core`], [`base::sync_writers`]: blocks copied between stores
//!   through verified proofs). `tests/interop/tests/it/autobase_apply.rs` runs one autobase-kv script on JS
//!   (`js/autobase_scenario.js`) and on Rust, partitioned the same way, with the same writer keys: the writer
//!   blocks (heads, batch, value), the view entries, the system's members, indexers and their lengths, heads,
//!   pending indexers, system length and indexed length are identical, and so are the system core's key, the
//!   view's key, the system core's blocks and every writer block (digests and checkpoints; re-encoded without
//!   the trace field), byte for byte, and the signed lengths of the system and view cores, for one writer, two
//!   indexers writing concurrently, a non-indexer added then removed, a late writer reordering the tip
//!   (undo), an indexer added over an un-indexed tail (reboot with catch-up), and 8 random scripts of three
//!   bases (where only the order of a node's heads may differ: it follows JS's active-writer order, which its
//!   writer GC and wakeup reshuffle).
//! - **Cores as JS has them.** The system core and the views (and the empty `_encryption` core) are the
//!   manifest cores of [`keys`]: signer-less bootstrap cores before the base has indexers, the indexers' cores
//!   after; they are appended and truncated without a signature (hypercore `set_unsigned_writes`). A batch that
//!   changes the indexers records each view's next key (JS `_generateNextViews`), undo and truncation take the
//!   keys back from the system (`_rollbackViews`), and an indexed indexer change moves every view and the
//!   system core to the new indexers' cores, the indexed prefix copied and named by the prologue
//!   (`_premigrate`); the boot record names the new system core and the application's `open` runs again on
//!   the moved cores. A reopen finds the system core from the boot record and each view by its signers'
//!   namespace among the views the indexed info lists (`_preload`).
//!   Without a signature per system/view append, a reader applying 30,024 nodes of 3 writers
//!   (`examples/autobase_reader_bench.rs`, release, `BATCH=1000`, load 3-7 on 2 cores) spends 1.86-2.22 s of
//!   CPU (5 runs, median 1.98 s: 15,000 nodes per CPU second) where it spent 5.35-6.20 s with signed appends
//!   (5 runs, median 5.75 s): 2.9x at the medians; a whole run (three writers, then one reader) 9.9-10.1 s of
//!   CPU instead of 17.5-18.4.
//! - **Checkpoints.** An indexer (of the info at the system core's signed length, with a quorum: JS
//!   `localIndexer`) signs the system core at the indexed length, the encryption core and each listed view at
//!   its indexed length whenever the indexed length passed what it signed, in the last of its next blocks;
//!   every block carries a checkpoint pointing at them (`shouldWrite` makes `ack` write one); a reopen reloads
//!   what the local writer last wrote from its last block (JS `CheckpointCore`). After each
//!   update, the base reads every indexer's latest checkpoint, and once a quorum signed this system core up to
//!   the indexed length, assembles the multi-signatures and raises the cores' signed lengths (JS
//!   `maybeSigned`/`_assembleMultisig`/commit); a signature that does not verify is refused
//!   (`tests/it/autobase_base.rs`, fuzz target `autobase_checkpoints`). The committed multi-signatures are
//!   kept with the boot record (the local writer's `autobase/signed` user data) and committed again on
//!   reopen, so a reopen keeps the signed lengths (`signed_lengths_survive_a_reopen`).
//! - [`replicate::BaseReplicator`] and [`replicate::sync_base`]: a base over the network. Every writer the
//!   base knows (bootstrap, system members, writers its nodes name, writers announced by wakeup) is replicated
//!   on every connection by its own hypercore replicator, downloading a window of 256 blocks from where the
//!   base reads it (JS `lib/writer.js`); the system and view cores are replicated on every connection too,
//!   as JS's active views are: a core with unsigned writes shows peers its signed prefix on fork 0 and serves
//!   proofs of it with the indexers' multi-signature (hypercore `replicated_head`/`serve_proof`), and takes
//!   no upgrade from peers unless a fast-forward asks for it; a remote's open of another core the store has
//!   is answered (JS corestore's `ondiscoverykey`); the `wakeup` channel (capability: the base key) is opened
//!   on every connection: a lookup is sent once open, lookups are answered with the base's wakeup writers
//!   ([`base::Autobase::wakeup`], JS `_getWakeup`), changes of that list are announced, and announced writers
//!   are opened ([`base::Autobase::hint_writer`], JS `_wakeupWriter`); each change of a tracked core runs an
//!   update round. `crates/cores/tests/it/autobase_network.rs`: three bases on a line of in-memory streams
//!   converge; `tests/interop/tests/it/autobase_kv_interop.rs`: the `autobase-kv` bin and its JS twin on a
//!   local testnet (a JS base with a Rust writer, a Rust base with a JS indexer, three writers written while
//!   partitioned, a removed writer), where `list`, the members, indexers, heads and the indexed, system and
//!   view lengths agree. JS's wakeup announces come only as answers to our lookups (JS announces unasked only
//!   to peers that replicate its system core, `core-coupler`). Stores are not shared: the JS twin keeps a
//!   corestore 7 (RocksDB) store, which the Rust store refuses to open (exit 1, untouched), and JS corestore
//!   7 given a Rust store folder makes a new, empty store beside it.
//! - **Fast-forward** ([`replicate::fast_forward`]; JS `_queueFastForward`, `lib/fast-forward.js`,
//!   `_applyFastForward`): when a peer's system core is signed at least 16 past the indexed length, the base
//!   drops its system core's unsigned tail, takes the peer's signed head (the multi-signature is verified
//!   against the indexers' manifest before anything is stored; a head whose signature does not verify is
//!   refused and its peer dropped, and the fast-forward gives up), downloads the system core to it, reads
//!   each indexer's core at its indexed length (for its manifest), takes each view the system lists at the
//!   length it lists and downloads it, then restarts from the system there
//!   ([`base::Autobase::finish_fast_forward`]: the views opened again, a linearizer from the system's heads,
//!   each writer read and downloaded from the length the system indexed, the boot record's `fastForwarding`
//!   flag set); the un-indexed tail is applied as usual and a reopen starts from the boot record.
//!   `tests/it/autobase_network.rs`: a late peer of a 1500-put base fast-forwards, lists the whole view and
//!   holds 257 of the writer's 1500 blocks (the first window, read before the system core's signed length
//!   reached it, and the last indexed block); a tampered signature is refused. Against JS both ways
//!   (`autobase_kv_interop.rs`, `late_reader_fast_forwards`, 1200 puts): a Rust reader of a JS base holds
//!   257 of the 1200 writer blocks, a JS reader of a Rust base 323 (its contiguous length), and both list
//!   the whole view. The system and view blocks are downloaded whole at the fast-forward (JS reads them on
//!   demand); only the writers' are sparse.
//!
//! - **Encrypted bases** ([`encryption`]; JS `encryptionKey`): [`base::AutobaseOptions::encryption_key`]
//!   encrypts writer cores (hypercore's default encryption keyed from the writer's key), the system core and
//!   the views (version-1 manifests: the block key `hash(NS_VIEW_BLOCK_KEY || bootstrap || key || name)`,
//!   so a view moved at an indexer change reads the blocks copied raw from its old core,
//!   `Hypercore::append_raw`); `_encryption` stays plain and empty as on a JS base without forks. The view
//!   namespaces include the key's hash. The key is kept in the local writer's `autobase/encryption` user data
//!   (a reopen needs none; a different key given is refused). A wrong key is
//!   [`base::AutobaseError::WrongEncryptionKey`] (the kept key differs, the system core or the bootstrap
//!   writer's blocks do not decode), and the view is left as it was (`tests/it/autobase_encrypted.rs`). Key
//!   derivations and stored blocks match vectors from the pinned JS
//!   (`tests/it/autobase_encryption_vectors.rs`, generator `tests/interop/js/autobase_encryption_vectors.js`,
//!   re-run by `vectors_fresh`), the version-2 type-1 layout (key id, keyed plaintext hash) included; fuzz
//!   target `autobase_encryption`. `autobase-kv create/join --encryption-key HEX` and its JS twin:
//!   `autobase_kv_interop.rs` runs an encrypted JS base with a Rust writer, an encrypted Rust base with a JS
//!   indexer (both: the same `list`, members, indexers, heads, indexed, system and view lengths and signed
//!   lengths, past 0, on both sides, and a late reader of the writer's side lists the same), and a Rust
//!   reader given the wrong key for a JS base (exit 1, `wrong encryption key`). An encrypted block's header
//!   carries a (blinded) fork id, and the system and view blocks carry fork 0 whatever the apply's undos did
//!   to the core's local fork: JS encrypts with the fork of the core's head (`state.encryptionFork`), which
//!   autobase never moves (it truncates only its `batch` session), so the peers store the same ciphertexts
//!   and the indexers' signatures verify on every peer's tree (until this was so, a Rust peer's signed
//!   lengths stayed at 0 against JS's 14/5: blocks from the first undo on differed;
//!   `hypercore_api.rs` `encryption_fork_is_the_head_fork`, `autobase_encrypted.rs`
//!   `encrypted_indexers_agree_after_undoing`).
//! - **Optimistic appends** (JS `append(value, { optimistic: true })`, `_optimisticApply`):
//!   [`base::Autobase::append_optimistic`] writes one node, a batch of one with the optimistic flag, from a
//!   writer that need not be a member (the local writer is then read as a removed writer, listed for
//!   wakeup, and found again at open). A base whose [`base::Handlers::optimistic`] is on (JS's
//!   `optimistic: true`) applies an optimistic node of a writer that is not a member alone, with its head
//!   added to the system and [`base::ApplyNode::optimistic`] set; it stays applied only if the apply moved
//!   the writer's member length ([`base::Host::ack_writer`], which records a non-member as a removed member
//!   at that length, or `add_writer`); otherwise, or if the apply fails ([`base::AutobaseError::Apply`]),
//!   the system's unflushed state is put back, the views are truncated to what the system lists and the node
//!   is skipped as a removed writer's. A member's optimistic nodes are applied as usual, and a batch of more
//!   than one (or a node that is not the first of its apply batch) is never optimistic: skipped, as JS does.
//!   The autobase-kv apply acks the writer of an optimistic `put` and drops any other optimistic op (both
//!   twins; `autobase-kv put --optimistic`). `tests/it/autobase_optimistic.rs` (acked, un-acked, a
//!   failing or non-optimistic apply, hostile batches of two and missing heads) and
//!   `autobase_kv_interop.rs` (a JS reader's optimistic put read by a Rust base, a Rust reader's by a JS
//!   base: the same lists and system states), and `autobase_apply.rs` `an_optimistic_put_of_a_reader_matches_js`
//!   (acked puts, a refused plain put, two dropped ops: every writer block, the system blocks and the view
//!   byte for byte as JS's). Whether a JS peer names a dropped optimistic node (one nothing acked) in its next
//!   block's heads follows when its writer GC and wakeup reread that writer; the Rust base reads it as soon
//!   as its core is there (the scenario makes both read it, through a later acked put).
//!
//! Left, in order:
//! - **Traces** (`trace` in writer blocks: which signed system/view blocks the apply of a local node read,
//!   for peers to prefetch); JS writes them, this base does not yet (the only field of writer blocks that
//!   differs from JS's).
//! - **Fast-forward, the rest**: to a system core of another key that a quorum of the indexers' checkpoints
//!   name (JS `_checkSystemUpgrade`, an indexer change this peer has not applied yet: until then it applies
//!   writer blocks up to that change), views and system blocks read on demand instead of downloaded whole
//!   (the apply's reads are synchronous: a read of a missing block would have to wait for the network), an
//!   encrypted base's encryption view, and `forceFastForward`/`repair`.
//! - A view the system lists under a next key (an indexer change still in the un-indexed tip) is found on
//!   reopen only by its current core's key; JS also finds it by the derived namespace.
//! - **More crash tests of the apply.** The system and views are derived state: written without a sync per append
//!   and synced before each boot record (every 64 batches, `flush`, drop); a reopen truncates them to the boot
//!   record's indexed length (or to nothing, if a view is shorter than that `info` names) and re-applies the
//!   rest from the writers. JS instead writes each batch atomically across cores (`store.atomize`). Tested
//!   with damaged records, a shortened view and a one-writer base killed with SIGKILL at random points
//!   (`tests/it/autobase_crash.rs`); not yet with several writers or a power loss.
//! - **Encryption, the rest**: version-2 cores (a base with `manifestVersion` 2, forks: key rotation through
//!   `_encryption` descriptors, `legacyBlocks`) use the type-1 layout, which exists only as functions here (the
//!   base creates version-1 cores only); `blindEncryption` (`autobase/blind-encryption`, encryption-encoding);
//!   encrypted anchors; the `encrypt: true` option (a key generated from the store).
//! - Anchors, `update` hooks; traces of optimistic applies (JS prefetches the blocks an optimistic node's
//!   apply read).
//! - A test where a wakeup announce is the only way a peer learns of a writer.
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
//! # Linearizing
//!
//! Nodes form a DAG through their heads (and the previous node of their own writer while it is not indexed).
//! [`topolist`] orders them as JS does: a node comes after everything it links to; nodes not linked either way
//! are ordered by writer key (bytewise, lowest first), then by length (`lib/topolist.js`; `lib/linearizer.js`
//! `tieBreak`: "lowest key wins"). [`linearizer::Linearizer`] (`lib/linearizer.js`) keeps the un-indexed DAG,
//! one node buffer per writer (`lib/writer.js`: nodes from the writer's indexed length on; a batch joins the DAG
//! once its last node arrives) and the [`consensus`] (`lib/consensus.js`): every indexer node carries a vector
//! clock of the indexer lengths it saw; an indexer node is indexed once a majority of indexers have acked it
//! (a later node of theirs sees it and is strictly newer) and a majority confirm those acks; a confirmed node is
//! yielded with everything it depends on, in topolist order. Each `update()` reports the nodes indexed in this
//! round, the new order of the un-indexed tip, and `shared`/`undo`/`length`: of the nodes applied since the last
//! update (the previous indexed + tip), the first `shared` are still in place and `undo` must be undone. The
//! tests in `tests/interop/tests/it/autobase_linearizer.rs` feed JS's `Linearizer` and this one the same
//! random DAGs (1-3 indexers, forks, batches, removed writers, an indexer change) and compare every update.
//!
//! # Applying the linearizer's output (JS `lib/apply-state.js` `update(u, localNodes)`, in [`base`])
//!
//! The base's drain loop (`index.js` `_drain`) adds the remote writers' new nodes (whole batches), then the local
//! writer's pending appends (each linking the linearizer's current heads, `getHeads()`), calls `update()`, and
//! hands the result to the apply, which keeps one **update record** per applied batch
//! ([`LinearizerUpdate`](messages::LinearizerUpdate): `key`, `length` of the batch's last node, `batch` = nodes
//! in it, `systemLength` = the system core's length after it, `indexers` = whether it changed the indexer
//! set), stored in the local writer's key space under [`encode_linearizer_key`](messages::encode_linearizer_key)
//! `(seq)`. With `u` the update:
//!
//! 1. **Indexed nodes already applied in place** (`i < min(u.indexed.len(), u.shared)`): for each one ending a
//!    batch (`batch == 1`) the apply shifts its writer ([`linearizer::Linearizer::shift_writer`]) and steps to
//!    the next update record; it stops at the first record that changed the indexers (`indexersUpdated = i`).
//! 2. **Undo** `u.undo` nodes: pop update records from the end until their `batch` counts cover `undo`, then
//!    truncate the system core to the last remaining record's `systemLength` (the indexed length when none is
//!    left); the system's `info` at that length gives the lengths to truncate the encryption core and every
//!    user view to (a view the system does not list is unmapped and emptied). If a popped record had changed
//!    the indexers, the views are rolled back to their previous cores.
//! 3. **Apply** positions `u.shared..u.length` of `u.indexed ++ u.tip`, counting the nodes of the current batch:
//!    - a node of a removed writer that is not an indexer (and not applied optimistically) is skipped: no
//!      apply, no system change; at its batch's end an update record is pushed all the same. (It is **not**
//!      shifted off its writer here, even when indexed: only step 1 of a later round does that.)
//!    - otherwise the system adds the node as a DAG head, preceded (oldest first) by its
//!      [`causal_dependencies`](linearizer::Linearizer::causal_dependencies) (its links into removed
//!      writers' nodes) that are past that writer's recorded length (`system.linkable`); a node with a value,
//!      of a writer not removed, joins the apply batch as `{ indexed, from: writer core, length, value, heads:
//!      actualHeads }`;
//!    - at the batch's last node (`batch == 1`): the application's `apply(batch, view, host)` runs if the batch
//!      has values; then, if the system saw an indexer change, the next views are generated; the system flushes
//!      (changed members, then `info`, one hyperbee batch); the update record is pushed; if the node is
//!      indexed and no indexer change was seen yet in this round, its writer is shifted, and if this batch
//!      changed the indexers, `indexersUpdated = i + 1` (later indexed nodes are not shifted).
//! 4. **Index**: the update records covering the first `indexersUpdated` (or all `u.indexed.len()`) indexed nodes
//!    are dropped, and the last one's `systemLength` becomes the system view's indexed length: what the indexers
//!    sign in their checkpoints.
//! 5. If the indexers changed, the base premigrates the views and the system core to their new keys and
//!    reboots: a new
//!    [`Linearizer`](linearizer::Linearizer) for the new indexers over the indexed system state (its heads and
//!    member lengths), and a catch-up re-adds the nodes of the stored update records in order.
//! 6. The local writer's new nodes are appended to its core (indexers add checkpoints), and the boot record
//!    and views are flushed; then the indexers' checkpoints are assembled into signed lengths. Here the update
//!    records are kept in the local writer's user data (`autobase/updates`, [`base::encode_updates`]) with the
//!    boot record, not in a local key space.
//!
//! Indexers ack (append a null-value node) when [`should_ack`](linearizer::Linearizer::should_ack) says so
//! (`pending`: indexers are being added), debounced by the base's ack timer.

pub mod base;
pub mod checkpoints;
pub mod clock;
pub mod consensus;
pub mod encryption;
pub mod keys;
pub mod kv;
pub mod linearizer;
pub mod messages;
pub mod replicate;
pub mod system;
pub mod topolist;
