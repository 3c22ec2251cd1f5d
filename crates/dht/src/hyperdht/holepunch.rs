//! PEER_HOLEPUNCH rounds of both sides (`connect.js` `holepunch`/`probeRound`/`roundPunch`/`abort`, and
//! `server.js` `_onpeerholepunch`/`_abort`), over a [`PunchSession`]. A child module of `dht`.
//!
//! Client: a probe round through the server's relay (our NAT kind and addresses; the server answers with
//! its own and a token), a pause when the server does not know its NAT yet, the verdict
//! ([`probe_verdict`]), then the punch round (`punching: true`, the server's token echoed, ours sent) after
//! which both punch. The first punch the client receives names the socket and address of the stream.
//!
//! Server: each holepunch message updates what the puncher knows of the client; it waits for its own NAT
//! analysis, fires a quick punch back when the client opened a session to an address of ours ("fast mode"),
//! starts punching when the client punches, and answers from the puncher's socket through the relay, so the
//! client learns the address punches will come from.

use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::constants::{Command, ErrorCode, Firewall, Mode};
use super::super::holepuncher::{probe_verdict, ProbeAbort, ProbeVerdict, PuncherEvent};
use super::super::messages::{decode, Holepunch, HolepunchPayload, RelayInfo};
use super::super::secure_payload::SecurePayload;
use super::super::socket_pool::{relay_from, PunchSession};
use super::{HyperDhtError, Result};
use crate::compact_encoding::Encode;
use crate::dht_rpc::messages::Id;
use crate::udx::UdxSocket;

/// How long a client waits for the server to work out its NAT (`sleeper.pause(1000)`).
const REMOTE_UNKNOWN_PAUSE: Duration = Duration::from_secs(1);
/// Upper bound of a whole punch (ten consistent rounds plus slack; random strategies run ~35 s).
const PUNCH_LIMIT: Duration = Duration::from_secs(45);

/// `pickServerRelay`: the server's relay that is also ours, else its first.
pub(super) fn pick_server_relay(
    relays: &[RelayInfo],
    client_relay: SocketAddrV4,
) -> Option<RelayInfo> {
    relays
        .iter()
        .find(|r| r.relay_address == client_relay)
        .or(relays.first())
        .copied()
}

/// How many random-NAT punches a node runs at once (`_randomPunchLimit`).
pub const RANDOM_PUNCH_LIMIT: usize = 1;
/// Least time between the end of a random-NAT punch and the start of the next (`randomPunchInterval`).
pub const RANDOM_PUNCH_INTERVAL: Duration = Duration::from_secs(20);
/// How often a tracked random punch is looked at to see whether it ended.
const RANDOM_PUNCH_POLL: Duration = Duration::from_millis(250);

/// The node-wide limit on punches against (or from behind) a random-port NAT (`_randomPunches`,
/// `_randomPunchLimit`, `_lastRandomPunch`): at most [`RANDOM_PUNCH_LIMIT`] at once, and
/// [`RANDOM_PUNCH_INTERVAL`] after the last one ended. A side that may not punch answers or waits with
/// TRY_LATER when a relay carries the connection meanwhile, and gives up otherwise.
#[derive(Debug)]
pub struct RandomPunches {
    state: Mutex<(usize, Option<std::time::Instant>)>,
    interval: Duration,
}

impl RandomPunches {
    /// No punch running or ended yet; `interval` between punches.
    pub fn new(interval: Duration) -> Self {
        Self {
            state: Mutex::new((0, None)),
            interval,
        }
    }

    /// Whether a random punch may start at `now`.
    pub fn may_punch(&self, now: std::time::Instant) -> bool {
        self.state.lock().is_ok_and(|s| {
            s.0 < RANDOM_PUNCH_LIMIT
                && s.1
                    .is_none_or(|last| now.saturating_duration_since(last) >= self.interval)
        })
    }

    /// Counts a punch as running (`_incrementRandomized`).
    pub fn begin(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.0 += 1;
        }
    }

    /// A punch counted by [`RandomPunches::begin`] ended at `now` (`_decrementRandomized`).
    pub fn end(&self, now: std::time::Instant) {
        if let Ok(mut s) = self.state.lock() {
            s.0 = s.0.saturating_sub(1);
            s.1 = Some(now);
        }
    }

    /// Undoes a [`RandomPunches::begin`] that only covered committing to a punch (the JS client's
    /// increment around its punch round), without counting it as a finished punch.
    pub fn end_commit(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.0 = s.0.saturating_sub(1);
        }
    }

    /// Counts `session`'s punch while its puncher runs a random strategy (until it connects or stops).
    pub(super) fn track(self: &Arc<Self>, session: &Arc<PunchSession>) {
        if session.with(|p| p.is_randomized()) != Some(true) {
            return;
        }
        self.begin();
        let me = self.clone();
        let weak = Arc::downgrade(session);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RANDOM_PUNCH_POLL).await;
                let running = weak
                    .upgrade()
                    .and_then(|s| s.with(|p| p.is_randomized()))
                    .unwrap_or(false);
                if !running {
                    break;
                }
            }
            me.end(std::time::Instant::now());
        });
    }
}

/// Whether a punch between these firewall kinds uses a random strategy.
fn is_random(ours: Firewall, theirs: Firewall) -> bool {
    ours >= Firewall::RANDOM || theirs >= Firewall::RANDOM
}

/// The pause before trying a random punch again (`tryLater`: 10 to 20 s).
fn try_later_pause() -> Duration {
    Duration::from_millis(10_000 + rand::random::<u64>() % 10_001)
}

/// What a holepunch reply carried.
struct Update {
    from: SocketAddrV4,
    to: SocketAddrV4,
    peer_address: SocketAddrV4,
    payload: HolepunchPayload,
}

/// The client side of one holepunch attempt.
pub(super) struct ClientPunch {
    pub session: Arc<PunchSession>,
    pub target: Id,
    pub id: u64,
    pub secure: SecurePayload,
    pub round: u64,
    /// The node's limit on random punches.
    pub random: Arc<RandomPunches>,
    /// A relay carries the connection meanwhile (`relayToken`): a random punch may wait its turn.
    pub relayed: bool,
}

impl ClientPunch {
    fn firewall_and_addresses(&self) -> (Firewall, Option<Vec<SocketAddrV4>>) {
        self.session
            .with(|p| (p.nat.firewall(), p.nat.addresses().map(<[_]>::to_vec)))
            .unwrap_or((Firewall::UNKNOWN, None))
    }

    /// `updateHolepunch`: one PEER_HOLEPUNCH request from the puncher's socket through `relay`, to the server
    /// at `peer_address`.
    async fn update(
        &mut self,
        peer_address: SocketAddrV4,
        relay: SocketAddrV4,
        payload: HolepunchPayload,
    ) -> Result<Update> {
        let value = Holepunch {
            mode: Mode::FROM_CLIENT,
            id: self.id,
            payload: self.secure.encrypt(&payload),
            peer_address: Some(peer_address),
        }
        .to_bytes();
        let res = self
            .session
            .main()
            .peer_holepunch(relay, self.target, value)
            .await?;
        let hp = res
            .value
            .as_deref()
            .and_then(|v| decode::<Holepunch>(v).ok())
            .filter(|hp| hp.mode == Mode::REPLY && res.from == relay)
            .ok_or_else(|| HyperDhtError::ServerError("BAD_HOLEPUNCH_REPLY".into()))?;
        let remote = self
            .secure
            .decrypt(&hp.payload)
            .ok_or(HyperDhtError::HolepunchInvalid)?;
        if remote.error == ErrorCode::TRY_LATER && self.relayed && payload.punching {
            return Ok(Update {
                from: res.from,
                to: res.to,
                peer_address: hp.peer_address.unwrap_or(relay),
                payload: remote,
            });
        }
        if remote.error != ErrorCode::NONE {
            return Err(HyperDhtError::RemoteAborted(remote.error));
        }
        let echoed = matches!((&remote.remote_token, &payload.token), (Some(a), Some(b)) if a == b);
        let addresses = remote.addresses.clone().unwrap_or_default();
        self.session.with(|p| {
            p.update_remote(
                remote.punching,
                remote.firewall,
                &addresses,
                echoed.then_some(*peer_address.ip()),
            )
        });
        Ok(Update {
            from: res.from,
            to: res.to,
            peer_address: hp.peer_address.unwrap_or(relay),
            payload: remote,
        })
    }

    /// `probeRound`: returns the server's token and the address its puncher answers from.
    async fn probe_round(
        &mut self,
        server_address: Option<SocketAddrV4>,
        server_relay: RelayInfo,
        mut retry: bool,
    ) -> Result<(Option<[u8; 32]>, SocketAddrV4)> {
        loop {
            if let Some(a) = server_address {
                self.session.with(|p| p.open_session(a));
            }
            let (fw, addresses) = self.firewall_and_addresses();
            let round = self.next_round();
            let reply = self
                .update(
                    server_relay.peer_address,
                    server_relay.relay_address,
                    HolepunchPayload {
                        error: ErrorCode::NONE,
                        firewall: fw,
                        round,
                        connected: false,
                        punching: false,
                        addresses,
                        remote_address: server_address,
                        token: None,
                        remote_token: None,
                    },
                )
                .await?;
            self.session.with(|p| p.nat.add(reply.to, reply.from));
            if self.is_done() {
                return Ok((reply.payload.token, reply.peer_address));
            }
            let remote_fw = self
                .session
                .with(|p| p.remote_firewall())
                .unwrap_or(Firewall::UNKNOWN);
            if remote_fw == Firewall::UNKNOWN {
                tokio::time::sleep(REMOTE_UNKNOWN_PAUSE).await;
            }
            self.session.analyzed().await;
            let (remote_fw, local_fw) = self
                .session
                .with(|p| (p.remote_firewall(), p.nat.firewall()))
                .unwrap_or((Firewall::UNKNOWN, Firewall::UNKNOWN));
            tracing::debug!(
                "holepunch probe: remote {remote_fw:?}, local {local_fw:?}, token {}, peer {}",
                reply.payload.token.is_some(),
                reply.peer_address
            );
            match probe_verdict(remote_fw, local_fw, reply.payload.token.is_some(), retry) {
                ProbeVerdict::Retry => retry = false,
                ProbeVerdict::Abort(why) => {
                    self.abort(server_relay).await;
                    return Err(match why {
                        ProbeAbort::ProbeTimeout => HyperDhtError::HolepunchProbeTimeout,
                        ProbeAbort::DoubleRandomized => {
                            HyperDhtError::HolepunchDoubleRandomizedNats
                        }
                    });
                }
                ProbeVerdict::Punch => return Ok((reply.payload.token, reply.peer_address)),
            }
        }
    }

    /// Connected or destroyed (`isDone`).
    fn is_done(&self) -> bool {
        self.session
            .with(|p| p.is_connected() || p.is_destroyed())
            .unwrap_or(true)
    }

    fn next_round(&mut self) -> u64 {
        let r = self.round;
        self.round += 1;
        r
    }

    /// `abort`: tells the server we give up (errors ignored) and stops the puncher.
    pub(super) async fn abort(&mut self, relay: RelayInfo) {
        let round = self.next_round();
        let _ = self
            .update(
                relay.peer_address,
                relay.relay_address,
                HolepunchPayload {
                    error: ErrorCode::ABORTED,
                    firewall: Firewall::UNKNOWN,
                    round,
                    connected: false,
                    punching: false,
                    addresses: None,
                    remote_address: None,
                    token: None,
                    remote_token: None,
                },
            )
            .await;
        self.session.with(|p| p.destroy());
    }

    /// The client's rounds after the handshake (`holepunch()` from the puncher's creation on): returns the
    /// socket and address the stream connects to. A punch that comes through at any point (the server's
    /// "fast mode" answer to our session opening) ends the rounds, as `isDone` does in the JS.
    pub(super) async fn run(
        mut self,
        server_address: SocketAddrV4,
        client_relay: SocketAddrV4,
        server_relay: RelayInfo,
        fast_open: bool,
    ) -> Result<(UdxSocket, SocketAddrV4)> {
        let session = self.session.clone();
        let event = {
            let rounds = self.rounds(server_address, client_relay, server_relay, fast_open);
            tokio::pin!(rounds);
            tokio::select! {
                ev = session.next_event() => ev,
                r = &mut rounds => {
                    if let Err(e) = r {
                        session.with(|p| p.destroy());
                        return Err(e);
                    }
                    tokio::time::timeout(PUNCH_LIMIT, session.next_event())
                        .await
                        .ok()
                        .flatten()
                }
            }
        };
        tracing::debug!("holepunch: {event:?}");
        match event {
            Some(PuncherEvent::Connected { socket, addr }) => {
                let sock = session
                    .socket(socket)
                    .await
                    .ok_or_else(|| HyperDhtError::HolepunchAborted("punched socket gone".into()))?;
                Ok((sock.socket().clone(), addr))
            }
            _ => {
                session.with(|p| p.destroy());
                Err(HyperDhtError::HolepunchAborted(
                    "no punch came through".into(),
                ))
            }
        }
    }

    /// `roundPunch`: the round with `punching: true`. A random punch waits for the node's limit
    /// ([`RandomPunches`]) and for a server answering TRY_LATER, 10 to 20 s at a time, when a relay carries
    /// the connection meanwhile (first telling the server we are not punching yet; later rounds go through
    /// the server's relay); without a relay it gives up (`HOLEPUNCH_ABORTED`).
    async fn punch_round(
        &mut self,
        server_address: SocketAddrV4,
        client_relay: SocketAddrV4,
        server_relay: RelayInfo,
        remote_token: Option<[u8; 32]>,
    ) -> Result<()> {
        let mut delayed = false;
        loop {
            let random = self
                .session
                .with(|p| is_random(p.nat.firewall(), p.remote_firewall()))
                .unwrap_or(false);
            while random && !self.random.may_punch(std::time::Instant::now()) {
                if !self.relayed {
                    return Err(HyperDhtError::HolepunchAborted(
                        "too many random punches, try later".into(),
                    ));
                }
                if !delayed {
                    delayed = true;
                    let (fw, addresses) = self.firewall_and_addresses();
                    let round = self.next_round();
                    let token = Some(self.secure.token(*server_address.ip()));
                    self.update(
                        server_address,
                        client_relay,
                        HolepunchPayload {
                            error: ErrorCode::NONE,
                            firewall: fw,
                            round,
                            connected: false,
                            punching: false,
                            addresses,
                            remote_address: None,
                            token,
                            remote_token,
                        },
                    )
                    .await?;
                    if self.is_done() {
                        return Ok(());
                    }
                }
                tracing::debug!("holepunch: random punch limit reached, trying later");
                tokio::time::sleep(try_later_pause()).await;
                if self.is_done() {
                    return Ok(());
                }
            }
            let (fw, addresses) = self.firewall_and_addresses();
            let round = self.next_round();
            // Delayed rounds go to the server's relay (validated already) and send no token.
            let (peer, via, token) = if delayed {
                (server_relay.peer_address, server_relay.relay_address, None)
            } else {
                (
                    server_address,
                    client_relay,
                    Some(self.secure.token(*server_address.ip())),
                )
            };
            if random {
                self.random.begin();
            }
            let punched = self
                .update(
                    peer,
                    via,
                    HolepunchPayload {
                        error: ErrorCode::NONE,
                        firewall: fw,
                        round,
                        connected: false,
                        punching: true,
                        addresses,
                        remote_address: None,
                        token,
                        remote_token,
                    },
                )
                .await;
            if random {
                // Only counted while committing; the puncher's own strategy is tracked from here on.
                self.random.end_commit();
            }
            let punched = punched?;
            tracing::debug!("holepunch punch reply: {:?}", punched.payload);
            if self.is_done() {
                return Ok(());
            }
            if punched.payload.error == ErrorCode::TRY_LATER {
                tracing::debug!("holepunch: the server says try later");
                tokio::time::sleep(try_later_pause()).await;
                if self.is_done() {
                    return Ok(());
                }
                delayed = true;
                continue;
            }
            return Ok(());
        }
    }

    /// Probe and punch rounds; returns once both sides punch.
    async fn rounds(
        &mut self,
        mut server_address: SocketAddrV4,
        client_relay: SocketAddrV4,
        server_relay: RelayInfo,
        fast_open: bool,
    ) -> Result<()> {
        let (token, peer_address) = self
            .probe_round(fast_open.then_some(server_address), server_relay, true)
            .await?;
        if self.is_done() {
            // A punch came through during the probe (the server's fast-mode answer): no punch round.
            return Ok(());
        }
        if server_relay.relay_address == client_relay && server_address != peer_address {
            server_address = peer_address;
            self.session.with(|p| p.open_session(server_address));
        }
        self.session.with(|p| p.nat.freeze());
        self.punch_round(server_address, client_relay, server_relay, token)
            .await?;
        if self.is_done() {
            return Ok(());
        }
        let now = tokio::time::Instant::now().into_std();
        let state = self
            .session
            .with(|p| (p.is_connected(), p.remote_holepunching(), p.punch(now)));
        self.random.track(&self.session);
        match state {
            Some((true, _, _)) | Some((false, true, true)) => {
                tracing::debug!("holepunch: punching towards {server_address}");
                Ok(())
            }
            Some((false, false, _)) => Err(HyperDhtError::RemoteNotHolepunching),
            _ => Err(HyperDhtError::RemoteNotHolepunchable),
        }
    }
}

/// A server's holepunch state for one handshake (`hs` of `_addHandshake` with a puncher).
pub(super) struct ServerHole {
    pub secure: SecurePayload,
    pub session: Arc<PunchSession>,
    pub round: Mutex<u64>,
    /// Cleared when the client starts punching (`prepunching`).
    pub prepunching: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// A relay carries the connection meanwhile (`relayToken`): a random punch may wait (TRY_LATER).
    pub relayed: bool,
    /// The node's limit on random punches.
    pub random: Arc<RandomPunches>,
}

impl ServerHole {
    fn clear_prepunching(&self) {
        if let Some(t) = self.prepunching.lock().ok().and_then(|mut p| p.take()) {
            t.abort();
        }
    }
}

/// A PEER_HOLEPUNCH request (mode FROM_RELAY) for a server, from whichever socket it arrived on.
pub(super) struct HolepunchRequest {
    pub tid: u16,
    pub from: SocketAddrV4,
    pub to: SocketAddrV4,
    pub internal: bool,
    pub target: Option<Id>,
    pub value: Option<Vec<u8>>,
    /// Arrived on this hole's main puncher socket (then `to` is a NAT sample of it).
    pub on_socket: Option<std::net::SocketAddr>,
}

/// `_onpeerholepunch` + the router's FROM_RELAY reply: handles one message and answers through the relay.
/// The addresses to punch a client at: the ones it sent, or, when it says it is unfirewalled (OPEN) but sent
/// none, the address the relaying node saw its round come from (its puncher's socket). JS's server aborts
/// there (`_punch` has no address to try); the client, having learnt from its DHT that it is reachable while
/// its LAN ping was still slow, then connects late to a stream the server dropped and times out. An OPEN
/// peer is reachable where it was seen, so the server pings it there instead.
fn remote_candidates(remote: &HolepunchPayload, peer_address: SocketAddrV4) -> Vec<SocketAddrV4> {
    match remote.addresses.as_deref() {
        Some(a) if !a.is_empty() => a.to_vec(),
        _ if remote.firewall == Firewall::OPEN => vec![peer_address],
        _ => Vec::new(),
    }
}

pub(super) async fn on_server_holepunch(
    req: HolepunchRequest,
    lookup: impl Fn(u64) -> Option<Arc<ServerHole>>,
    is_server_relay: bool,
) {
    let Some(hp) = req
        .value
        .as_deref()
        .and_then(|v| decode::<Holepunch>(v).ok())
    else {
        return;
    };
    if hp.mode != Mode::FROM_RELAY {
        return;
    }
    let Some(peer_address) = hp.peer_address else {
        return;
    };
    let Some(h) = lookup(hp.id) else {
        tracing::debug!("holepunch message for unknown session {}", hp.id);
        return;
    };
    let Some(remote) = h.secure.decrypt(&hp.payload) else {
        return;
    };
    let session = &h.session;
    let main = session.main().socket().clone();
    let reply = |payload: HolepunchPayload| {
        let value = Holepunch {
            mode: Mode::FROM_SERVER,
            id: 0,
            payload: h.secure.encrypt(&payload),
            peer_address: Some(peer_address),
        }
        .to_bytes();
        let main = main.clone();
        let (tid, internal, target, to) = (req.tid, req.internal, req.target, req.from);
        async move {
            let _ = relay_from(
                &main,
                tid,
                internal,
                Command::PEER_HOLEPUNCH.into(),
                target,
                value,
                to,
            )
            .await;
        }
    };
    let round_now = || h.round.lock().map(|r| *r).unwrap_or(0);
    let abort = |error: ErrorCode| {
        let round = round_now();
        session.with(|p| p.destroy());
        reply(HolepunchPayload {
            error,
            firewall: Firewall::UNKNOWN,
            round,
            connected: false,
            punching: false,
            addresses: None,
            remote_address: None,
            token: None,
            remote_token: None,
        })
    };
    if session.with(|p| p.is_destroyed()).unwrap_or(true) {
        abort(ErrorCode::ABORTED).await;
        return;
    }
    if remote.error != ErrorCode::NONE {
        if let Ok(mut r) = h.round.lock() {
            *r = (*r).max(remote.round);
        }
        abort(ErrorCode::ABORTED).await;
        return;
    }
    let token = h.secure.token(*peer_address.ip());
    let echoed = is_server_relay && remote.remote_token == Some(token);
    if req.on_socket == Some(main.local_addr()) {
        session.with(|p| p.nat.add(req.to, req.from));
    }
    let newer = h
        .round
        .lock()
        .map(|mut r| {
            if remote.round >= *r {
                *r = remote.round;
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if newer {
        let addresses = remote_candidates(&remote, peer_address);
        session.with(|p| {
            p.update_remote(
                remote.punching,
                remote.firewall,
                &addresses,
                echoed.then_some(*peer_address.ip()),
            )
        });
    }
    session.analyzed().await;
    let Some((destroyed, stable, remote_punching)) = session.with(|p| {
        (
            p.is_destroyed(),
            p.analyze() == Some(true),
            p.remote_holepunching(),
        )
    }) else {
        return;
    };
    if destroyed {
        return;
    }
    tracing::debug!(
        "server holepunch round {}: stable {stable}, remote punching {remote_punching}",
        remote.round
    );
    if !remote_punching && !stable {
        tracing::debug!("server holepunch: unstable NAT, aborting");
        abort(ErrorCode::ABORTED).await;
        return;
    }
    // Fast mode: the client opened a session to an address of ours; punch back at once.
    if let Some(ra) = remote.remote_address {
        session.with(|p| {
            let fw = p.nat.firewall();
            let ours = p.nat.addresses().is_some_and(|a| a.contains(&ra));
            if (fw == Firewall::OPEN || fw == Firewall::CONSISTENT) && ours {
                p.ping(peer_address);
            }
        });
    }
    // Our side as the reply tells it (a known firewall frozen first when we go on punching).
    let our_state = |freeze: bool| {
        session.with(|p| {
            if freeze && p.nat.firewall() != Firewall::UNKNOWN {
                p.nat.freeze();
            }
            (
                p.nat.firewall(),
                p.nat.addresses().map(<[_]>::to_vec),
                p.is_connected(),
                p.is_punching(),
            )
        })
    };
    let our_reply = |error, (fw, addresses, connected, punching)| HolepunchPayload {
        error,
        firewall: fw,
        round: round_now(),
        connected,
        punching,
        addresses,
        remote_address: None,
        token: is_server_relay.then_some(token),
        remote_token: remote.token,
    };
    if remote_punching {
        h.clear_prepunching();
        let now = tokio::time::Instant::now().into_std();
        let random = session
            .with(|p| is_random(p.nat.firewall(), p.remote_firewall()))
            .unwrap_or(false);
        if random && !h.random.may_punch(now) {
            tracing::debug!("server holepunch: random punch limit reached, try later");
            if !h.relayed {
                abort(ErrorCode::TRY_LATER).await;
                return;
            }
            if let Some(state) = our_state(false) {
                reply(our_reply(ErrorCode::TRY_LATER, state)).await;
            }
            return;
        }
        if !session.with(|p| p.punch(now)).unwrap_or(false) {
            tracing::debug!("server holepunch: no strategy for these NATs, aborting");
            abort(ErrorCode::ABORTED).await;
            return;
        }
        h.random.track(session);
    }
    if let Some(state) = our_state(true) {
        reply(our_reply(ErrorCode::NONE, state)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn random_punch_limit_and_interval() {
        let limit = RandomPunches::new(Duration::from_secs(20));
        let t0 = Instant::now();
        assert!(limit.may_punch(t0), "a fresh node may punch at once");
        limit.begin();
        assert!(!limit.may_punch(t0), "one random punch at a time");
        limit.end_commit();
        assert!(
            limit.may_punch(t0),
            "a commit that ended is no finished punch"
        );
        limit.begin();
        limit.end(t0);
        assert!(!limit.may_punch(t0 + Duration::from_secs(19)));
        assert!(limit.may_punch(t0 + Duration::from_secs(20)));
        // A second punch ending later moves the interval on.
        limit.begin();
        limit.end(t0 + Duration::from_secs(30));
        assert!(!limit.may_punch(t0 + Duration::from_secs(45)));
        assert!(limit.may_punch(t0 + Duration::from_secs(50)));
        // More ends than begins never wrap the count.
        limit.end_commit();
        limit.end_commit();
        assert!(limit.may_punch(t0 + Duration::from_secs(50)));
        assert_eq!(RANDOM_PUNCH_LIMIT, 1);
    }

    #[test]
    fn an_open_client_without_addresses_is_punched_where_it_was_seen() {
        let seen = SocketAddrV4::new([10, 0, 0, 7].into(), 40000);
        let sent = SocketAddrV4::new([10, 0, 0, 7].into(), 50000);
        let payload = |firewall, addresses| HolepunchPayload {
            error: ErrorCode::NONE,
            firewall,
            round: 1,
            connected: false,
            punching: true,
            addresses,
            remote_address: None,
            token: None,
            remote_token: None,
        };
        assert_eq!(
            remote_candidates(&payload(Firewall::OPEN, None), seen),
            [seen]
        );
        assert_eq!(
            remote_candidates(&payload(Firewall::OPEN, Some(vec![])), seen),
            [seen]
        );
        assert_eq!(
            remote_candidates(&payload(Firewall::OPEN, Some(vec![sent])), seen),
            [sent],
            "the addresses a client sends come first"
        );
        assert!(remote_candidates(&payload(Firewall::CONSISTENT, None), seen).is_empty());
        assert!(remote_candidates(&payload(Firewall::RANDOM, Some(vec![])), seen).is_empty());
    }

    #[test]
    fn random_strategies_and_pauses() {
        assert!(!is_random(Firewall::CONSISTENT, Firewall::OPEN));
        assert!(!is_random(Firewall::UNKNOWN, Firewall::CONSISTENT));
        assert!(is_random(Firewall::RANDOM, Firewall::CONSISTENT));
        assert!(is_random(Firewall::CONSISTENT, Firewall::RANDOM));
        for _ in 0..100 {
            let p = try_later_pause();
            assert!(p >= Duration::from_secs(10) && p <= Duration::from_secs(20));
        }
    }
}
