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
    eprintln!("usage: tcp-bench sink | source PORT BYTES");
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
