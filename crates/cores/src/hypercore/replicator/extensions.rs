//! Hypercore extensions (JS `core.registerExtension(name, { encoding, onmessage })`): named application
//! messages between the peers of a core, carried by the `extension` message (type 9) of its
//! `hypercore/alpha` channel as `{name: string, message: raw bytes}`.
//!
//! Facts of hypercore 11.37: the extension's encoding (default `c.buffer`, i.e. a length-prefixed byte
//! string) encodes the message; a sender writes an empty name when it repeats the name of the last
//! extension message it sent to that peer, and a receiver reads an empty name as the last name it received
//! from that peer. A message to a name the receiver has not registered is ignored. `send` goes to one peer,
//! `broadcast` to every peer of the core.
//!
//! Here received messages wait in a bounded inbox per extension ([`MAX_EXTENSION_INBOX`] messages,
//! [`MAX_EXTENSION_INBOX_BYTES`] bytes; past that new ones are dropped and counted in
//! [`super::Stats::extensions_dropped`]) until read with [`Extension::recv`].

use std::collections::VecDeque;
use std::sync::Arc;

use super::{PeerId, Replicator, Shared};
use crate::compact_encoding::{Reader, Writer};

/// Messages kept per extension until read.
pub const MAX_EXTENSION_INBOX: usize = 1024;
/// Bytes kept per extension until read.
pub const MAX_EXTENSION_INBOX_BYTES: usize = 8 * 1024 * 1024;

/// How an extension's messages are encoded inside the `extension` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExtensionEncoding {
    /// `c.buffer`, JS's default: a uint length, then the bytes (an empty message decodes as JS `null`).
    #[default]
    Buffer,
    /// `c.raw`: the bytes as they are (for a JS extension registered with `encoding: c.raw` or with its
    /// own codec applied to raw bytes).
    Raw,
}

impl ExtensionEncoding {
    /// The wire bytes of `message`.
    pub fn encode(self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Buffer => {
                let mut w = Writer::new();
                w.buffer(message);
                w.into_vec()
            }
            Self::Raw => message.to_vec(),
        }
    }

    /// The message in wire bytes, or `None` when they do not decode (a `c.buffer` longer than the bytes;
    /// trailing bytes are ignored, as JS does).
    pub fn decode(self, bytes: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Buffer => Reader::new(bytes).buffer().ok().map(<[u8]>::to_vec),
            Self::Raw => Some(bytes.to_vec()),
        }
    }
}

/// A registered extension in a [`super::ReplicatorCore`].
#[derive(Debug)]
pub(crate) struct ExtensionState {
    encoding: ExtensionEncoding,
    /// Registrations not yet undone.
    handles: usize,
    inbox: VecDeque<(PeerId, Vec<u8>)>,
    inbox_bytes: usize,
}

impl ExtensionState {
    pub fn new(encoding: ExtensionEncoding) -> Self {
        Self {
            encoding,
            handles: 0,
            inbox: VecDeque::new(),
            inbox_bytes: 0,
        }
    }

    pub fn encoding(&self) -> ExtensionEncoding {
        self.encoding
    }

    pub fn register(&mut self, encoding: ExtensionEncoding) {
        self.encoding = encoding;
        self.handles += 1;
    }

    /// Undoes one registration; true when none is left.
    pub fn unregister(&mut self) -> bool {
        self.handles = self.handles.saturating_sub(1);
        self.handles == 0
    }

    /// Keeps a received message; false when it was dropped (undecodable, or the inbox is full).
    pub fn deliver(&mut self, peer: PeerId, wire: &[u8]) -> bool {
        let Some(message) = self.encoding.decode(wire) else {
            return false;
        };
        if self.inbox.len() >= MAX_EXTENSION_INBOX
            || self.inbox_bytes + message.len() > MAX_EXTENSION_INBOX_BYTES
        {
            return false;
        }
        self.inbox_bytes += message.len();
        self.inbox.push_back((peer, message));
        true
    }

    pub fn poll(&mut self) -> Option<(PeerId, Vec<u8>)> {
        let m = self.inbox.pop_front()?;
        self.inbox_bytes -= m.1.len();
        Some(m)
    }
}

/// A registered extension of a replicated core ([`Replicator::register_extension`]): sends to one peer or
/// all, receives from any. Dropping it unregisters it (later messages to it are ignored).
#[derive(Debug)]
pub struct Extension {
    shared: Arc<Shared>,
    name: String,
}

impl Extension {
    /// The extension's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `message` to this extension on `peer` (JS `ext.send(message, peer)`). False when the peer is
    /// not (or no longer) open.
    pub fn send(&self, peer: PeerId, message: &[u8]) -> bool {
        self.shared
            .with(|s| s.send_extension(peer, &self.name, message))
    }

    /// Sends `message` to this extension on every open peer (JS `ext.broadcast(message)`); returns how many.
    pub fn broadcast(&self, message: &[u8]) -> usize {
        self.shared
            .with(|s| s.broadcast_extension(&self.name, message))
    }

    /// The open peers (to [`Extension::send`] to).
    pub fn peers(&self) -> Vec<PeerId> {
        self.shared.lock().open_peer_ids()
    }

    /// The oldest unread message, if any: `(from, message)`.
    pub fn try_recv(&self) -> Option<(PeerId, Vec<u8>)> {
        self.shared.lock().poll_extension(&self.name)
    }

    /// Waits for the next message: `(from, message)`. Waits as long as none comes; bound it with a timeout.
    pub async fn recv(&self) -> (PeerId, Vec<u8>) {
        let mut rx = self.shared.changed.subscribe();
        loop {
            if let Some(m) = self.try_recv() {
                return m;
            }
            // The sender lives in `shared`, which this handle keeps alive: `changed` cannot fail.
            let _ = rx.changed().await;
        }
    }
}

impl Drop for Extension {
    fn drop(&mut self) {
        self.shared.lock().unregister_extension(&self.name);
    }
}

impl Replicator {
    /// Registers extension `name` with JS's default encoding (`c.buffer`), as JS
    /// `core.registerExtension(name, { onmessage })`: messages from any peer to `name` arrive on the
    /// returned handle; messages to names not registered are ignored.
    pub fn register_extension(&self, name: &str) -> Extension {
        self.register_extension_with(name, ExtensionEncoding::Buffer)
    }

    /// [`Replicator::register_extension`] with a chosen encoding.
    pub fn register_extension_with(&self, name: &str, encoding: ExtensionEncoding) -> Extension {
        self.shared.lock().register_extension(name, encoding);
        Extension {
            shared: Arc::clone(&self.shared),
            name: name.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_encoding_is_length_prefixed() {
        let e = ExtensionEncoding::Buffer;
        assert_eq!(e.encode(b"hi"), vec![2, b'h', b'i']);
        assert_eq!(e.decode(&[2, b'h', b'i', 9]), Some(b"hi".to_vec()));
        assert_eq!(e.decode(&[0]), Some(Vec::new()));
        assert_eq!(e.decode(&[3, b'h']), None);
        assert_eq!(e.decode(&[]), None);
        assert_eq!(ExtensionEncoding::Raw.decode(&[3, 1]), Some(vec![3, 1]));
    }

    #[test]
    fn inbox_is_bounded() {
        let mut s = ExtensionState::new(ExtensionEncoding::Raw);
        s.register(ExtensionEncoding::Raw);
        for _ in 0..MAX_EXTENSION_INBOX {
            assert!(s.deliver(PeerId(1), b"x"));
        }
        assert!(!s.deliver(PeerId(1), b"x"));
        assert_eq!(s.poll(), Some((PeerId(1), b"x".to_vec())));
        assert!(s.deliver(PeerId(2), b"y"));
        let big = vec![0; MAX_EXTENSION_INBOX_BYTES];
        let mut t = ExtensionState::new(ExtensionEncoding::Raw);
        assert!(t.deliver(PeerId(1), b"z"));
        assert!(!t.deliver(PeerId(1), &big));
        s.register(ExtensionEncoding::Buffer);
        assert_eq!(s.encoding(), ExtensionEncoding::Buffer);
        assert!(!s.unregister());
        assert!(s.unregister());
    }
}
