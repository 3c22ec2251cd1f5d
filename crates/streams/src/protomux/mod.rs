//! `protomux` (3.x): many message-oriented channels over one framed stream (a secret-stream), wire
//! compatible with the JavaScript module.
//!
//! - [`wire`]: the frame format (control messages open/reject/close, channel messages, batches).
//! - [`MuxCore`]: the sans-IO state machine (events out as [`Event`]): pairing of local and remote ids, channels opened
//!   from both sides, `unique` channels, aliases, pair requests, buffering of messages for channels not
//!   paired yet, cork/uncork.
//! - [`Mux`] / [`Channel`]: an async API over any [`FrameTransport`] (implemented for
//!   [`SecretStream`](crate::secret_stream::SecretStream) and for an in-memory pair, [`memory_pair`]).
//!
//! How channels pair (facts of protomux 3.12):
//! - Each side numbers the channels it opens from 1 (`local id`); freed ids are reused last-in first-out.
//!   Frames carry the *sender's* id; the receiver learns the mapping from the open message. Ids a side
//!   opens must grow by at most one past the highest in use, or the receiver destroys the stream.
//! - When an open arrives for a protocol+id we have an unanswered open of (`outgoing`), the two pair and
//!   the channel is fully open. Else, if a channel of it was created and not opened yet, the open pairs
//!   with that one (see below). Otherwise the open waits (`incoming`) and a pair request is raised if
//!   someone called `pair` for the protocol (with that id or with none); a channel created meanwhile pairs
//!   with it. If nobody pairs it, it is rejected (`reject` carries the remote's id).
//! - Messages for a waiting open are buffered; messages for unknown or closed channels are dropped, as
//!   are message types the channel has no handler for.
//! - `close` is one-way: each side sends it once when it closes; receiving it closes the channel without
//!   an answer. The end of the stream closes every channel.
//! - Corking collects every message (control messages included, on channel 0) into one batch frame,
//!   cut at 8 MiB. A received batch with several messages is processed corked, so the answers it causes
//!   go back as one batch.
//!
//! Differences from the JS, on input or calls the JS mishandles: an open of id 0 and a reject of an id
//! with no pending open destroy the stream (the JS throws too); invalid UTF-8 in a protocol name is
//! replaced, as the JS does; closing a channel that was paired with a remote open but never opened
//! locally sends a reject for that open (the JS sends a close of id 0, which the remote ignores);
//! sending before `open` is an error (the JS writes it on channel 0). A channel created and not opened
//! yet claims its protocol and id: a remote open of them handled before our `open` pairs with it, as if
//! the channel had been created just after (the JS rejects that open; it never meets the case, since its
//! callers open in the same tick as they create, while here the driver may handle a frame on another
//! thread between [`Mux::create_channel`] and [`Channel::open`]). Nested batches deeper than
//! [`wire::MAX_BATCH_DEPTH`] are refused. A pair request raised by an open inside a batch is answered
//! after the whole batch is processed (the JS runs its pair callback in the middle of the batch), so a
//! reject later in the same batch may free a local id that our answer then reuses: the same channels,
//! other id numbers. `tests/protomux_diff.rs` checks the rest against the JS on random frame sequences.
//!
//! # Use
//!
//! One channel per protocol instance; hypercore replication opens one `hypercore/alpha` channel per core
//! with the discovery key as id on a shared mux, and pairs the remote's opens of cores it has:
//!
//! ```no_run
//! use holepunch_streams::protomux::{ChannelOptions, Mux};
//! # async fn demo(stream: holepunch_streams::secret_stream::SecretStream<tokio::net::TcpStream>) {
//! let (mux, mut pairing) = Mux::new_with(stream, |mux| mux.pair("hypercore/alpha", None));
//! // a core we replicate: open it; the remote's open of the same key pairs with it
//! let core = mux
//!     .create_channel(ChannelOptions::new("hypercore/alpha").id(vec![0u8; 32]))
//!     .expect("not open yet");
//! core.open(b"our handshake").unwrap();
//! let remote_handshake = core.opened().await.unwrap();
//! core.send(0, b"a message of type 0").await.unwrap();
//! while let Some((kind, payload)) = core.recv().await {
//!     let _ = (kind, payload, &remote_handshake);
//! }
//! // cores the remote opens first
//! while let Some(incoming) = pairing.next().await {
//!     if let Some(channel) = incoming.accept_default() {
//!         channel.open(b"").unwrap();
//!     }
//! }
//! # }
//! ```

mod core;
mod mux;
pub mod wire;

pub use self::core::ChannelStatus;
pub use self::core::{ChannelKey, ChannelOptions, Event, MuxCore, PairRequest, MAX_BUFFERED};
pub use self::mux::{
    memory_pair, Channel, FrameTransport, Incoming, MemoryTransport, Mux, Pairing,
};

use crate::compact_encoding::DecodeError;

/// Why a protomux operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtomuxError {
    /// A frame could not be decoded.
    #[error("malformed frame: {0}")]
    Decode(DecodeError),
    /// Batches nested deeper than [`wire::MAX_BATCH_DEPTH`].
    #[error("batch nested too deeply")]
    BatchTooDeep,
    /// An open with id 0, an id already in use, or an id more than one past the highest.
    #[error("invalid open message")]
    InvalidOpen,
    /// A reject for an id we have no unanswered open of.
    #[error("invalid reject message")]
    InvalidReject,
    /// The channel was not opened yet (`open`).
    #[error("channel is not open")]
    NotOpen,
    /// The channel is closed.
    #[error("channel is closed")]
    ChannelClosed,
    /// The remote rejected the channel.
    #[error("channel was rejected")]
    Rejected,
    /// No such channel.
    #[error("unknown channel")]
    UnknownChannel,
    /// `open` was already called.
    #[error("channel is already open")]
    AlreadyOpen,
    /// The mux (its stream) is gone.
    #[error("mux destroyed: {0}")]
    Destroyed(String),
}
