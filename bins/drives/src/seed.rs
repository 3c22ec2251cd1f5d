//! `drives seed`'s screen, as JS drives 2.9.1 draws it (`bin/seed.js`): whether the drive is announced, its
//! files and blobs keys, then the peers (at most five, then `... and N more connections`), each with its
//! address, an abbreviated key and how far it has each core (`remoteContiguousLength/length` of the files
//! core `+` the blobs core). This adds the blocks uploaded to and downloaded from each peer.
//!
//! On a terminal the screen is redrawn in place (every second and soon after replication changes something,
//! as JS redraws on peer changes and every second). Otherwise (a pipe, a log file) the output stays the plain
//! lines scripts read: the `Announced` block once the swarm is flushed, then one status line
//! (`No peers` or `Peers: N | files F + blobs B blks | uploaded U blks`) each time it changes.
//!
//! `drives seed KEY KEY...` and `drives seed --all` (every drive of the store) seed many drives on one swarm
//! (one DHT node, one connection per peer, each drive's topic announced): see [`seed_many`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use drives_cli::cli::NetArg;
use drives_cli::util::Crayon;
use holepunch::corestore::Corestore;
use holepunch::crypto;
use holepunch::hyperbee::messages::Header;
use holepunch::hyperdrive::{self, Hyperdrive};
use holepunch::id_encoding;

use crate::hyper::{self, Swarming};
use crate::Out;

/// Shortest time between two redraws (or status lines).
const MIN_REDRAW: Duration = Duration::from_millis(150);

/// Peers listed before `... and N more connections` (as JS).
const MAX_LISTED: usize = 5;

/// One remote peer, over the drive's two cores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerRow {
    /// z-base-32 public key.
    pub(crate) id: String,
    /// Remote address (IP), when known.
    pub(crate) host: Option<String>,
    /// Remote contiguous length of the files core, if the peer replicates it.
    pub(crate) files: u64,
    /// Remote contiguous length of the blobs core.
    pub(crate) blobs: u64,
    /// Blocks sent to it (both cores).
    pub(crate) uploaded: u64,
    /// Blocks received from it (both cores).
    pub(crate) downloaded: u64,
}

/// What the screen shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Screen {
    pub(crate) announced: bool,
    pub(crate) files_key: String,
    pub(crate) blobs_key: Option<String>,
    pub(crate) files_length: u64,
    pub(crate) blobs_length: u64,
    pub(crate) peers: Vec<PeerRow>,
}

/// `abcde..vwxyz`, as JS abbreviates keys.
fn abbreviate(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 12 {
        return id.to_string();
    }
    let head: String = chars.iter().take(5).collect();
    let tail: String = chars.iter().skip(chars.len() - 5).collect();
    format!("{head}..{tail}")
}

impl Screen {
    /// The screen as text (JS layout: header block, blank line, peers block), ending in a newline.
    pub(crate) fn render(&self, c: Crayon) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            if self.announced {
                c.cyan("Announced")
            } else {
                c.red("Announcing...")
            }
        );
        let _ = writeln!(out, "Files: {}", c.green(&self.files_key));
        if let Some(b) = &self.blobs_key {
            let _ = writeln!(out, "Blobs: {}", c.green(b));
        }
        out.push('\n');
        if self.peers.is_empty() {
            let _ = writeln!(out, "{}", c.red("No peers"));
            return out;
        }
        out.push_str("Peers\n");
        for p in self.peers.iter().take(MAX_LISTED) {
            let host = p
                .host
                .as_deref()
                .map(|h| format!("{} ", c.gray(h)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- {host}{} {} + {} blks {} {}",
                c.magenta(&abbreviate(&p.id)),
                c.yellow(&format!("{}/{}", p.files, self.files_length)),
                c.yellow(&format!("{}/{}", p.blobs, self.blobs_length)),
                c.yellow(&format!("↑{}", p.uploaded)),
                c.yellow(&format!("↓{}", p.downloaded)),
            );
        }
        if self.peers.len() > MAX_LISTED {
            let _ = writeln!(
                out,
                "... and {} more connections",
                c.yellow(&(self.peers.len() - MAX_LISTED).to_string())
            );
        }
        out
    }

    /// The plain status line (stable for scripts).
    pub(crate) fn status_line(&self, c: Crayon) -> String {
        if self.peers.is_empty() {
            return c.red("No peers");
        }
        let uploaded: u64 = self.peers.iter().map(|p| p.uploaded).sum();
        format!(
            "Peers: {} | files {} + blobs {} blks | uploaded {} blks",
            c.yellow(&self.peers.len().to_string()),
            c.yellow(&self.files_length.to_string()),
            c.yellow(&self.blobs_length.to_string()),
            c.yellow(&uploaded.to_string())
        )
    }
}

/// The drive's screen now.
fn snapshot(drive: &Hyperdrive, swarm: &Swarming, announced: bool) -> Screen {
    let mut peers: BTreeMap<[u8; 32], PeerRow> = BTreeMap::new();
    let mut anonymous = Vec::new();
    for (i, rep) in drive.replicators().iter().enumerate() {
        for s in rep.peer_stats() {
            let fill = |row: &mut PeerRow| {
                if i == 0 {
                    row.files = s.remote_contiguous;
                } else {
                    row.blobs = s.remote_contiguous;
                }
                row.uploaded += s.blocks_uploaded;
                row.downloaded += s.blocks_downloaded;
            };
            match s.remote_public_key {
                Some(key) => fill(peers.entry(key).or_insert_with(|| PeerRow {
                    id: id_encoding::encode(&key),
                    host: swarm.remote_host(&key),
                    ..PeerRow::default()
                })),
                // A peer whose key the driver does not know (not a swarm connection) is listed alone.
                None if i == 0 => {
                    let mut row = PeerRow {
                        id: format!("peer {}", s.peer.0),
                        ..PeerRow::default()
                    };
                    fill(&mut row);
                    anonymous.push(row);
                }
                None => {}
            }
        }
    }
    let mut rows: Vec<PeerRow> = peers.into_values().collect();
    rows.extend(anonymous);
    Screen {
        announced,
        files_key: id_encoding::encode(&drive.key()),
        blobs_key: drive.content_key().map(|k| id_encoding::encode(&k)),
        files_length: drive.core().length(),
        blobs_length: drive.blobs_if_open().map_or(0, |b| b.core().length()),
        peers: rows,
    }
}

/// Runs the seed screen until the process ends: redrawn in place on a terminal, plain lines otherwise.
pub(crate) async fn run(drive: &Hyperdrive, swarm: &Swarming, c: Crayon, terminal: bool) {
    let flushed = {
        let s = swarm.swarm().clone();
        tokio::spawn(async move {
            s.flush().await;
        })
    };
    if terminal {
        screen(drive, swarm, c, flushed).await;
    } else {
        let _ = flushed.await;
        plain(drive, swarm, c).await;
    }
}

async fn plain(drive: &Hyperdrive, swarm: &Swarming, c: Crayon) {
    let first = snapshot(drive, swarm, true);
    let mut header = first.render(c);
    // Only the header block: the peers are reported by status lines.
    if let Some(end) = header.find("\n\n") {
        header.truncate(end + 1);
    }
    println!("{header}");
    let mut last = String::new();
    let mut changes = drive.replicators().first().map(|r| r.watch());
    loop {
        let status = snapshot(drive, swarm, true).status_line(c);
        if status != last {
            println!("{status}");
            last = status;
        }
        // Changes come in bursts: at most one redraw per `MIN_REDRAW`, the first at once (a short-lived peer
        // still shows).
        tokio::time::sleep(MIN_REDRAW).await;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = replication_changed(changes.as_mut()) => {}
        }
    }
}

/// Resolves when the replicator reports a change; never without a replicator.
async fn replication_changed(rx: Option<&mut tokio::sync::watch::Receiver<u64>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn screen(
    drive: &Hyperdrive,
    swarm: &Swarming,
    c: Crayon,
    mut flushed: tokio::task::JoinHandle<()>,
) {
    let mut announced = false;
    let mut shown_lines = 0usize;
    let mut last = String::new();
    let mut changes = drive.replicators().first().map(|r| r.watch());
    loop {
        let text = snapshot(drive, swarm, announced).render(c);
        if text != last {
            let mut out = std::io::stdout().lock();
            if shown_lines > 0 {
                // Back to the first line of the previous screen, and clear it and everything below.
                let _ = write!(out, "\x1b[{shown_lines}F\x1b[J");
            }
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            shown_lines = text.lines().count();
            last = text;
        }
        // Changes come in bursts: at most one redraw per `MIN_REDRAW`, the first at once (a short-lived peer
        // still shows).
        tokio::time::sleep(MIN_REDRAW).await;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = replication_changed(changes.as_mut()) => {}
            r = &mut flushed, if !announced => {
                let _ = r;
                announced = true;
            }
        }
    }
}

/// Drives listed on a terminal's screen at most (the rest are counted), so the screen fits.
const MAX_SCREEN_DRIVES: usize = 20;

/// `drives seed KEY KEY...` / `drives seed --all`: opens the drives, joins each one's topic on one swarm and
/// reports each drive's status until the process ends.
pub(crate) async fn seed_many(
    out: Out,
    dir: &Path,
    keys: &[String],
    all: bool,
    net: &NetArg,
) -> anyhow::Result<()> {
    // Each drive keeps its cores' files open: past the usual soft limit of 1024 with a few hundred drives.
    if let Err(e) = bin_support::limits::raise_open_files() {
        eprintln!("could not raise the open files limit: {e}");
    }
    let store = hyper::open_store(dir)?;
    let drives = if all {
        store_drives(&store)?
    } else {
        let mut seen = BTreeSet::new();
        let mut drives = Vec::new();
        for k in keys {
            let d = hyper::open_hyper(&store, k)?;
            if seen.insert(d.key()) {
                drives.push(d);
            }
        }
        drives
    };
    if drives.is_empty() {
        bail!("no drive to seed in the store at {}", dir.display());
    }
    let swarm = hyper::swarming(drives.clone(), net, true, false, out).await?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    run_many(&drives, &swarm, out.c, terminal).await;
    Ok(())
}

/// Every drive of the store: the cores whose first block is a hyperbee header naming a blobs core (in its
/// `contentFeed`, or derived from the core's manifest). Other cores (blobs, empty drives that have nothing
/// to serve yet) are closed again; a core that cannot be read is reported and skipped.
pub(crate) fn store_drives(store: &Corestore) -> anyhow::Result<Vec<Hyperdrive>> {
    let listed = store
        .list()
        .with_context(|| format!("listing the cores of {}", store.dir().display()))?;
    let mut drives = Vec::new();
    for dk in &listed {
        let core = match store.get_by_discovery_key(dk) {
            Ok(Some(core)) => core,
            Ok(None) => continue,
            Err(e) => {
                let id: String = dk.iter().map(|b| format!("{b:02x}")).collect();
                eprintln!("skipping core {id}: {e}");
                continue;
            }
        };
        let header = core
            .get(0)
            .ok()
            .flatten()
            .and_then(|b| Header::decode(&b).ok())
            .filter(|h| h.protocol == "hyperbee");
        let is_drive = header.is_some_and(|h| {
            h.metadata.is_some_and(|m| m.content_feed.is_some())
                || core
                    .manifest()
                    .and_then(|m| hyperdrive::content_key(&m, &core.key()))
                    .is_some_and(|k| listed.binary_search(&crypto::discovery_key(&k)).is_ok())
        });
        if !is_drive {
            store.close_core(dk);
            continue;
        }
        match Hyperdrive::open_key(store, core.key(), hyper::drive_options()) {
            Ok(d) => drives.push(d),
            Err(e) => eprintln!("skipping drive {}: {e}", id_encoding::encode(&core.key())),
        }
    }
    Ok(drives)
}

/// One drive's status line in a many-drive seed: its key, then what `drives seed KEY` prints.
fn drive_line(drive: &Hyperdrive, swarm: &Swarming, c: Crayon) -> String {
    format!(
        "{} {}",
        c.green(&id_encoding::encode(&drive.key())),
        snapshot(drive, swarm, true).status_line(c)
    )
}

/// Wakes `notify` whenever one of the drives' replication changes.
fn watch_all(
    drives: &[Hyperdrive],
    notify: &Arc<tokio::sync::Notify>,
) -> Vec<tokio::task::JoinHandle<()>> {
    drives
        .iter()
        .filter_map(|d| d.replicators().first().map(|r| r.watch()))
        .map(|mut rx| {
            let n = notify.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    n.notify_one();
                }
            })
        })
        .collect()
}

async fn run_many(drives: &[Hyperdrive], swarm: &Swarming, c: Crayon, terminal: bool) {
    let notify = Arc::new(tokio::sync::Notify::new());
    let _watchers = watch_all(drives, &notify);
    let mut flushed = {
        let s = swarm.swarm().clone();
        tokio::spawn(async move {
            s.flush().await;
        })
    };
    let n = drives.len();
    let mut announced = false;
    if !terminal {
        println!("Seeding {}", drives_count(n));
        let _ = (&mut flushed).await;
        announced = true;
        println!("{}", c.cyan("Announced"));
    }
    // The last line shown for each drive (plain output), or the last screen (terminal).
    let mut last: Vec<String> = vec![String::new(); n];
    let mut last_screen = String::new();
    let mut shown_lines = 0usize;
    loop {
        let lines: Vec<(String, bool)> = drives
            .iter()
            .map(|d| {
                let peers = d
                    .replicators()
                    .first()
                    .is_some_and(|r| !r.peer_stats().is_empty());
                (drive_line(d, swarm, c), peers)
            })
            .collect();
        if terminal {
            let text = many_screen(&lines, announced, c);
            if text != last_screen {
                let mut out = std::io::stdout().lock();
                if shown_lines > 0 {
                    let _ = write!(out, "\x1b[{shown_lines}F\x1b[J");
                }
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
                shown_lines = text.lines().count();
                last_screen = text;
            }
        } else {
            let mut out = std::io::stdout().lock();
            for ((line, _), prev) in lines.into_iter().zip(last.iter_mut()) {
                if line != *prev {
                    let _ = writeln!(out, "{line}");
                    *prev = line;
                }
            }
            let _ = out.flush();
        }
        tokio::time::sleep(MIN_REDRAW).await;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = notify.notified() => {}
            r = &mut flushed, if !announced => {
                let _ = r;
                announced = true;
            }
        }
    }
}

/// `1 drive`, `N drives`.
fn drives_count(n: usize) -> String {
    if n == 1 {
        "1 drive".to_string()
    } else {
        format!("{n} drives")
    }
}

/// The terminal screen of a many-drive seed: a header, then the drives' lines (`(line, has peers)`), those
/// with peers first (at most [`MAX_SCREEN_DRIVES`]), then how many more there are.
fn many_screen(lines: &[(String, bool)], announced: bool, c: Crayon) -> String {
    let n = lines.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        if announced {
            c.cyan(&format!("Announced {}", drives_count(n)))
        } else {
            c.red(&format!("Announcing {}...", drives_count(n)))
        }
    );
    out.push('\n');
    // Drives with peers first; otherwise in the order given.
    let shown = lines
        .iter()
        .filter(|(_, peers)| *peers)
        .chain(lines.iter().filter(|(_, peers)| !*peers))
        .take(MAX_SCREEN_DRIVES);
    for (line, _) in shown {
        let _ = writeln!(out, "{line}");
    }
    if n > MAX_SCREEN_DRIVES {
        let _ = writeln!(
            out,
            "... and {} more drives",
            c.yellow(&(n - MAX_SCREEN_DRIVES).to_string())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, host: Option<&str>, files: u64, blobs: u64, up: u64, down: u64) -> PeerRow {
        PeerRow {
            id: id.to_string(),
            host: host.map(str::to_string),
            files,
            blobs,
            uploaded: up,
            downloaded: down,
        }
    }

    #[test]
    fn screen_layout_as_js_drives() {
        let key = "a".repeat(52);
        let mut s = Screen {
            announced: false,
            files_key: key.clone(),
            blobs_key: None,
            files_length: 4,
            blobs_length: 0,
            peers: Vec::new(),
        };
        let off = Crayon(false);
        assert_eq!(
            s.render(off),
            format!("Announcing...\nFiles: {key}\n\nNo peers\n")
        );
        assert_eq!(s.status_line(off), "No peers");
        s.announced = true;
        s.blobs_key = Some("b".repeat(52));
        s.blobs_length = 10;
        s.peers = vec![row(
            "yryyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyo12",
            Some("127.0.0.1"),
            4,
            7,
            11,
            0,
        )];
        assert_eq!(
            s.render(off),
            format!(
                "Announced\nFiles: {key}\nBlobs: {}\n\nPeers\n- 127.0.0.1 yryyy..yyo12 4/4 + 7/10 blks ↑11 ↓0\n",
                "b".repeat(52)
            )
        );
        assert_eq!(
            s.status_line(off),
            "Peers: 1 | files 4 + blobs 10 blks | uploaded 11 blks"
        );
        // Past five peers: the rest are counted.
        s.peers = (0..7)
            .map(|i| row(&format!("peer {i}"), None, 0, 0, 1, 2))
            .collect();
        let text = s.render(off);
        assert_eq!(text.lines().filter(|l| l.starts_with("- ")).count(), 5);
        assert!(text.ends_with("- peer 4 0/4 + 0/10 blks ↑1 ↓2\n... and 2 more connections\n"));
        assert_eq!(
            s.status_line(off),
            "Peers: 7 | files 4 + blobs 10 blks | uploaded 7 blks"
        );
        // Colours only wrap the values.
        let on = s.render(Crayon(true));
        assert!(on.contains("\x1b[36mAnnounced\x1b[0m"), "{on}");
    }

    #[test]
    fn many_drives_screen_lists_drives_with_peers_first_and_fits() {
        let off = Crayon(false);
        let lines: Vec<(String, bool)> = (0..25)
            .map(|i| (format!("drive{i:02} status"), i == 7 || i == 22))
            .collect();
        let text = many_screen(&lines, false, off);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0], "Announcing 25 drives...");
        assert_eq!(rows[1], "");
        assert_eq!(
            &rows[2..5],
            ["drive07 status", "drive22 status", "drive00 status"]
        );
        assert_eq!(rows.len(), 2 + MAX_SCREEN_DRIVES + 1);
        assert_eq!(rows[rows.len() - 1], "... and 5 more drives");
        let few = many_screen(&lines[..2], true, off);
        assert_eq!(
            few,
            "Announced 2 drives\n\ndrive00 status\ndrive01 status\n"
        );
    }

    #[test]
    fn keys_are_abbreviated_as_js() {
        assert_eq!(abbreviate("abcdefghijklmnop"), "abcde..lmnop");
        assert_eq!(abbreviate("short"), "short");
    }
}
