//! The receiving side of a [`Stream`] (a child module of `stream`, kept in its own file): datagram decoding,
//! in-order delivery, out-of-order buffering, messages, END/DESTROY and the ack fields of received packets
//! (handed to `recovery.rs`).

use super::*;

impl Stream {
    // ---------------------------------------------------------------- receiving

    pub(super) fn take_buffer(&mut self, data: &[u8]) -> Vec<u8> {
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(data);
        v
    }

    pub(super) fn deliver(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.recv_buf.push(data);
        if self.readable_armed {
            self.readable_armed = false;
            self.events.push_back(StreamEvent::Readable);
        }
    }

    pub(super) fn process_data_packet(&mut self, type_flags: u8, s: u32, data: &[u8]) {
        if s == self.ack && type_flags & flags::DATA != 0 {
            // Fast path: next in line.
            self.ack = self.ack.wrapping_add(1);
            self.incoming.pop_front();
            self.deliver(data);
            return;
        }
        let d = seq::diff(s, self.ack);
        if d < 0 || d as usize >= MAX_INCOMING_AHEAD {
            return;
        }
        let d = d as usize;
        if self.incoming.len() <= d {
            self.incoming.resize_with(d + 1, || None);
        }
        let data = self.take_buffer(data);
        if let Some(slot) = self.incoming.get_mut(d) {
            if slot.is_none() {
                runs_insert(&mut self.incoming_runs, s);
            }
            *slot = Some(InPacket { type_flags, data });
            self.out_of_order += 1;
        }
    }

    pub(super) fn incoming_has(&self, s: u32) -> bool {
        let d = seq::diff(s, self.ack);
        d >= 0 && matches!(self.incoming.get(d as usize), Some(Some(_)))
    }

    /// Processes one datagram addressed to this stream (`from` is where it came from). Malformed or foreign
    /// datagrams are ignored; nothing here panics on hostile input.
    pub(super) fn handle_datagram_inner(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        let _ = from;
        self.set_now(now);
        if self.closed && self.linger_until.is_some_and(|t| t > self.now) {
            // Cleanly closed: a retransmitted END or data means our last ack was lost; ack again.
            if let Ok((h, _)) = Header::decode(datagram) {
                if h.remote_id == self.local_id
                    && h.type_flags & (flags::DATA | flags::END) != 0
                    && seq::lt(h.seq, self.ack)
                {
                    self.ack_pending = true;
                    // Our re-ack may be lost too: the remote retransmits again after twice this gap (its RTO
                    // backs off), so stay until then, with one RTO to spare.
                    let gap = self.now.saturating_sub(self.linger_last_heard);
                    self.linger_last_heard = self.now;
                    let until = self.now + 2 * gap + u64::from(self.rto);
                    if self.linger_until.is_some_and(|t| t < until) {
                        self.linger_until = Some(until);
                    }
                }
            }
            return;
        }
        if self.closed || self.destroying || self.relaying {
            return;
        }
        let Ok((h, rest)) = Header::decode(datagram) else {
            return;
        };
        if h.remote_id != self.local_id {
            return;
        }
        self.bytes_rx += datagram.len() as u64;
        self.packets_rx += 1;

        let type_flags = h.type_flags;
        let (rwnd, s, ack) = (h.recv_window, h.seq, h.ack);
        let delivered_before = self.delivered;
        let lost_before = self.lost;
        let prior_remote_acked = self.remote_acked;
        let ack_advanced = seq::diff(ack, prior_remote_acked) > 0;
        let data_inflight = self.remote_acked != self.seq;

        if type_flags & flags::HEARTBEAT != 0 {
            self.ack_pending = true;
            return;
        }
        let Some(payload) = h.payload(rest) else {
            return;
        };

        if seq::le(self.ack, s) {
            if type_flags & (flags::DATA | flags::END) != 0
                && !self.incoming_has(s)
                && !self.ended_remote
            {
                self.process_data_packet(type_flags, s, payload);
            }
            if type_flags & flags::END != 0 {
                self.ending_remote = true;
                self.remote_ended = s;
            }
            if type_flags & flags::DESTROY != 0 {
                self.close_stream(Some(StreamError::Reset));
                return;
            }
        }

        if type_flags & flags::MESSAGE != 0 {
            self.events
                .push_back(StreamEvent::Message(payload.to_vec()));
        }

        // Drain the out-of-order queue.
        while !self.ended_remote {
            let Some(Some(_)) = self.incoming.front() else {
                break;
            };
            let Some(Some(p)) = self.incoming.pop_front() else {
                break;
            };
            self.out_of_order = self.out_of_order.saturating_sub(1);
            self.ack = self.ack.wrapping_add(1);
            if p.type_flags & flags::DATA != 0 {
                self.deliver(&p.data);
            }
            self.pool.push(p.data);
        }

        // An ack for something never sent: ignore the rest.
        if seq::lt(self.seq, ack) {
            return;
        }

        if seq::ge(ack, self.remote_acked)
            && (seq::lt(self.send_wl1, s) || (self.send_wl1 == s && seq::le(self.send_wl2, ack)))
        {
            if rwnd > 0 && self.pending_timer == TimerKind::Zwp {
                self.timer_stop();
            }
            self.send_rwnd = rwnd;
            self.send_wl1 = s;
            self.send_wl2 = ack;
        }

        if self.remote_changing && seq::ge(ack, self.seq_on_remote_changed) {
            self.remote_changing = false;
            self.events.push_back(StreamEvent::RemoteChanged);
        }

        // RACK 7.4.2
        if self.tlp_in_flight
            && seq::ge(ack, self.tlp_end_seq)
            && (!self.tlp_is_retrans || seq::gt(ack, self.tlp_end_seq))
        {
            self.tlp_in_flight = false;
        }

        if seq::gt(ack, self.high_seq) && self.ca_state != CaState::Open {
            if self.ca_state == CaState::Recovery {
                // libudx sets cwnd = ssthresh here (see the controller's recovery exit).
                self.with_cc(|cc, path| cc.on_recovery_exit(path));
            }
            self.ca_state = CaState::Open;
        }

        let mut ended = false;
        let mut rs = RateSample::new();
        let mut p = prior_remote_acked;
        while seq::lt(p, ack) {
            match self.ack_packet(p, false, &mut rs) {
                1 => self.delivered = self.delivered.wrapping_add(1),
                2 => {
                    self.delivered = self.delivered.wrapping_add(1);
                    ended = true;
                }
                _ => {}
            }
            p = p.wrapping_add(1);
        }
        if ack_advanced {
            self.rx_since_sent = 0;
            self.remote_acked = ack;
            // Bytes before the oldest retained packet are no longer needed.
            let keep = self
                .outgoing
                .front()
                .map(|p| p.offset)
                .unwrap_or(self.unsent_offset);
            self.send_ring.release_to(keep);
            self.maybe_writable();
        }

        if ended {
            if self.remote_acked == self.seq {
                if self.keepalive_us > 0 {
                    self.timer_start(TimerKind::Keepalive, self.keepalive_us);
                } else {
                    self.timer_stop();
                }
            }
            if self.ended && self.ended_remote {
                self.close_clean();
                return;
            }
            // A final ack makes sure the remote knows we got its END.
            self.ack_pending = true;
            return;
        }

        // No honest ack carries more ranges than fit the largest MTU; more would only be a way to burn our CPU.
        // The packets of the last ack's ranges are acked already: each range visits only what lies outside
        // them (offsets from the cumulative ack, so plain integer order; see `sacked_prev`).
        let base = self.remote_acked;
        let mut prev = std::mem::take(&mut self.sacked_prev);
        prev.retain_mut(|(a, b)| {
            if seq::le(*b, base) {
                return false;
            }
            *a = if seq::lt(*a, base) {
                0
            } else {
                a.wrapping_sub(base)
            };
            *b = b.wrapping_sub(base);
            true
        });
        prev.sort_unstable();
        let mut ranges = Vec::with_capacity(prev.len() + 1);
        for (start, end) in h.sack_ranges(rest).take(MAX_SACK_RANGES_IN) {
            if !self.sack_is_valid(start, end) {
                continue;
            }
            ranges.push((start, end));
            let (mut from, to) = (start.wrapping_sub(base), end.wrapping_sub(base));
            let mut ended_here = false;
            for &(a, b) in &prev {
                if b <= from {
                    continue;
                }
                if a >= to || ended_here {
                    break;
                }
                ended_here = self.sack_offsets(base, from, a.min(to), &mut rs);
                from = from.max(b);
                if from >= to {
                    break;
                }
            }
            if from < to && !ended_here {
                self.sack_offsets(base, from, to, &mut rs);
            }
        }
        self.sacked_prev = ranges;
        if self.sacks > 0 {
            self.maybe_writable();
        }

        let delivered = self.delivered.wrapping_sub(delivered_before);
        let lost = self.lost.wrapping_sub(lost_before);
        let mut arm_rto_or_tlp = ack_advanced && data_inflight;

        if delivered > 0 {
            self.probe_backoff = 0;
            if self.remote_acked == self.seq {
                arm_rto_or_tlp = false;
                let end_queued = self.ending && !self.ended;
                if self.send_rwnd == 0 && (self.writes_queued_bytes > 0 || end_queued) {
                    self.zwp_backoff = 0;
                    self.timer_start(TimerKind::Zwp, u64::from(self.zwp_timeout()));
                } else if self.keepalive_us > 0 {
                    self.timer_start(TimerKind::Keepalive, self.keepalive_us);
                } else {
                    self.timer_stop();
                }
            } else {
                self.next_rto_ts = self.now + u64::from(self.rto);
            }
            if self.rack_detect_loss_and_arm_timer() {
                arm_rto_or_tlp = false;
            }
        }

        if arm_rto_or_tlp && !self.schedule_loss_probe(true) {
            self.rearm_rto(true);
        } else if delivered > 0
            && self.remote_acked != self.seq
            && matches!(self.pending_timer, TimerKind::Rto | TimerKind::Tlp)
        {
            // Recovering (SACKs but no cumulative progress): probe if no ack comes for a probe timeout, and
            // before the RTO.
            self.schedule_probe_or_rto();
        }

        if data_inflight && !ack_advanced && type_flags & flags::DATA != 0 {
            self.rx_since_sent += payload.len() as u64;
            self.unanswered_probe();
        }

        if type_flags & (flags::DATA | flags::END) != 0 {
            self.ack_pending = true;
        }

        if data_inflight {
            self.rate_gen(delivered, lost, &mut rs);
            self.with_cc(|cc, path| cc.on_ack(path, &rs));
        }
    }

    pub(super) fn maybe_writable(&mut self) {
        if self.hit_high_watermark
            && self.writes_queued_bytes < HIGH_WATERMARK + self.send_window_in_bytes() as usize
        {
            self.hit_high_watermark = false;
            self.events.push_back(StreamEvent::Writable);
        }
    }
}

impl Stream {
    /// Acks the packets `base + from .. base + to` as SACKed; true when one of them completed our END (the
    /// rest of its range is then left, as libudx does).
    fn sack_offsets(&mut self, base: u32, from: u32, to: u32, rs: &mut RateSample) -> bool {
        let mut off = from;
        while off < to {
            match self.ack_packet(base.wrapping_add(off), true, rs) {
                1 => self.delivered = self.delivered.wrapping_add(1),
                2 => {
                    self.delivered = self.delivered.wrapping_add(1);
                    return true;
                }
                _ => {}
            }
            off += 1;
        }
        false
    }
}

/// Adds sequence number `s` to `runs` (see `Stream::incoming_runs`).
fn runs_insert(runs: &mut Vec<(u32, u32)>, s: u32) {
    let next = s.wrapping_add(1);
    let idx = runs.partition_point(|&(a, _)| seq::le(a, s));
    if idx > 0 {
        let (_, b) = runs[idx - 1];
        if seq::lt(s, b) {
            return;
        }
        if b == s {
            runs[idx - 1].1 = next;
            if runs.get(idx).is_some_and(|r| r.0 == next) {
                runs[idx - 1].1 = runs[idx].1;
                runs.remove(idx);
            }
            return;
        }
    }
    if let Some(r) = runs.get_mut(idx) {
        if r.0 == next {
            r.0 = s;
            return;
        }
    }
    runs.insert(idx, (s, next));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `runs_insert` keeps the runs of the inserted sequence numbers (sorted, disjoint, never adjacent) for
    /// any order of arrival, duplicates and a window across the sequence numbers' wrap included.
    #[test]
    fn runs_follow_the_inserted_sequence_numbers() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..50u32 {
            let base = (u32::MAX - 300).wrapping_add(round * 7);
            let mut runs = Vec::new();
            let mut set = std::collections::BTreeSet::new();
            for _ in 0..400 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let off = (x % 600) as u32;
                runs_insert(&mut runs, base.wrapping_add(off));
                set.insert(off);
            }
            let mut want: Vec<(u32, u32)> = Vec::new();
            for &off in &set {
                match want.last_mut() {
                    Some(last) if last.1 == off => last.1 = off + 1,
                    _ => want.push((off, off + 1)),
                }
            }
            let got: Vec<(u32, u32)> = runs
                .iter()
                .map(|&(a, b)| (a.wrapping_sub(base), b.wrapping_sub(base)))
                .collect();
            assert_eq!(got, want, "round {round}");
        }
    }
}
