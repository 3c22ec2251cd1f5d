//! The protomux 3 frame format.
//!
//! Every frame (one secret-stream message) starts with `uint channel` and `uint type`. `channel` is the
//! *sender's* local id of the channel (1, 2, ...); the receiver maps it through the open message that
//! announced it. Channel 0 is the control channel, whose types are:
//!
//! | type | body |
//! |------|------|
//! | 0 batch  | `uint channel`, then entries until the frame ends: `uint len` and `len` bytes of one message (`uint type` + body) for the current channel, or `len = 0` followed by `uint channel` to switch channel |
//! | 1 open   | `uint local id`, `string protocol`, `optionalBuffer id`, then the handshake (the rest) |
//! | 2 reject | `uint id` (the id the rejected open carried) |
//! | 3 close  | `uint local id` |
//!
//! Other control types are ignored. A channel message's body is the rest of the frame (or of its batch
//! entry). Empty frames are ignored. Control messages can themselves sit in a batch (channel 0).

use std::borrow::Cow;

use crate::compact_encoding::{uint_len, DecodeError, Reader, Writer};

use super::ProtomuxError;

/// Control message type: a batch of messages.
pub const CONTROL_BATCH: u64 = 0;
/// Control message type: open a channel.
pub const CONTROL_OPEN: u64 = 1;
/// Control message type: reject a channel the remote opened.
pub const CONTROL_REJECT: u64 = 2;
/// Control message type: close a channel.
pub const CONTROL_CLOSE: u64 = 3;

/// A batch frame is sent once it reaches this many bytes, and a new one started (`MAX_BATCH` in JS).
pub const MAX_BATCH: usize = 8 * 1024 * 1024;
/// Batches nested in batches deeper than this are refused (the JS recurses without a limit).
pub const MAX_BATCH_DEPTH: usize = 16;

/// One decoded message; a frame holds one, or many when it is a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// The remote opens a channel under its local id `local_id`.
    Open {
        /// The sender's id for the channel (never 0 in a valid open).
        local_id: u64,
        /// The protocol name (invalid UTF-8 is replaced, as the JS decoder does).
        protocol: Cow<'a, str>,
        /// The channel id (`null` in JS; an empty buffer also decodes as `None`).
        id: Option<&'a [u8]>,
        /// The handshake message, in the channel's own encoding.
        handshake: &'a [u8],
    },
    /// The remote rejects the open we sent under `local_id` (our id).
    Reject {
        /// Our local id of the rejected channel.
        local_id: u64,
    },
    /// The remote closes its channel `remote_id` (its local id).
    Close {
        /// The sender's id of the channel.
        remote_id: u64,
    },
    /// A control type protomux 3 does not know; ignored.
    UnknownControl {
        /// The type number.
        kind: u64,
    },
    /// A channel message.
    Data {
        /// The sender's local id of the channel.
        channel: u64,
        /// The message type (index of the message in the channel's `messages`).
        kind: u64,
        /// The encoded message.
        payload: &'a [u8],
    },
}

impl Message<'_> {
    /// The channel the message travels on (0 for control messages).
    pub fn channel(&self) -> u64 {
        match self {
            Message::Data { channel, .. } => *channel,
            _ => 0,
        }
    }

    /// The message without its channel prefix: `uint type` + body. This is what a batch entry carries.
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Message::Open {
                local_id,
                protocol,
                id,
                handshake,
            } => {
                w.uint(CONTROL_OPEN)
                    .uint(*local_id)
                    .string(protocol)
                    .optional_buffer(*id)
                    .bytes(handshake);
            }
            Message::Reject { local_id } => {
                w.uint(CONTROL_REJECT).uint(*local_id);
            }
            Message::Close { remote_id } => {
                w.uint(CONTROL_CLOSE).uint(*remote_id);
            }
            Message::UnknownControl { kind } => {
                w.uint(*kind);
            }
            Message::Data { kind, payload, .. } => {
                w.uint(*kind).bytes(payload);
            }
        }
    }

    /// The message as a frame of its own.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.uint(self.channel());
        self.encode_body(&mut w);
        w.into_vec()
    }
}

/// Decodes one frame into its messages (a batch is flattened, in order) and appends them to `out`.
///
/// Messages decoded before an error stay in `out`, as the JS acts on them before it meets the error.
/// An empty frame yields nothing.
pub fn decode_frame<'a>(frame: &'a [u8], out: &mut Vec<Message<'a>>) -> Result<(), ProtomuxError> {
    if frame.is_empty() {
        return Ok(());
    }
    let mut r = Reader::new(frame);
    let channel = r.uint()?;
    decode_message(channel, r, out, 0)
}

/// Decodes `uint type` + body for `channel` from `r` (which ends where the message ends).
fn decode_message<'a>(
    channel: u64,
    mut r: Reader<'a>,
    out: &mut Vec<Message<'a>>,
    depth: usize,
) -> Result<(), ProtomuxError> {
    let kind = r.uint()?;
    if channel != 0 {
        out.push(Message::Data {
            channel,
            kind,
            payload: r.raw(),
        });
        return Ok(());
    }
    match kind {
        CONTROL_BATCH => decode_batch(r, out, depth + 1)?,
        CONTROL_OPEN => {
            let local_id = r.uint()?;
            let protocol = String::from_utf8_lossy(r.buffer()?);
            let id = r.optional_buffer()?;
            out.push(Message::Open {
                local_id,
                protocol,
                id,
                handshake: r.raw(),
            });
        }
        CONTROL_REJECT => out.push(Message::Reject {
            local_id: r.uint()?,
        }),
        CONTROL_CLOSE => out.push(Message::Close {
            remote_id: r.uint()?,
        }),
        kind => out.push(Message::UnknownControl { kind }),
    }
    Ok(())
}

fn decode_batch<'a>(
    mut r: Reader<'a>,
    out: &mut Vec<Message<'a>>,
    depth: usize,
) -> Result<(), ProtomuxError> {
    if depth > MAX_BATCH_DEPTH {
        return Err(ProtomuxError::BatchTooDeep);
    }
    let mut channel = r.uint()?;
    while !r.is_empty() {
        let len = r.uint()?;
        if len == 0 {
            channel = r.uint()?;
            continue;
        }
        // The JS clamps an entry that claims more than the frame holds to the frame's end.
        let len = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(r.remaining());
        let entry = r.bytes(len)?;
        decode_message(channel, Reader::new(entry), out, depth)?;
    }
    Ok(())
}

/// Builds batch frames the way protomux's `cork()`/`uncork()` does: consecutive entries of one channel
/// share the channel header, and a batch is cut once it reaches [`MAX_BATCH`] bytes.
#[derive(Debug, Default)]
pub struct BatchEncoder {
    entries: Vec<(u64, Vec<u8>)>,
    /// Encoded length of the batch so far (the JS `state.end`).
    size: usize,
}

impl BatchEncoder {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            size: 1,
        }
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encoded size of the batch frame so far.
    pub fn len(&self) -> usize {
        self.size
    }

    /// Adds a message body (`uint type` + body) for `channel`. Returns a finished batch frame when the
    /// batch was already [`MAX_BATCH`] bytes long (the new entry then starts the next batch).
    pub fn push(&mut self, channel: u64, body: Vec<u8>) -> Option<Vec<u8>> {
        let full = if self.size >= MAX_BATCH {
            let frame = self.finish();
            *self = Self::new();
            frame
        } else {
            None
        };
        if self.entries.last().map(|(c, _)| *c) != Some(channel) {
            self.size += 1 + uint_len(channel);
        }
        self.size += uint_len(body.len() as u64) + body.len();
        self.entries.push((channel, body));
        full
    }

    /// The batch frame, or `None` if nothing was pushed. Leaves the encoder empty.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let entries = std::mem::take(&mut self.entries);
        let size = std::mem::replace(&mut self.size, 1);
        let first = entries.first()?.0;
        let mut w = Writer::with_capacity(size);
        w.uint(0).uint(CONTROL_BATCH).uint(first);
        let mut prev = first;
        for (channel, body) in &entries {
            if *channel != prev {
                w.uint(0).uint(*channel);
                prev = *channel;
            }
            w.buffer(body);
        }
        Some(w.into_vec())
    }
}

/// Encodes several messages as one batch frame (as `cork()`, sends, `uncork()` would), ignoring
/// [`MAX_BATCH`]. `None` for no messages.
pub fn encode_batch(messages: &[Message<'_>]) -> Option<Vec<u8>> {
    let mut b = BatchEncoder::new();
    for m in messages {
        let mut w = Writer::new();
        m.encode_body(&mut w);
        b.entries.push((m.channel(), w.into_vec()));
    }
    b.finish()
}

impl From<DecodeError> for ProtomuxError {
    fn from(e: DecodeError) -> Self {
        ProtomuxError::Decode(e)
    }
}
