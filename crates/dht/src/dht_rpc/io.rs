//! Pieces of dht-rpc's `lib/io.js` that do not depend on the rest of the node: the congestion window and
//! the request timing constants.

use std::time::Duration;

/// Default congestion window: at most this many requests sent per 750 ms slot (and twice that in flight
/// over the last four slots).
pub const MAX_WINDOW: usize = 80;
/// How often the window slides and queued requests are sent.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(750);
/// How long a request waits for its response before being resent.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);
/// Default number of resends of a request before it times out.
pub const DEFAULT_RETRIES: u32 = 3;

/// The JS `CongestionWindow`: four slots of sent-request counts; a slot is cleared every drain.
#[derive(Debug, Clone)]
pub struct CongestionWindow {
    i: usize,
    total: usize,
    window: [usize; 4],
    max_window: usize,
}

impl CongestionWindow {
    /// A window allowing `max_window` sends per slot.
    pub fn new(max_window: usize) -> Self {
        Self {
            i: 0,
            total: 0,
            window: [0; 4],
            max_window,
        }
    }

    /// True when no more requests may be sent now.
    pub fn is_full(&self) -> bool {
        self.total >= 2 * self.max_window || self.window[self.i] >= self.max_window
    }

    /// Counts a send.
    pub fn send(&mut self) {
        self.total += 1;
        self.window[self.i] += 1;
    }

    /// Counts a response (or a request given up), freeing room in the current slot.
    pub fn recv(&mut self) {
        if self.window[self.i] > 0 {
            self.window[self.i] -= 1;
            self.total -= 1;
        }
    }

    /// Moves to the next slot, forgetting the oldest one.
    pub fn drain(&mut self) {
        self.i = (self.i + 1) & 3;
        self.total -= self.window[self.i];
        self.window[self.i] = 0;
    }

    /// Forgets everything.
    #[cfg(test)]
    pub fn clear(&mut self) {
        *self = Self::new(self.max_window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_fills_and_drains() {
        let mut w = CongestionWindow::new(2);
        w.send();
        assert!(!w.is_full());
        w.send();
        assert!(w.is_full());
        w.drain();
        assert!(!w.is_full());
        w.send();
        w.send();
        assert!(w.is_full(), "total reached 2 * max");
        w.drain();
        w.drain();
        assert!(w.is_full(), "slot 0 still counted until it is drained");
        w.drain();
        assert!(!w.is_full());
        w.recv();
        w.clear();
        assert!(!w.is_full());
    }
}
