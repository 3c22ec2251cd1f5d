//! `drives serve`: serve-drive 1's HTTP interface on a drive. GET and HEAD only (else 400); the path is the
//! percent-decoded key; `?drive=` may name the drive by its z-base-32 key (the default drive without it);
//! keys under `/.drives/` or `/corestore/` are hidden; a missing entry (or a folder) is 404 `ENOENT`.
//! Responses carry `Content-Type` (from the name, `application/octet-stream` if unknown),
//! `Accept-Ranges: bytes` and `Content-Length`; a `Range` header gives 206 with `Content-Range` for its
//! first range, and an unsatisfiable or malformed range gives serve-drive's 206 with an empty body.
//! Connections are kept alive (HTTP/1.1) between requests.

use std::net::SocketAddr;

use anyhow::Context;
use drives_cli::util::{parse_range, Range};
use holepunch::mirror::Drive;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::hyper::AnyDrive;

/// Longest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

async fn bind(host: Option<&str>, port: u16, any_port: bool) -> anyhow::Result<TcpListener> {
    let hosts: Vec<String> = match host {
        Some(h) => vec![h.to_string()],
        None => vec!["::".to_string(), "0.0.0.0".to_string()],
    };
    let mut last = None;
    for h in &hosts {
        let addr = if h.contains(':') {
            format!("[{h}]:{port}")
        } else {
            format!("{h}:{port}")
        };
        match TcpListener::bind(&addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && any_port => {
                let addr = if h.contains(':') {
                    format!("[{h}]:0")
                } else {
                    format!("{h}:0")
                };
                return TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("listening on {addr}"));
            }
            Err(e) => last = Some(anyhow::Error::new(e).context(format!("listening on {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no address to listen on")))
}

fn shown_host(addr: &SocketAddr) -> String {
    let ip = addr.ip();
    if ip.is_unspecified() {
        "localhost".to_string()
    } else {
        ip.to_string()
    }
}

/// Serves `drive` until the process ends.
pub(crate) async fn serve(
    drive: AnyDrive,
    host: Option<&str>,
    port: u16,
    any_port: bool,
) -> anyhow::Result<()> {
    let listener = bind(host, port, any_port).await?;
    let addr = listener.local_addr()?;
    println!(
        "HTTP server on http://{}:{}",
        shown_host(&addr),
        addr.port()
    );
    let drive = std::sync::Arc::new(drive);
    loop {
        let (sock, _) = listener.accept().await.context("accepting")?;
        let drive = drive.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(sock, drive.as_drive()).await {
                tracing::debug!("http connection: {e:#}");
            }
        });
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Option<(holepunch::mirror::Entry, u64, u64)>,
    text: &'static str,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Internal Server Error",
    }
}

async fn respond(drive: &dyn Drive, method: &str, target: &str, range: Option<&str>) -> Response {
    let simple = |status, text| Response {
        status,
        headers: Vec::new(),
        body: None,
        text,
    };
    if method != "GET" && method != "HEAD" {
        return simple(400, "");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if query.split('&').any(|kv| kv.starts_with("drive=")) {
        return simple(404, "DRIVE_NOT_FOUND");
    }
    let Some(filename) = percent_decode(path) else {
        return simple(404, "ENOENT");
    };
    let lower = filename.to_lowercase();
    if lower.starts_with("/.drives/") || lower.starts_with("/corestore/") {
        return simple(404, "ENOENT");
    }
    let entry = match drive.entry(&filename).await {
        Ok(Some(e)) if e.linkname.is_none() && e.byte_length.is_some() => e,
        Ok(_) => return simple(404, "ENOENT"),
        Err(e) => {
            tracing::debug!("entry {filename}: {e}");
            return simple(500, "ERROR");
        }
    };
    let size = entry.len();
    let mime = mime_guess::from_path(&filename)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let mut headers = vec![
        ("Content-Type", mime.to_string()),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    match range.map(|r| parse_range(size, r)) {
        Some(Range::Bytes { start, end }) => {
            headers.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
            headers.push(("Content-Length", (end - start + 1).to_string()));
            Response {
                status: 206,
                headers,
                body: Some((entry, start, end - start + 1)),
                text: "",
            }
        }
        Some(Range::Unsatisfiable | Range::Malformed) => {
            headers.push(("Content-Length", "0".to_string()));
            Response {
                status: 206,
                headers,
                body: None,
                text: "",
            }
        }
        None => {
            headers.push(("Content-Length", size.to_string()));
            Response {
                status: 200,
                headers,
                body: Some((entry, 0, size)),
                text: "",
            }
        }
    }
}

async fn connection(sock: TcpStream, drive: &dyn Drive) -> anyhow::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut head = Vec::new();
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = r.read_line(&mut line).await?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(line.as_bytes());
            if head.len() > MAX_HEAD {
                anyhow::bail!("request head too long");
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if line.is_empty() {
                if lines.is_empty() {
                    continue;
                }
                break;
            }
            lines.push(line);
        }
        let mut parts = lines.first().map(|l| l.split(' ')).into_iter().flatten();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let version = parts.next().unwrap_or("HTTP/1.0").to_string();
        let header = |name: &str| {
            lines.iter().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let keep_alive = match header("connection") {
            Some(c) if c.eq_ignore_ascii_case("close") => false,
            Some(c) if c.eq_ignore_ascii_case("keep-alive") => true,
            _ => version == "HTTP/1.1",
        };
        // Request bodies are not expected; skip one if announced.
        if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
            tokio::io::copy(&mut (&mut r).take(len), &mut tokio::io::sink()).await?;
        }
        let resp = respond(drive, &method, &target, header("range").as_deref()).await;
        let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
        for (k, v) in &resp.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if resp.body.is_none() && !resp.headers.iter().any(|(k, _)| *k == "Content-Length") {
            out.push_str(&format!("Content-Length: {}\r\n", resp.text.len()));
        }
        out.push_str(if keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        w.write_all(out.as_bytes()).await?;
        if method != "HEAD" {
            match &resp.body {
                Some((entry, start, len)) if *len > 0 => {
                    let mut reader = drive.read(entry, *start, Some(*len)).await?;
                    while let Some(chunk) = reader.next_chunk().await? {
                        w.write_all(&chunk).await?;
                    }
                }
                Some(_) => {}
                None => w.write_all(resp.text.as_bytes()).await?,
            }
        }
        w.flush().await?;
        if !keep_alive {
            return Ok(());
        }
    }
}

use tokio::io::AsyncReadExt as _;
