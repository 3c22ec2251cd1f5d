//! A growable byte ring buffer addressed by absolute stream offsets.

/// Capacities are multiples of this (a page).
const GRANULE: usize = 4096;

/// Bytes `[start, start + len)` of a byte stream, stored in a ring that grows as needed.
///
/// The ring grows in steps of at least an eighth of its size, to about what it must hold rather than to the
/// next power of two: a stream's queues settle just above a window size (256 KiB + 4 MiB for a full send
/// window), and a ring cycles through, so keeps resident, all of its capacity. Growing reallocates in place
/// where the allocator can (large blocks are remapped, not copied) and then moves the smaller wrapped part.
#[derive(Debug, Default)]
pub(crate) struct ByteRing {
    buf: Vec<u8>,
    /// Index in `buf` of the byte at `start`.
    head: usize,
    /// Absolute offset of the first stored byte.
    start: u64,
    len: usize,
}

impl ByteRing {
    /// Absolute offset of the first stored byte.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Absolute offset one past the last stored byte.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the ring holds without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Index in `buf` of the stored byte `skip` bytes after `start` (`skip <= len`).
    fn index(&self, skip: usize) -> usize {
        let cap = self.buf.len();
        let i = self.head + skip;
        if i >= cap {
            i - cap
        } else {
            i
        }
    }

    fn grow(&mut self, need: usize) {
        let old = self.buf.len();
        if need <= old {
            return;
        }
        let cap = need.max(old + old / 8).next_multiple_of(GRANULE);
        self.buf.reserve_exact(cap - old);
        self.buf.resize(cap, 0);
        // The stored bytes were [head, old) then, wrapped, [0, wrapped).
        let first = (old - self.head).min(self.len);
        let wrapped = self.len - first;
        if wrapped == 0 {
            return;
        }
        if wrapped <= first && wrapped <= cap - old {
            // Append the wrapped part after the old end.
            self.buf.copy_within(0..wrapped, old);
        } else {
            // Move the first part to the new end; the wrapped part stays (cap >= len, so they do not meet).
            self.buf.copy_within(self.head..old, cap - first);
            self.head = cap - first;
        }
    }

    /// Appends bytes at the end.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.grow(self.len + data.len());
        let at = self.index(self.len);
        let first = (self.buf.len() - at).min(data.len());
        self.buf[at..at + first].copy_from_slice(&data[..first]);
        let rest = data.len() - first;
        self.buf[..rest].copy_from_slice(&data[first..]);
        self.len += data.len();
    }

    /// Appends `n` bytes at the end for the caller to fill, returned as up to two slices (the second is
    /// non-empty when the space wraps around the end of the buffer). Their contents are stale bytes of
    /// earlier data: the caller must overwrite all of them.
    pub(crate) fn reserve(&mut self, n: usize) -> (&mut [u8], &mut [u8]) {
        if n == 0 {
            return (&mut [], &mut []);
        }
        self.grow(self.len + n);
        let at = self.index(self.len);
        self.len += n;
        let first = (self.buf.len() - at).min(n);
        let (wrapped, tail) = self.buf.split_at_mut(at);
        (&mut tail[..first], &mut wrapped[..n - first])
    }

    /// Drops the first `n` stored bytes (at most all of them).
    pub(crate) fn consume(&mut self, n: usize) {
        self.advance(n.min(self.len));
    }

    /// The stored bytes `[offset, offset + len)` as up to two slices (empty when out of range).
    pub(crate) fn slices(&self, offset: u64, len: usize) -> (&[u8], &[u8]) {
        if self.buf.is_empty()
            || len == 0
            || offset < self.start
            || offset + len as u64 > self.end()
        {
            return (&[], &[]);
        }
        let at = self.index((offset - self.start) as usize);
        let first = (self.buf.len() - at).min(len);
        (&self.buf[at..at + first], &self.buf[..len - first])
    }

    /// Appends bytes `[offset, offset + len)` to `out`.
    pub(crate) fn copy_to(&self, offset: u64, len: usize, out: &mut Vec<u8>) {
        let (a, b) = self.slices(offset, len);
        out.extend_from_slice(a);
        out.extend_from_slice(b);
    }

    /// Copies bytes from the front into `dst` and drops them; returns the count.
    pub(crate) fn pop_into(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len);
        let (a, b) = self.slices(self.start, n);
        dst[..a.len()].copy_from_slice(a);
        dst[a.len()..a.len() + b.len()].copy_from_slice(b);
        self.advance(n);
        n
    }

    /// Drops every byte before absolute offset `offset`.
    pub(crate) fn release_to(&mut self, offset: u64) {
        if offset <= self.start {
            return;
        }
        let n = ((offset - self.start) as usize).min(self.len);
        self.advance(n);
    }

    /// Drops the first `n` (`<= len`) stored bytes.
    fn advance(&mut self, n: usize) {
        self.head = if self.len == n { 0 } else { self.index(n) };
        self.start += n as u64;
        self.len -= n;
    }

    /// Drops everything.
    pub(crate) fn clear(&mut self) {
        self.start = self.end();
        self.len = 0;
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_grows() {
        let mut r = ByteRing::default();
        let mut model: std::collections::VecDeque<u8> = Default::default();
        let mut x = 0u8;
        for round in 0..200usize {
            let n = (round * 37) % 3000;
            let data: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_add(1);
                    x
                })
                .collect();
            r.push(&data);
            model.extend(&data);
            let take = (round * 53) % 2500;
            let mut dst = vec![0; take];
            let got = r.pop_into(&mut dst);
            let want: Vec<u8> = model.drain(..got).collect();
            assert_eq!(&dst[..got], &want[..]);
            assert_eq!(r.len(), model.len());
            let mut out = Vec::new();
            r.copy_to(r.start(), r.len(), &mut out);
            assert!(out.iter().eq(model.iter()));
        }
    }

    /// Pushes, pops, releases and reads at random offsets against a `VecDeque` model, with pushes large
    /// enough to make the ring grow while wrapped (both ways of moving the wrapped part).
    #[test]
    fn matches_a_deque_model() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        for _ in 0..20 {
            let mut r = ByteRing::default();
            let mut model: std::collections::VecDeque<u8> = Default::default();
            let mut x = 0u8;
            for _ in 0..300 {
                match rand(6) {
                    4 => {
                        // Reserved in place, then filled through the two slices.
                        let n = rand(20_000);
                        let data: Vec<u8> = (0..n)
                            .map(|_| {
                                x = x.wrapping_add(5);
                                x
                            })
                            .collect();
                        let (a, b) = r.reserve(n);
                        assert_eq!(a.len() + b.len(), n);
                        let (da, db) = data.split_at(a.len());
                        a.copy_from_slice(da);
                        b.copy_from_slice(db);
                        model.extend(&data);
                    }
                    5 => {
                        let n = rand(model.len() + 100);
                        r.consume(n);
                        model.drain(..n.min(model.len()));
                    }
                    0 | 1 => {
                        let n = rand(20_000);
                        let data: Vec<u8> = (0..n)
                            .map(|_| {
                                x = x.wrapping_add(7);
                                x
                            })
                            .collect();
                        r.push(&data);
                        model.extend(&data);
                    }
                    2 => {
                        let mut dst = vec![0; rand(15_000)];
                        let got = r.pop_into(&mut dst);
                        let want: Vec<u8> = model.drain(..got).collect();
                        assert_eq!(&dst[..got], &want[..]);
                    }
                    _ => {
                        let n = rand(model.len() + 1);
                        r.release_to(r.start() + n as u64);
                        model.drain(..n);
                    }
                }
                assert_eq!(r.len(), model.len());
                assert!(r.capacity() >= r.len());
                let skip = rand(model.len() + 1);
                let len = rand(model.len() - skip + 1);
                let mut out = Vec::new();
                r.copy_to(r.start() + skip as u64, len, &mut out);
                assert!(out.iter().eq(model.range(skip..skip + len)));
            }
        }
    }

    /// A queue that settles at a window's size gets a ring of about that size, not the next power of two.
    #[test]
    fn grows_to_about_what_it_holds() {
        let window = 256 * 1024 + 4 * 1024 * 1024;
        let chunk = vec![1u8; 64 * 1024];
        let mut r = ByteRing::default();
        for _ in 0..200 {
            while r.len() + chunk.len() <= window {
                r.push(&chunk);
            }
            r.release_to(r.start() + 100_000);
        }
        assert!(r.capacity() >= window - chunk.len());
        assert!(
            r.capacity() <= window + window / 8 + GRANULE,
            "{}",
            r.capacity()
        );
        // Out-of-range reads are empty.
        assert_eq!(r.slices(r.start() - 1, 1), (&[][..], &[][..]));
        assert_eq!(r.slices(r.end(), 1), (&[][..], &[][..]));
    }
}
