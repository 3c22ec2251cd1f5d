//! Pluggable request handling for the [driver](super::driver): a protocol built on dht-rpc (hyperdht, for
//! one) answers its own commands by implementing [`RequestHandler`] and installing it with
//! [`DhtHandle::set_handler`](super::driver::DhtHandle::set_handler). dht-rpc itself knows nothing of the
//! commands a handler serves.
//!
//! A request that reaches the node (its internal commands are answered by the node itself) goes, in order,
//! to
//! 1. a claim on its target ([`DhtHandle::claim_target`](super::driver::DhtHandle::claim_target)), when
//!    the handler says the request may be claimed ([`RequestHandler::claimable`]);
//! 2. the handler ([`RequestHandler::on_request`]);
//! 3. the command's handler ([`DhtHandle::on_command`](super::driver::DhtHandle::on_command) or
//!    [`DhtHandle::subscribe`](super::driver::DhtHandle::subscribe)), else UNKNOWN_COMMAND.

use std::net::SocketAddrV4;
use std::time::Instant;

use super::messages::{ErrorCode, Id};
use super::node::{Dht, IncomingRequest, ReplyOpts};

/// What [`RequestHandler::on_request`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The handler answered it (or decided to send nothing): it goes no further.
    Done,
    /// Not the handler's: the command handlers get it.
    Pass,
}

/// What a [`RequestHandler`] may do with the node while handling a request: read its id and answer.
pub struct Responder<'a> {
    dht: &'a mut Dht,
}

impl std::fmt::Debug for Responder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("id", &self.dht.id())
            .finish_non_exhaustive()
    }
}

impl<'a> Responder<'a> {
    /// Wraps a node (the driver does this; a sans-IO user of [`Dht`] may too).
    pub fn new(dht: &'a mut Dht) -> Self {
        Self { dht }
    }

    /// Our id, `None` while the node is ephemeral.
    pub fn id(&self) -> Option<Id> {
        self.dht.id()
    }

    /// Replies to `req` with a value ([`Dht::reply`]).
    pub fn reply(&mut self, req: &IncomingRequest, value: Option<Vec<u8>>, opts: ReplyOpts) {
        self.dht.reply(req, value, opts);
    }

    /// Answers `req` with an error code ([`Dht::error`]).
    pub fn error(&mut self, req: &IncomingRequest, code: ErrorCode, opts: ReplyOpts) {
        self.dht.error(req, code, opts);
    }

    /// Forwards `req` under its tid to another node ([`Dht::relay`]).
    pub fn relay(&mut self, req: &IncomingRequest, value: Option<Vec<u8>>, to: SocketAddrV4) {
        self.dht.relay(req, value, to);
    }
}

/// Answers the requests of a protocol that runs over dht-rpc. The driver owns it and calls it from its task,
/// so it needs no locking; it must not block.
pub trait RequestHandler: Send + 'static {
    /// Whether `req` (a non-internal request with a target) may be taken by a claim on its target
    /// ([`DhtHandle::claim_target`](super::driver::DhtHandle::claim_target)) before
    /// [`Self::on_request`] sees it. None may by default.
    fn claimable(&self, req: &IncomingRequest) -> bool {
        let _ = req;
        false
    }

    /// Handles a request no claim took: answer it through `node` and return [`Handled::Done`], or return
    /// [`Handled::Pass`] to leave it to the command handlers.
    fn on_request(
        &mut self,
        req: &IncomingRequest,
        node: &mut Responder<'_>,
        now: Instant,
    ) -> Handled;

    /// Called each time the node's timer fires (its maintenance ticks, request timeouts), for aging
    /// state. Nothing by default.
    fn on_tick(&mut self, now: Instant) {
        let _ = now;
    }
}
