//! Throughput of a Rust<->Rust secret stream over a loopback TCP pair, in one process.
//!
//! `cargo run --release --example secret_stream_throughput -- [MiB] [--both-ways]` (default 1024 MiB one way).

use std::time::Instant;

use holepunch::noise::Keypair;
use holepunch::secret_stream::SecretStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1024);
    let both = args.iter().any(|a| a == "--both-ways");
    let total = mib * 1024 * 1024;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        SecretStream::accept(tcp, &Keypair::generate()).await
    });
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let client = SecretStream::connect(tcp, &Keypair::generate()).await?;
    let server = server.await??;

    let start = Instant::now();
    let (c_rd, c_wr) = tokio::io::split(client);
    let (s_rd, s_wr) = tokio::io::split(server);
    let send = |mut wr: tokio::io::WriteHalf<SecretStream<TcpStream>>, n: usize| {
        tokio::spawn(async move {
            let buf = vec![0x5au8; 256 * 1024];
            let mut sent = 0;
            while sent < n {
                let k = buf.len().min(n - sent);
                wr.write_all(&buf[..k]).await?;
                sent += k;
            }
            wr.shutdown().await?;
            anyhow::Ok(())
        })
    };
    let recv = |mut rd: tokio::io::ReadHalf<SecretStream<TcpStream>>| {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0usize;
            loop {
                let n = rd.read(&mut buf).await?;
                if n == 0 {
                    return anyhow::Ok(got);
                }
                got += n;
            }
        })
    };
    let w1 = send(c_wr, total);
    let w2 = send(s_wr, if both { total } else { 0 });
    let r1 = recv(s_rd);
    let r2 = recv(c_rd);
    w1.await??;
    w2.await??;
    let got1 = r1.await??;
    let got2 = r2.await??;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(got1 == total, "server received {got1} of {total}");
    let moved = got1 + got2;
    println!(
        "secret-stream over loopback TCP: {} MiB {} in {:.2} s = {:.1} MB/s ({:.1} MiB/s)",
        mib,
        if both { "each way" } else { "one way" },
        secs,
        moved as f64 / secs / 1e6,
        moved as f64 / secs / (1024.0 * 1024.0),
    );
    Ok(())
}
