//! What a remote peer has (`lib/remote-bitfield.js` in spirit): a set of block indices fed by `range` and
//! `bitfield` messages.
//!
//! The JS keeps 32768-bit pages; here the set is a map of disjoint half-open runs, so a `range` message
//! of any length (a hostile peer may claim `0..2^60`) costs one entry, never memory proportional to it.

use std::collections::BTreeMap;

/// A set of block indices stored as disjoint, non-adjacent half-open runs `start..end`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start -> end (exclusive); runs never overlap or touch.
    runs: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `index` is in the set.
    pub fn contains(&self, index: u64) -> bool {
        self.runs
            .range(..=index)
            .next_back()
            .is_some_and(|(_, &end)| index < end)
    }

    /// The first index `>= from` that is not in the set.
    #[cfg(test)]
    pub fn first_missing(&self, from: u64) -> u64 {
        match self.runs.range(..=from).next_back() {
            Some((_, &end)) if from < end => end,
            _ => from,
        }
    }

    /// Number of runs.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The runs, in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|(&s, &e)| (s, e))
    }

    /// Adds `start..end`.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut start = start;
        let mut end = end;
        // A run starting before (or at) `start` that reaches it merges.
        if let Some((&s, &e)) = self.runs.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.runs.remove(&s);
            }
        }
        // Runs starting inside `start..=end` merge.
        while let Some((&s, &e)) = self.runs.range(start..=end).next() {
            end = end.max(e);
            self.runs.remove(&s);
        }
        self.runs.insert(start, end);
    }

    /// Removes `start..end`.
    pub fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        if let Some((&s, &e)) = self.runs.range(..start).next_back() {
            if e > start {
                self.runs.insert(s, start);
                if e > end {
                    self.runs.insert(end, e);
                    return;
                }
            }
        }
        while let Some((&s, &e)) = self.runs.range(start..end).next() {
            self.runs.remove(&s);
            if e > end {
                self.runs.insert(end, e);
                break;
            }
        }
    }

    /// Sets the bits of a `bitfield` message: blocks `start..start + 32 * words.len()` become exactly what
    /// the words say (bit `i` of word `j` is block `start + 32 * j + i`). Returns false (and changes
    /// nothing) when the range overflows.
    pub fn apply_words(&mut self, start: u64, words: &[u32]) -> bool {
        let Some(end) = (words.len() as u64)
            .checked_mul(32)
            .and_then(|n| start.checked_add(n))
        else {
            return false;
        };
        self.remove(start, end);
        let mut run: Option<u64> = None;
        for (j, &word) in words.iter().enumerate() {
            let base = start + 32 * j as u64;
            if word == u32::MAX {
                run.get_or_insert(base);
                continue;
            }
            if word == 0 {
                if let Some(s) = run.take() {
                    self.insert(s, base);
                }
                continue;
            }
            for bit in 0..32u64 {
                let set = word & (1 << bit) != 0;
                match (set, run) {
                    (true, None) => run = Some(base + bit),
                    (false, Some(s)) => {
                        self.insert(s, base + bit);
                        run = None;
                    }
                    _ => {}
                }
            }
        }
        if let Some(s) = run {
            self.insert(s, end);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn insert_merges_and_remove_splits() {
        let mut s = RangeSet::new();
        s.insert(10, 20);
        s.insert(20, 30);
        s.insert(5, 7);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(5, 7), (10, 30)]);
        s.remove(12, 15);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![(5, 7), (10, 12), (15, 30)]
        );
        assert!(s.contains(11) && !s.contains(12) && s.contains(29) && !s.contains(30));
        assert_eq!(s.first_missing(10), 12);
        assert_eq!(s.first_missing(0), 0);
        s.insert(0, u64::MAX);
        assert_eq!(s.runs(), 1);
    }

    #[test]
    fn words_set_exact_bits() {
        let mut s = RangeSet::new();
        s.insert(0, 1000);
        assert!(s.apply_words(32, &[0b1011, u32::MAX, 0]));
        assert!(s.contains(31) && s.contains(32) && s.contains(33) && !s.contains(34));
        assert!(s.contains(35) && (64..96).all(|i| s.contains(i)));
        assert!((96..128).all(|i| !s.contains(i)) && s.contains(128));
        assert!(!s.apply_words(u64::MAX - 10, &[1]));
    }

    proptest! {
        #[test]
        fn matches_a_plain_set(ops in proptest::collection::vec((any::<bool>(), 0u64..200, 0u64..40), 0..60)) {
            let mut s = RangeSet::new();
            let mut model = BTreeSet::new();
            for (add, start, len) in ops {
                if add { s.insert(start, start + len) } else { s.remove(start, start + len) }
                for i in start..start + len {
                    if add { model.insert(i); } else { model.remove(&i); }
                }
            }
            for i in 0..260 {
                prop_assert_eq!(s.contains(i), model.contains(&i));
            }
            // runs are disjoint and non-adjacent
            let runs: Vec<_> = s.iter().collect();
            for w in runs.windows(2) {
                prop_assert!(w[0].1 < w[1].0);
            }
        }
    }
}
