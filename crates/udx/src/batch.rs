//! Datagrams prepared for sending without copying their payload.
//!
//! A stream's data packets carry bytes of its send ring. [`Stream::poll_transmit`] appends whole datagrams to a
//! buffer (the payload copied in); the driver instead prepares a [`TxBatch`]: headers (and whole datagrams that
//! carry no ring bytes: acks, heartbeats, messages, relayed datagrams) in one buffer, and for each data packet a
//! reference to its payload in the ring. The driver then sends each GSO batch with one `sendmsg` whose iovecs
//! point at the headers and straight into the ring, while it still holds the instance's lock (the ring cannot
//! change meanwhile): the payload is copied once, by the kernel.
//!
//! [`Stream::poll_transmit`]: super::stream::Stream::poll_transmit

use std::net::SocketAddr;

use super::ring::ByteRing;

/// Where a stream's transmissions go (see the module documentation).
pub(crate) trait Emit {
    /// The buffer headers and whole datagrams are appended to.
    fn buf(&mut self) -> &mut Vec<u8>;
    /// Wire bytes emitted so far, payloads included.
    fn wire_len(&self) -> usize;
    /// Adds `len` bytes of `ring` from absolute offset `offset` as the payload of the open datagram (after what
    /// [`Emit::buf`] got since the last [`Emit::end_datagram`]).
    fn payload(&mut self, ring: &ByteRing, offset: u64, len: usize);
    /// Ends the open datagram.
    fn end_datagram(&mut self);
}

/// The plain form: datagrams appended back to back, payloads copied in.
impl Emit for Vec<u8> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self
    }

    fn wire_len(&self) -> usize {
        self.len()
    }

    fn payload(&mut self, ring: &ByteRing, offset: u64, len: usize) {
        ring.copy_to(offset, len, self);
    }

    fn end_datagram(&mut self) {}
}

/// One prepared datagram: `bytes[start..end]` of its [`TxBatch`], then `len` bytes of stream `stream`'s send
/// ring from absolute offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Datagram {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) stream: u32,
    pub(crate) offset: u64,
    pub(crate) len: usize,
}

impl Datagram {
    /// Bytes on the wire.
    pub(crate) fn wire_len(&self) -> usize {
        self.end - self.start + self.len
    }
}

/// Datagrams for one destination sent together: `datagrams[first..end]` of the batch, all `segment_size`
/// bytes but possibly the last (one GSO send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSend {
    pub(crate) destination: SocketAddr,
    pub(crate) segment_size: usize,
    pub(crate) first: usize,
    pub(crate) end: usize,
}

/// Datagrams prepared for sending, their payloads referring to the streams' send rings (see the module
/// documentation).
#[derive(Debug, Default)]
pub(crate) struct TxBatch {
    pub(crate) bytes: Vec<u8>,
    pub(crate) datagrams: Vec<Datagram>,
    pub(crate) sends: Vec<BatchSend>,
    /// Wire bytes of the datagrams ended so far.
    wire: usize,
    /// Where the open datagram starts in `bytes`.
    open: usize,
    /// The open datagram's payload.
    payload: (u64, usize),
    /// The stream whose datagrams are being added.
    stream: u32,
}

impl TxBatch {
    /// Datagrams added from now on come from stream `id` (their payloads are in its send ring).
    pub(crate) fn set_stream(&mut self, id: u32) {
        self.stream = id;
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.datagrams.clear();
        self.sends.clear();
        self.wire = 0;
        self.open = 0;
        self.payload = (0, 0);
    }

    /// Records the datagrams added since `first` (an earlier `datagrams.len()`) as one send.
    pub(crate) fn push_send(&mut self, destination: SocketAddr, segment_size: usize, first: usize) {
        let end = self.datagrams.len();
        if end > first {
            self.sends.push(BatchSend {
                destination,
                segment_size,
                first,
                end,
            });
        }
    }

    /// Adds a whole datagram that carries no ring bytes (a relayed datagram) as a send of its own.
    pub(crate) fn push_datagram(&mut self, destination: SocketAddr, datagram: &[u8]) {
        let first = self.datagrams.len();
        self.bytes.extend_from_slice(datagram);
        self.end_datagram();
        self.push_send(destination, datagram.len(), first);
    }
}

impl Emit for TxBatch {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    fn wire_len(&self) -> usize {
        self.wire + (self.bytes.len() - self.open) + self.payload.1
    }

    fn payload(&mut self, _ring: &ByteRing, offset: u64, len: usize) {
        self.payload = (offset, len);
    }

    fn end_datagram(&mut self) {
        let (offset, len) = std::mem::take(&mut self.payload);
        let d = Datagram {
            start: self.open,
            end: self.bytes.len(),
            stream: self.stream,
            offset,
            len,
        };
        self.wire += d.wire_len();
        self.open = self.bytes.len();
        self.datagrams.push(d);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::stream::{Stream, StreamConfig};

    /// Resolves a batch into the bytes of each send, as the driver's iovecs gather them.
    fn materialize(batch: &TxBatch, stream: &Stream) -> Vec<Vec<u8>> {
        batch
            .sends
            .iter()
            .map(|send| {
                let mut out = Vec::new();
                for d in &batch.datagrams[send.first..send.end] {
                    out.extend_from_slice(&batch.bytes[d.start..d.end]);
                    let (a, b) = stream.send_payload(d.offset, d.len);
                    assert_eq!(a.len() + b.len(), d.len, "payload still in the ring");
                    out.extend_from_slice(a);
                    out.extend_from_slice(b);
                }
                out
            })
            .collect()
    }

    /// Writes the next piece of `data` (at most 70,001 bytes, as much as in-place room allows) to `plain`
    /// with [`Stream::write`] and to `batched` in place; finishes both after the last byte.
    fn write_both(plain: &mut Stream, batched: &mut Stream, data: &[u8], written: &mut usize) {
        let room = batched.write_in_place_capacity().min(70_001);
        let n = plain.write(&data[*written..(*written + room).min(data.len())]);
        if n > 0 {
            let (a, b) = batched.write_in_place(n).expect("the same room");
            let (da, db) = data[*written..*written + n].split_at(a.len());
            a.copy_from_slice(da);
            b.copy_from_slice(db);
            *written += n;
        }
        if *written == data.len() {
            plain.finish();
            batched.finish();
        }
    }

    /// Everything `peer` has to read, appended to `received`.
    fn read_all(peer: &mut Stream, received: &mut Vec<u8>) {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = peer.read(&mut buf);
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
    }

    /// Two identical streams, one polled into a buffer and one into a batch, produce the same datagrams round
    /// after round (data, acks from the peer, retransmissions after a loss, END), and the batch's sends have
    /// the datagram boundaries of the plain form.
    #[test]
    fn a_batch_resolves_to_the_bytes_poll_transmit_copies() {
        let t0 = Instant::now();
        let a_addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let b_addr: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        let mut plain = Stream::new(1, StreamConfig::default(), t0);
        let mut batched = Stream::new(1, StreamConfig::default(), t0);
        let mut peer = Stream::new(2, StreamConfig::default(), t0);
        plain.connect(2, b_addr, t0);
        batched.connect(2, b_addr, t0);
        peer.connect(1, a_addr, t0);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut written = 0;
        let mut received = Vec::new();
        for round in 0..2_000u64 {
            let now = t0 + Duration::from_millis(round);
            if written < data.len() {
                write_both(&mut plain, &mut batched, &data, &mut written);
            }
            let mut out = Vec::new();
            let mut batch = TxBatch::default();
            batch.set_stream(1);
            loop {
                let start = out.len();
                let p = plain.poll_transmit(now, &mut out, 43);
                let first = batch.datagrams.len();
                let q = batched.poll_transmit_batch(now, &mut batch, 43);
                assert_eq!(p, q, "round {round}");
                let Some(t) = p else { break };
                batch.push_send(t.destination, t.segment_size, first);
                let sent = materialize(&batch, &batched);
                assert_eq!(
                    sent.last().map(Vec::as_slice),
                    Some(&out[start..]),
                    "round {round}"
                );
                for (i, d) in batch.datagrams[first..].iter().enumerate() {
                    let last = first + i + 1 == batch.datagrams.len();
                    assert!(
                        d.wire_len() == t.segment_size || (last && d.wire_len() <= t.segment_size)
                    );
                }
                // Every 17th datagram is lost on the way.
                for (i, datagram) in out[start..].chunks(t.segment_size).enumerate() {
                    if (round as usize + i) % 17 != 5 {
                        peer.handle_datagram(now, a_addr, datagram);
                    }
                }
            }
            while let Some(_t) = {
                let mut ack = Vec::new();
                let t = peer.poll_transmit(now, &mut ack, 1);
                if t.is_some() {
                    plain.handle_datagram(now, b_addr, &ack);
                    batched.handle_datagram(now, b_addr, &ack);
                }
                t
            } {}
            read_all(&mut peer, &mut received);
            plain.handle_timeout(now);
            batched.handle_timeout(now);
            if received.len() == data.len() && plain.unacked_len() == 0 {
                break;
            }
        }
        assert!(
            received == data,
            "{} of {} bytes",
            received.len(),
            data.len()
        );
        assert_eq!(batched.unacked_len(), 0);
    }

    /// A migration mid-transfer ([`Stream::migrate`]: everything in flight lost, retransmits rewritten to the
    /// new address) with the payload written in place: the in-place stream sends what a stream written to
    /// through [`Stream::write`] sends, round after round; its room stays [`Stream::write_capacity`] capped by
    /// [`IN_PLACE_UNSENT_MAX`] minus the bytes never sent (in-flight bytes marked lost count as sent, not
    /// unsent); after the move every datagram goes to the new address; nothing waits for a timeout; the
    /// bytes arrive whole.
    ///
    /// [`IN_PLACE_UNSENT_MAX`]: crate::stream::IN_PLACE_UNSENT_MAX
    #[test]
    fn in_place_bookkeeping_holds_across_a_migration() {
        use crate::stream::IN_PLACE_UNSENT_MAX;
        let t0 = Instant::now();
        let a_addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let b_addr: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        let b2_addr: SocketAddr = "127.0.0.1:3".parse().expect("addr");
        let mut plain = Stream::new(1, StreamConfig::default(), t0);
        let mut batched = Stream::new(1, StreamConfig::default(), t0);
        let mut peer = Stream::new(2, StreamConfig::default(), t0);
        plain.connect(2, b_addr, t0);
        batched.connect(2, b_addr, t0);
        peer.connect(1, a_addr, t0);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 247) as u8).collect();
        let mut written = 0usize;
        // The end of the furthest payload sent so far (ring offsets start at 0): bytes past it were never sent.
        let mut sent_end = 0u64;
        let mut received = Vec::new();
        // Where the peer is now; datagrams to anywhere else are lost.
        let mut peer_addr = b_addr;
        let mut moved_at = None;
        // Datagrams arrive a round after they were sent (acks at once).
        let mut in_transit: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        for round in 0..4_000u64 {
            let now = t0 + Duration::from_micros(500 * round);
            if moved_at.is_none() && received.len() >= data.len() / 3 {
                peer_addr = b2_addr;
                assert!(
                    batched.stats().inflight_packets > 0,
                    "data in flight at the move"
                );
                plain.migrate(b2_addr, now);
                batched.migrate(b2_addr, now);
                moved_at = Some(round);
            }
            for (to, datagram) in in_transit.drain(..) {
                if to == peer_addr {
                    peer.handle_datagram(now, a_addr, &datagram);
                }
            }
            if written < data.len() {
                let unsent = written - sent_end as usize;
                assert_eq!(
                    batched.write_in_place_capacity(),
                    batched.write_capacity().min(IN_PLACE_UNSENT_MAX - unsent),
                    "round {round}"
                );
                write_both(&mut plain, &mut batched, &data, &mut written);
            }
            let mut out = Vec::new();
            let mut batch = TxBatch::default();
            batch.set_stream(1);
            loop {
                let start = out.len();
                let p = plain.poll_transmit(now, &mut out, 43);
                let first = batch.datagrams.len();
                let q = batched.poll_transmit_batch(now, &mut batch, 43);
                assert_eq!(p, q, "round {round}");
                let Some(t) = p else { break };
                batch.push_send(t.destination, t.segment_size, first);
                let sent = materialize(&batch, &batched);
                assert_eq!(sent.last().map(Vec::as_slice), Some(&out[start..]));
                for d in &batch.datagrams[first..] {
                    sent_end = sent_end.max(d.offset + d.len as u64);
                }
                if moved_at.is_some() {
                    assert_eq!(t.destination, b2_addr, "round {round}");
                }
                for datagram in out[start..].chunks(t.segment_size) {
                    in_transit.push((t.destination, datagram.to_vec()));
                }
            }
            loop {
                let mut ack = Vec::new();
                if peer.poll_transmit(now, &mut ack, 1).is_none() {
                    break;
                }
                plain.handle_datagram(now, peer_addr, &ack);
                batched.handle_datagram(now, peer_addr, &ack);
            }
            read_all(&mut peer, &mut received);
            plain.handle_timeout(now);
            batched.handle_timeout(now);
            if received.len() == data.len() && batched.unacked_len() == 0 {
                break;
            }
        }
        assert!(moved_at.is_some());
        assert!(
            received == data,
            "{} of {} bytes",
            received.len(),
            data.len()
        );
        assert_eq!(batched.unacked_len(), 0);
        assert_eq!(plain.unacked_len(), 0);
        let stats = batched.stats();
        assert_eq!(stats.rto_count, 0, "{stats:?}");
        assert!(stats.packets_retransmitted > 0, "{stats:?}");
        assert_eq!(stats, plain.stats());
    }
}
