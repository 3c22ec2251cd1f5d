//! Reconnection backoff (`lib/retry-timer.js` over `lib/bulk-timer.js`), sans-IO: peers are added with `now`,
//! [`RetryTimer::poll`] returns the batches due at `now`, [`RetryTimer::next_deadline`] says when to poll.
//!
//! Four bulk timers with the backoffs S (1 s), M (5 s), L (15 s) and X (10 min), each plus random jitter. A bulk
//! timer ticks every `floor(0.66 * time)`; a tick hands over the batch added before the previous tick and keeps
//! the newer additions for the next one, so a peer comes back after between 0.66 and 1.32 times the backoff.
//! Which timer a peer waits in depends on its attempts and whether a connection to it ever opened
//! ([`select_backoff`]).
//!
//! One difference from the JS: a bulk timer with nothing left to hand over stops ticking and restarts its
//! period at the next addition (the JS interval runs on forever once started), so an idle swarm has no timers.

use std::time::{Duration, Instant};

use rand::Rng;

use super::peer_info::PeerState;

/// `BACKOFF_JITTER`.
pub const BACKOFF_JITTER: Duration = Duration::from_millis(500);

/// The four backoffs, before each timer's own jitter (`backoffs` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoffs {
    /// Short (`BACKOFF_S`, 1 s + up to 0.5 s).
    pub s: Duration,
    /// Medium (`BACKOFF_M`, 5 s + up to 1 s).
    pub m: Duration,
    /// Long (`BACKOFF_L`, 15 s + up to 2 s).
    pub l: Duration,
    /// Extra long, for explicit peers (`BACKOFF_X`, 10 min + up to 2 min).
    pub x: Duration,
}

fn jittered(rng: &mut impl Rng, base_ms: u64, jitter_ms: u64) -> Duration {
    Duration::from_millis(base_ms + rng.gen_range(0..=jitter_ms))
}

impl Backoffs {
    /// The JS defaults, with their random parts drawn from `rng`.
    pub fn random(rng: &mut impl Rng) -> Self {
        let j = BACKOFF_JITTER.as_millis() as u64;
        Self {
            s: jittered(rng, 1000, j),
            m: jittered(rng, 5000, 2 * j),
            l: jittered(rng, 15000, 4 * j),
            x: jittered(rng, 600_000, 240 * j),
        }
    }
}

/// Which backoff a peer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// S.
    Short,
    /// M.
    Medium,
    /// L.
    Long,
    /// X.
    ExtraLong,
}

/// `_selectRetryTimer`: the backoff after a disconnect, or `None` to stop retrying.
pub fn select_backoff(peer: &PeerState) -> Option<Backoff> {
    if peer.banned || !peer.reconnecting {
        return None;
    }
    if peer.attempts > 3 {
        return peer.explicit.then_some(Backoff::ExtraLong);
    }
    match (peer.attempts, peer.proven) {
        (0, _) | (1, true) => Some(Backoff::Short),
        (2, true) | (1, false) => Some(Backoff::Medium),
        (3, true) | (2, false) | (3, false) => Some(Backoff::Long),
        _ => None,
    }
}

/// One bulk timer (`BulkTimer`).
#[derive(Debug, Clone)]
pub struct BulkTimer<K> {
    period: Duration,
    next_tick: Option<Instant>,
    next: Vec<K>,
    pending: Vec<K>,
}

impl<K> BulkTimer<K> {
    /// A timer for `time`: it ticks every `floor(0.66 * time)` (milliseconds).
    pub fn new(time: Duration) -> Self {
        let ms = time.as_millis() as u64 * 66 / 100;
        Self {
            period: Duration::from_millis(ms.max(1)),
            next_tick: None,
            next: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The tick period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Adds `key`; it is handed over at the second tick from now.
    pub fn add(&mut self, key: K, now: Instant) {
        if self.next_tick.is_none() {
            self.next_tick = Some(now + self.period);
        }
        self.pending.push(key);
    }

    /// When it ticks next, if it runs.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Runs the ticks due at `now`, pushing each non-empty batch handed over to `out`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Vec<K>>) {
        while let Some(t) = self.next_tick {
            if t > now {
                break;
            }
            if !self.next.is_empty() {
                out.push(std::mem::take(&mut self.next));
            }
            self.next = std::mem::take(&mut self.pending);
            self.next_tick = if self.next.is_empty() {
                None
            } else {
                Some(t + self.period)
            };
        }
    }

    /// Drops everything waiting and stops.
    pub fn clear(&mut self) {
        self.next.clear();
        self.pending.clear();
        self.next_tick = None;
    }
}

/// The four bulk timers (`RetryTimer`).
#[derive(Debug, Clone)]
pub struct RetryTimer<K> {
    timers: [BulkTimer<K>; 4],
}

impl<K> RetryTimer<K> {
    /// Timers of exactly these durations (S, M, L, X), no further jitter: deterministic, for tests.
    pub fn with_times(times: [Duration; 4]) -> Self {
        Self {
            timers: times.map(BulkTimer::new),
        }
    }

    /// `new RetryTimer(push, { backoffs, jitter })`: each timer's duration is its backoff plus up to `jitter`.
    pub fn new(backoffs: Backoffs, jitter: Duration, rng: &mut impl Rng) -> Self {
        let j = jitter.as_millis() as u64;
        let mut t = |d: Duration| d + Duration::from_millis(rng.gen_range(0..=j));
        Self::with_times([t(backoffs.s), t(backoffs.m), t(backoffs.l), t(backoffs.x)])
    }

    /// The bulk timer of a backoff.
    pub fn timer(&self, backoff: Backoff) -> &BulkTimer<K> {
        match backoff {
            Backoff::Short => &self.timers[0],
            Backoff::Medium => &self.timers[1],
            Backoff::Long => &self.timers[2],
            Backoff::ExtraLong => &self.timers[3],
        }
    }

    fn timer_mut(&mut self, backoff: Backoff) -> &mut BulkTimer<K> {
        match backoff {
            Backoff::Short => &mut self.timers[0],
            Backoff::Medium => &mut self.timers[1],
            Backoff::Long => &mut self.timers[2],
            Backoff::ExtraLong => &mut self.timers[3],
        }
    }

    /// `add(peerInfo)`: schedules `key` for a retry as `peer` warrants; false when it is not retried.
    pub fn add(&mut self, key: K, peer: &PeerState, now: Instant) -> bool {
        match select_backoff(peer) {
            Some(b) => {
                self.timer_mut(b).add(key, now);
                true
            }
            None => false,
        }
    }

    /// The earliest tick of any timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers
            .iter()
            .filter_map(BulkTimer::next_deadline)
            .min()
    }

    /// The batches due at `now`, each to requeue together.
    pub fn poll(&mut self, now: Instant) -> Vec<Vec<K>> {
        let mut out = Vec::new();
        for t in &mut self.timers {
            t.poll(now, &mut out);
        }
        out
    }

    /// `destroy()`: forgets every waiting peer.
    pub fn clear(&mut self) {
        for t in &mut self.timers {
            t.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn peer(attempts: u32, proven: bool) -> PeerState {
        let mut p = PeerState::new([0; 32], Vec::new());
        p.attempts = attempts;
        p.proven = proven;
        p
    }

    #[test]
    fn backoff_selection_matches_retry_timer_js() {
        use Backoff::*;
        let table = [
            (0, false, Some(Short)),
            (0, true, Some(Short)),
            (1, true, Some(Short)),
            (2, true, Some(Medium)),
            (3, true, Some(Long)),
            (1, false, Some(Medium)),
            (2, false, Some(Long)),
            (3, false, Some(Long)),
            (4, false, None),
            (4, true, None),
        ];
        for (attempts, proven, want) in table {
            assert_eq!(
                select_backoff(&peer(attempts, proven)),
                want,
                "attempts {attempts} proven {proven}"
            );
        }
        let mut explicit = peer(5, false);
        explicit.explicit = true;
        assert_eq!(select_backoff(&explicit), Some(ExtraLong));
        let mut banned = peer(0, true);
        banned.banned = true;
        assert_eq!(select_backoff(&banned), None);
        let mut no = peer(0, true);
        no.reconnecting = false;
        assert_eq!(select_backoff(&no), None);
    }

    #[test]
    fn bulk_timer_hands_over_after_one_to_two_periods() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = BulkTimer::new(ms(1000));
        assert_eq!(t.period(), ms(660));
        let mut out = Vec::new();
        t.add('a', t0);
        t.add('b', t0 + ms(100));
        assert_eq!(t.next_deadline(), Some(t0 + ms(660)));
        t.poll(t0 + ms(659), &mut out);
        assert!(out.is_empty());
        // First tick: a and b move to "next"; c arrives after it.
        t.poll(t0 + ms(660), &mut out);
        assert!(out.is_empty());
        t.add('c', t0 + ms(700));
        assert_eq!(t.next_deadline(), Some(t0 + ms(1320)));
        t.poll(t0 + ms(1320), &mut out);
        assert_eq!(out, vec![vec!['a', 'b']]);
        out.clear();
        t.poll(t0 + ms(1980), &mut out);
        assert_eq!(out, vec![vec!['c']]);
        // Nothing left: the timer stops, and restarts its period at the next addition.
        assert_eq!(t.next_deadline(), None);
        t.add('d', t0 + ms(5000));
        assert_eq!(t.next_deadline(), Some(t0 + ms(5660)));
        // A late poll runs every missed tick.
        out.clear();
        t.poll(t0 + ms(60_000), &mut out);
        assert_eq!(out, vec![vec!['d']]);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn retry_timer_routes_peers_by_attempts() {
        let t0 = Instant::now();
        let s = Duration::from_millis;
        let mut rt = RetryTimer::with_times([s(1000), s(5000), s(15000), s(600_000)]);
        assert!(rt.add(1u8, &peer(0, true), t0)); // S
        assert!(rt.add(2u8, &peer(1, false), t0)); // M
        assert!(rt.add(3u8, &peer(3, true), t0)); // L
        assert!(!rt.add(4u8, &peer(4, true), t0));
        assert_eq!(rt.next_deadline(), Some(t0 + s(660)));
        assert!(rt.poll(t0 + s(660)).is_empty());
        assert_eq!(rt.poll(t0 + s(1320)), vec![vec![1]]);
        assert_eq!(rt.next_deadline(), Some(t0 + s(3300)));
        assert!(rt.poll(t0 + s(3300)).is_empty());
        assert_eq!(rt.poll(t0 + s(6600)), vec![vec![2]]);
        assert_eq!(rt.poll(t0 + s(19800)), vec![vec![3]]);
        assert_eq!(rt.next_deadline(), None);
        rt.add(5u8, &peer(0, false), t0);
        rt.clear();
        assert_eq!(rt.next_deadline(), None);
    }

    #[test]
    fn random_backoffs_stay_in_the_js_ranges() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let b = Backoffs::random(&mut rng);
            let ms = |d: Duration| d.as_millis() as u64;
            assert!((1000..=1500).contains(&ms(b.s)));
            assert!((5000..=6000).contains(&ms(b.m)));
            assert!((15000..=17000).contains(&ms(b.l)));
            assert!((600_000..=720_000).contains(&ms(b.x)));
            let rt: RetryTimer<u8> = RetryTimer::new(b, BACKOFF_JITTER, &mut rng);
            let p = rt.timer(Backoff::Short).period();
            assert!(p >= ms_dur(660) && p <= ms_dur(1320));
        }
    }

    fn ms_dur(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
}
