//! Kathleen Nichols' windowed min/max filter (as the Linux `minmax` and libudx `win_filter`): the best,
//! second-best and third-best values over a sliding window, in constant space.

/// A windowed min or max filter over values of type `T`, with time (or round count) `t`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WinFilter<T> {
    entries: [(u64, T); 3],
}

impl<T: Copy + PartialOrd> WinFilter<T> {
    pub(crate) fn new(t: u64, v: T) -> Self {
        Self {
            entries: [(t, v); 3],
        }
    }

    pub(crate) fn get(&self) -> T {
        self.entries[0].1
    }

    pub(crate) fn reset(&mut self, t: u64, v: T) -> T {
        self.entries = [(t, v); 3];
        v
    }

    fn common(&mut self, win: u64, t: u64, v: T) -> T {
        // libudx computes these differences in 32 bits.
        let dt = u64::from((t.wrapping_sub(self.entries[0].0)) as u32);
        let new = (t, v);
        if dt > win {
            self.entries[0] = self.entries[1];
            self.entries[1] = self.entries[2];
            self.entries[2] = new;
            if t.wrapping_sub(self.entries[0].0) > win {
                self.entries[0] = self.entries[1];
                self.entries[1] = self.entries[2];
                self.entries[2] = new;
            }
        } else if self.entries[1].0 == self.entries[0].0 && dt > win / 4 {
            self.entries[2] = new;
            self.entries[1] = new;
        } else if self.entries[2].0 == self.entries[1].0 && dt > win / 2 {
            self.entries[2] = new;
        }
        self.entries[0].1
    }

    pub(crate) fn apply_max(&mut self, win: u64, t: u64, v: T) -> T {
        if v >= self.entries[0].1 || t.wrapping_sub(self.entries[2].0) > win {
            return self.reset(t, v);
        }
        let new = (t, v);
        if v >= self.entries[1].1 {
            self.entries[2] = new;
            self.entries[1] = new;
        } else if v >= self.entries[2].1 {
            self.entries[2] = new;
        }
        self.common(win, t, v)
    }

    pub(crate) fn apply_min(&mut self, win: u64, t: u64, v: T) -> T {
        if v <= self.entries[0].1 || t.wrapping_sub(self.entries[2].0) > win {
            return self.reset(t, v);
        }
        let new = (t, v);
        if v <= self.entries[1].1 {
            self.entries[2] = new;
            self.entries[1] = new;
        } else if v <= self.entries[2].1 {
            self.entries[2] = new;
        }
        self.common(win, t, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_expires() {
        let mut f = WinFilter::new(0, 0.0f64);
        f.apply_max(10, 1, 5.0);
        assert_eq!(f.get(), 5.0);
        f.apply_max(10, 2, 3.0);
        assert_eq!(f.get(), 5.0);
        f.apply_max(10, 20, 1.0);
        assert!(f.get() < 5.0);
    }

    #[test]
    fn min_tracks() {
        let mut f = WinFilter::new(0, u32::MAX);
        f.apply_min(100, 1, 50);
        f.apply_min(100, 2, 70);
        assert_eq!(f.get(), 50);
        f.apply_min(100, 3, 10);
        assert_eq!(f.get(), 10);
    }
}
