//! dht-rpc's network health estimate (`lib/health.js`): online / degraded / offline, from the response
//! and timeout counters sampled once per tick over a window of four ticks.

const WINDOW: usize = 4;
const OFFLINE_THRESHOLD: i64 = 2;
const IDLE_THRESHOLD: u64 = 4;
const DEGRADED_TIMEOUT_RATE: f64 = 0.5;

#[derive(Debug, Clone, Copy)]
struct Sample {
    responses: u64,
    timeouts: u64,
    offline: Option<bool>,
    degraded: Option<bool>,
}

/// The health state the node reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Requests get answers.
    Online,
    /// More than half of the requests time out, steadily.
    Degraded,
    /// Nothing answers.
    Offline,
}

/// Sliding-window health estimator.
#[derive(Debug, Clone)]
pub struct NetworkHealth {
    window: Vec<Sample>,
    head: usize,
    offline_ticks: i64,
    // Like the JS, these may go negative: offline samples leaving the window count as healthy ones.
    degraded_ticks: i64,
    healthy_ticks: i64,
    online: bool,
    degraded: bool,
}

impl Default for NetworkHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl NetworkHealth {
    /// A fresh estimator (online).
    pub fn new() -> Self {
        Self {
            window: Vec::with_capacity(WINDOW),
            head: WINDOW - 1,
            offline_ticks: 0,
            degraded_ticks: 0,
            healthy_ticks: 0,
            online: true,
            degraded: false,
        }
    }

    /// Forgets everything (after a wakeup); the state is online again.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The current state.
    pub fn state(&self) -> Health {
        match (self.online, self.degraded) {
            (false, _) => Health::Offline,
            (true, true) => Health::Degraded,
            (true, false) => Health::Online,
        }
    }

    fn tail(&self) -> usize {
        (self.head + 1) % WINDOW
    }

    fn delta(&self) -> (u64, u64) {
        let newest = self.window.get(self.head);
        let previous = self.window.get((self.head + WINDOW - 1) % WINDOW);
        match (newest, previous) {
            (Some(n), Some(p)) => (
                n.responses.saturating_sub(p.responses),
                n.timeouts.saturating_sub(p.timeouts),
            ),
            _ => (0, 0),
        }
    }

    /// Samples the node's cumulative response and timeout counters (once per tick) and returns the
    /// state the JS would report for this tick, or `None` while the window is cold or idle.
    pub fn update(&mut self, responses: u64, timeouts: u64) -> Option<Health> {
        if let Some(oldest) = self.window.get(self.tail()) {
            match oldest.degraded {
                Some(true) => self.degraded_ticks -= 1,
                Some(false) => self.healthy_ticks -= 1,
                None => {}
            }
        }
        self.head = self.tail();
        let sample = Sample {
            responses,
            timeouts,
            offline: None,
            degraded: None,
        };
        if self.head < self.window.len() {
            self.window[self.head] = sample;
        } else {
            self.window.push(sample);
        }

        let (responses, timeouts) = self.delta();
        if self.window.len() < WINDOW || responses + timeouts < IDLE_THRESHOLD {
            return None;
        }
        let rate = if timeouts == 0 {
            0.0
        } else {
            timeouts as f64 / (responses + timeouts) as f64
        };
        let offline = responses == 0;
        let degraded = !offline && rate > DEGRADED_TIMEOUT_RATE;
        if let Some(s) = self.window.get_mut(self.head) {
            s.offline = Some(offline);
            s.degraded = Some(degraded);
        }
        if offline {
            self.offline_ticks += 1;
        } else {
            self.offline_ticks = 0;
            if degraded {
                self.degraded_ticks += 1;
            } else {
                self.healthy_ticks += 1;
            }
        }
        if !offline {
            self.online = true;
        } else if self.offline_ticks >= OFFLINE_THRESHOLD {
            self.online = false;
        }
        if !self.online || self.healthy_ticks == WINDOW as i64 {
            self.degraded = false;
        } else if self.degraded_ticks == WINDOW as i64 {
            self.degraded = true;
        }
        Some(self.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs per-tick (new responses, new timeouts) deltas and renders each tick's report as
    /// N (cold or idle), O (online), D (degraded), F (offline).
    fn run(seq: &[(u64, u64)]) -> String {
        let mut h = NetworkHealth::new();
        let (mut r, mut t) = (0, 0);
        seq.iter()
            .map(|(dr, dt)| {
                r += dr;
                t += dt;
                match h.update(r, t) {
                    None => 'N',
                    Some(Health::Online) => 'O',
                    Some(Health::Degraded) => 'D',
                    Some(Health::Offline) => 'F',
                }
            })
            .collect()
    }

    // Expected strings produced by running the same sequences through the JS `lib/health.js`.
    #[test]
    fn matches_js_sequences() {
        let a = [
            (10, 0),
            (10, 0),
            (10, 0),
            (10, 0),
            (1, 0),
            (0, 10),
            (0, 10),
            (2, 8),
            (2, 8),
            (2, 8),
            (2, 8),
            (10, 0),
            (10, 0),
            (10, 0),
            (10, 0),
            (10, 0),
            (10, 0),
            (10, 0),
        ];
        // Offline samples leaving the window count as healthy ones leaving: the healthy count goes
        // negative and the state stays degraded (as in the JS).
        assert_eq!(run(&a), "NNNONOFOOODDDDDDDD");
        let b = [
            (10, 0),
            (10, 0),
            (10, 0),
            (2, 8),
            (2, 8),
            (2, 8),
            (2, 8),
            (2, 8),
            (10, 0),
            (10, 0),
            (10, 0),
            (10, 0),
            (10, 0),
            (0, 5),
            (0, 5),
            (0, 5),
            (5, 0),
        ];
        assert_eq!(run(&b), "NNNOOODDDDDOOOFFO");
    }

    #[test]
    fn reset_is_online() {
        let mut h = NetworkHealth::new();
        for i in 0..6 {
            h.update(0, 10 * i);
        }
        assert_eq!(h.state(), Health::Offline);
        h.reset();
        assert_eq!(h.state(), Health::Online);
    }
}
