//! Opening drives by argument (folder or hyperdrive key), the swarm, and the hyperdrive-only commands.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use bin_support::bootstrap;
use drives_cli::cli::NetArg;
use drives_cli::util::{self, byte_size, DriveId};
use holepunch::corestore::Corestore;
use holepunch::drive::{Drive, Result as DriveResult};
use holepunch::hyperblobs::WaitOptions;
use holepunch::hyperdht::{HyperDht, HyperDhtOpts};
use holepunch::hyperdrive::{DriveOptions, EncryptionKey, Hyperdrive};
use holepunch::hyperswarm::{Hyperswarm, JoinOpts, SwarmOpts, SwarmRelay};
use holepunch::id_encoding;
use holepunch::localdrive::Localdrive;
use holepunch::protomux::Mux;

use crate::{local_snapshot, Out, Pair};

/// How long `entry`/`get` wait for a remote drive (JS: `timeout: 15000`).
pub(crate) const ENTRY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a command waits for the first peer of a drive it does not have.
const FIND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one missing block may take before a read fails.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// How [`AnyDrive::prepare`] waits for the peers of a remote drive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerWait {
    /// Give up after this long (`None`: wait as long as it takes).
    pub(crate) timeout: Option<Duration>,
    /// Say nothing on stderr.
    pub(crate) quiet: bool,
}

impl PeerWait {
    /// What commands without `--timeout` do: [`FIND_TIMEOUT`].
    pub(crate) const DEFAULT: PeerWait = PeerWait {
        timeout: Some(FIND_TIMEOUT),
        quiet: false,
    };
}

/// What a folder argument is for: read (it must exist) or written (it may be missing, then it is created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A source: the folder must exist.
    Read,
    /// A destination: created when missing, but never a file.
    Write,
}

/// Checks a folder argument before anything is read or written: a missing source folder (a typo would
/// otherwise mirror "nothing" and delete everything in the destination) or a file where a folder is
/// expected is an error naming the path.
pub(crate) fn check_folder(arg: &str, role: Role) -> anyhow::Result<()> {
    let path = Path::new(arg);
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("{arg} is a file, not a folder"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match role {
            Role::Read => bail!("the folder {arg} does not exist"),
            Role::Write => {
                // Created by the first write; a file among its parents is caught here already.
                let mut parent = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
                while parent.pop() {
                    match std::fs::metadata(&parent) {
                        Ok(m) if m.is_dir() => return Ok(()),
                        Ok(_) => bail!("{} is a file, not a folder", parent.display()),
                        Err(_) => {}
                    }
                }
                Ok(())
            }
        },
        Err(e) if e.raw_os_error() == Some(20) => {
            // ENOTDIR: a file among the parents.
            bail!("{arg}: a part of the path is a file, not a folder")
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot use the folder {arg}"))),
    }
}

/// A folder or a hyperdrive.
pub(crate) enum AnyDrive {
    /// A folder.
    Local(Localdrive),
    /// A hyperdrive.
    Hyper(Hyperdrive),
}

impl AnyDrive {
    pub(crate) fn as_drive(&self) -> &dyn Drive {
        match self {
            AnyDrive::Local(d) => d,
            AnyDrive::Hyper(d) => d,
        }
    }

    /// The version, for hyperdrives.
    pub(crate) fn version(&self) -> Option<u64> {
        match self {
            AnyDrive::Local(_) => None,
            AnyDrive::Hyper(d) => Some(d.version()),
        }
    }

    /// A checkout at `version` (hyperdrives only).
    pub(crate) fn checkout(self, version: u64) -> anyhow::Result<Self> {
        match self {
            AnyDrive::Local(_) => bail!("--version needs a hyperdrive source"),
            AnyDrive::Hyper(d) => Ok(AnyDrive::Hyper(d.checkout(version))),
        }
    }

    /// Waits until the drive can be read: a hyperdrive we cannot write waits for a peer and its latest
    /// version, saying so on stderr (or goes on with what is stored if no peer shows up within
    /// [`FIND_TIMEOUT`] and something is). Without anything stored, it waits `wait.timeout` (forever with
    /// `None`) and then fails.
    pub(crate) async fn prepare(&self, wait: PeerWait) -> anyhow::Result<()> {
        let AnyDrive::Hyper(d) = self else {
            return Ok(());
        };
        if d.writable() {
            return Ok(());
        }
        let say = |line: String| {
            if !wait.quiet {
                eprintln!("{line}");
            }
        };
        let key = id_encoding::encode(&d.key());
        say(format!("Looking for peers of {key}..."));
        let started = tokio::time::Instant::now();
        // Something of the drive is stored here (its version is at least 1 even when nothing is).
        let stored = d.core().length() > 0;
        let limit = match (stored, wait.timeout) {
            (true, Some(t)) => Some(t.min(FIND_TIMEOUT)),
            (true, None) => Some(FIND_TIMEOUT),
            (false, t) => t,
        };
        let found = match limit {
            Some(limit) => tokio::time::timeout(limit, d.wait_for_peers(1))
                .await
                .is_ok(),
            None => {
                d.wait_for_peers(1).await;
                true
            }
        };
        if !found {
            if stored {
                say(format!(
                    "No peer found: using the stored version {}",
                    d.version()
                ));
                return crate::blind::check_readable(d).await;
            }
            bail!(
                "no peer found for drive {key} within {}s (--timeout); nothing was written",
                limit.map_or(0, |l| l.as_secs())
            );
        }
        let peers = d.replicators().first().map_or(1, |r| r.peers());
        say(format!(
            "Found {peers} peer{}, fetching the latest version...",
            if peers == 1 { "" } else { "s" }
        ));
        let update = d.update();
        let updated = match wait.timeout {
            Some(t) => tokio::time::timeout(t.saturating_sub(started.elapsed()), update)
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "the peers of drive {key} sent no version within {}s (--timeout); nothing was written",
                        t.as_secs()
                    )
                })?,
            None => update.await,
        };
        updated.context("updating the drive from its peers")?;
        crate::blind::check_readable(d).await
    }

    /// For a hyperdrive we cannot write, starts downloading every block under `prefix` in the background.
    pub(crate) fn prefetch(&self, prefix: &str) -> Option<tokio::task::JoinHandle<()>> {
        let AnyDrive::Hyper(d) = self else {
            return None;
        };
        if d.writable() {
            return None;
        }
        let (d, prefix) = (d.clone(), prefix.to_string());
        Some(tokio::spawn(async move {
            match d.download(&prefix).await {
                Ok(stats) => tracing::debug!(?stats, "prefetch: every block stored"),
                Err(e) => tracing::debug!("prefetch: {e}"),
            }
        }))
    }

    /// Watches for changes under `prefix`.
    pub(crate) fn watcher(&self, prefix: &str) -> Watcher<'_> {
        Watcher {
            drive: self,
            prefix: prefix.to_string(),
            last: None,
            rx: None,
        }
    }

    pub(crate) async fn close(self) {
        if let AnyDrive::Hyper(d) = self {
            d.close();
        }
    }
}

/// Waits for changes of a drive.
pub(crate) struct Watcher<'a> {
    drive: &'a AnyDrive,
    prefix: String,
    last: Option<crate::Snapshot>,
    rx: Option<tokio::sync::watch::Receiver<u64>>,
}

impl Watcher<'_> {
    /// Takes the state to compare against (call before the first mirror, so no change is missed).
    pub(crate) async fn prime(&mut self) {
        match self.drive {
            AnyDrive::Local(d) => self.last = Some(local_snapshot(d, &self.prefix).await),
            AnyDrive::Hyper(d) => self.rx = Some(d.watch()),
        }
    }

    /// Returns when the drive changed since the last call (the first call only takes a snapshot, then
    /// waits). Folders are polled twice a second; hyperdrives wake on every new version.
    pub(crate) async fn changed(&mut self) -> anyhow::Result<()> {
        match self.drive {
            AnyDrive::Local(d) => {
                if self.last.is_none() {
                    self.last = Some(local_snapshot(d, &self.prefix).await);
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let now = local_snapshot(d, &self.prefix).await;
                    if self.last.as_ref() != Some(&now) {
                        self.last = Some(now);
                        return Ok(());
                    }
                }
            }
            AnyDrive::Hyper(d) => {
                let rx = self.rx.get_or_insert_with(|| d.watch());
                rx.changed().await.context("the drive closed")?;
                // A peer's new head: take it.
                let _ = d.update().await;
                Ok(())
            }
        }
    }
}

/// The swarm of a command (kept alive while it runs).
pub(crate) struct Swarming {
    swarm: Hyperswarm,
    /// Remote IP of each connected peer, by public key (for `seed`'s screen).
    hosts: Arc<Mutex<HashMap<[u8; 32], IpAddr>>>,
}

impl Swarming {
    /// The swarm.
    pub(crate) fn swarm(&self) -> &Hyperswarm {
        &self.swarm
    }

    /// The remote IP of the connected peer with `key`, if known.
    pub(crate) fn remote_host(&self, key: &[u8; 32]) -> Option<String> {
        let hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.get(key).map(ToString::to_string)
    }

    pub(crate) async fn close(self) {
        self.swarm.destroy().await;
    }
}

/// Joins the drives' topics on a new swarm and replicates them on every connection.
pub(crate) async fn swarming(
    drives: Vec<Hyperdrive>,
    net: &NetArg,
    server: bool,
    verbose: bool,
    out: Out,
) -> anyhow::Result<Swarming> {
    // Read when the network is used; a bad value is reported as a runtime error (`Error: error:
    // HYPERDHT_BOOTSTRAP: ...` and clap's usage lines, exit 1), as drives always did.
    let nodes = net.nodes().map_err(|e| anyhow::anyhow!("{e}"))?;
    let addrs = bootstrap::resolve(&nodes).await?;
    let dht = HyperDht::bind(HyperDhtOpts {
        host: bootstrap::bind_host(&addrs),
        bootstrap: addrs,
        lan: net.bootstrap.lan(),
        ..HyperDhtOpts::default()
    })
    .await?;
    // A blind relay (`--relay`, `HYPERDHT_RELAY`): hyperswarm's `relayThrough`, used when our NAT
    // randomizes ports or a dial failed in a way only a relay fixes.
    let relay = net.relay.key().map_err(|e| anyhow::anyhow!("{e}"))?;
    let swarm = Hyperswarm::new(
        dht,
        SwarmOpts {
            relay_through: relay.map(SwarmRelay::Key),
            ..SwarmOpts::default()
        },
    );
    let mut discoveries = Vec::new();
    for d in &drives {
        discoveries.push(swarm.join(
            d.discovery_key(),
            JoinOpts {
                server,
                client: true,
            },
        )?);
    }
    let s = swarm.clone();
    let hosts: Arc<Mutex<HashMap<[u8; 32], IpAddr>>> = Arc::default();
    let hosts_w = hosts.clone();
    tokio::spawn(async move {
        let _discoveries = discoveries;
        while let Some((conn, _info)) = s.next_connection().await {
            bin_support::relay::report_path("drives", s.dht(), &conn);
            let remote_key = conn.remote_public_key();
            let id = id_encoding::encode(&remote_key);
            let (stream, guard) = conn.into_parts();
            if let Some((_, addr)) = stream.get_ref().remote() {
                let mut h = hosts_w.lock().unwrap_or_else(PoisonError::into_inner);
                h.insert(remote_key, addr.ip());
            }
            let is_initiator = stream.is_initiator();
            let hh = *stream.handshake_hash();
            let (mux, ()) = Mux::new_with(stream, |mux| {
                for d in &drives {
                    d.replicate_remote(mux, is_initiator, &hh, Some(remote_key));
                }
            });
            if verbose {
                let n = s.stats().await.connections;
                println!(
                    "{} Peer opened ({n}) {}",
                    out.c.cyan("(Swarm)"),
                    out.c.magenta(&id)
                );
            }
            let s2 = s.clone();
            tokio::spawn(async move {
                mux.closed().await;
                drop(guard);
                if verbose {
                    let n = s2.stats().await.connections;
                    println!(
                        "{} Peer closed ({n}) {}",
                        out.c.cyan("(Swarm)"),
                        out.c.magenta(&id)
                    );
                }
            });
        }
    });
    Ok(Swarming { swarm, hosts })
}

fn decode_key(key: &str) -> anyhow::Result<[u8; 32]> {
    id_encoding::decode(key).map_err(|e| anyhow::anyhow!("invalid drive key {key:?}: {e}"))
}

/// Whether drives opened by this process chunk streamed writes (`mirror --no-chunking` turns it off).
static CHUNKING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Sets content-defined chunking of the drives opened from now on.
pub(crate) fn set_chunking(on: bool) {
    CHUNKING.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub(crate) fn drive_options() -> DriveOptions {
    DriveOptions {
        wait: WaitOptions {
            wait: true,
            timeout: Some(BLOCK_TIMEOUT),
        },
        encryption_key: crate::encryption::key(),
        chunking: CHUNKING.load(std::sync::atomic::Ordering::Relaxed),
        ..DriveOptions::default()
    }
}

/// Options for commands that also work on an encrypted drive without its key (seed, download, info,
/// purge): blind then, nothing of the drive is decoded.
fn blind_options() -> DriveOptions {
    let opts = drive_options();
    DriveOptions {
        blind: opts.encryption_key.is_none(),
        ..opts
    }
}

/// Opens the corestore at `dir` (creating it), with a clear error for a broken one.
pub(crate) fn open_store(dir: &Path) -> anyhow::Result<Corestore> {
    Corestore::open(dir).with_context(|| format!("cannot open the corestore at {}", dir.display()))
}

pub(crate) fn open_hyper(store: &Corestore, key: &str) -> anyhow::Result<Hyperdrive> {
    open_hyper_with(store, key, drive_options())
}

fn open_hyper_with(store: &Corestore, key: &str, opts: DriveOptions) -> anyhow::Result<Hyperdrive> {
    let key = decode_key(key)?;
    match Hyperdrive::open_key(store, key, opts) {
        Ok(d) => Ok(d),
        // An encrypted drive of ours opened without its key, or with another one.
        Err(e @ holepunch::drive::DriveError::Header(_)) => Err(anyhow::Error::new(e)
            .context(format!("cannot open drive {}", id_encoding::encode(&key)))),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "cannot open drive {} (corrupt store?)",
            id_encoding::encode(&key)
        ))),
    }
}

/// Opens the drive an argument names (without a swarm).
async fn open_plain(
    arg: &str,
    role: Role,
    store: &mut Option<Corestore>,
    dir: &Path,
    follow_links: bool,
) -> anyhow::Result<AnyDrive> {
    match util::drive_id(arg) {
        DriveId::Path => {
            check_folder(arg, role)?;
            Ok(AnyDrive::Local(
                Localdrive::new(arg).follow_links(follow_links),
            ))
        }
        DriveId::Key => {
            if store.is_none() {
                *store = Some(open_store(dir)?);
            }
            let Some(s) = store.as_ref() else {
                bail!("no store")
            };
            Ok(AnyDrive::Hyper(open_hyper(s, arg)?))
        }
    }
}

/// A drive and its swarm (for one-drive commands).
pub(crate) struct Opened {
    drive: AnyDrive,
    swarm: Option<Swarming>,
}

impl Opened {
    pub(crate) fn as_drive(&self) -> &dyn Drive {
        self.drive.as_drive()
    }

    pub(crate) fn into_drive(self) -> (AnyDrive, Option<Swarming>) {
        (self.drive, self.swarm)
    }

    pub(crate) async fn close(self) {
        self.drive.close().await;
        if let Some(s) = self.swarm {
            s.close().await;
        }
    }
}

/// Opens the drive an argument names; a hyperdrive joins the swarm and, if we cannot write it, waits for
/// its peers.
pub(crate) async fn open_drive(
    arg: &str,
    role: Role,
    dir: &Path,
    net: &NetArg,
    follow_links: bool,
) -> anyhow::Result<Opened> {
    let mut store = None;
    let drive = open_plain(arg, role, &mut store, dir, follow_links).await?;
    let swarm = match &drive {
        AnyDrive::Hyper(d) if !d.writable() => {
            Some(swarming(vec![d.clone()], net, true, false, crate::Out::new()).await?)
        }
        _ => None,
    };
    drive.prepare(PeerWait::DEFAULT).await?;
    Ok(Opened { drive, swarm })
}

/// Opens a source and a destination; `swarm` joins the hyperdrives among them.
pub(crate) async fn open_pair(
    src: &str,
    dst: &str,
    dir: &Path,
    net: &NetArg,
    swarm: bool,
    verbose: bool,
) -> anyhow::Result<Pair> {
    let mut store = None;
    let s = open_plain(src, Role::Read, &mut store, dir, false).await?;
    let d = open_plain(dst, Role::Write, &mut store, dir, false).await?;
    let mut hypers = Vec::new();
    for x in [&s, &d] {
        if let AnyDrive::Hyper(h) = x {
            hypers.push(h.clone());
        }
    }
    let keep = if swarm && !hypers.is_empty() {
        Some(swarming(hypers, net, true, verbose, crate::Out::new()).await?)
    } else {
        None
    };
    Ok(Pair {
        src: s,
        dst: d,
        keep,
    })
}

/// `drives init`.
pub(crate) fn init_store(dir: &Path) -> anyhow::Result<()> {
    open_store(dir)?;
    Ok(())
}

/// `drives touch`: a new writable drive; returns its key (z-base-32).
pub(crate) fn touch(
    dir: &Path,
    use_cwd: bool,
    encryption_key: Option<EncryptionKey>,
) -> anyhow::Result<String> {
    let store = open_store(dir)?;
    let name = if use_cwd {
        std::env::current_dir()
            .context("current folder")?
            .display()
            .to_string()
    } else {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos().to_string()
    };
    let ns = store.namespace(name);
    let opts = DriveOptions {
        encryption_key,
        ..drive_options()
    };
    let drive = Hyperdrive::open(&ns, opts).context("creating the drive")?;
    if encryption_key.is_some() {
        // The (encrypted) header now: opened later without the key, the drive then fails at once.
        drive.write_header().context("writing the drive header")?;
    }
    let key = id_encoding::encode(&drive.key());
    drive.close();
    Ok(key)
}

fn open_own_or_new(store: &Corestore, key: Option<&str>) -> anyhow::Result<Hyperdrive> {
    match key {
        Some(k) => open_hyper_with(store, k, blind_options()),
        None => Hyperdrive::open(store, drive_options()).context("opening the store's drive"),
    }
}

/// `drives seed`: announces the drive and shows its peers until killed.
pub(crate) async fn seed(
    out: Out,
    dir: &Path,
    key: Option<&str>,
    net: &NetArg,
) -> anyhow::Result<()> {
    let c = out.c;
    let store = open_store(dir)?;
    let drive = open_own_or_new(&store, key)?;
    let _ = drive.blobs().await;
    let swarm = swarming(vec![drive.clone()], net, true, false, out).await?;
    let keeper = (drive.options().blind && !drive.writable()).then(|| {
        let d = drive.clone();
        tokio::spawn(async move { crate::blind::keep(d).await })
    });
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    crate::seed::run(&drive, &swarm, c, terminal).await;
    if let Some(k) = keeper {
        k.abort();
    }
    Ok(())
}

/// `drives download`: fetches every block of the drive, then exits.
pub(crate) async fn download(
    out: Out,
    dir: &Path,
    key: &str,
    net: &NetArg,
    timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let store = open_store(dir)?;
    let drive = open_hyper_with(&store, key, blind_options())?;
    let swarm = swarming(vec![drive.clone()], net, false, true, out).await?;
    let d = AnyDrive::Hyper(drive.clone());
    d.prepare(PeerWait {
        timeout,
        quiet: false,
    })
    .await?;
    if drive.options().blind
        && !drive
            .header_decodes()
            .await
            .context("reading the drive header")?
    {
        let r = crate::blind::download(&drive).await;
        drive.close();
        swarm.close().await;
        return r.map_err(|e| crate::disk_full(e, &format!("the store at {}", dir.display())));
    }
    let pb = crate::progress_bar();
    let blobs = drive.blobs().await.context("opening the blobs")?;
    let total = blobs.core().byte_length();
    if let Some(pb) = &pb {
        pb.set_length(total);
    }
    let ticker = pb.clone().map(|pb| {
        let reps = drive.clone();
        tokio::spawn(async move {
            loop {
                let got: u64 = reps.blobs_if_open().map_or(0, |b| {
                    let core = b.core();
                    (0..core.length()).filter(|i| core.has(*i)).count() as u64 * 65536
                });
                pb.set_position(got.min(pb.length().unwrap_or(got)));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    });
    let stats = drive
        .download("/")
        .await
        .context("downloading")
        .map_err(|e| crate::disk_full(e, &format!("the store at {}", dir.display())))?;
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    println!("Download finished for files ({} entries)", stats.entries);
    println!("Download finished for blobs ({} blocks)", stats.blocks);
    drive.close();
    swarm.close().await;
    Ok(())
}

/// `drives info`.
pub(crate) async fn info(out: Out, dir: &Path, key: &str) -> anyhow::Result<()> {
    let c = out.c;
    let store = open_store(dir)?;
    let drive = open_hyper_with(&store, key, blind_options())?;
    println!("Key: {}", c.magenta(&id_encoding::encode(&drive.key())));
    if let Some(ck) = drive.content_key() {
        println!("Content key: {}", c.magenta(&id_encoding::encode(&ck)));
    }
    println!("Version: {}", drive.version());
    println!("Writable? {}", drive.writable());
    let core = drive.core();
    let contiguous = |core: &holepunch::hypercore::Hypercore| {
        (0..core.length()).take_while(|i| core.has(*i)).count()
    };
    println!(
        "Files core length: {}/{}",
        c.yellow(&contiguous(core).to_string()),
        c.yellow(&core.length().to_string())
    );
    if drive.version() > 0 {
        if let Ok(blobs) = tokio::time::timeout(Duration::from_millis(200), drive.blobs())
            .await
            .unwrap_or_else(|_| Err(holepunch::drive::DriveError::Timeout))
        {
            let b = blobs.core();
            println!(
                "Blobs core length: {}/{}",
                c.yellow(&contiguous(b).to_string()),
                c.yellow(&b.length().to_string())
            );
            let size = dir_size(core.dir()) + dir_size(b.dir());
            println!("Drive size: {}", c.cyan(&byte_size(i128::from(size))));
        }
    }
    drive.close();
    Ok(())
}

/// Bytes the files under `p` use on disk (JS `Info.bytesUsed`: `st.blocks * 512`), so a JS store's drive
/// shows the size JS shows.
fn dir_size(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// `drives purge`: deletes the drive's cores from the store.
pub(crate) async fn purge(dir: &Path, key: &str) -> anyhow::Result<()> {
    let store = open_store(dir)?;
    let drive = open_hyper_with(&store, key, blind_options())?;
    println!("Deleting drive...");
    let mut dirs = vec![drive.core().dir().to_path_buf()];
    if let Ok(Ok(b)) = tokio::time::timeout(Duration::from_millis(200), drive.blobs()).await {
        dirs.push(b.core().dir().to_path_buf());
    }
    drive.close();
    drop(store);
    for d in dirs {
        match std::fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("removing {}", d.display())))
            }
        }
    }
    println!("Drive deleted.");
    Ok(())
}

/// Bounds a remote read by [`ENTRY_TIMEOUT`].
pub(crate) async fn with_timeout<T>(f: impl Future<Output = DriveResult<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(ENTRY_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(anyhow::Error::new(Timeout)),
    }
}

/// A remote read timed out.
#[derive(Debug)]
pub(crate) struct Timeout;

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request timeout")
    }
}

impl std::error::Error for Timeout {}

/// Whether an error is a [`Timeout`].
pub(crate) fn is_timeout(e: &anyhow::Error) -> bool {
    e.is::<Timeout>()
}
