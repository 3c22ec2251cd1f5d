//! Where a server's record was found, shared by all of a node's connects to that server.
//!
//! Every connect needs the DHT nodes holding the server's announcement (they relay the handshake). Looking
//! them up is a whole FIND_PEER query (tens of requests on the public DHT), and a burst of local connections
//! (a browser or a load balancer opening many at once through one proxy) used to start one query each: the
//! requests queued behind the congestion window and the connects finished a few per drain. Here:
//!
//! - at most one query per server runs at a time; connects that need it meanwhile wait for its answer;
//! - the nodes that held the record are remembered (as the JS keeps `_relayAddressesCache`, without expiry,
//!   at most [`MAX_ENTRIES`] servers), so later connects handshake through them at once;
//! - a connect whose handshakes through remembered nodes all failed asks for a fresh query
//!   ([`PeerRoutes::find`] with the [`Found::generation`] it used): one query again, shared by every connect
//!   that failed on the same stale entry.
//!
//! The wire is untouched: each connect still sends its own handshake, as the JS does.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::dht_rpc::messages::Id;

/// Servers remembered at most (the JS cache's size); the oldest entry is dropped first.
pub const MAX_ENTRIES: usize = 512;

/// Nodes holding a server's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The nodes, best first.
    pub relays: Vec<SocketAddrV4>,
    /// Which answer this is (a retry after a failure names it so that one fresh query serves all).
    pub generation: u64,
    /// True when the nodes come from an earlier query (they may have gone stale).
    pub remembered: bool,
}

/// A query's outcome as published to the connects waiting for it: `None` while running, then the nodes
/// (empty: the record was not found) and their generation, or `Err` (the query failed; each waiter runs its
/// own).
type Published = Option<Result<(Vec<SocketAddrV4>, u64), ()>>;

#[derive(Debug)]
enum Slot {
    /// A query is under way.
    Finding(watch::Receiver<Published>),
    /// The nodes of the last successful query, or of the last working handshake.
    Known {
        relays: Vec<SocketAddrV4>,
        generation: u64,
        used: u64,
    },
}

/// The per-node table.
#[derive(Debug, Default)]
pub struct PeerRoutes {
    slots: Mutex<HashMap<Id, Slot>>,
    /// Generations and use stamps.
    clock: AtomicU64,
    /// FIND_PEER queries started (for tests and diagnostics).
    queries: AtomicU64,
}

/// Removes a `Finding` slot whose query did not publish (its connect was dropped mid-query), so that the
/// next connect starts a query instead of waiting for nothing.
struct Unpublished<'a> {
    routes: &'a PeerRoutes,
    target: Id,
    armed: bool,
}

impl Drop for Unpublished<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Ok(mut slots) = self.routes.slots.lock() {
                if matches!(slots.get(&self.target), Some(Slot::Finding(_))) {
                    slots.remove(&self.target);
                }
            }
        }
    }
}

enum Step {
    Use(Found),
    Wait(watch::Receiver<Published>),
    Query(watch::Sender<Published>),
}

impl PeerRoutes {
    /// How many queries [`find`](Self::find) started.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The nodes holding `target`'s record: remembered ones unless `stale` names the generation that just
    /// failed, else the answer of the query under way, else the answer of a new query run with `query`
    /// (which returns the nodes that answered with the record, best first; empty when none did).
    pub async fn find<F, Fut, E>(
        &self,
        target: Id,
        stale: Option<u64>,
        query: F,
    ) -> Result<Found, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Vec<SocketAddrV4>, E>>,
    {
        loop {
            let step = {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                let now = self.tick();
                match slots.get_mut(&target) {
                    Some(Slot::Known {
                        relays,
                        generation,
                        used,
                    }) if stale != Some(*generation) => {
                        *used = now;
                        Step::Use(Found {
                            relays: relays.clone(),
                            generation: *generation,
                            remembered: true,
                        })
                    }
                    Some(Slot::Finding(rx)) => Step::Wait(rx.clone()),
                    _ => {
                        let (tx, rx) = watch::channel(None);
                        if !slots.contains_key(&target) && slots.len() >= MAX_ENTRIES {
                            evict_oldest(&mut slots);
                        }
                        slots.insert(target, Slot::Finding(rx));
                        Step::Query(tx)
                    }
                }
            };
            match step {
                Step::Use(found) => return Ok(found),
                Step::Wait(mut rx) => {
                    let waited = rx.wait_for(Option::is_some).await.map(|v| v.clone());
                    let published = match waited {
                        Ok(v) => v,
                        Err(_) => {
                            // The querying connect was dropped: start over (this one may query now).
                            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                            if matches!(slots.get(&target), Some(Slot::Finding(r)) if r.same_channel(&rx))
                            {
                                slots.remove(&target);
                            }
                            continue;
                        }
                    };
                    match published {
                        Some(Ok((relays, generation))) => {
                            return Ok(Found {
                                relays,
                                generation,
                                remembered: false,
                            })
                        }
                        // Its query failed: ours may not (a transient error); run our own.
                        _ => return self.run_query(target, None, &query).await,
                    }
                }
                Step::Query(tx) => return self.run_query(target, Some(tx), &query).await,
            }
        }
    }

    async fn run_query<F, Fut, E>(
        &self,
        target: Id,
        tx: Option<watch::Sender<Published>>,
        query: &F,
    ) -> Result<Found, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Vec<SocketAddrV4>, E>>,
    {
        let mut guard = Unpublished {
            routes: self,
            target,
            armed: tx.is_some(),
        };
        self.queries.fetch_add(1, Ordering::Relaxed);
        let result = query().await;
        let generation = self.tick();
        if let Some(tx) = tx {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match &result {
                Ok(relays) if !relays.is_empty() => {
                    slots.insert(
                        target,
                        Slot::Known {
                            relays: relays.clone(),
                            generation,
                            used: generation,
                        },
                    );
                }
                _ => {
                    slots.remove(&target);
                }
            }
            guard.armed = false;
            tx.send_replace(Some(
                result
                    .as_ref()
                    .map(|r| (r.clone(), generation))
                    .map_err(|_| ()),
            ));
        }
        result.map(|relays| Found {
            relays,
            generation,
            remembered: false,
        })
    }

    /// A handshake through `relay` worked: it is tried first next time.
    pub fn worked(&self, target: Id, relay: SocketAddrV4) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Slot::Known { relays, .. }) = slots.get_mut(&target) {
            if let Some(i) = relays.iter().position(|r| *r == relay) {
                relays[..=i].rotate_right(1);
            }
        }
    }
}

fn evict_oldest(slots: &mut HashMap<Id, Slot>) {
    let oldest = slots
        .iter()
        .filter_map(|(k, s)| match s {
            Slot::Known { used, .. } => Some((*used, *k)),
            Slot::Finding(_) => None,
        })
        .min()
        .map(|(_, k)| k);
    if let Some(k) = oldest {
        slots.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn addr(n: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, n)
    }

    #[tokio::test]
    async fn one_query_serves_a_burst_and_later_connects() {
        let routes = Arc::new(PeerRoutes::default());
        let (release_tx, release_rx) = watch::channel(false);
        let started = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let routes = routes.clone();
            let release = release_rx.clone();
            let started = started.clone();
            tasks.spawn(async move {
                routes
                    .find([7; 32], None, || {
                        let mut release = release.clone();
                        let started = started.clone();
                        async move {
                            started.fetch_add(1, Ordering::Relaxed);
                            let _ = release.wait_for(|r| *r).await;
                            Ok::<_, ()>(vec![addr(1), addr(2)])
                        }
                    })
                    .await
            });
        }
        // Let every task reach the table before the query answers.
        while routes.queries() == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let _ = release_tx.send(true);
        while let Some(r) = tasks.join_next().await {
            let found = r.expect("task").expect("found");
            assert_eq!(found.relays, vec![addr(1), addr(2)]);
        }
        assert_eq!(routes.queries(), 1);
        assert_eq!(started.load(Ordering::Relaxed), 1);
        // Remembered afterwards: no query.
        let found = routes
            .find([7; 32], None, || async { Err::<Vec<SocketAddrV4>, ()>(()) })
            .await
            .expect("remembered");
        assert!(found.remembered);
        assert_eq!(routes.queries(), 1);
    }

    #[tokio::test]
    async fn a_stale_entry_is_queried_again_once() {
        let routes = PeerRoutes::default();
        let first = routes
            .find([1; 32], None, || async { Ok::<_, ()>(vec![addr(1)]) })
            .await
            .expect("found");
        let again = routes
            .find([1; 32], None, || async { Ok::<_, ()>(vec![addr(9)]) })
            .await
            .expect("found");
        assert_eq!(again.relays, vec![addr(1)]);
        assert!(again.remembered);
        // The handshakes through it failed: a fresh query.
        let fresh = routes
            .find([1; 32], Some(again.generation), || async {
                Ok::<_, ()>(vec![addr(2)])
            })
            .await
            .expect("found");
        assert_eq!(fresh.relays, vec![addr(2)]);
        assert!(!fresh.remembered);
        // A connect that failed on the same old entry takes the refreshed one, no query.
        let late = routes
            .find([1; 32], Some(first.generation), || async {
                Ok::<_, ()>(vec![addr(3)])
            })
            .await
            .expect("found");
        assert_eq!(late.relays, vec![addr(2)]);
        assert_eq!(routes.queries(), 2);
    }

    #[tokio::test]
    async fn failures_and_empty_answers_are_not_remembered() {
        let routes = PeerRoutes::default();
        assert!(routes
            .find([1; 32], None, || async {
                Err::<Vec<SocketAddrV4>, &str>("down")
            })
            .await
            .is_err());
        let none = routes
            .find([1; 32], None, || async { Ok::<_, ()>(Vec::new()) })
            .await
            .expect("answered");
        assert!(none.relays.is_empty());
        let found = routes
            .find([1; 32], None, || async { Ok::<_, ()>(vec![addr(4)]) })
            .await
            .expect("found");
        assert_eq!(found.relays, vec![addr(4)]);
        assert_eq!(routes.queries(), 3);
    }

    #[tokio::test]
    async fn a_dropped_query_does_not_strand_the_others() {
        let routes = Arc::new(PeerRoutes::default());
        let stuck = {
            let routes = routes.clone();
            tokio::spawn(async move {
                routes
                    .find([5; 32], None, || async {
                        std::future::pending::<Result<Vec<SocketAddrV4>, ()>>().await
                    })
                    .await
            })
        };
        while routes.queries() == 0 {
            tokio::task::yield_now().await;
        }
        let waiter = {
            let routes = routes.clone();
            tokio::spawn(async move {
                routes
                    .find([5; 32], None, || async { Ok::<_, ()>(vec![addr(6)]) })
                    .await
            })
        };
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        stuck.abort();
        let found = waiter.await.expect("task").expect("found");
        assert_eq!(found.relays, vec![addr(6)]);
    }

    #[test]
    fn worked_moves_a_relay_first() {
        let routes = PeerRoutes::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let _ = routes
                .find([2; 32], None, || async {
                    Ok::<_, ()>(vec![addr(1), addr(2), addr(3)])
                })
                .await;
        });
        routes.worked([2; 32], addr(3));
        let found = rt
            .block_on(routes.find([2; 32], None, || async { Ok::<_, ()>(Vec::new()) }))
            .expect("found");
        assert_eq!(found.relays, vec![addr(3), addr(1), addr(2)]);
    }

    #[test]
    fn the_table_stays_bounded() {
        let routes = PeerRoutes::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for i in 0..(MAX_ENTRIES + 20) {
            let mut target = [0u8; 32];
            target[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let _ = rt.block_on(routes.find(target, None, || async { Ok::<_, ()>(vec![addr(1)]) }));
        }
        assert!(routes.slots.lock().map(|s| s.len()).unwrap_or(0) <= MAX_ENTRIES);
    }
}
