//! `hypershell-tunnel-local` (`-L`): TCP connections to a local port reach `host:port` as seen from the
//! server. Per TCP connection the client makes a UDX stream on its node and sends its id
//! (`{clientId, serverId: 0}` as JSON); the server makes one too, answers with both ids, connects its stream
//! next to the hypershell connection (same socket and peer), runs a fresh secret-stream handshake on it as
//! initiator and pipes it to a TCP connection to the target; the client connects its stream to the
//! server's id, answers the handshake, and pipes it to the local TCP connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use holepunch::compact_encoding::{Reader, Writer};
use holepunch::hyperdht::HyperDht;
use holepunch::hypershell::{
    tunnel_host_allowed, tunnel_port_allowed, LocalTunnel, PROTOCOL_TUNNEL_LOCAL,
    TUNNEL_MESSAGE_STREAM_ID,
};
use holepunch::noise::Keypair;
use holepunch::protomux::{Channel, ChannelOptions, Mux, ProtomuxError};
use holepunch::secret_stream::{SecretStream, SecretStreamOptions};
use holepunch::udx::{FirewallVerdict, UdxStream, UdxStreamControl};
use tokio::net::{TcpListener, TcpStream};

/// Encodes `value` as compact-encoding's `c.json` (a string of JSON).
pub fn encode_json(value: &serde_json::Value) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(&value.to_string());
    w.into_vec()
}

/// Decodes `c.json`.
pub fn decode_json(payload: &[u8]) -> anyhow::Result<serde_json::Value> {
    let s = Reader::new(payload).string()?;
    Ok(serde_json::from_str(s)?)
}

fn stream_ids(v: &serde_json::Value) -> Option<(u32, u32)> {
    let id = |k: &str| v.get(k)?.as_u64().and_then(|n| u32::try_from(n).ok());
    Some((id("clientId")?, id("serverId")?))
}

fn secret_options() -> SecretStreamOptions {
    SecretStreamOptions {
        keep_alive: Some(crate::KEEP_ALIVE),
        ..SecretStreamOptions::default()
    }
}

async fn pipe(tcp: TcpStream, mut stream: SecretStream<UdxStream>) {
    let mut tcp = tcp;
    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
}

/// What the server allows (`--tunnel-host`, `--tunnel-port`).
#[derive(Debug, Clone, Default)]
pub struct TunnelPolicy {
    /// Allowed hosts; `None` allows all.
    pub hosts: Option<Vec<String>>,
    /// Allowed ports or ranges; `None` allows all.
    pub ports: Option<Vec<String>>,
}

/// Serves one `hypershell-tunnel-local` channel of the connection whose stream `beside` controls.
pub async fn serve(
    channel: Channel,
    dht: HyperDht,
    beside: UdxStreamControl,
    policy: Arc<TunnelPolicy>,
) -> anyhow::Result<()> {
    let handshake = channel.opened().await?;
    channel.open(&encode_json(&serde_json::json!({})))?;
    let target = decode_json(&handshake).ok();
    let host = target
        .as_ref()
        .and_then(|t| t.get("host")?.as_str().map(str::to_owned));
    let port = target
        .as_ref()
        .and_then(|t| t.get("port")?.as_u64())
        .and_then(|p| u16::try_from(p).ok());
    let (Some(host), Some(port)) = (host, port) else {
        channel.close();
        anyhow::bail!("bad tunnel request");
    };
    if !tunnel_host_allowed(policy.hosts.as_deref(), &host)
        || !tunnel_port_allowed(policy.ports.as_deref(), port)
    {
        println!("Tunnel to {host}:{port} refused");
        channel.close();
        return Ok(());
    }
    while let Some((kind, payload)) = channel.recv().await {
        if kind != TUNNEL_MESSAGE_STREAM_ID {
            continue;
        }
        let Some((client_id, _)) = decode_json(&payload).ok().as_ref().and_then(stream_ids) else {
            continue;
        };
        let raw = dht.create_raw_stream()?;
        channel
            .send(
                TUNNEL_MESSAGE_STREAM_ID,
                &encode_json(
                    &serde_json::json!({"clientId": client_id, "serverId": raw.local_id()}),
                ),
            )
            .await?;
        raw.connect_alongside(&beside, client_id)?;
        let (host, port) = (host.clone(), port);
        tokio::spawn(async move {
            let stream =
                match SecretStream::connect_with(raw, &Keypair::generate(), secret_options()).await
                {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("tunnel: handshake: {e}");
                        return;
                    }
                };
            match TcpStream::connect((host.as_str(), port)).await {
                Ok(tcp) => pipe(tcp, stream).await,
                Err(e) => eprintln!("tunnel: connecting to {host}:{port}: {e}"),
            }
        });
    }
    channel.close();
    Ok(())
}

/// Runs one `-L` tunnel until the connection to the server ends: listens on the local address and
/// forwards every TCP connection through the server.
pub async fn run_client(
    dht: &HyperDht,
    server: &[u8; 32],
    key_pair: &holepunch::crypto::KeyPair,
    spec: &LocalTunnel,
    relay: Option<[u8; 32]>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind((spec.local_host.as_str(), spec.local_port))
        .await
        .with_context(|| format!("listening on {}:{}", spec.local_host, spec.local_port))?;
    let conn = crate::connect(dht, server, key_pair, relay).await?;
    let beside = conn.get_ref().control();
    let mux = Mux::new(conn);
    let channel = mux
        .create_channel(ChannelOptions::new(PROTOCOL_TUNNEL_LOCAL))
        .context("the connection closed")?;
    channel.open(&encode_json(
        &serde_json::json!({"host": spec.remote_host, "port": spec.remote_port}),
    ))?;
    match channel.opened().await {
        Ok(_) => {}
        Err(ProtomuxError::Rejected) => {
            anyhow::bail!(
                "the server does not allow tunnels (protocol {PROTOCOL_TUNNEL_LOCAL} refused)"
            )
        }
        Err(e) => return Err(anyhow::Error::from(e).context("opening the tunnel channel")),
    }
    let addr = listener.local_addr()?;
    let shown = if addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    println!("Tunnel on TCP {shown}:{}", addr.port());
    let pending: Arc<Mutex<HashMap<u32, (UdxStream, TcpStream)>>> = Arc::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, _) = accepted.context("accepting a TCP connection")?;
                let raw = dht.create_raw_stream()?;
                // The server starts its handshake as soon as it answered with its stream id: its first
                // packet can come in before that answer is read here and the stream connected. Kept (and
                // handed to the stream when it connects) instead of dropped, which cost a retransmission
                // timeout (a second) per connection.
                raw.set_firewall(|_, _| FirewallVerdict::Hold)?;
                let id = raw.local_id();
                pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, (raw, tcp));
                channel
                    .send(TUNNEL_MESSAGE_STREAM_ID, &encode_json(&serde_json::json!({"clientId": id, "serverId": 0})))
                    .await?;
            }
            m = channel.recv() => match m {
                Some((TUNNEL_MESSAGE_STREAM_ID, payload)) => {
                    let Some((client_id, server_id)) = decode_json(&payload).ok().as_ref().and_then(stream_ids) else {
                        continue;
                    };
                    let Some((raw, tcp)) = pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&client_id) else {
                        continue;
                    };
                    raw.connect_alongside(&beside, server_id)?;
                    tokio::spawn(async move {
                        match SecretStream::accept_with(raw, &Keypair::generate(), secret_options()).await {
                            Ok(stream) => pipe(tcp, stream).await,
                            Err(e) => eprintln!("tunnel: handshake: {e}"),
                        }
                    });
                }
                Some(_) => {}
                None => {
                    // The server closed the channel: refused target, or the connection ended.
                    anyhow::bail!(
                        "the server closed the tunnel to {}:{} (not allowed by its --tunnel-host/--tunnel-port, or the connection ended)",
                        spec.remote_host,
                        spec.remote_port
                    );
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_messages() -> anyhow::Result<()> {
        // Bytes of c.json from compact-encoding 2.11 (JSON.stringify key order).
        let v = serde_json::json!({"clientId": 1, "serverId": 0});
        assert_eq!(
            hex::encode(encode_json(&v)),
            "1b7b22636c69656e744964223a312c227365727665724964223a307d"
        );
        assert_eq!(stream_ids(&decode_json(&encode_json(&v))?), Some((1, 0)));
        assert!(decode_json(b"\x02{").is_err());
        assert!(decode_json(&[]).is_err());
        Ok(())
    }
}
