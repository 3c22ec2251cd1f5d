//! TCP endpoints for `benches/hypertele.sh`, the same as `tests/interop/js/tcp-bench.js` but cheap: plain
//! blocking sockets, one thread per connection, so the load generator takes little of the CPU the pair under
//! test needs.
//!
//! - `tcp-bench sink`: listens on 127.0.0.1 (prints the port) and, for every connection, counts the bytes
//!   until the client's end, then answers `<count>\n` and closes.
//! - `tcp-bench source PORT BYTES`: connects to 127.0.0.1:PORT, sends BYTES bytes (a pseudo-random 1 MiB block
//!   repeated, the JS script's block), half-closes, waits for the sink's answer and prints
//!   `{"bytes":N,"received":N,"seconds":S,"mbps":MB/s (10^6 bytes per s)}` as the JS script does. Exits 1 unless the count
//!   matches.
//! - `tcp-bench echo`: listens on 127.0.0.1 (prints the port) and echoes every connection back, half-closing
//!   after the client's end.
//! - `tcp-bench burst PORT CONNS BYTES`: opens CONNS connections to 127.0.0.1:PORT at once (one thread each),
//!   each sends BYTES bytes (its own pattern), half-closes and reads them back; prints
//!   `{"conns":N,"ok":N,"seconds":S,"first":S,"last":S}` (wall clock from the first connect to the last
//!   byte back; `first`/`last`: the fastest and slowest connection's whole round trip). Exits 1 unless every
//!   connection got its bytes back exactly. With `hold`, a connection keeps its sending side open until all
//!   its bytes came back (for proxies that end the whole connection on a half-close, as JS hypershell's
//!   tunnels do).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Instant;

/// The read size of the sink.
const READ_CHUNK: usize = 256 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["sink"] => sink(),
        ["source", port, bytes] => match (port.parse::<u16>(), bytes.parse::<u64>()) {
            (Ok(port), Ok(bytes)) => source(port, bytes),
            _ => return usage(),
        },
        ["echo"] => echo(),
        ["burst", port, conns, bytes] | ["burst", port, conns, bytes, "hold"] => {
            let hold = args.len() == 5;
            match (
                port.parse::<u16>(),
                conns.parse::<usize>(),
                bytes.parse::<usize>(),
            ) {
                (Ok(port), Ok(conns), Ok(bytes)) => burst(port, conns, bytes, hold),
                _ => return usage(),
            }
        }
        _ => return usage(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("{{\"error\":{:?}}}", e.to_string());
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: tcp-bench sink | source PORT BYTES | echo | burst PORT CONNS BYTES [hold]");
    ExitCode::from(2)
}

fn sink() -> std::io::Result<bool> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; READ_CHUNK];
            let mut count = 0u64;
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => count += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
            let _ = conn.write_all(format!("{count}\n").as_bytes());
            let _ = conn.shutdown(Shutdown::Write);
        });
    }
    Ok(true)
}

/// The JS script's block: xorshift32 bytes.
fn block() -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn source(port: u16, total: u64) -> std::io::Result<bool> {
    let block = block();
    let started = Instant::now();
    let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    let mut sent = 0u64;
    while sent < total {
        let n = usize::try_from(total - sent).map_or(block.len(), |left| left.min(block.len()));
        conn.write_all(block.get(..n).unwrap_or_default())?;
        sent += n as u64;
    }
    conn.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    let seconds = started.elapsed().as_secs_f64();
    let received: u64 = answer.trim().parse().unwrap_or(0);
    println!(
        "{{\"bytes\":{total},\"received\":{received},\"seconds\":{seconds},\"mbps\":{}}}",
        received as f64 / seconds / 1e6
    );
    Ok(received == total)
}

fn echo() -> std::io::Result<bool> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if conn.write_all(buf.get(..n).unwrap_or_default()).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
            let _ = conn.shutdown(Shutdown::Write);
        });
    }
    Ok(true)
}

/// Connection `i`'s bytes: a pattern of its own, so crossed streams show.
fn pattern(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j.wrapping_mul(31) ^ i.wrapping_mul(7919)) as u8)
        .collect()
}

/// One connection of a burst: sends its bytes (from another thread, so a full echo cannot block the
/// writer) and reads them back; returns its round-trip time when the echo matched.
fn one_round_trip(port: u16, i: usize, len: usize, hold: bool) -> std::io::Result<Option<f64>> {
    let started = Instant::now();
    let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    let data = pattern(i, len);
    let mut writer = conn.try_clone()?;
    let sent = data.clone();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&sent)?;
        if hold {
            Ok(())
        } else {
            writer.shutdown(Shutdown::Write)
        }
    });
    let mut back = Vec::with_capacity(len);
    if hold {
        back.resize(len, 0);
        conn.read_exact(&mut back)?;
    } else {
        conn.read_to_end(&mut back)?;
    }
    let sent_ok = sender
        .join()
        .map_err(|_| std::io::Error::other("writer panicked"))?;
    sent_ok?;
    Ok((back == data).then(|| started.elapsed().as_secs_f64()))
}

fn burst(port: u16, conns: usize, len: usize, hold: bool) -> std::io::Result<bool> {
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|i| std::thread::spawn(move || one_round_trip(port, i, len, hold)))
        .collect();
    let mut times = Vec::new();
    for t in threads {
        match t.join() {
            Ok(Ok(Some(s))) => times.push(s),
            Ok(Ok(None)) => eprintln!("a connection got different bytes back"),
            Ok(Err(e)) => eprintln!("a connection failed: {e}"),
            Err(_) => eprintln!("a connection thread panicked"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let last = times.iter().copied().fold(0.0, f64::max);
    println!(
        "{{\"conns\":{conns},\"ok\":{},\"seconds\":{seconds},\"first\":{},\"last\":{last}}}",
        times.len(),
        if times.is_empty() { 0.0 } else { first }
    );
    Ok(times.len() == conns)
}
