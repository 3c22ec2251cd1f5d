//! Vector clocks of the linearizer (JS autobase 7.28.1 `lib/clock.js`): for each writer, the length of its
//! core a node has seen (causally). Writers are referred to by their [`WriterId`] in the
//! [`Linearizer`](super::linearizer::Linearizer).

/// A writer's index in its [`Linearizer`](super::linearizer::Linearizer).
pub type WriterId = usize;

/// A vector clock: writer to length seen. A writer can be present with length 0 (JS `has` differs from
/// `get() > 0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clock {
    seen: Vec<(WriterId, u64)>,
}

impl Clock {
    /// An empty clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of writers in the clock.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no writer is in the clock.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether `writer` is in the clock (even at length 0).
    pub fn has(&self, writer: WriterId) -> bool {
        self.seen.iter().any(|&(w, _)| w == writer)
    }

    /// Whether the clock has seen `writer` up to at least `length`.
    pub fn includes(&self, writer: WriterId, length: u64) -> bool {
        self.seen.iter().any(|&(w, l)| w == writer && l >= length)
    }

    /// The length seen of `writer` (0 when absent).
    pub fn get(&self, writer: WriterId) -> u64 {
        self.seen
            .iter()
            .find(|&&(w, _)| w == writer)
            .map_or(0, |&(_, l)| l)
    }

    /// Sets the length seen of `writer`.
    pub fn set(&mut self, writer: WriterId, length: u64) {
        match self.seen.iter_mut().find(|(w, _)| *w == writer) {
            Some(e) => e.1 = length,
            None => self.seen.push((writer, length)),
        }
    }

    /// Raises every writer to at least what `other` has seen.
    pub fn add(&mut self, other: &Clock) {
        for &(w, l) in &other.seen {
            if self.get(w) < l {
                self.set(w, l);
            }
        }
    }

    /// The writers and lengths, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (WriterId, u64)> + '_ {
        self.seen.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_the_highest() {
        let mut a = Clock::new();
        a.set(1, 3);
        a.set(2, 0);
        let mut b = Clock::new();
        b.set(1, 2);
        b.set(3, 5);
        a.add(&b);
        assert_eq!(a.get(1), 3);
        assert_eq!(a.get(3), 5);
        assert!(a.has(2) && !a.includes(2, 1) && a.includes(2, 0));
        assert!(!a.has(4) && a.get(4) == 0);
        assert_eq!(a.len(), 3);
    }
}
