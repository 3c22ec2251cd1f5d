//! The sans-IO protomux state machine: it takes received frames and local calls, and produces frames to
//! send ([`MuxCore::poll_transmit`]) and events ([`MuxCore::poll_event`]).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::compact_encoding::Writer;

use super::wire::{decode_frame, BatchEncoder, Message};
use super::ProtomuxError;

/// Bytes of messages buffered for channels the remote opened but nobody paired yet, above which the
/// transport should stop being read (`MAX_BUFFERED` in JS; each message counts 512 + its length).
pub const MAX_BUFFERED: usize = 32768;
/// Accounting overhead of one buffered message, as the JS counts it.
const BUFFERED_OVERHEAD: usize = 512;

/// Handle of a channel inside one [`MuxCore`] (not a wire id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey(pub u64);

/// The key protomux files protocols under: `protocol##hex(id)` (an empty id counts as none).
pub fn protocol_key(protocol: &str, id: Option<&[u8]>) -> String {
    format!("{protocol}##{}", hex::encode(id.unwrap_or_default()))
}

/// How to create a channel.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// Protocol name.
    pub protocol: String,
    /// Other protocol names the remote may open this channel under.
    pub aliases: Vec<String>,
    /// Channel id (hypercore uses the discovery key), `None` for none.
    pub id: Option<Vec<u8>>,
    /// Refuse to create the channel while another one of the same protocol and id is open (default).
    pub unique: bool,
    /// Number of message types the channel understands (messages of other types are dropped, as the JS
    /// drops types it has no `addMessage` for); `None` accepts every type.
    pub messages: Option<u64>,
}

impl ChannelOptions {
    /// Options for `protocol`, no id, unique, every message type accepted.
    pub fn new(protocol: impl Into<String>) -> Self {
        Self {
            protocol: protocol.into(),
            aliases: Vec::new(),
            id: None,
            unique: true,
            messages: None,
        }
    }

    /// Sets the channel id.
    pub fn id(mut self, id: impl Into<Vec<u8>>) -> Self {
        let id = id.into();
        self.id = (!id.is_empty()).then_some(id);
        self
    }

    /// Adds an alias.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }

    /// Sets `unique`.
    pub fn unique(mut self, unique: bool) -> Self {
        self.unique = unique;
        self
    }

    /// Sets the number of message types.
    pub fn messages(mut self, n: u64) -> Self {
        self.messages = Some(n);
        self
    }
}

/// A remote open waiting for [`MuxCore::pair_done`]; see [`Event::PairRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRequest {
    /// The protocol the remote opened.
    pub protocol: String,
    /// The channel id it opened.
    pub id: Option<Vec<u8>>,
    /// The key of the [`MuxCore::pair`] registration that matched.
    pub pair_key: String,
    /// The key of the protocol entry; pass it back to [`MuxCore::pair_done`].
    pub token: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The channel is fully open: both sides sent their open. Carries the remote's handshake bytes.
    Opened {
        /// The channel.
        channel: ChannelKey,
        /// The remote handshake (the rest of its open message).
        handshake: Vec<u8>,
    },
    /// A message arrived on an open channel.
    Message {
        /// The channel.
        channel: ChannelKey,
        /// Its type.
        kind: u64,
        /// Its encoded body.
        payload: Vec<u8>,
    },
    /// The channel closed (`remote`: by the remote or because the stream ended).
    Closed {
        /// The channel.
        channel: ChannelKey,
        /// Whether the remote (or the end of the stream) closed it.
        remote: bool,
    },
    /// The remote rejected our open; the channel is closed.
    Rejected {
        /// The channel.
        channel: ChannelKey,
    },
    /// The remote opened a channel that matches a [`MuxCore::pair`] registration and that no local
    /// channel was waiting for. Create the channel ([`MuxCore::create_channel`] pairs it), or not, then
    /// call [`MuxCore::pair_done`]; unpaired opens of the protocol are rejected then.
    PairRequest(PairRequest),
}

#[derive(Debug)]
struct Info {
    aliases: Vec<String>,
    pairing: usize,
    opened: usize,
    incoming: VecDeque<u64>,
    outgoing: VecDeque<u64>,
    /// Channels created locally, not opened yet and not paired: a remote open pairs with the first.
    waiting: VecDeque<ChannelKey>,
}

#[derive(Debug)]
enum Remote {
    /// Opened by the remote, not paired yet: its handshake and the messages that came since.
    Pending {
        handshake: Vec<u8>,
        pending: Vec<(u64, Vec<u8>)>,
    },
    Paired(ChannelKey),
}

#[derive(Debug)]
struct ChannelState {
    info: String,
    protocol: String,
    id: Option<Vec<u8>>,
    messages: Option<u64>,
    local_id: u64,
    remote_id: u64,
    /// `open()` was called (counted in the protocol's `opened`).
    counted: bool,
    opened: bool,
    closed: bool,
}

/// Public view of a channel's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStatus {
    /// Protocol name.
    pub protocol: String,
    /// Channel id.
    pub id: Option<Vec<u8>>,
    /// Our wire id (0 before `open`).
    pub local_id: u64,
    /// The remote's wire id (0 until paired).
    pub remote_id: u64,
    /// Fully open (both sides opened).
    pub opened: bool,
    /// Closed.
    pub closed: bool,
}

/// The protomux state of one stream, without I/O.
#[derive(Debug, Default)]
pub struct MuxCore {
    channels: HashMap<ChannelKey, ChannelState>,
    next_key: u64,
    /// Our wire ids: `local[id - 1]`.
    local: Vec<Option<ChannelKey>>,
    /// Freed local id indexes, reused last-in first-out.
    free: Vec<u64>,
    /// The remote's wire ids: `remote[id - 1]`.
    remote: Vec<Option<Remote>>,
    /// Protocol entries by key; aliases map to their entry's key.
    infos: HashMap<String, Info>,
    alias_of: HashMap<String, String>,
    pairs: HashSet<String>,
    corked: u32,
    batch: Option<BatchEncoder>,
    outbox: VecDeque<Vec<u8>>,
    outbox_bytes: usize,
    events: VecDeque<Event>,
    buffered: usize,
    destroyed: Option<ProtomuxError>,
}

impl MuxCore {
    /// A mux with no channels.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let f = self.outbox.pop_front()?;
        self.outbox_bytes -= f.len();
        Some(f)
    }

    /// Bytes of frames waiting in [`MuxCore::poll_transmit`].
    pub fn outbox_bytes(&self) -> usize {
        self.outbox_bytes
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes buffered for unpaired remote channels (JS accounting); stop reading above [`MAX_BUFFERED`].
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Whether reading should pause (buffered data for unpaired channels above [`MAX_BUFFERED`]).
    pub fn should_pause(&self) -> bool {
        self.buffered > MAX_BUFFERED
    }

    /// Why the mux is destroyed, if it is.
    pub fn destroyed(&self) -> Option<&ProtomuxError> {
        self.destroyed.as_ref()
    }

    /// No local id in use (`isIdle`).
    pub fn is_idle(&self) -> bool {
        self.local.len() == self.free.len()
    }

    /// Whether a channel of `protocol`/`id` is open locally (`opened()`).
    pub fn opened(&self, protocol: &str, id: Option<&[u8]>) -> bool {
        self.info_key(&protocol_key(protocol, id))
            .and_then(|k| self.infos.get(&k))
            .is_some_and(|i| i.opened > 0)
    }

    /// Registers interest in remote opens of `protocol` with `id` (`None`: any id) that no local channel
    /// waits for; they raise [`Event::PairRequest`] instead of being rejected.
    pub fn pair(&mut self, protocol: &str, id: Option<&[u8]>) -> String {
        let key = protocol_key(protocol, id);
        self.pairs.insert(key.clone());
        key
    }

    /// Removes a [`MuxCore::pair`] registration.
    pub fn unpair(&mut self, protocol: &str, id: Option<&[u8]>) {
        self.pairs.remove(&protocol_key(protocol, id));
    }

    /// The state of a channel.
    pub fn channel(&self, ch: ChannelKey) -> Option<ChannelStatus> {
        self.channels.get(&ch).map(|c| ChannelStatus {
            protocol: c.protocol.clone(),
            id: c.id.clone(),
            local_id: c.local_id,
            remote_id: c.remote_id,
            opened: c.opened,
            closed: c.closed,
        })
    }

    /// Changes the number of message types a channel accepts.
    pub fn set_messages(&mut self, ch: ChannelKey, messages: Option<u64>) {
        if let Some(c) = self.channels.get_mut(&ch) {
            c.messages = messages;
        }
    }

    /// Forgets a closed channel's state. Returns false (and keeps it) if the channel is not closed.
    pub fn release(&mut self, ch: ChannelKey) -> bool {
        match self.channels.get(&ch) {
            Some(c) if c.closed => {
                self.channels.remove(&ch);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    fn info_key(&self, key: &str) -> Option<String> {
        if self.infos.contains_key(key) {
            Some(key.to_owned())
        } else {
            self.alias_of.get(key).cloned()
        }
    }

    /// The protocol entry for `protocol`/`id`, created (with `aliases`) if missing.
    fn get_info(&mut self, protocol: &str, id: Option<&[u8]>, aliases: &[String]) -> String {
        let key = protocol_key(protocol, id);
        if let Some(k) = self.info_key(&key) {
            return k;
        }
        let mut info = Info {
            aliases: Vec::new(),
            pairing: 0,
            opened: 0,
            incoming: VecDeque::new(),
            outgoing: VecDeque::new(),
            waiting: VecDeque::new(),
        };
        for alias in aliases {
            let ak = protocol_key(alias, id);
            if ak != key && !self.infos.contains_key(&ak) {
                self.alias_of.insert(ak.clone(), key.clone());
                info.aliases.push(ak);
            }
        }
        self.infos.insert(key.clone(), info);
        key
    }

    fn gc(&mut self, key: &str) {
        let Some(info) = self.infos.get(key) else {
            return;
        };
        if info.opened == 0
            && info.pairing == 0
            && info.outgoing.is_empty()
            && info.incoming.is_empty()
            && info.waiting.is_empty()
        {
            if let Some(info) = self.infos.remove(key) {
                for a in info.aliases {
                    self.alias_of.remove(&a);
                }
            }
        }
    }

    /// Creates a channel (`createChannel`). `None` if the mux is destroyed or `unique` is set and a
    /// channel of the protocol and id is open. If the remote already opened this protocol and id and
    /// waits (see [`Event::PairRequest`]), the channel pairs with it and is fully open at once
    /// ([`Event::Opened`], then the messages that came meanwhile); call [`MuxCore::open`] to answer.
    /// Otherwise the channel claims the protocol and id from now on: a remote open of them received
    /// before our [`MuxCore::open`] pairs with it the same way instead of being rejected (the JS calls
    /// `open` in the same tick as `createChannel`, so it never meets that case; a threaded caller may
    /// be between the two calls while the driver handles a frame).
    pub fn create_channel(&mut self, opts: &ChannelOptions) -> Option<ChannelKey> {
        if self.destroyed.is_some() {
            return None;
        }
        let id = opts.id.as_deref().filter(|i| !i.is_empty());
        let info_key = self.get_info(&opts.protocol, id, &opts.aliases);
        let info = self.infos.get_mut(&info_key)?;
        if opts.unique && info.opened > 0 {
            return None;
        }
        let remote_id = info.incoming.pop_front();
        let key = ChannelKey(self.next_key);
        self.next_key += 1;
        let mut state = ChannelState {
            info: info_key,
            protocol: opts.protocol.clone(),
            id: id.map(<[u8]>::to_vec),
            messages: opts.messages,
            local_id: 0,
            remote_id: 0,
            counted: false,
            opened: false,
            closed: false,
        };
        let Some(remote_id) = remote_id else {
            info.waiting.push_back(key);
            self.channels.insert(key, state);
            return Some(key);
        };
        let slot = usize::try_from(remote_id - 1)
            .ok()
            .and_then(|i| self.remote.get_mut(i))?;
        let Some(Remote::Pending { handshake, pending }) = slot.take() else {
            return None;
        };
        *slot = Some(Remote::Paired(key));
        state.remote_id = remote_id;
        state.opened = true;
        let messages = state.messages;
        self.channels.insert(key, state);
        self.events.push_back(Event::Opened {
            channel: key,
            handshake,
        });
        for (kind, payload) in pending {
            self.buffered = self
                .buffered
                .saturating_sub(BUFFERED_OVERHEAD + payload.len());
            if messages.is_none_or(|n| kind < n) {
                self.events.push_back(Event::Message {
                    channel: key,
                    kind,
                    payload,
                });
            }
        }
        Some(key)
    }

    /// Sends our open for the channel, with `handshake` (already encoded) as its handshake.
    pub fn open(&mut self, ch: ChannelKey, handshake: &[u8]) -> Result<(), ProtomuxError> {
        self.check_destroyed()?;
        let c = self
            .channels
            .get(&ch)
            .ok_or(ProtomuxError::UnknownChannel)?;
        if c.closed {
            return Err(ProtomuxError::ChannelClosed);
        }
        if c.local_id != 0 {
            return Err(ProtomuxError::AlreadyOpen);
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.local.push(None);
                self.local.len() as u64 - 1
            }
        };
        if let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| self.local.get_mut(i))
        {
            *slot = Some(ch);
        }
        let local_id = index + 1;
        let c = self
            .channels
            .get_mut(&ch)
            .ok_or(ProtomuxError::UnknownChannel)?;
        c.local_id = local_id;
        c.counted = true;
        let unpaired = c.remote_id == 0;
        let info_key = c.info.clone();
        let msg = Message::Open {
            local_id,
            protocol: c.protocol.clone().into(),
            id: c.id.as_deref(),
            handshake,
        };
        let mut body = Writer::new();
        msg.encode_body(&mut body);
        if let Some(info) = self.infos.get_mut(&info_key) {
            info.opened += 1;
            info.waiting.retain(|&w| w != ch);
            if unpaired {
                info.outgoing.push_back(local_id);
            }
        }
        self.write_control(body.into_vec());
        Ok(())
    }

    /// Sends a message of type `kind` on the channel. Allowed once our open is sent (the remote buffers
    /// messages until it pairs the channel).
    pub fn send(&mut self, ch: ChannelKey, kind: u64, payload: &[u8]) -> Result<(), ProtomuxError> {
        self.check_destroyed()?;
        let c = self
            .channels
            .get(&ch)
            .ok_or(ProtomuxError::UnknownChannel)?;
        if c.closed {
            return Err(ProtomuxError::ChannelClosed);
        }
        if c.local_id == 0 {
            return Err(ProtomuxError::NotOpen);
        }
        let local_id = c.local_id;
        if let Some(batch) = self.batch.as_mut() {
            let mut w = Writer::with_capacity(payload.len() + 9);
            w.uint(kind).bytes(payload);
            if let Some(frame) = batch.push(local_id, w.into_vec()) {
                self.push_frame(frame);
            }
        } else {
            let mut w = Writer::with_capacity(payload.len() + 18);
            w.uint(local_id).uint(kind).bytes(payload);
            self.push_frame(w.into_vec());
        }
        Ok(())
    }

    /// Closes the channel and tells the remote. A channel paired with a remote open but never opened
    /// locally answers that open with a reject instead (the JS writes a meaningless close for id 0).
    pub fn close(&mut self, ch: ChannelKey) -> Result<(), ProtomuxError> {
        let c = self
            .channels
            .get(&ch)
            .ok_or(ProtomuxError::UnknownChannel)?;
        if c.closed {
            return Ok(());
        }
        let (local_id, remote_id) = (c.local_id, c.remote_id);
        if self.destroyed.is_none() {
            if local_id != 0 {
                let mut w = Writer::new();
                Message::Close {
                    remote_id: local_id,
                }
                .encode_body(&mut w);
                self.write_control(w.into_vec());
            } else if remote_id != 0 {
                let mut w = Writer::new();
                Message::Reject {
                    local_id: remote_id,
                }
                .encode_body(&mut w);
                self.write_control(w.into_vec());
            }
        }
        self.close_channel(ch, false, false);
        Ok(())
    }

    /// Starts batching: messages and control messages go into one batch frame until the matching
    /// [`MuxCore::uncork`].
    pub fn cork(&mut self) {
        self.corked += 1;
        if self.corked == 1 {
            self.batch = Some(BatchEncoder::new());
        }
    }

    /// Ends a [`MuxCore::cork`]; the outermost one sends the batch.
    pub fn uncork(&mut self) {
        if self.corked == 0 {
            return;
        }
        self.corked -= 1;
        if self.corked == 0 {
            if let Some(frame) = self.batch.take().and_then(|mut b| b.finish()) {
                self.push_frame(frame);
            }
        }
    }

    /// Ends a [`Event::PairRequest`]: if nobody created a channel for the protocol entry meanwhile (and
    /// no other pair request for it is pending), the remote's waiting opens of it are rejected.
    pub fn pair_done(&mut self, token: &str) {
        let Some(info) = self.infos.get_mut(token) else {
            return;
        };
        info.pairing = info.pairing.saturating_sub(1);
        if info.pairing > 0 {
            return;
        }
        let incoming: Vec<u64> = info.incoming.drain(..).collect();
        for remote_id in incoming {
            self.reject_session(remote_id);
        }
        self.gc(token);
    }

    /// The stream closed: every channel closes (as by the remote). Nothing more is sent.
    pub fn shutdown(&mut self) {
        if self.destroyed.is_none() {
            self.destroyed = Some(ProtomuxError::Destroyed("stream closed".into()));
        }
        let open: Vec<ChannelKey> = self.local.iter().flatten().copied().collect();
        for ch in open {
            self.close_channel(ch, true, false);
        }
        let paired: Vec<ChannelKey> = self
            .channels
            .iter()
            .filter(|(_, c)| !c.closed)
            .map(|(k, _)| *k)
            .collect();
        for ch in paired {
            self.close_channel(ch, true, false);
        }
        self.outbox.clear();
        self.outbox_bytes = 0;
        self.batch = None;
    }

    /// Handles one received frame. An error destroys the mux (the JS destroys the stream): close the
    /// transport and call [`MuxCore::shutdown`].
    pub fn recv_frame(&mut self, frame: &[u8]) -> Result<(), ProtomuxError> {
        self.check_destroyed()?;
        let mut messages = Vec::new();
        let decoded = decode_frame(frame, &mut messages);
        // A batch with more than one message is answered in one batch, as the JS corks around it.
        let cork = messages.len() > 1;
        if cork {
            self.cork();
        }
        let mut result = decoded;
        for m in messages {
            if let Err(e) = self.on_message(m) {
                result = Err(e);
                break;
            }
        }
        if cork {
            self.uncork();
        }
        if let Err(e) = &result {
            self.destroyed = Some(e.clone());
        }
        result
    }

    fn on_message(&mut self, m: Message<'_>) -> Result<(), ProtomuxError> {
        match m {
            Message::Open {
                local_id,
                protocol,
                id,
                handshake,
            } => self.on_open(local_id, &protocol, id, handshake),
            Message::Reject { local_id } => self.on_reject(local_id),
            Message::Close { remote_id } => {
                self.on_close(remote_id);
                Ok(())
            }
            Message::UnknownControl { .. } => Ok(()),
            Message::Data {
                channel,
                kind,
                payload,
            } => {
                self.on_data(channel, kind, payload);
                Ok(())
            }
        }
    }

    fn remote_slot(&mut self, remote_id: u64) -> Option<&mut Option<Remote>> {
        let i = usize::try_from(remote_id.checked_sub(1)?).ok()?;
        self.remote.get_mut(i)
    }

    fn on_data(&mut self, remote_id: u64, kind: u64, payload: &[u8]) {
        let Some(Some(slot)) = self.remote_slot(remote_id) else {
            return; // closed or unknown channel: ignored, it may be a message in flight
        };
        match slot {
            Remote::Pending { pending, .. } => {
                pending.push((kind, payload.to_vec()));
                self.buffered += BUFFERED_OVERHEAD + payload.len();
            }
            Remote::Paired(ch) => {
                let ch = *ch;
                if let Some(c) = self.channels.get(&ch) {
                    if c.opened && !c.closed && c.messages.is_none_or(|n| kind < n) {
                        self.events.push_back(Event::Message {
                            channel: ch,
                            kind,
                            payload: payload.to_vec(),
                        });
                    }
                }
            }
        }
    }

    fn on_open(
        &mut self,
        remote_id: u64,
        protocol: &str,
        id: Option<&[u8]>,
        handshake: &[u8],
    ) -> Result<(), ProtomuxError> {
        // The JS fails to encode its answer to an open of id 0 and destroys the stream.
        let rid = remote_id
            .checked_sub(1)
            .and_then(|r| usize::try_from(r).ok())
            .ok_or(ProtomuxError::InvalidOpen)?;
        let info_key = self.get_info(protocol, id, &[]);
        // the remote may grow its ids by one
        if self.remote.len() == rid {
            self.remote.push(None);
        }
        if !matches!(self.remote.get(rid), Some(None)) {
            return Err(ProtomuxError::InvalidOpen);
        }
        let info = self
            .infos
            .get_mut(&info_key)
            .ok_or(ProtomuxError::InvalidOpen)?;
        if let Some(local_id) = info.outgoing.pop_front() {
            let ch = usize::try_from(local_id - 1)
                .ok()
                .and_then(|i| self.local.get(i))
                .copied()
                .flatten();
            let Some(ch) = ch else {
                // we closed the channel before the remote answered: its id is free now
                self.free.push(local_id - 1);
                self.gc(&info_key);
                return Ok(());
            };
            if let Some(slot) = self.remote.get_mut(rid) {
                *slot = Some(Remote::Paired(ch));
            }
            if let Some(c) = self.channels.get_mut(&ch) {
                c.remote_id = remote_id;
                if !c.opened && !c.closed {
                    c.opened = true;
                    self.events.push_back(Event::Opened {
                        channel: ch,
                        handshake: handshake.to_vec(),
                    });
                }
            }
            return Ok(());
        }
        if let Some(ch) = info.waiting.pop_front() {
            // a channel created locally and not opened yet: it pairs as if created after this open
            if let Some(slot) = self.remote.get_mut(rid) {
                *slot = Some(Remote::Paired(ch));
            }
            if let Some(c) = self.channels.get_mut(&ch) {
                c.remote_id = remote_id;
                c.opened = true;
            }
            self.events.push_back(Event::Opened {
                channel: ch,
                handshake: handshake.to_vec(),
            });
            return Ok(());
        }
        if let Some(slot) = self.remote.get_mut(rid) {
            *slot = Some(Remote::Pending {
                handshake: handshake.to_vec(),
                pending: Vec::new(),
            });
        }
        info.pairing += 1;
        info.incoming.push_back(remote_id);
        let pair_key = [protocol_key(protocol, id), protocol_key(protocol, None)]
            .into_iter()
            .find(|k| self.pairs.contains(k));
        match pair_key {
            Some(pair_key) => self.events.push_back(Event::PairRequest(PairRequest {
                protocol: protocol.to_owned(),
                id: id.map(<[u8]>::to_vec),
                pair_key,
                token: info_key,
            })),
            None => self.pair_done(&info_key),
        }
        Ok(())
    }

    fn on_reject(&mut self, local_id: u64) -> Result<(), ProtomuxError> {
        let found = self
            .infos
            .iter_mut()
            .find_map(|(k, info)| {
                let pos = info.outgoing.iter().position(|&l| l == local_id)?;
                info.outgoing.remove(pos);
                Some(k.clone())
            })
            .ok_or(ProtomuxError::InvalidReject)?;
        self.free.push(local_id - 1);
        let ch = usize::try_from(local_id - 1)
            .ok()
            .and_then(|i| self.local.get(i))
            .copied()
            .flatten();
        if let Some(ch) = ch {
            self.close_channel(ch, true, true);
        }
        self.gc(&found);
        Ok(())
    }

    fn on_close(&mut self, remote_id: u64) {
        if let Some(Some(Remote::Paired(ch))) = self.remote_slot(remote_id) {
            let ch = *ch;
            self.close_channel(ch, true, false);
        }
    }

    fn close_channel(&mut self, ch: ChannelKey, remote: bool, rejected: bool) {
        let Some(c) = self.channels.get_mut(&ch) else {
            return;
        };
        if c.closed {
            return;
        }
        c.closed = true;
        let (local_id, remote_id, counted) = (c.local_id, c.remote_id, c.counted);
        let info_key = c.info.clone();
        c.remote_id = 0;
        c.local_id = 0;
        if let Some(info) = self.infos.get_mut(&info_key) {
            if counted {
                info.opened = info.opened.saturating_sub(1);
            }
            info.waiting.retain(|&w| w != ch);
        }
        if remote_id > 0 {
            if let Some(slot) = self.remote_slot(remote_id) {
                *slot = None;
            }
            // paired: the remote knows the id, which is free again
            if local_id > 0 {
                self.free.push(local_id - 1);
            }
        }
        if local_id > 0 {
            if let Some(slot) = usize::try_from(local_id - 1)
                .ok()
                .and_then(|i| self.local.get_mut(i))
            {
                *slot = None;
            }
        }
        self.gc(&info_key);
        self.events.push_back(if rejected {
            Event::Rejected { channel: ch }
        } else {
            Event::Closed {
                channel: ch,
                remote,
            }
        });
    }

    fn reject_session(&mut self, remote_id: u64) {
        if let Some(slot) = self.remote_slot(remote_id) {
            if let Some(Remote::Pending { pending, .. }) = slot.take() {
                let bytes: usize = pending
                    .iter()
                    .map(|(_, p)| BUFFERED_OVERHEAD + p.len())
                    .sum();
                self.buffered = self.buffered.saturating_sub(bytes);
            }
        }
        let mut w = Writer::new();
        Message::Reject {
            local_id: remote_id,
        }
        .encode_body(&mut w);
        self.write_control(w.into_vec());
    }

    fn check_destroyed(&self) -> Result<(), ProtomuxError> {
        match &self.destroyed {
            Some(e) => Err(ProtomuxError::Destroyed(e.to_string())),
            None => Ok(()),
        }
    }

    /// Sends a control message body (`uint type` + body) on channel 0, batched if corked.
    fn write_control(&mut self, body: Vec<u8>) {
        if let Some(batch) = self.batch.as_mut() {
            if let Some(frame) = batch.push(0, body) {
                self.push_frame(frame);
            }
            return;
        }
        let mut frame = Vec::with_capacity(body.len() + 1);
        frame.push(0);
        frame.extend_from_slice(&body);
        self.push_frame(frame);
    }

    fn push_frame(&mut self, frame: Vec<u8>) {
        if self.destroyed.is_some() {
            return;
        }
        self.outbox_bytes += frame.len();
        self.outbox.push_back(frame);
    }
}
