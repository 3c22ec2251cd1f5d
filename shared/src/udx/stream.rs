//! One UDX stream's protocol state machine (API stub; the full implementation replaces it).
#![allow(missing_docs, unused_variables, dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::packet::{flags, Header, HEADER_LEN};

/// Stream settings.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The receive window advertised when the read buffer is empty (libudx default 4 MiB).
    pub recv_window_max: u32,
    /// Keepalive interval (HEARTBEAT when idle); `None` disables it.
    pub keepalive: Option<Duration>,
    /// Probe the path MTU upwards from 1200 bytes.
    pub mtu_probing: bool,
    /// Initial sequence number (libudx `udx_stream_set_seq`).
    pub initial_seq: u32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            recv_window_max: 4 * 1024 * 1024,
            keepalive: None,
            mtu_probing: true,
            initial_seq: 0,
        }
    }
}

/// Errors of a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("stream is not connected")]
    NotConnected,
    #[error("stream is closed")]
    Closed,
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLarge { len: usize, max: usize },
    #[error("connection timed out")]
    TimedOut,
    #[error("connection reset by peer")]
    Reset,
}

/// A batch of datagrams `poll_transmit` appended, all to one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub segment_size: usize,
    pub len: usize,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    Readable,
    Writable,
    RemoteEnded,
    Message(Vec<u8>),
    RemoteChanged,
    Closed { error: Option<StreamError> },
}

/// Counters and estimates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStats {
    pub srtt: Duration,
    pub rto: Duration,
    pub cwnd: u32,
    pub inflight_packets: u32,
    pub inflight_bytes: usize,
    pub mtu: usize,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_retransmitted: u64,
    pub rto_count: u32,
    pub fast_recoveries: u32,
    pub bandwidth_bytes_per_sec: u64,
}

/// One UDX stream.
#[derive(Debug)]
pub struct Stream {
    local_id: u32,
    remote: Option<(u32, SocketAddr)>,
    msgs: VecDeque<Vec<u8>>,
    events: VecDeque<StreamEvent>,
    closed: bool,
}

impl Stream {
    pub fn new(local_id: u32, config: StreamConfig, now: Instant) -> Self {
        Self { local_id, remote: None, msgs: VecDeque::new(), events: VecDeque::new(), closed: false }
    }
    pub fn local_id(&self) -> u32 {
        self.local_id
    }
    pub fn remote(&self) -> Option<(u32, SocketAddr)> {
        self.remote
    }
    pub fn connect(&mut self, remote_id: u32, addr: SocketAddr, now: Instant) {
        self.remote = Some((remote_id, addr));
    }
    pub fn change_remote(&mut self, remote_id: u32, addr: SocketAddr, now: Instant) {
        self.remote = Some((remote_id, addr));
    }
    pub fn set_max_mtu(&mut self, mtu: usize) {}
    pub fn set_keepalive(&mut self, interval: Option<Duration>, now: Instant) {}
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if let Ok((h, rest)) = Header::decode(datagram) {
            if h.has(flags::MESSAGE) {
                if let Some(p) = h.payload(rest) {
                    self.events.push_back(StreamEvent::Message(p.to_vec()));
                }
            }
        }
    }
    pub fn write(&mut self, data: &[u8]) -> usize {
        0
    }
    pub fn finish(&mut self) {}
    pub fn send_message(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if self.remote.is_none() {
            return Err(StreamError::NotConnected);
        }
        self.msgs.push_back(data.to_vec());
        Ok(())
    }
    pub fn max_message_len(&self) -> usize {
        1152
    }
    pub fn destroy(&mut self) {
        self.closed = true;
    }
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        0
    }
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>, max_datagrams: usize) -> Option<Transmit> {
        let (rid, dest) = self.remote?;
        let m = self.msgs.pop_front()?;
        let h = Header { type_flags: flags::MESSAGE, data_offset: 0, remote_id: rid, recv_window: 4 << 20, seq: 0, ack: 0 };
        h.encode(out);
        out.extend_from_slice(&m);
        Some(Transmit { destination: dest, segment_size: HEADER_LEN + m.len(), len: HEADER_LEN + m.len() })
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn handle_timeout(&mut self, now: Instant) {}
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }
    pub fn is_closed(&self) -> bool {
        self.closed
    }
    pub fn stats(&self) -> StreamStats {
        StreamStats::default()
    }
}
