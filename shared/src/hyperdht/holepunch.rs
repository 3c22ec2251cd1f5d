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

use super::super::constants::{commands, errors, firewall, mode};
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
}

impl ClientPunch {
    fn firewall_and_addresses(&self) -> (u64, Option<Vec<SocketAddrV4>>) {
        self.session
            .with(|p| (p.nat.firewall(), p.nat.addresses().map(<[_]>::to_vec)))
            .unwrap_or((firewall::UNKNOWN, None))
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
            mode: mode::FROM_CLIENT,
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
            .filter(|hp| hp.mode == mode::REPLY && res.from == relay)
            .ok_or_else(|| HyperDhtError::ServerError("BAD_HOLEPUNCH_REPLY".into()))?;
        let remote = self
            .secure
            .decrypt(&hp.payload)
            .ok_or(HyperDhtError::HolepunchInvalid)?;
        if remote.error != errors::NONE {
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
                        error: errors::NONE,
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
                .unwrap_or(firewall::UNKNOWN);
            if remote_fw == firewall::UNKNOWN {
                tokio::time::sleep(REMOTE_UNKNOWN_PAUSE).await;
            }
            self.session.analyzed().await;
            let (remote_fw, local_fw) = self
                .session
                .with(|p| (p.remote_firewall(), p.nat.firewall()))
                .unwrap_or((firewall::UNKNOWN, firewall::UNKNOWN));
            tracing::debug!(
                "holepunch probe: remote {remote_fw}, local {local_fw}, token {}, peer {}",
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
                    error: errors::ABORTED,
                    firewall: firewall::UNKNOWN,
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
        let (fw, addresses) = self.firewall_and_addresses();
        let round = self.next_round();
        let our_token = self.secure.token(*server_address.ip());
        let punched = self
            .update(
                server_address,
                client_relay,
                HolepunchPayload {
                    error: errors::NONE,
                    firewall: fw,
                    round,
                    connected: false,
                    punching: true,
                    addresses,
                    remote_address: None,
                    token: Some(our_token),
                    remote_token: token,
                },
            )
            .await?;
        tracing::debug!("holepunch punch reply: {:?}", punched.payload);
        let now = tokio::time::Instant::now().into_std();
        let state = self
            .session
            .with(|p| (p.is_connected(), p.remote_holepunching(), p.punch(now)));
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
    if hp.mode != mode::FROM_RELAY {
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
            mode: mode::FROM_SERVER,
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
                commands::PEER_HOLEPUNCH,
                target,
                value,
                to,
            )
            .await;
        }
    };
    let round_now = || h.round.lock().map(|r| *r).unwrap_or(0);
    let abort = |error: u64| {
        let round = round_now();
        session.with(|p| p.destroy());
        reply(HolepunchPayload {
            error,
            firewall: firewall::UNKNOWN,
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
        abort(errors::ABORTED).await;
        return;
    }
    if remote.error != errors::NONE {
        if let Ok(mut r) = h.round.lock() {
            *r = (*r).max(remote.round);
        }
        abort(errors::ABORTED).await;
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
        let addresses = remote.addresses.clone().unwrap_or_default();
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
        abort(errors::ABORTED).await;
        return;
    }
    // Fast mode: the client opened a session to an address of ours; punch back at once.
    if let Some(ra) = remote.remote_address {
        session.with(|p| {
            let fw = p.nat.firewall();
            let ours = p.nat.addresses().is_some_and(|a| a.contains(&ra));
            if (fw == firewall::OPEN || fw == firewall::CONSISTENT) && ours {
                p.ping(peer_address);
            }
        });
    }
    if remote_punching {
        h.clear_prepunching();
        let now = tokio::time::Instant::now().into_std();
        if !session.with(|p| p.punch(now)).unwrap_or(false) {
            tracing::debug!("server holepunch: no strategy for these NATs, aborting");
            abort(errors::ABORTED).await;
            return;
        }
    }
    let Some((fw, addresses, connected, punching)) = session.with(|p| {
        if p.nat.firewall() != firewall::UNKNOWN {
            p.nat.freeze();
        }
        (
            p.nat.firewall(),
            p.nat.addresses().map(<[_]>::to_vec),
            p.is_connected(),
            p.is_punching(),
        )
    }) else {
        return;
    };
    reply(HolepunchPayload {
        error: errors::NONE,
        firewall: fw,
        round: round_now(),
        connected,
        punching,
        addresses,
        remote_address: None,
        token: is_server_relay.then_some(token),
        remote_token: remote.token,
    })
    .await;
}
