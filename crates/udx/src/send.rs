//! The sending side of a [`Stream`] (a child module of `stream`, kept in its own file): pacing, the send
//! window, packetizing written bytes, retransmissions, acks and the path MTU search, and
//! [`Stream::poll_transmit`].

use super::*;
use crate::batch::{Emit, TxBatch};

impl Stream {
    // ---------------------------------------------------------------- MTU

    pub(super) fn mtu_unprobeify(&mut self, s: u32) {
        if let Some(p) = self.pkt_mut(s) {
            p.padding = 0;
            p.is_mtu_probe = false;
        }
        if self.mtu_state == MtuState::Search {
            if self.mtu_probe_count >= MTU_MAX_PROBES {
                self.mtu_state = MtuState::SearchComplete;
            } else {
                self.mtu_probe_wanted = true;
            }
        }
    }

    // ---------------------------------------------------------------- sending

    /// Refills the pacing token bucket for the time since the last refill. libudx refills once per millisecond
    /// tick, setting the bucket to a tick's worth of the pacing rate; with a microsecond clock the tokens
    /// accumulate instead (a refill a few microseconds after the last one adds a few microseconds' worth), up
    /// to one tick's worth. A sender that was held back by pacing gets the whole wait's worth (a driver woken
    /// late by a coarse timer or the scheduler catches up, as with libudx's refill); one held back by its
    /// window or idle does not: after a stall without acks, the acks that arrive all at once open the whole
    /// window, and it goes out paced rather than as one burst. A packet may go out while any token is left and
    /// leaves the bucket in debt by the rest of its size, so the rate holds however often the driver calls.
    pub(super) fn update_pacing_time(&mut self) {
        let now = self.now;
        if now <= self.tb_last_refill_us {
            return;
        }
        let elapsed = now - self.tb_last_refill_us;
        let rate = self.cc.pacing_rate().max(1);
        let added = u128::from(elapsed) * u128::from(rate) / 1_000_000;
        if added == 0 {
            // Less than a byte's worth: keep the time for the next refill.
            return;
        }
        let added = added.min(i64::MAX as u128 / 2) as i64;
        let span = if self.pacing_limited {
            elapsed.max(PACING_TICK_US)
        } else {
            PACING_TICK_US
        };
        let cap =
            (u128::from(span) * u128::from(rate) / 1_000_000).min(i64::MAX as u128 / 2) as i64;
        self.tb_available = self.tb_available.saturating_add(added).min(cap);
        self.tb_last_refill_us = now;
        self.pacing_limited = self.tb_available <= 0;
    }

    /// How long until the token bucket holds `bytes` again at the current pacing rate (at least 1 µs, at most
    /// one libudx tick).
    pub(super) fn pacing_wait_us(&self, bytes: u32) -> u64 {
        let rate = self.cc.pacing_rate().max(1);
        let missing = (i64::from(bytes) - self.tb_available).max(1) as u128;
        (missing * 1_000_000)
            .div_ceil(u128::from(rate))
            .clamp(1, u128::from(PACING_TICK_US)) as u64
    }

    pub(super) fn may_send(&mut self, retransmit: bool) -> bool {
        self.update_pacing_time();
        if self.tb_available <= 0 {
            self.pacing_limited = true;
            if self.pacing_timer_at.is_none() {
                let wait = self.pacing_wait_us(self.mtu as u32);
                self.pacing_timer_at = Some(self.now + wait);
            }
            return false;
        }
        if retransmit {
            self.inflight_list.len < self.cc.cwnd()
        } else {
            self.inflight_list.len < self.send_window_in_packets()
        }
    }

    pub(super) fn has_unsent(&self) -> bool {
        self.unsent_offset < self.send_ring.end()
            || (self.end_offset.is_some() && !self.end_packetized)
    }

    /// Bookkeeping of a (re)transmission (libudx `_send_packet`), the bytes go out in `emit_packet`.
    pub(super) fn on_packet_sent(&mut self, s: u32, is_retransmit: bool) {
        self.rate_check_app_limited();
        let now = self.now;
        let no_data_in_flight = self.seq == self.remote_acked;
        if no_data_in_flight {
            self.first_sent_ts = now;
            self.delivered_ts = now;
        }
        let (first_sent_ts, delivered_ts, delivered, app_limited) = (
            self.first_sent_ts,
            self.delivered_ts,
            self.delivered,
            self.app_limited != 0,
        );
        self.xmit_count += 1;
        self.rx_since_sent = 0;
        let xmit = self.xmit_count;
        let Some(p) = self.pkt_mut(s) else { return };
        p.transmits = p.transmits.saturating_add(1);
        if is_retransmit && !p.lost && p.transmits > 1 {
            // A probe of a packet still in flight: keep crediting the earlier transmission.
            p.ambiguous = true;
        } else {
            p.ambiguous = false;
            p.rack_xmit = xmit;
            p.rack_time_sent = now;
        }
        p.xmit = xmit;
        if is_retransmit {
            p.retransmitted = true;
        }
        p.time_sent = now;
        p.first_sent_ts = first_sent_ts;
        p.delivered_ts = delivered_ts;
        p.delivered = delivered;
        p.is_app_limited = app_limited;
        let was_lost = p.lost;
        p.lost = false;
        let size = p.size;
        if was_lost {
            self.list_unlink(ListId::Retransmit, s);
        }
        self.list_push_tail(ListId::Inflight, s);
        self.inflight_bytes += size as usize;
        self.tb_available = self.tb_available.saturating_sub(i64::from(size));
        if self.tb_available <= 0 {
            self.pacing_limited = true;
            // Wake when a full packet's worth of tokens is back.
            let wait = self.pacing_wait_us(self.mtu as u32);
            self.pacing_timer_at = Some(self.now + wait);
        }
    }

    /// Packetizes the next chunk of the send buffer as a new packet (libudx `send_new_packet` +
    /// `_send_new_packet`); returns its seq.
    pub(super) fn send_new_packet(&mut self, tlp: bool) -> Option<u32> {
        if !self.has_unsent() || !self.connected {
            return None;
        }
        if !tlp && !self.may_send(false) {
            return None;
        }
        let destination = self.remote_addr?;
        let cap = self.max_payload();
        let avail = (self.send_ring.end() - self.unsent_offset) as usize;
        let len = cap.min(avail);
        let mut type_flags = 0;
        if len > 0 {
            type_flags |= flags::DATA;
        }
        if let Some(e) = self.end_offset {
            if !self.end_packetized && self.unsent_offset + len as u64 == e && len < cap {
                type_flags |= flags::END;
                self.end_packetized = true;
            }
        }
        let offset = self.unsent_offset;
        self.unsent_offset += len as u64;

        let inflight_was_empty = self.inflight_list.len == 0;
        let s = self.seq;
        let size = (HEADER_LEN + len) as u32;
        let mut padding = 0u8;
        let mut is_probe = false;
        if self.mtu_probe_wanted && !tlp && !self.remote_changing && len > 0 {
            let overhead = self.mtu - self.max_payload();
            let wanted = self.mtu_probe_size;
            // libudx's check `wanted_size > pkt->size` never lets a probe through; we apply the intended
            // one: the padding brings the datagram to the probed size and fits the 8-bit data offset.
            if let Some(pad) = wanted.checked_sub(len + overhead) {
                if pad <= 255 {
                    padding = pad as u8;
                    is_probe = true;
                }
            }
        }
        self.outgoing.push_back(SentPacket {
            seq: s,
            acked: false,
            lost: false,
            retransmitted: false,
            transmits: 0,
            rto_timeouts: 0,
            is_mtu_probe: is_probe,
            type_flags,
            padding,
            remote_id: self.remote_id,
            destination,
            offset,
            len: len as u16,
            size,
            time_sent: 0,
            xmit: 0,
            ambiguous: false,
            rack_xmit: 0,
            rack_time_sent: 0,
            first_sent_ts: 0,
            delivered_ts: 0,
            delivered: 0,
            is_app_limited: false,
            prev: None,
            next: None,
        });
        self.on_packet_sent(s, false);
        self.seq = self.seq.wrapping_add(1);
        if inflight_was_empty {
            self.with_cc(|cc, path| cc.on_sent(path));
        }
        if is_probe {
            self.mtu_probe_count += 1;
            self.mtu_probe_wanted = false;
        }
        if tlp {
            self.tlp_is_retrans = false;
            self.tlp_in_flight = true;
            self.tlp_end_seq = s;
            self.tlp_permitted = false;
        }
        self.arm_stream_timers(!tlp);
        Some(s)
    }

    pub(super) fn retransmit_packet(&mut self, s: u32) {
        let inflight_was_empty = self.inflight_list.len == 0;
        self.on_packet_sent(s, true);
        self.retransmit_count += 1;
        if inflight_was_empty {
            self.with_cc(|cc, path| cc.on_sent(path));
        }
        self.arm_stream_timers(false);
    }

    /// Wire size and destination of packet `s` as it would be sent now.
    pub(super) fn wire_info(&self, s: u32) -> Option<(usize, SocketAddr)> {
        let p = self.pkt(s)?;
        Some((
            HEADER_LEN + usize::from(p.padding) + usize::from(p.len),
            p.destination,
        ))
    }

    pub(super) fn emit_packet<E: Emit>(&mut self, s: u32, out: &mut E) {
        let rwnd = self.recv_rwnd();
        self.last_advertised_rwnd = rwnd;
        let ack = self.ack;
        let Some(p) = self.pkt(s) else { return };
        // Retransmits keep the original header but advertise the current receive state (libudx).
        let h = Header {
            type_flags: p.type_flags,
            data_offset: p.padding,
            remote_id: p.remote_id,
            recv_window: rwnd,
            seq: p.seq,
            ack,
        };
        let (offset, len, padding) = (p.offset, usize::from(p.len), usize::from(p.padding));
        let buf = out.buf();
        h.encode(buf);
        buf.resize(buf.len() + padding, 0);
        out.payload(&self.send_ring, offset, len);
        out.end_datagram();
        let wire = HEADER_LEN + padding + len;
        self.packets_tx += 1;
        self.bytes_tx += wire as u64;
    }

    /// Writes an ack: the cumulative ack and SACK ranges scanned upwards from `ack + 1` as libudx does, but up
    /// to [`MAX_SACK_RANGES`] of them (libudx: 50), and when those run out before the highest received packet,
    /// the last [`SACK_TOP_RANGES`] slots report the highest ranges: the packets sent last, which RACK needs
    /// to see to tell the holes before them lost.
    pub(super) fn build_ack<E: Emit>(&mut self, sink: &mut E) -> usize {
        let out = sink.buf();
        let start_len = out.len();
        let mut h = self.header(0);
        h.encode(out);
        #[cfg(debug_assertions)]
        let before = out.len();
        let nsacks = self.encode_sack_ranges(out);
        #[cfg(debug_assertions)]
        {
            // The ranges from the runs are the ranges the scan of the window gives, byte for byte.
            let mut scanned = Vec::new();
            let n = self.scan_sack_ranges(&mut scanned);
            debug_assert_eq!((n, &scanned[..]), (nsacks, &out[before..]), "SACK ranges");
        }
        if nsacks > 0 {
            h.type_flags = flags::SACK;
            if let Some(b) = out.get_mut(start_len + 2) {
                *b = h.type_flags;
            }
        }
        let n = out.len() - start_len;
        sink.end_datagram();
        self.packets_tx += 1;
        self.bytes_tx += n as u64;
        n
    }

    /// The SACK ranges by a scan of the whole out-of-order window (the code before `incoming_runs`; libudx's
    /// order: the lowest ranges up, then the highest down, and the bottom scan ends once it has passed as many
    /// holes as there are out-of-order packets), kept to check `encode_sack_ranges` in debug builds.
    #[cfg(debug_assertions)]
    fn scan_sack_ranges(&self, out: &mut Vec<u8>) -> usize {
        let mut nsacks = 0usize;
        let mut in_block = false;
        let mut start = 0u32;
        let mut end = 0u32;
        let mut ooo = self.out_of_order;
        let limit = self.incoming.len().min(65_537);
        let bottom_cap = MAX_SACK_RANGES - SACK_TOP_RANGES;
        let mut i = 1usize;
        while i < limit && ooo > 0 && nsacks < bottom_cap {
            let s = self.ack.wrapping_add(i as u32);
            let received = matches!(self.incoming.get(i), Some(Some(_)));
            if received {
                if !in_block {
                    in_block = true;
                    start = s;
                }
                end = s.wrapping_add(1);
            } else {
                ooo -= 1;
                if in_block {
                    in_block = false;
                    encode_sack_range(out, start, end);
                    nsacks += 1;
                }
            }
            i += 1;
        }
        if in_block {
            encode_sack_range(out, start, end);
            nsacks += 1;
        }
        if nsacks >= bottom_cap {
            // The highest ranges, scanning down to where the scan up stopped.
            let mut j = limit;
            in_block = false;
            while j > i && nsacks < MAX_SACK_RANGES {
                j -= 1;
                let s = self.ack.wrapping_add(j as u32);
                if matches!(self.incoming.get(j), Some(Some(_))) {
                    if !in_block {
                        in_block = true;
                        end = s.wrapping_add(1);
                    }
                    start = s;
                } else if in_block {
                    in_block = false;
                    encode_sack_range(out, start, end);
                    nsacks += 1;
                }
            }
            if in_block && nsacks < MAX_SACK_RANGES {
                encode_sack_range(out, start, end);
                nsacks += 1;
            }
        }
        nsacks
    }

    /// Encodes the SACK ranges of an ack from `incoming_runs`: the ranges the scan of the window
    /// (`scan_sack_ranges`, in debug builds) finds, in its order. A run is reported in the bottom pass while fewer holes lie below it than there are out-of-order
    /// packets (the scan stops after that many holes) and while fewer than `MAX_SACK_RANGES -
    /// SACK_TOP_RANGES` were; after that many, the highest runs follow, top down, up to `MAX_SACK_RANGES`.
    fn encode_sack_ranges(&mut self, out: &mut Vec<u8>) -> usize {
        let base = self.ack.wrapping_add(1);
        self.incoming_runs.retain_mut(|(a, b)| {
            if seq::le(*b, base) {
                return false;
            }
            if seq::lt(*a, base) {
                *a = base;
            }
            true
        });
        let bottom_cap = MAX_SACK_RANGES - SACK_TOP_RANGES;
        let ooo = self.out_of_order;
        let mut received_below = 0u32;
        let mut nsacks = 0usize;
        let mut bottom = 0usize;
        for &(a, b) in &self.incoming_runs {
            if nsacks >= bottom_cap {
                break;
            }
            let holes_below = a.wrapping_sub(base).wrapping_sub(received_below);
            if ooo <= holes_below {
                break;
            }
            encode_sack_range(out, a, b);
            nsacks += 1;
            bottom += 1;
            received_below = received_below.wrapping_add(b.wrapping_sub(a));
        }
        if nsacks >= bottom_cap {
            for &(a, b) in self.incoming_runs[bottom..].iter().rev() {
                if nsacks >= MAX_SACK_RANGES {
                    break;
                }
                encode_sack_range(out, a, b);
                nsacks += 1;
            }
        }
        nsacks
    }

    /// What libudx does right after sending an ack: surface the remote END once everything before it was
    /// received, and close when both sides ended.
    pub(super) fn after_ack_sent(&mut self) {
        if self.ending_remote && !self.ended_remote && seq::le(self.remote_ended, self.ack) {
            self.ended_remote = true;
            self.events.push_back(StreamEvent::RemoteEnded);
        }
        if self.ended && self.ended_remote {
            self.close_clean();
        }
    }

    /// Both sides ended: close, and linger to re-ack retransmissions if configured.
    pub(super) fn close_clean(&mut self) {
        self.close_stream(None);
        let linger = self.config.linger.as_micros().min(u128::from(u64::MAX / 4)) as u64;
        // At least three RTOs: the remote's END retransmits come after 1 and then 2 more RTOs.
        let linger = if linger > 0 {
            linger.max(3 * u64::from(self.rto))
        } else {
            0
        };
        if linger > 0 && self.remote_addr.is_some() {
            self.linger_until = Some(self.now + linger);
            self.linger_last_heard = self.now;
        }
    }

    /// Appends up to `max_datagrams` datagrams for one destination to `out` (all `segment_size` bytes except
    /// possibly the last), respecting the congestion and receive windows and pacing. `None`: nothing to send
    /// now (check [`Stream::poll_timeout`]).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut Vec<u8>,
        max_datagrams: usize,
    ) -> Option<Transmit> {
        let r = self.poll_transmit_inner(now, out, max_datagrams);
        self.debug_check();
        r
    }

    /// [`Stream::poll_transmit`] into a [`TxBatch`]: data packets refer to their payload in the send ring
    /// (valid until the next call that changes the stream) instead of copying it.
    pub(crate) fn poll_transmit_batch(
        &mut self,
        now: Instant,
        out: &mut TxBatch,
        max_datagrams: usize,
    ) -> Option<Transmit> {
        let r = self.poll_transmit_inner(now, out, max_datagrams);
        self.debug_check();
        r
    }

    /// Bytes `[offset, offset + len)` of the send ring, as up to two slices (empty once released).
    pub(crate) fn send_payload(&self, offset: u64, len: usize) -> (&[u8], &[u8]) {
        self.send_ring.slices(offset, len)
    }

    fn poll_transmit_inner<E: Emit>(
        &mut self,
        now: Instant,
        out: &mut E,
        max_datagrams: usize,
    ) -> Option<Transmit> {
        self.set_now(now);
        if let Some(p) = self.destroy_packet.take() {
            out.buf().extend_from_slice(&p.bytes);
            out.end_datagram();
            self.packets_tx += 1;
            self.bytes_tx += p.bytes.len() as u64;
            return Some(Transmit {
                destination: p.destination,
                segment_size: p.bytes.len(),
                len: p.bytes.len(),
            });
        }
        if self.closed && self.linger_until.is_some() && self.ack_pending {
            self.ack_pending = false;
            let destination = self.remote_addr?;
            let n = self.build_ack(out);
            return Some(Transmit {
                destination,
                segment_size: n,
                len: n,
            });
        }
        if self.closed || !self.connected || self.relaying || max_datagrams == 0 {
            return None;
        }
        let destination = self.remote_addr?;
        if self.ack_pending {
            self.ack_pending = false;
            let n = self.build_ack(out);
            self.after_ack_sent();
            return Some(Transmit {
                destination,
                segment_size: n,
                len: n,
            });
        }
        if self.heartbeat_pending {
            self.heartbeat_pending = false;
            self.header(flags::HEARTBEAT).encode(out.buf());
            out.end_datagram();
            self.packets_tx += 1;
            self.bytes_tx += HEADER_LEN as u64;
            return Some(Transmit {
                destination,
                segment_size: HEADER_LEN,
                len: HEADER_LEN,
            });
        }
        if let Some(m) = self.messages_out.pop_front() {
            out.buf().extend_from_slice(&m.bytes);
            out.end_datagram();
            self.packets_tx += 1;
            self.bytes_tx += m.bytes.len() as u64;
            return Some(Transmit {
                destination: m.destination,
                segment_size: m.bytes.len(),
                len: m.bytes.len(),
            });
        }
        self.poll_data(out, max_datagrams)
    }

    fn poll_data<E: Emit>(&mut self, out: &mut E, max: usize) -> Option<Transmit> {
        let start_len = out.wire_len();
        let mut batch: Option<(SocketAddr, usize)> = None;
        let mut count = 0usize;
        // Returns false when the packet does not fit the batch (and must wait for the next one).
        let fits = |batch: &Option<(SocketAddr, usize)>, dest: SocketAddr, size: usize| match batch
        {
            None => true,
            Some((d, seg)) => *d == dest && size <= *seg,
        };
        loop {
            if count >= max {
                break;
            }
            // 1. Packets already decided (tail loss probes).
            if let Some(&s) = self.tx_queue.front() {
                let Some((size, dest)) = self.wire_info(s) else {
                    self.tx_queue.pop_front();
                    continue;
                };
                if !fits(&batch, dest, size) {
                    break;
                }
                self.tx_queue.pop_front();
                self.emit_packet(s, out);
                count += 1;
                if batch.is_none() {
                    batch = Some((dest, size));
                } else if batch.is_some_and(|(_, seg)| size < seg) {
                    break;
                }
                continue;
            }
            // 2. Retransmissions.
            if let Some(s) = self.retransmit_list.head {
                if self.may_send(true) {
                    let Some((size, dest)) = self.wire_info(s) else {
                        self.list_unlink(ListId::Retransmit, s);
                        continue;
                    };
                    if !fits(&batch, dest, size) {
                        break;
                    }
                    self.retransmit_packet(s);
                    self.emit_packet(s, out);
                    count += 1;
                    if batch.is_none() {
                        batch = Some((dest, size));
                    } else if batch.is_some_and(|(_, seg)| size < seg) {
                        break;
                    }
                    continue;
                }
            }
            // 3. New data.
            if !self.has_unsent() {
                break;
            }
            let Some(dest) = self.remote_addr else { break };
            let avail = (self.send_ring.end() - self.unsent_offset) as usize;
            let len = avail.min(self.max_payload());
            // The size ignores a possible probe padding; a probe is always the largest so far and only
            // starts a batch or is refused below.
            let est = HEADER_LEN + len;
            if !fits(&batch, dest, est) {
                break;
            }
            if self.mtu_probe_wanted && batch.is_some() && !self.remote_changing {
                // A probe would be larger than the segment size: let it start the next batch.
                break;
            }
            let Some(s) = self.send_new_packet(false) else {
                break;
            };
            let Some((size, _)) = self.wire_info(s) else {
                break;
            };
            self.emit_packet(s, out);
            count += 1;
            if batch.is_none() {
                batch = Some((dest, size));
            } else if batch.is_some_and(|(_, seg)| size < seg) {
                break;
            }
        }
        let (destination, segment_size) = batch?;
        Some(Transmit {
            destination,
            segment_size,
            len: out.wire_len() - start_len,
        })
    }
}
