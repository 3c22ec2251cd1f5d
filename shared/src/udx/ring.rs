//! A growable byte ring buffer addressed by absolute stream offsets.

/// Bytes `[start, start + len)` of a byte stream, stored in a power-of-two ring that grows as needed.
#[derive(Debug, Default)]
pub(crate) struct ByteRing {
    buf: Vec<u8>,
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

    fn mask(&self) -> usize {
        self.buf.len().wrapping_sub(1)
    }

    fn grow(&mut self, need: usize) {
        if need <= self.buf.len() {
            return;
        }
        let cap = need.next_power_of_two().max(4096);
        let mut nb = vec![0u8; cap];
        let (a, b) = self.slices(self.start, self.len);
        nb[..a.len()].copy_from_slice(a);
        nb[a.len()..a.len() + b.len()].copy_from_slice(b);
        // Re-base so that `start` maps to index (start & mask) in the new buffer.
        let shift = (self.start as usize) & (cap - 1);
        nb.rotate_right(shift);
        self.buf = nb;
    }

    /// Appends bytes at the end.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.grow(self.len + data.len());
        let mask = self.mask();
        let at = (self.end() as usize) & mask;
        let first = (self.buf.len() - at).min(data.len());
        self.buf[at..at + first].copy_from_slice(&data[..first]);
        let rest = data.len() - first;
        self.buf[..rest].copy_from_slice(&data[first..]);
        self.len += data.len();
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
        let at = (offset as usize) & self.mask();
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
        self.start += n as u64;
        self.len -= n;
        n
    }

    /// Drops every byte before absolute offset `offset`.
    pub(crate) fn release_to(&mut self, offset: u64) {
        if offset <= self.start {
            return;
        }
        let n = ((offset - self.start) as usize).min(self.len);
        self.start += n as u64;
        self.len -= n;
    }

    /// Drops everything.
    pub(crate) fn clear(&mut self) {
        self.start = self.end();
        self.len = 0;
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
}
