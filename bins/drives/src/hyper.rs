//! Opening drives by argument (folder or hyperdrive key), the swarm, and the hyperdrive-only commands.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use drives_cli::cli::NetArg;
use drives_cli::util::{self, DriveId};
use holepunch::localdrive::Localdrive;
use holepunch::mirror::{Drive, Result as DriveResult};

use crate::{local_snapshot, Out, Pair};

/// How long `entry`/`get` wait for a remote drive (JS: `timeout: 15000`).
pub(crate) const ENTRY_TIMEOUT: Duration = Duration::from_secs(15);

/// A folder or a hyperdrive.
pub(crate) enum AnyDrive {
    /// A folder.
    Local(Localdrive),
}

impl AnyDrive {
    pub(crate) fn as_drive(&self) -> &dyn Drive {
        match self {
            AnyDrive::Local(d) => d,
        }
    }

    /// The version, for hyperdrives.
    pub(crate) fn version(&self) -> Option<u64> {
        match self {
            AnyDrive::Local(_) => None,
        }
    }

    /// A checkout at `version` (hyperdrives only).
    pub(crate) fn checkout(self, _version: u64) -> anyhow::Result<Self> {
        match self {
            AnyDrive::Local(_) => bail!("--version needs a hyperdrive source"),
        }
    }

    /// Waits until the drive can be read (a remote hyperdrive: its peers and latest version).
    pub(crate) async fn prepare(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Watches for changes under `prefix`.
    pub(crate) fn watcher(&self, prefix: &str) -> Watcher<'_> {
        Watcher {
            drive: self,
            prefix: prefix.to_string(),
            last: None,
        }
    }

    pub(crate) async fn close(self) {}
}

/// Waits for changes of a drive.
pub(crate) struct Watcher<'a> {
    drive: &'a AnyDrive,
    prefix: String,
    last: Option<crate::Snapshot>,
}

impl Watcher<'_> {
    /// Returns when the drive changed since the last call (the first call only takes a snapshot, then
    /// waits).
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
        }
    }
}

/// The swarm of a command (kept alive while it runs).
pub(crate) struct Swarming;

impl Swarming {
    pub(crate) async fn close(self) {}
}

fn no_hyperdrive() -> anyhow::Error {
    anyhow::anyhow!("hyperdrive keys are not supported by this build yet (the hyperdrive library is not merged)")
}

/// Opens the drive an argument names.
pub(crate) async fn open_drive(
    arg: &str,
    _store: &Path,
    _net: &NetArg,
    follow_links: bool,
) -> anyhow::Result<AnyDrive> {
    match util::drive_id(arg) {
        DriveId::Path => Ok(AnyDrive::Local(
            Localdrive::new(arg).follow_links(follow_links),
        )),
        DriveId::Key => Err(no_hyperdrive()),
    }
}

/// Opens a source and a destination.
pub(crate) async fn open_pair(
    src: &str,
    dst: &str,
    store: &Path,
    net: &NetArg,
    _swarm: bool,
    _live: bool,
) -> anyhow::Result<Pair> {
    let s = open_drive(src, store, net, false).await?;
    let d = open_drive(dst, store, net, false).await?;
    Ok(Pair {
        src: s,
        dst: d,
        keep: None,
    })
}

/// `drives init`.
pub(crate) fn init_store(dir: &Path) -> anyhow::Result<()> {
    holepunch::corestore::Corestore::open(dir)
        .with_context(|| format!("opening {}", dir.display()))?;
    Ok(())
}

/// `drives touch`: a new writable drive; returns its key (z-base-32).
pub(crate) fn touch(_dir: &Path, _use_cwd: bool) -> anyhow::Result<String> {
    Err(no_hyperdrive())
}

/// `drives seed`.
pub(crate) async fn seed(
    _out: Out,
    _dir: &Path,
    _key: Option<&str>,
    _net: &NetArg,
) -> anyhow::Result<()> {
    Err(no_hyperdrive())
}

/// `drives download`.
pub(crate) async fn download(
    _out: Out,
    _dir: &Path,
    _key: &str,
    _net: &NetArg,
) -> anyhow::Result<()> {
    Err(no_hyperdrive())
}

/// `drives info`.
pub(crate) async fn info(_out: Out, _dir: &Path, _key: &str) -> anyhow::Result<()> {
    Err(no_hyperdrive())
}

/// `drives purge`.
pub(crate) async fn purge(_dir: &Path, _key: &str) -> anyhow::Result<()> {
    Err(no_hyperdrive())
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
