//! `drives serve` to a real browser: headless Chromium loads an HTML page from the served drive, plays the
//! WebM video beside it (made at test time with ffmpeg) through `<video>`, and its script writes the outcome
//! into the page. Chromium is driven over `--remote-debugging-pipe` (the DevTools protocol, NUL-separated
//! JSON on fds 3 and 4): the test waits for the page's result, bounded, and reads the server's request log
//! (`RUST_LOG`) to see the Range requests answered 206. Needs `chromium` and `ffmpeg` (installed by .ci/run).

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The bound on every wait of these tests (browser start, page load, playback, log lines).
const WAIT: Duration = Duration::from_secs(60);

/// The page: plays `clip.webm` muted and writes the outcome as JSON into `#out` (`pending` until then).
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>serve test</title></head>
<body>
<video id="v" muted playsinline preload="auto" src="clip.webm"></video>
<pre id="out">pending</pre>
<script>
const v = document.getElementById('v');
const out = document.getElementById('out');
let maxReadyState = 0;
const done = (event) => {
  if (out.textContent !== 'pending') return;
  out.textContent = JSON.stringify({
    event, currentTime: v.currentTime, duration: v.duration, readyState: v.readyState, maxReadyState,
    videoWidth: v.videoWidth, videoHeight: v.videoHeight, error: v.error ? v.error.code : null,
  });
};
v.addEventListener('timeupdate', () => {
  if (v.currentTime > 0) maxReadyState = Math.max(maxReadyState, v.readyState);
});
v.addEventListener('ended', () => done('ended'));
v.addEventListener('error', () => done('error'));
v.play().catch((e) => done('play rejected: ' + e));
setTimeout(() => done('timeout'), 45000);
</script>
</body></html>
"#;

/// The video: 2 s of ffmpeg's test pattern, 160x120 VP8 in WebM (a few tens of KB).
fn make_video(path: &Path) {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
        ])
        .args(["-i", "testsrc=duration=2:size=160x120:rate=15"])
        .args(["-c:v", "libvpx", "-b:v", "300k", "-y"])
        .arg(path)
        .output()
        .expect("run ffmpeg (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `drives serve` process: its stdout and stderr lines arrive on channels; killed on drop.
struct Server {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines_of(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Server {
    fn spawn(cwd: &Path, args: &[&str]) -> Self {
        let mut child = common::drives()
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "drives::serve=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn drives");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        Server {
            child,
            stdout,
            stderr,
        }
    }

    fn port(&self) -> u16 {
        let line = wait_line(
            &self.stdout,
            |l| l.contains("HTTP server on"),
            "server address",
        );
        line.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) for a line of `rx` that `want` accepts.
fn wait_line(rx: &mpsc::Receiver<String>, want: impl Fn(&str) -> bool, what: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if want(&l) => return l,
            Ok(_) => {}
            Err(e) => panic!("no line for {what} within {WAIT:?} ({e})"),
        }
    }
}

/// Headless Chromium driven over `--remote-debugging-pipe`; closed (or killed) on drop.
struct Browser {
    child: Child,
    commands: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    /// Events read while waiting for a reply.
    events: Vec<Value>,
}

impl Browser {
    fn launch(profile: &Path, log: &Path) -> Self {
        // The pipe protocol reads commands on fd 3 and writes on fd 4: the shell makes them from our stdin
        // and stdout pipes before it becomes Chromium.
        let mut child = Command::new("sh")
            .args([
                "-c",
                r#"exec "$@" 3<&0 4>&1 0</dev/null 1>&2"#,
                "sh",
                "chromium",
            ])
            .args([
                "--headless=new",
                "--no-sandbox",
                "--autoplay-policy=no-user-gesture-required",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("chromium log"))
            .spawn()
            .expect("spawn chromium (apt-get install chromium)");
        let commands = child.stdin.take().expect("stdin");
        let mut from = child.stdout.take().expect("stdout");
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 64 * 1024];
            loop {
                while let Some(end) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    let Ok(v) = serde_json::from_slice::<Value>(&msg[..end]) else {
                        continue;
                    };
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                match from.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
        Browser {
            child,
            commands,
            messages,
            next_id: 0,
            events: Vec::new(),
        }
    }

    fn next_message(&mut self, deadline: Instant, what: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        self.messages
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("chromium: no answer for {what} within {WAIT:?} ({e})"))
    }

    /// Sends a DevTools command (to `session`'s target, or the browser); returns its id.
    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.commands.write_all(&bytes).expect("write to chromium");
        self.commands.flush().expect("flush");
        id
    }

    /// Sends a DevTools command and waits for its result.
    fn call(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        let id = self.send(method, params, session);
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.next_message(deadline, method);
            if m["id"] == json!(id) {
                assert!(m.get("error").is_none(), "{method} failed: {m}");
                return m["result"].clone();
            }
            self.events.push(m);
        }
    }

    /// Waits for event `method` (from `session`), one already read included.
    fn event(&mut self, method: &str, session: &str) -> Value {
        let is = |m: &Value| m["method"] == json!(method) && m["sessionId"] == json!(session);
        if let Some(i) = self.events.iter().position(is) {
            return self.events.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.next_message(deadline, method);
            if is(&m) {
                return m;
            }
            self.events.push(m);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens `url` in a new tab and returns what its script wrote into `#out`, once it is not `pending`.
fn play(tmp: &Path, url: &str) -> String {
    let log = tmp.join("chromium.log");
    let mut browser = Browser::launch(&tmp.join("profile"), &log);
    let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }), None);
    let target_id = target["targetId"].as_str().expect("targetId").to_string();
    let attached = browser.call(
        "Target.attachToTarget",
        json!({ "targetId": target_id, "flatten": true }),
        None,
    );
    let session = attached["sessionId"]
        .as_str()
        .expect("sessionId")
        .to_string();
    browser.call("Page.enable", json!({}), Some(&session));
    let nav = browser.call("Page.navigate", json!({ "url": url }), Some(&session));
    assert!(nav.get("errorText").is_none(), "navigation failed: {nav}");
    browser.event("Page.loadEventFired", &session);
    // Resolves when the page's script has written its outcome (the page bounds its own wait too).
    let result = browser.call(
        "Runtime.evaluate",
        json!({
            "expression": "new Promise((resolve) => {
                const out = document.getElementById('out');
                const check = () => { if (out.textContent !== 'pending') resolve(out.textContent); };
                new MutationObserver(check).observe(out, { childList: true, characterData: true, subtree: true });
                check();
            })",
            "awaitPromise": true,
            "returnByValue": true,
        }),
        Some(&session),
    );
    browser.send("Browser.close", json!({}), None);
    match result["result"]["value"].as_str() {
        Some(s) => s.to_string(),
        None => panic!(
            "page gave no result: {result}\nchromium log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    }
}

/// Plays the video served by `drives serve ARGS` and checks the page's outcome and the server's log.
fn video_plays(cwd: &Path, serve_args: &[&str]) {
    let server = Server::spawn(cwd, serve_args);
    let port = server.port();
    let outcome = play(cwd, &format!("http://127.0.0.1:{port}/index.html"));
    let v: Value = serde_json::from_str(&outcome).unwrap_or_else(|e| panic!("{e}: {outcome}"));
    assert_eq!(v["event"], json!("ended"), "video did not play: {outcome}");
    assert_eq!(v["error"], Value::Null, "{outcome}");
    assert_eq!(
        (v["videoWidth"].as_u64(), v["videoHeight"].as_u64()),
        (Some(160), Some(120)),
        "{outcome}"
    );
    let played = v["currentTime"].as_f64().unwrap_or(0.0);
    assert!(played > 1.5, "played to {played} s only: {outcome}");
    assert!(
        v["maxReadyState"].as_u64().unwrap_or(0) >= 3,
        "never had enough data while playing: {outcome}"
    );
    // Each request is logged before its body is sent: the video's were Range requests answered 206.
    let line = wait_line(
        &server.stderr,
        |l| l.contains("target=\"/clip.webm\"") && l.contains("status=206"),
        "a 206 answer to the video's Range request",
    );
    assert!(line.contains("range=\"bytes="), "{line}");
}

fn site(root: &Path) {
    std::fs::create_dir_all(root).expect("mkdir");
    make_video(&root.join("clip.webm"));
    std::fs::write(root.join("index.html"), PAGE).expect("write page");
}

#[test]
fn chromium_plays_a_video_from_a_served_folder() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    site(&cwd.join("site"));
    video_plays(
        cwd,
        &["serve", "./site", "--host", "127.0.0.1", "--port", "0"],
    );
}

#[test]
fn chromium_plays_a_video_from_a_served_hyperdrive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    site(&cwd.join("site"));
    common::ok(cwd, &["init"]);
    let out = common::ok(cwd, &["touch"]);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key line")
        .to_string();
    common::ok(cwd, &["mirror", "./site", &key]);
    // A dead loopback bootstrap keeps the swarm off the public network.
    video_plays(
        cwd,
        &[
            "serve",
            &key,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--bootstrap",
            "127.0.0.1:9",
        ],
    );
}
