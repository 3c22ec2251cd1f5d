//! A base over the network (JS autobase 7.28.1 `base.replicate(stream)`: the corestore's replication of the
//! writer cores, plus protomux-wakeup on the base's discovery key).
//!
//! What JS does, and what [`BaseReplicator`] does the same way:
//!
//! - **Writer cores.** JS opens each writer's core in the store (`store.get({ key, active: false })`) and
//!   downloads it while the writer is behind (`core.download({ start, end: start + 256, linear: true })`,
//!   `lib/writer.js`); its corestore attaches a core to every stream while it downloads, and opens a core a
//!   remote asks for by discovery key when the store has it (`ondiscoverykey`, `createIfMissing: false`).
//!   Here every writer the base knows (the bootstrap writer, the system's members, the writers its nodes
//!   name, the local writer) has a [`Replicator`] attached to every connection, downloading everything live
//!   ([`Replicator::download_all`]); a remote's open of any other core is answered when the store has that
//!   core.
//! - **Wakeup.** JS opens a `wakeup` channel (capability: the base key; topic: the base's discovery key) on
//!   every stream. A peer answers a lookup with its "wakeup" writers (`_getWakeup`: the writers that are not
//!   active indexers and still have nodes not indexed) and announces them to a peer that lacks one of their
//!   cores (`core-coupler` on the system core); an announce makes the receiver open those writers
//!   (`hintWakeup`, `_wakeupWriter`: known to the system or not) and download them. Here each connection's
//!   wakeup channel sends a lookup once open, answers lookups, announces the base's wakeup writers when they
//!   change, and keeps the writers announced to it for [`sync_base`], which opens them.
//! - **Updates.** JS bumps the base when a writer core grows; here [`BaseReplicator::changed`] ticks whenever a
//!   tracked core changes or an announce arrives, and the owner of the base calls [`sync_base`], which runs
//!   `update()` and opens the writers it newly knows.
//!
//! The system and view cores are this peer's own (see the module docs of [`super`]), so they are not
//! replicated by the base: a peer rebuilds them from the writers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::corestore::Corestore;
use crate::crypto::discovery_key;
use crate::hypercore::replicator::{DownloadGuard, Replicator, PROTOCOL};
use crate::hypercore::Hypercore;
use crate::protomux::Mux;
use crate::protomux_wakeup::{WakeupChannel, WakeupMessage, WriterHint};

use super::base::{Autobase, Handlers, Result};

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
}

#[derive(Debug)]
struct Tracked {
    replicator: Replicator,
    _download: Option<DownloadGuard>,
    watcher: JoinHandle<()>,
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
    /// missing) and downloads it live. Does nothing for a core already tracked.
    pub fn add_writer(&self, key: [u8; 32]) -> Result<()> {
        if self.inner.lock().cores.contains_key(&discovery_key(&key)) {
            return Ok(());
        }
        let core = self.inner.store.get_by_key(key, None)?;
        self.add_core(core);
        Ok(())
    }

    /// Replicates `core` on every connection; a core we cannot append to is downloaded live.
    pub fn add_core(&self, core: Hypercore) {
        let dk = core.discovery_key();
        let mut g = self.inner.lock();
        if g.cores.contains_key(&dk) {
            return;
        }
        let replicator = Replicator::new(core.clone());
        let download = (!core.writable()).then(|| replicator.download_all());
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
                _download: download,
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
                    // attaching creates our channel, which pairs with the waiting open
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
/// nodes name) is replicated, and its wakeup writers are announced. Returns whether the base's system
/// changed (its length), so a caller can wait for convergence.
pub fn sync_base<H: Handlers>(base: &mut Autobase<H>, repl: &BaseReplicator) -> Result<bool> {
    let before = base.system().core_length();
    for h in repl.take_hints() {
        base.hint_writer(h.key, h.length)?;
    }
    base.update()?;
    let mut keys = vec![base.key(), base.local_key()];
    keys.extend_from_slice(base.writers());
    keys.extend(base.system().list()?.into_iter().map(|(k, _)| k));
    for k in keys {
        if k == base.local_key() {
            repl.add_core(base.local().clone());
        } else {
            repl.add_writer(k)?;
        }
    }
    repl.set_announce(
        base.wakeup()
            .into_iter()
            .map(|(key, length)| WriterHint { key, length })
            .collect(),
    );
    Ok(base.system().core_length() != before)
}
