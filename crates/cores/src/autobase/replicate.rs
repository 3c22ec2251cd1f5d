//! A base over the network (JS autobase 7.28.1 `base.replicate(stream)`: the corestore's replication of the
//! writer cores, plus protomux-wakeup on the base's discovery key).
//!
//! What JS does, and what [`BaseReplicator`] does the same way:
//!
//! - **Writer cores.** JS opens each writer's core in the store (`store.get({ key, active: false })`) and
//!   downloads it while the writer is behind, 256 blocks from where it reads it (`core.download({ start,
//!   end: start + 256, linear: true })`, `lib/writer.js`); its corestore opens a core a remote asks for by
//!   discovery key when the store has it (`ondiscoverykey`, `createIfMissing: false`). Here every writer the
//!   base knows (the bootstrap writer, the system's members, the writers its nodes name, the local writer)
//!   has a [`Replicator`] attached to every connection, downloading a window of [`WRITER_WINDOW`] blocks from
//!   where the base reads it next ([`BaseReplicator::add_writer_from`]; the window follows as the base reads
//!   on); a remote's open of any other core is answered when the store has that core (served, nothing
//!   downloaded).
//! - **System and view cores.** JS's views are active cores: replicated on every connection, each at its
//!   committed (signed) length with the indexers' multi-signature, the unsigned tail in a local session.
//!   Here [`sync_base`] replicates the system and view cores on every connection too; a core with unsigned
//!   writes shows peers only its signed prefix on fork 0 and serves proofs of that tree with the
//!   multi-signature that signed it ([`Hypercore::replicated_head`], [`Hypercore::serve_proof`]), and takes
//!   no upgrade from peers unless a fast-forward asks for it.
//! - **Fast-forward.** JS fast-forwards when the system core's replicated (signed) length is at least 16
//!   past what it applied (`_queueFastForward`, `lib/fast-forward.js`, `_applyFastForward`): it reads the
//!   system at that length, its views and indexers, and restarts from there, each writer from the length
//!   the system indexed. [`fast_forward`] does the same (see there); a JS peer fast-forwards from a Rust base
//!   and a Rust peer from a JS base (`tests/interop/tests/it/autobase_kv_interop.rs`). JS also
//!   fast-forwards to a system core of another key that a quorum of the indexers' checkpoints name
//!   (`_checkSystemUpgrade`: an indexer change it has not applied yet); not here yet.
//! - **Wakeup.** JS opens a `wakeup` channel (capability: the base key; topic: the base's discovery key) on
//!   every stream. A peer answers a lookup with its "wakeup" writers (`_getWakeup`: the writers that are not
//!   active indexers and still have nodes not indexed) and announces them to a peer that lacks one of their
//!   cores (`core-coupler` on the system core); an announce makes the receiver open those writers
//!   (`hintWakeup`, `_wakeupWriter`: known to the system or not) and download them. Here each connection's
//!   wakeup channel sends a lookup once open, answers lookups, announces the base's wakeup writers when they
//!   change, and keeps the writers announced to it for [`sync_base`], which opens them.
//! - **Updates.** JS bumps the base when a writer core grows; here [`BaseReplicator::changed`] ticks whenever a
//!   tracked core changes or an announce arrives, and the owner of the base calls [`sync_base`], which runs
//!   `update()` and opens the writers it newly knows, then [`fast_forward`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::corestore::Corestore;
use crate::crypto::discovery_key;
use crate::hypercore::replicator::{DownloadGuard, Replicator, PROTOCOL};
use crate::hypercore::Hypercore;
use crate::protomux::Mux;
use crate::protomux_wakeup::{WakeupChannel, WakeupMessage, WriterHint};

use super::base::{
    prepare_fast_forward, Autobase, AutobaseError, Handlers, Result, FAST_FORWARD_MINIMUM,
};
use super::system::SystemView;
use crate::hyperbee::Hyperbee;

/// Replicates one base's writer cores and runs its wakeup channel on every connection it is given.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct BaseReplicator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Corestore,
    key: [u8; 32],
    discovery_key: [u8; 32],
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    cores: HashMap<[u8; 32], Tracked>,
    conns: Vec<Conn>,
    next_conn: u64,
    hints: Vec<WriterHint>,
    announce: Vec<WriterHint>,
    /// When the last fast-forward gave up.
    ff_failed_at: Option<tokio::time::Instant>,
}

#[derive(Debug)]
struct Tracked {
    replicator: Replicator,
    /// The blocks downloaded: `[start, start + WRITER_WINDOW)` of a writer core; none for a core only served.
    download: Option<(u64, DownloadGuard)>,
    watcher: JoinHandle<()>,
}

/// How many blocks of a writer are downloaded ahead of where the base reads it (JS `lib/writer.js`:
/// `core.download({ start, end: start + 256 })`): a peer that fast-forwards past a writer's history never
/// downloads more of it than one window.
pub const WRITER_WINDOW: u64 = 256;

impl Tracked {
    /// Moves the download window to start at `from`, when the base read half of it (or went back).
    fn window(&mut self, from: u64) {
        let moved = match &self.download {
            None => true,
            Some((start, _)) => from < *start || from >= start + WRITER_WINDOW / 2,
        };
        if moved {
            let guard = self
                .replicator
                .download_range(from, Some(from.saturating_add(WRITER_WINDOW)));
            self.download = Some((from, guard));
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

#[derive(Debug)]
struct Conn {
    id: u64,
    mux: Mux,
    is_initiator: bool,
    handshake_hash: Vec<u8>,
    remote: Option<[u8; 32]>,
    announce: mpsc::UnboundedSender<Vec<WriterHint>>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

impl BaseReplicator {
    /// A replicator for the base `key` whose cores are in `store` (nothing tracked or attached yet).
    pub fn new(store: Corestore, key: [u8; 32]) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                key,
                discovery_key: discovery_key(&key),
                state: Mutex::new(State::default()),
                changed: watch::channel(0).0,
            }),
        }
    }

    /// The base's discovery key (the swarm topic and the wakeup channel's id).
    pub fn discovery_key(&self) -> [u8; 32] {
        self.inner.discovery_key
    }

    /// A receiver that sees a new value whenever a tracked core changed (blocks arrived, a peer told its
    /// length) or a peer announced writers: then call [`sync_base`].
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// The connections attached and not closed.
    pub fn connections(&self) -> usize {
        self.inner.lock().conns.len()
    }

    /// The replicator of the core with discovery key `dk`, if tracked.
    pub fn replicator(&self, dk: &[u8; 32]) -> Option<Replicator> {
        self.inner
            .lock()
            .cores
            .get(dk)
            .map(|t| t.replicator.clone())
    }

    /// Replicates the writer core `key` on every connection (opened in the store, created empty when
    /// missing) and downloads it live from its start. See [`BaseReplicator::add_writer_from`].
    pub fn add_writer(&self, key: [u8; 32]) -> Result<()> {
        self.add_writer_from(key, 0)
    }

    /// Replicates the writer core `key` on every connection (opened in the store, created empty when
    /// missing) and downloads the [`WRITER_WINDOW`] blocks from `from` (where the base reads it next) as
    /// they appear; called again as the base reads on, the window follows.
    pub fn add_writer_from(&self, key: [u8; 32], from: u64) -> Result<()> {
        let dk = discovery_key(&key);
        if let Some(t) = self.inner.lock().cores.get_mut(&dk) {
            if !t.replicator.core().writable() {
                t.window(from);
            }
            return Ok(());
        }
        let core = self.inner.store.get_by_key(key, None)?;
        let window = (!core.writable()).then_some(from);
        self.track(core, window);
        Ok(())
    }

    /// Replicates `core` on every connection, downloading nothing on its own (the local writer, and the
    /// system and view cores a base serves; JS corestore's cores opened for a remote).
    pub fn add_core(&self, core: Hypercore) {
        self.track(core, None);
    }

    fn track(&self, core: Hypercore, window: Option<u64>) {
        let dk = core.discovery_key();
        let mut g = self.inner.lock();
        if g.cores.contains_key(&dk) {
            return;
        }
        let replicator = Replicator::new(core.clone());
        let download = window.map(|from| {
            (
                from,
                replicator.download_range(from, Some(from.saturating_add(WRITER_WINDOW))),
            )
        });
        for c in &g.conns {
            replicator.attach_remote(&c.mux, c.is_initiator, &c.handshake_hash, c.remote);
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let mut rx = core.subscribe();
        let mut state = replicator.watch();
        let watcher = tokio::spawn(async move {
            loop {
                let dropped = tokio::select! {
                    r = rx.changed() => r.is_err(),
                    r = state.changed() => r.is_err(),
                };
                let Some(inner) = weak.upgrade() else { return };
                if dropped {
                    return;
                }
                inner.bump();
            }
        });
        g.cores.insert(
            dk,
            Tracked {
                replicator,
                download,
                watcher,
            },
        );
        drop(g);
        self.inner.bump();
    }

    /// Replicates the base over `mux`, where we are `is_initiator` on a stream with `handshake_hash`
    /// (the remote's stream key, if known, goes into the replicators' peer stats). Call it from
    /// [`Mux::new_with`]'s setup, so that no remote open arrives before our channels and pairings exist.
    pub fn attach(
        &self,
        mux: &Mux,
        is_initiator: bool,
        handshake_hash: &[u8],
        remote: Option<[u8; 32]>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = {
            let mut g = self.inner.lock();
            let id = g.next_conn;
            g.next_conn += 1;
            for t in g.cores.values() {
                t.replicator
                    .attach_remote(mux, is_initiator, handshake_hash, remote);
            }
            g.conns.push(Conn {
                id,
                mux: mux.clone(),
                is_initiator,
                handshake_hash: handshake_hash.to_vec(),
                remote,
                announce: tx,
            });
            id
        };
        // the remote's opens of cores we do not track: answered when the store has the core (JS corestore's
        // `ondiscoverykey`); tracked cores have their own pairings, which protomux prefers
        let mut pairing = mux.pair(PROTOCOL, None);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(incoming) = pairing.next().await {
                let Some(inner) = weak.upgrade() else { return };
                let Some(dk) = incoming.id().and_then(|i| <[u8; 32]>::try_from(i).ok()) else {
                    continue;
                };
                if let Ok(Some(core)) = inner.store.get_by_discovery_key(&dk) {
                    // attaching creates our channel, which pairs with the waiting open; nothing is
                    // downloaded until the base asks (a writer from where it reads it)
                    BaseReplicator { inner }.add_core(core);
                }
                drop(incoming);
            }
        });
        let wakeup = WakeupChannel::open(
            mux,
            &self.inner.discovery_key,
            &self.inner.key,
            is_initiator,
            handshake_hash,
            true,
        );
        let weak = Arc::downgrade(&self.inner);
        let closed = mux.clone();
        tokio::spawn(async move {
            if let Some(ch) = wakeup {
                run_wakeup(ch, rx, &weak).await;
            }
            closed.closed().await;
            if let Some(inner) = weak.upgrade() {
                inner.lock().conns.retain(|c| c.id != id);
            }
        });
    }

    /// Sets the writers we announce (the base's wakeup list, [`Autobase::wakeup`]); a change is sent to every
    /// peer at once.
    pub fn set_announce(&self, writers: Vec<WriterHint>) {
        let mut g = self.inner.lock();
        if g.announce == writers {
            return;
        }
        g.announce.clone_from(&writers);
        if writers.is_empty() {
            return;
        }
        for c in &g.conns {
            let _ = c.announce.send(writers.clone());
        }
    }

    /// The writers peers announced since the last call.
    pub fn take_hints(&self) -> Vec<WriterHint> {
        std::mem::take(&mut self.inner.lock().hints)
    }
}

async fn run_wakeup(
    mut ch: WakeupChannel,
    mut out: mpsc::UnboundedReceiver<Vec<WriterHint>>,
    inner: &Weak<Inner>,
) {
    if let Err(e) = ch.opened().await {
        tracing::debug!("autobase wakeup channel not opened: {e}");
        return;
    }
    tracing::debug!("autobase wakeup channel open");
    // what JS's `onlookup` answers; JS only announces unasked to peers that replicate its system core
    let current = |inner: &Weak<Inner>| inner.upgrade().map(|i| i.lock().announce.clone());
    if ch.lookup(None).await.is_err() {
        return;
    }
    match current(inner) {
        Some(w) if !w.is_empty() => {
            if ch.announce(&w).await.is_err() {
                return;
            }
        }
        Some(_) => {}
        None => return,
    }
    loop {
        tokio::select! {
            msg = ch.recv() => {
                let Some(msg) = msg else { return };
                let Some(i) = inner.upgrade() else { return };
                match msg {
                    WakeupMessage::Lookup(_) => {
                        let w = i.lock().announce.clone();
                        tracing::debug!("autobase wakeup: lookup, answering {} writers", w.len());
                        if !w.is_empty() && ch.announce(&w).await.is_err() {
                            return;
                        }
                    }
                    WakeupMessage::Announce(hints) => {
                        tracing::debug!("autobase wakeup: {} writers announced", hints.len());
                        if !hints.is_empty() {
                            i.lock().hints.extend(hints);
                            i.bump();
                        }
                    }
                    WakeupMessage::Info(_) => {}
                }
            }
            w = out.recv() => {
                let Some(w) = w else { return };
                if ch.announce(&w).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One round of a replicated base (what JS's bump does when a writer core grew or a peer announced): the
/// announced writers are opened (JS `_wakeupWriter`), the base updates (reads, linearizes and applies what
/// the cores hold), every writer it now knows (the bootstrap writer, the system's members, the writers its
/// nodes name) is replicated with a download window from where the base reads it, the system and view cores
/// are served (at their signed lengths), and its wakeup writers are announced. Returns whether the base's
/// system changed (its length), so a caller can wait for convergence. Does nothing while a fast-forward is
/// under way ([`fast_forward`]).
pub fn sync_base<H: Handlers>(base: &mut Autobase<H>, repl: &BaseReplicator) -> Result<bool> {
    if base.is_fast_forwarding() {
        return Ok(false);
    }
    let before = base.system().core_length();
    for h in repl.take_hints() {
        base.hint_writer(h.key, h.length)?;
    }
    base.update()?;
    let mut keys = vec![base.key()];
    keys.extend_from_slice(base.writers());
    keys.extend(base.system().list()?.into_iter().map(|(k, _)| k));
    repl.add_core(base.local().clone());
    for k in keys {
        if k != base.local_key() {
            repl.add_writer_from(k, base.writer_position(&k))?;
        }
    }
    // JS replicates the system and view cores as active cores: peers fast-forward from them
    for core in base.served_cores() {
        repl.add_core(core);
    }
    repl.set_announce(
        base.wakeup()
            .into_iter()
            .map(|(key, length)| WriterHint { key, length })
            .collect(),
    );
    Ok(base.system().core_length() != before)
}

/// How long [`fast_forward`] waits for peers before it gives up (JS waits 5 s per read).
pub const FAST_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after a failed fast-forward no other is tried (JS `MIN_FF_WAIT`).
pub const FAST_FORWARD_RETRY: Duration = Duration::from_secs(300);

/// The signed length a peer's system core is at, when it is at least [`FAST_FORWARD_MINIMUM`] ahead of the
/// base's indexed length (JS `_queueFastForward`: the system core's replicated length against the applied
/// one) and no failed fast-forward was tried lately.
pub fn fast_forward_due<H: Handlers>(base: &Autobase<H>, repl: &BaseReplicator) -> Option<u64> {
    if base.is_fast_forwarding() {
        return None;
    }
    if repl
        .inner
        .lock()
        .ff_failed_at
        .is_some_and(|t| t.elapsed() < FAST_FORWARD_RETRY)
    {
        return None;
    }
    let core = base.system().db().core();
    let rep = repl.replicator(&core.discovery_key())?;
    let remote = rep.remote_length();
    let ours = base.state().indexed_length().max(core.signed_length());
    (remote >= ours.saturating_add(FAST_FORWARD_MINIMUM)).then_some(remote)
}

/// Fast-forwards the base when a peer's system core is signed far enough ahead ([`fast_forward_due`]; JS
/// `FastForward` and `_applyFastForward`): the system core takes the peer's signed head (its multi-signature
/// verified against the indexers' manifest before anything is stored: a head whose signature does not
/// verify is refused, and the fast-forward gives up), its blocks are downloaded, the indexers' cores are read
/// at their indexed lengths (for their manifests: the views' keys come from them), each view the system
/// lists is taken at the length it lists (signed by the same indexers) and downloaded, and the base goes on
/// from there ([`Autobase::finish_fast_forward`]): each writer from the length the system indexed, so no
/// earlier writer block is downloaded or applied. Returns whether it fast-forwarded; within `timeout`, else
/// it gives up ([`Autobase::abort_fast_forward`]) and is not tried again for [`FAST_FORWARD_RETRY`].
pub async fn fast_forward<H: Handlers>(
    base: &mut Autobase<H>,
    repl: &BaseReplicator,
    timeout: Duration,
) -> Result<bool> {
    let Some(target) = fast_forward_due(base, repl) else {
        return Ok(false);
    };
    tracing::debug!(
        signed = target,
        indexed = base.state().indexed_length(),
        "autobase: fast-forwarding"
    );
    let core = base.begin_fast_forward()?;
    let store = base.store().clone();
    let fetched =
        tokio::time::timeout(timeout, fetch_fast_forward(&store, repl, &core, target)).await;
    let done = match fetched {
        Ok(Ok(())) => base.finish_fast_forward(),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AutobaseError::Apply("fast-forward timed out".into())),
    };
    match done {
        Ok(()) => {
            tracing::debug!(
                length = base.state().indexed_length(),
                "autobase: fast-forwarded"
            );
            Ok(true)
        }
        Err(e) => {
            tracing::debug!("autobase: fast-forward given up: {e}");
            repl.inner.lock().ff_failed_at = Some(tokio::time::Instant::now());
            base.abort_fast_forward()?;
            Ok(false)
        }
    }
}

/// Waits until `rep`'s core is at least `length` long.
async fn wait_length(rep: &Replicator, length: u64) {
    let mut rx = rep.core().subscribe();
    let mut state = rep.watch();
    while rep.core().length() < length {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            r = state.changed() => if r.is_err() { return },
        }
    }
}

/// The network part of a fast-forward: the system core's signed head and blocks, the indexers' manifests,
/// the views at the lengths the system lists.
async fn fetch_fast_forward(
    store: &Corestore,
    repl: &BaseReplicator,
    core: &Hypercore,
    target: u64,
) -> Result<()> {
    let missing = || AutobaseError::Apply("fast-forward: a core is not replicated".into());
    let rep = repl.replicator(&core.discovery_key()).ok_or_else(missing)?;
    rep.poke();
    wait_length(&rep, target).await;
    let length = core.length();
    rep.download(0, length).await;
    let system = SystemView::open(Hyperbee::new(core.clone()))?;
    let info = system.indexed_info(length)?;
    for idx in &info.indexers {
        repl.add_writer_from(idx.key, idx.length)?;
        if idx.length > 0 {
            let r = repl
                .replicator(&discovery_key(&idx.key))
                .ok_or_else(missing)?;
            r.get(idx.length - 1).await?;
        }
    }
    for v in &info.views {
        if v.length == 0 {
            continue;
        }
        let view = store.get_by_key(v.key, None)?;
        prepare_fast_forward(&view)?;
        repl.add_core(view.clone());
        let r = repl.replicator(&view.discovery_key()).ok_or_else(missing)?;
        r.poke();
        wait_length(&r, v.length).await;
        r.download(0, v.length).await;
    }
    Ok(())
}
