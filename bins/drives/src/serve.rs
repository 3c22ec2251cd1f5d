//! `drives serve`: serve-drive 1's HTTP interface on a drive. GET and HEAD only (else 400); the path is the
//! percent-decoded key; `?drive=` may name the drive by its z-base-32 key (the default drive without it);
//! keys under `/.drives/` or `/corestore/` are hidden; a missing entry (or a folder) is 404 `ENOENT`.
//! Responses carry `Content-Type` (from the name, `application/octet-stream` if unknown),
//! `Accept-Ranges: bytes` and `Content-Length`; a `Range` header gives 206 with `Content-Range` for its
//! first range, and an unsatisfiable or malformed range gives serve-drive's 206 with an empty body.
//! HTTP/1.1 is hyper's: connections are kept alive between requests, a request body with `Content-Length`
//! is read and dropped, one with `Transfer-Encoding` is refused (400, connection closed). Bodies stream the
//! entry's blob chunk by chunk; each request is logged at debug level (`RUST_LOG=drives::serve=debug`).
//!
//! `?checkout=N` serves version `N` of a hyperdrive (serve-drive `drive.checkout(version)`; ignored on a
//! folder, as localdrive's checkout is the folder itself). As the JS answers it: an empty value is the latest
//! version; a number is truncated (`2.5`, `02` are 2); `N <= 1` (and negative numbers) is the empty drive
//! before the first write, so every path is 404 `ENOENT`; anything else that is not a number is 500
//! `ERR_ASSERTION`. A version past the drive's is waited for (a replica may be catching up), as JS does;
//! JS waits forever, this answers 404 `SNAPSHOT_NOT_AVAILABLE` (serve-drive's status and text for a checkout
//! that cannot be read) after [`CHECKOUT_WAIT`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use drives_cli::util::{parse_range, Range};
use holepunch::drive::{BlobReader, Drive};
use holepunch::hyperdrive::Hyperdrive;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderValue, CONNECTION, RANGE, TRANSFER_ENCODING};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::hyper::AnyDrive;

/// Longest request head accepted (hyper's read buffer; a longer head is answered 431).
const MAX_HEAD: usize = 64 * 1024;

/// A response body: a text, nothing, or a blob read chunk by chunk.
type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// How long a request for a version past the drive's waits for the drive to reach it.
pub(crate) const CHECKOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The `checkout` query parameter, as serve-drive reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkout {
    /// Absent or empty.
    Latest,
    /// A version (at least 1).
    At(u64),
    /// Not a number (JS `drive.checkout("abc")` fails an assertion).
    Invalid,
}

/// The first value of query parameter `name` (percent-decoded, `+` as a space), as `URLSearchParams.get`.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        (decode(k)? == name).then(|| decode(v)).flatten()
    })
}

fn parse_checkout(query: &str) -> Checkout {
    let Some(v) = query_param(query, "checkout") else {
        return Checkout::Latest;
    };
    let v = v.trim();
    if v.is_empty() {
        return Checkout::Latest;
    }
    // JS numbers: decimal, optionally signed or fractional; `inf`/`nan` spellings are Rust's, not JS's.
    let numeric = v
        .trim_start_matches(['+', '-'])
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.');
    match v.parse::<f64>() {
        Ok(n) if numeric && n.is_finite() => Checkout::At(if n < 1.0 { 1 } else { n as u64 }),
        _ => Checkout::Invalid,
    }
}

/// The drive a request reads: the served one or a checkout of it. Waits (up to [`CHECKOUT_WAIT`]) for a
/// version past the drive's; `None` if it does not come.
async fn checkout_of(d: &Hyperdrive, version: u64) -> Option<Hyperdrive> {
    if d.version() < version {
        let mut rx = d.core().subscribe();
        let reached = tokio::time::timeout(CHECKOUT_WAIT, async {
            while d.version() < version {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
            true
        })
        .await;
        if reached != Ok(true) {
            return None;
        }
    }
    Some(d.checkout(version))
}

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
    let drive = Arc::new(drive);
    loop {
        let (sock, _) = listener.accept().await.context("accepting")?;
        let drive = drive.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(drive.clone(), req));
            // Title-case header names, as Node's http writes them (and clients of serve-drive may match).
            let conn = hyper::server::conn::http1::Builder::new()
                .title_case_headers(true)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(sock), service);
            if let Err(e) = conn.await {
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

/// What a request is answered: a status, headers, and either a range of an entry or a text.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// The entry, the first byte and the length to send.
    body: Option<(holepunch::drive::Entry, u64, u64)>,
    text: &'static str,
}

/// Answers one request of a connection (hyper keeps the connection alive between them).
async fn handle(
    served: Arc<AnyDrive>,
    req: Request<Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    // A chunked request body is never accepted: 400, and the connection ends rather than read it.
    if req.headers().contains_key(TRANSFER_ENCODING) {
        let mut resp = text_response(400, "");
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return Ok(resp);
    }
    let (parts, mut incoming) = req.into_parts();
    // A Content-Length body is read and dropped, so the connection stays usable.
    while let Some(frame) = incoming.frame().await {
        if let Err(e) = frame {
            tracing::debug!("request body: {e}");
            let mut resp = text_response(400, "");
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return Ok(resp);
        }
    }
    let target = match parts.uri.query() {
        Some(q) => format!("{}?{q}", parts.uri.path()),
        None => parts.uri.path().to_string(),
    };
    let range = parts.headers.get(RANGE).and_then(|v| v.to_str().ok());
    let mut checkout = None;
    let answer = respond_in(
        &served,
        &mut checkout,
        parts.method.as_str(),
        &target,
        range,
    )
    .await;
    tracing::debug!(
        method = %parts.method,
        target,
        range,
        status = answer.status,
        "serve: request"
    );
    let body = match &answer.body {
        Some((entry, start, len)) if *len > 0 && parts.method != Method::HEAD => {
            let drive = checkout.as_ref().unwrap_or(&served).as_drive();
            match drive.read(entry, *start, Some(*len)).await {
                Ok(reader) => blob_body(reader),
                Err(e) => {
                    tracing::debug!("read {}: {e}", entry.key);
                    return Ok(text_response(500, "ERROR"));
                }
            }
        }
        Some(_) => Empty::new().map_err(|e| match e {}).boxed_unsync(),
        None => text_body(answer.text),
    };
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = status(answer.status);
    for (k, v) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn text_body(text: &'static str) -> Body {
    Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// A response with `text` as its body (its Content-Length set by hyper).
fn text_response(code: u16, text: &'static str) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(text_body(text));
    *resp.status_mut() = status(code);
    resp
}

/// A body that reads the blob chunk by chunk as the connection takes them (never the whole file at once).
fn blob_body(reader: Box<dyn BlobReader>) -> Body {
    let chunks = futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(Frame::data(Bytes::from(chunk))), Some(reader))),
            Ok(None) => None,
            Err(e) => Some((Err(e.into()), None)),
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// Answers one request; a checkout it reads from is left in `checkout` for the body.
async fn respond_in(
    served: &AnyDrive,
    checkout: &mut Option<AnyDrive>,
    method: &str,
    target: &str,
    range: Option<&str>,
) -> Answer {
    let simple = |status, text| Answer {
        status,
        headers: Vec::new(),
        body: None,
        text,
    };
    if method != "GET" && method != "HEAD" {
        return simple(400, "");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if query_param(query, "drive").is_some_and(|id| !names_drive(served, &id)) {
        return simple(404, "DRIVE_NOT_FOUND");
    }
    let drive: &dyn Drive = match parse_checkout(query) {
        Checkout::Latest => served.as_drive(),
        Checkout::Invalid => return simple(500, "ERR_ASSERTION"),
        Checkout::At(v) => match served {
            AnyDrive::Local(_) => served.as_drive(),
            AnyDrive::Hyper(d) => match checkout_of(d, v).await {
                Some(c) => checkout.insert(AnyDrive::Hyper(c)).as_drive(),
                None => return simple(404, "SNAPSHOT_NOT_AVAILABLE"),
            },
        },
    };
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
            Answer {
                status: 206,
                headers,
                body: Some((entry, start, end - start + 1)),
                text: "",
            }
        }
        Some(Range::Unsatisfiable | Range::Malformed) => {
            headers.push(("Content-Length", "0".to_string()));
            Answer {
                status: 206,
                headers,
                body: None,
                text: "",
            }
        }
        None => {
            headers.push(("Content-Length", size.to_string()));
            Answer {
                status: 200,
                headers,
                body: Some((entry, 0, size)),
                text: "",
            }
        }
    }
}

/// True when `?drive=ID` names the served drive: its z-base-32 key (serve-drive registers the default drive
/// under its key too). A folder has no key.
fn names_drive(drive: &AnyDrive, id: &str) -> bool {
    match drive {
        AnyDrive::Hyper(d) => holepunch::z32::encode(&d.key()) == id,
        AnyDrive::Local(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_parameter_as_serve_drive_reads_it() {
        assert_eq!(parse_checkout(""), Checkout::Latest);
        assert_eq!(parse_checkout("drive=x"), Checkout::Latest);
        assert_eq!(parse_checkout("checkout="), Checkout::Latest);
        assert_eq!(parse_checkout("checkout=3"), Checkout::At(3));
        assert_eq!(parse_checkout("a=1&checkout=7&checkout=9"), Checkout::At(7));
        assert_eq!(parse_checkout("checkout=02"), Checkout::At(2));
        assert_eq!(parse_checkout("checkout=2.5"), Checkout::At(2));
        assert_eq!(parse_checkout("checkout=%33"), Checkout::At(3));
        assert_eq!(parse_checkout("checkout=0"), Checkout::At(1));
        assert_eq!(parse_checkout("checkout=-1"), Checkout::At(1));
        assert_eq!(parse_checkout("checkout=abc"), Checkout::Invalid);
        assert_eq!(parse_checkout("checkout=inf"), Checkout::Invalid);
        assert_eq!(parse_checkout("checkout=NaN"), Checkout::Invalid);
        assert_eq!(parse_checkout("checkout=%zz"), Checkout::Latest);
    }

    #[tokio::test]
    async fn a_version_past_the_drive_is_waited_for() {
        use holepunch::corestore::Corestore;
        use holepunch::drive::WriteOptions;
        use holepunch::hyperdrive::DriveOptions;
        let tmp = tempfile::tempdir().expect("tmp");
        let store = Corestore::open(tmp.path()).expect("store");
        let drive = Hyperdrive::open(&store, DriveOptions::default()).expect("drive");
        drive
            .put("/a", b"1", WriteOptions::default())
            .await
            .expect("put");
        let v = drive.version();
        assert_eq!(
            checkout_of(&drive, v).await.map(|d| d.version()),
            Some(v),
            "a version the drive has"
        );
        let writer = drive.clone();
        let (got, ()) = tokio::join!(checkout_of(&drive, v + 1), async move {
            tokio::task::yield_now().await;
            writer
                .put("/b", b"2", WriteOptions::default())
                .await
                .expect("put");
        });
        assert_eq!(got.map(|d| d.version()), Some(v + 1));
        let start = std::time::Instant::now();
        assert!(checkout_of(&drive, v + 5).await.is_none());
        assert!(start.elapsed() >= CHECKOUT_WAIT);
    }
}
