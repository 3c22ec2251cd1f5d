//! `want` / `unwant` bookkeeping (JS `lib/wants.js`, compat mode, which hypercore 11.37 runs in).
//!
//! A reader that needs a block no peer has announced asks each peer lacking it for the whole *segment* of
//! [`WANT_SEGMENT`] blocks around it: `want {start: s * WANT_SEGMENT, length: WANT_SEGMENT}`. The peer
//! answers with what it holds there (`bitfield` or `range` messages) and from then on also announces the
//! blocks of that segment it gets later, until an `unwant`. A reader keeps at most [`MAX_LOCAL_WANTS`]
//! segments wanted per peer; a segment whose need is gone stays wanted (so a later need costs nothing) and is
//! only `unwant`ed when a new segment needs its place ([`LocalWants`]).
//!
//! The other side ([`RemoteWants`]) remembers at most [`MAX_REMOTE_WANTS`] segments of at most
//! [`MAX_REMOTE_WANT_SIZES`] sizes and [`MAX_REMOTE_ANY`] "any" ranges; past that (or for a range that is not
//! an aligned power of two within [`MIN_WANT_RANGE`]..=[`MAX_WANT_RANGE`]) it treats the peer as wanting
//! everything, as JS does. A want longer than [`MAX_WANT_RANGE`] is ignored (and not answered).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::hypercore::messages::Want;

/// Blocks per wanted segment (JS `WANT_BATCH` in compat mode: 65536 words of 32 bits).
pub const WANT_SEGMENT: u64 = 1 << 21;
/// Segments a reader keeps wanted per peer (JS `MAX`).
pub const MAX_LOCAL_WANTS: usize = 512;
/// Segments remembered per peer before it counts as wanting everything (JS `MAX`).
pub const MAX_REMOTE_WANTS: usize = 512;
/// Distinct segment sizes remembered per peer (JS `MAX_REMOTE_BATCHES`).
pub const MAX_REMOTE_WANT_SIZES: usize = 4;
/// "Any" ranges remembered per peer (JS `MAX_ANY`).
pub const MAX_REMOTE_ANY: usize = 16;
/// Longest want honoured (JS `MAX_RANGE`); longer ones are ignored.
pub const MAX_WANT_RANGE: u64 = 8 * 256 * 1024;
/// Shortest segment remembered as such (JS `MIN_RANGE`).
pub const MIN_WANT_RANGE: u64 = 32;

/// The segments this side wants from one peer.
#[derive(Debug, Default)]
pub(crate) struct LocalWants {
    wanted: BTreeSet<u64>,
}

/// What to send to a peer to want a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WantChange {
    /// A segment to `unwant` first (its place is reused).
    pub unwant: Option<u64>,
    /// The segment to `want`.
    pub want: u64,
}

impl LocalWants {
    /// True when `segment` is wanted from the peer.
    pub fn contains(&self, segment: u64) -> bool {
        self.wanted.contains(&segment)
    }

    /// Number of segments wanted.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.wanted.len()
    }

    /// Wants `segment`. `None` when it is wanted already, or when all [`MAX_LOCAL_WANTS`] places hold
    /// segments that are still `needed` (then nothing is sent, as JS). Otherwise the messages to send: a
    /// segment no longer needed may have to be unwanted first.
    pub fn want(&mut self, segment: u64, needed: impl Fn(u64) -> bool) -> Option<WantChange> {
        if self.wanted.contains(&segment) {
            return None;
        }
        let mut unwant = None;
        if self.wanted.len() >= MAX_LOCAL_WANTS {
            let victim = self.wanted.iter().copied().find(|&s| !needed(s))?;
            self.wanted.remove(&victim);
            unwant = Some(victim);
        }
        self.wanted.insert(segment);
        Some(WantChange {
            unwant,
            want: segment,
        })
    }
}

/// The `want` message for `segment`.
pub(crate) fn segment_want(segment: u64) -> Want {
    Want {
        start: segment.saturating_mul(WANT_SEGMENT),
        length: WANT_SEGMENT,
        any: false,
    }
}

/// How a received `want` changed a [`RemoteWants`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WantAdded {
    /// Too long: ignored, not answered (as JS).
    Ignored,
    /// Already wanted (a repeat; it was answered before).
    Known,
    /// New (or the peer now counts as wanting everything): answer it.
    Added,
}

/// What one peer wants to hear about.
#[derive(Debug, Default)]
pub(crate) struct RemoteWants {
    /// Segment length -> the wanted `start / length`s.
    segments: BTreeMap<u64, HashSet<u64>>,
    /// Entries in `segments`.
    size: usize,
    /// "Any" ranges `(start, length)`.
    any: Vec<(u64, u64)>,
    /// Wants everything (its wants overflowed the bounds or were irregular).
    all: bool,
}

fn aligned_segment(w: &Want) -> bool {
    (MIN_WANT_RANGE..=MAX_WANT_RANGE).contains(&w.length)
        && w.length.is_power_of_two()
        && w.start & (w.length - 1) == 0
}

impl RemoteWants {
    /// Records a `want`.
    pub fn add(&mut self, w: &Want) -> WantAdded {
        if w.any {
            if self.any.contains(&(w.start, w.length)) {
                return WantAdded::Known;
            }
            if self.any.len() < MAX_REMOTE_ANY {
                self.any.push((w.start, w.length));
            } else {
                self.all = true;
            }
            return WantAdded::Added;
        }
        if w.length > MAX_WANT_RANGE {
            return WantAdded::Ignored;
        }
        if !aligned_segment(w) || self.size >= MAX_REMOTE_WANTS {
            self.all = true;
            return WantAdded::Added;
        }
        let sizes = self.segments.len();
        match self.segments.get_mut(&w.length) {
            Some(set) => {
                if !set.insert(w.start / w.length) {
                    return WantAdded::Known;
                }
            }
            None if sizes >= MAX_REMOTE_WANT_SIZES => {
                self.all = true;
                return WantAdded::Added;
            }
            None => {
                self.segments
                    .insert(w.length, HashSet::from([w.start / w.length]));
            }
        }
        self.size += 1;
        WantAdded::Added
    }

    /// Forgets an `unwant`ed range (a peer that counts as wanting everything still does).
    pub fn remove(&mut self, w: &Want) {
        if w.any {
            self.any.retain(|&a| a != (w.start, w.length));
            return;
        }
        if !aligned_segment(w) {
            return;
        }
        if let Some(set) = self.segments.get_mut(&w.length) {
            if set.remove(&(w.start / w.length)) {
                self.size -= 1;
            }
            if set.is_empty() {
                self.segments.remove(&w.length);
            }
        }
    }

    /// True when the peer wants to hear about block `index`.
    pub fn has(&self, index: u64) -> bool {
        self.all
            || self
                .segments
                .iter()
                .any(|(len, set)| set.contains(&(index / len)))
            || self.any.iter().any(|&(s, l)| index >= s && index - s < l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: u64, length: u64) -> Want {
        Want {
            start,
            length,
            any: false,
        }
    }

    #[test]
    fn local_wants_reuse_places_no_longer_needed() {
        let mut w = LocalWants::default();
        assert_eq!(
            w.want(3, |_| true),
            Some(WantChange {
                unwant: None,
                want: 3
            })
        );
        assert_eq!(w.want(3, |_| true), None, "a repeat sends nothing");
        for s in 10..10 + MAX_LOCAL_WANTS as u64 - 1 {
            assert!(w.want(s, |_| true).is_some());
        }
        assert_eq!(w.len(), MAX_LOCAL_WANTS);
        // Full, everything still needed: nothing is sent.
        assert_eq!(w.want(5000, |_| true), None);
        assert!(!w.contains(5000));
        // Segment 3 is no longer needed: it is unwanted to make room.
        assert_eq!(
            w.want(5000, |s| s != 3),
            Some(WantChange {
                unwant: Some(3),
                want: 5000
            })
        );
        assert!(w.contains(5000) && !w.contains(3));
        assert_eq!(w.len(), MAX_LOCAL_WANTS);
    }

    #[test]
    fn remote_wants_track_segments_until_unwanted() {
        let mut r = RemoteWants::default();
        assert!(!r.has(0));
        assert_eq!(r.add(&seg(0, WANT_SEGMENT)), WantAdded::Added);
        assert_eq!(r.add(&seg(0, WANT_SEGMENT)), WantAdded::Known);
        assert!(r.has(0) && r.has(WANT_SEGMENT - 1) && !r.has(WANT_SEGMENT));
        assert_eq!(
            r.add(&seg(2 * WANT_SEGMENT, WANT_SEGMENT)),
            WantAdded::Added
        );
        assert!(r.has(2 * WANT_SEGMENT + 5));
        r.remove(&seg(0, WANT_SEGMENT));
        assert!(!r.has(0) && r.has(2 * WANT_SEGMENT));
        r.remove(&seg(2 * WANT_SEGMENT, WANT_SEGMENT));
        assert!(!r.has(2 * WANT_SEGMENT));
        assert_eq!(r.size, 0);
        assert!(r.segments.is_empty());
    }

    #[test]
    fn remote_wants_bounds() {
        let mut r = RemoteWants::default();
        assert_eq!(r.add(&seg(0, MAX_WANT_RANGE * 2)), WantAdded::Ignored);
        assert!(!r.has(0));
        // Irregular: the peer counts as wanting everything.
        let mut irregular = RemoteWants::default();
        assert_eq!(irregular.add(&seg(5, 100)), WantAdded::Added);
        assert!(irregular.has(u64::MAX));
        // More segments than remembered.
        for i in 0..MAX_REMOTE_WANTS as u64 {
            assert_eq!(r.add(&seg(i * 64, 64)), WantAdded::Added);
        }
        assert!(!r.has(u64::MAX));
        assert_eq!(r.add(&seg(u64::MAX - 63, 64)), WantAdded::Added);
        assert!(r.has(u64::MAX));
        // More sizes than remembered.
        let mut sizes = RemoteWants::default();
        for k in 0..MAX_REMOTE_WANT_SIZES as u32 {
            sizes.add(&seg(0, 32 << k));
        }
        assert!(!sizes.has(1 << 40));
        sizes.add(&seg(0, 32 << 10));
        assert!(sizes.has(1 << 40));
        // "Any" ranges.
        let mut any = RemoteWants::default();
        let a = Want {
            start: 100,
            length: 10,
            any: true,
        };
        assert_eq!(any.add(&a), WantAdded::Added);
        assert_eq!(any.add(&a), WantAdded::Known);
        assert!(any.has(109) && !any.has(110) && !any.has(99));
        any.remove(&a);
        assert!(!any.has(105));
        for i in 0..=MAX_REMOTE_ANY as u64 {
            any.add(&Want {
                start: i * 10,
                length: 1,
                any: true,
            });
        }
        assert!(any.has(u64::MAX));
    }
}
