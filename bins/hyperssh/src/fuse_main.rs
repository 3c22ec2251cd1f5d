//! `hyperssh-fuse`: mounts a folder of an SSH server behind a `hypertele-server` with sshfs, over HyperDHT.
//! See `hyperssh-fuse --help`.
//!
//! Exit codes: 0 once unmounted; sshfs's own when it fails; 1 on an error before sshfs runs (one
//! `Error: ...` line on stderr), 2 on bad usage.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bin_support::bootstrap;
use bin_support::{Signal, Signals};
use clap::Parser;
use hyperssh_cli::cli::{sshfs_args, FuseCli};
use hyperssh_cli::mount::{self, Prepared};
use hyperssh_cli::{current_user, proxy_config};
use hypertele_tool::client::Proxy;
use hypertele_tool::{REPORT, RUNTIME, SHUTDOWN};

/// How long sshfs may take to go away by itself after a Ctrl-C (the terminal sends SIGINT to it too, and
/// libfuse then unmounts) before this process unmounts it.
const SELF_UNMOUNT_GRACE: Duration = Duration::from_secs(2);
/// How long sshfs may take to exit once unmounted before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// How often the mount watcher checks whether to give up (it wakes on mount table changes anyway).
const WATCH_TICK: Duration = Duration::from_millis(250);

fn main() -> ExitCode {
    let cli = FuseCli::parse();
    bin_support::logging::init();
    let nodes = match cli.net.nodes() {
        Ok(b) => b,
        Err(e) => {
            // A usage error, but reported in the tool's own words (as before bin-support).
            eprintln!("Error: {}: {e}", bootstrap::ENV);
            return ExitCode::from(bin_support::exit::USAGE);
        }
    };
    let prepared = match mount::prepare(&cli.mount) {
        Ok(p) => p,
        Err(e) => return REPORT.fail(&e.into()),
    };
    let relay = match cli.relay.key() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(bin_support::exit::USAGE);
        }
    };
    let mut cfg = match proxy_config(&cli.server, cli.identity.as_deref(), 0) {
        Ok(cfg) => cfg,
        Err(e) => return REPORT.fail(&e.into()),
    };
    cfg.relay = relay;
    cfg.lan = cli.net.lan();
    REPORT.exit(bin_support::runtime::run(RUNTIME, SHUTDOWN, async {
        let proxy = Proxy::bind(&cfg, bootstrap::resolve(&nodes).await?).await?;
        let result = run(&cli, &proxy, &prepared).await;
        proxy.close().await;
        result
    }))
}

/// The signals that end the mount: SIGINT (from a terminal, sshfs got it too and unmounts by itself),
/// SIGTERM and SIGHUP (for this process alone).
const STOP_SIGNALS: [Signal; 3] = [Signal::Interrupt, Signal::Terminate, Signal::Hangup];

/// Tells the blocking mount watcher to stop when dropped.
struct GiveUp(Arc<AtomicBool>);

impl Drop for GiveUp {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn run(cli: &FuseCli, proxy: &Proxy, prepared: &Prepared) -> anyhow::Result<u8> {
    let port = proxy
        .local_addr()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .context("the local proxy has no port")?;
    let user = cli.user.clone().unwrap_or_else(current_user);
    let source = format!("{user}@localhost:{}", cli.remote);
    let mut signals = Signals::listen_to(&STOP_SIGNALS)?;
    let mut sshfs = tokio::process::Command::new(&prepared.sshfs)
        .args(sshfs_args(
            &user,
            port,
            &cli.remote,
            &prepared.mount,
            &cli.sshfs_options,
        ))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", prepared.sshfs.display()))?;

    let give_up = GiveUp(Arc::new(AtomicBool::new(false)));
    let mut watch = {
        let point = prepared.mount.clone();
        let flag = give_up.0.clone();
        tokio::task::spawn_blocking(move || {
            mount::wait_mounted(&point, WATCH_TICK, || flag.load(Ordering::Relaxed))
        })
    };
    let mut watching = true;
    let mut mounted = false;
    let serve = proxy.serve();
    tokio::pin!(serve);
    let mut serving = true;
    let stop = loop {
        tokio::select! {
            status = sshfs.wait() => {
                let status = status.context("waiting for sshfs")?;
                // sshfs ends when the folder is unmounted (fusermount -u, or its own Ctrl-C), or when it
                // fails (then it printed why). If the mount outlived it, take it down.
                ensure_unmounted(prepared).await;
                if mounted && status.success() {
                    println!("Unmounted {}", prepared.mount.display());
                }
                return Ok(bin_support::exit::child_status(status));
            }
            r = &mut watch, if watching => {
                watching = false;
                match r {
                    Ok(Ok(true)) => {
                        mounted = true;
                        println!("Mounted {source} on {}", prepared.mount.display());
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => eprintln!("hyperssh-fuse: watching the mount table: {e}"),
                    Err(e) => eprintln!("hyperssh-fuse: the mount watcher failed: {e}"),
                }
            }
            r = &mut serve, if serving => {
                serving = false;
                if let Err(e) = r {
                    eprintln!("hyperssh-fuse: the local proxy stopped: {e:#}");
                }
            }
            s = signals.recv() => break s,
        }
    };
    drop(give_up);

    // A Ctrl-C in the terminal reached sshfs too: give it a moment to unmount by itself.
    if stop == Signal::Interrupt {
        if let Ok(status) = tokio::time::timeout(SELF_UNMOUNT_GRACE, sshfs.wait()).await {
            status.context("waiting for sshfs")?;
            ensure_unmounted(prepared).await;
            if mounted {
                println!("Unmounted {}", prepared.mount.display());
            }
            return Ok(0);
        }
    }
    ensure_unmounted(prepared).await;
    if !mounted {
        // Still logging in (maybe at a password prompt): nothing to wait for.
        let _ = sshfs.kill().await;
        return Ok(0);
    }
    match tokio::time::timeout(EXIT_GRACE, sshfs.wait()).await {
        Ok(status) => {
            status.context("waiting for sshfs")?;
        }
        Err(_) => {
            eprintln!("hyperssh-fuse: sshfs did not exit after the unmount; killing it");
            let _ = sshfs.kill().await;
        }
    }
    println!("Unmounted {}", prepared.mount.display());
    Ok(0)
}

/// Unmounts the mount point if a FUSE file system is still mounted there; reports failures on stderr.
async fn ensure_unmounted(prepared: &Prepared) {
    if !still_mounted(&prepared.mount) {
        return;
    }
    match mount::unmount(&prepared.fusermount, &prepared.mount).await {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!(
            "hyperssh-fuse: {} -u {} failed ({status})",
            prepared.fusermount.display(),
            prepared.mount.display()
        ),
        Err(e) => eprintln!(
            "hyperssh-fuse: running {}: {e}",
            prepared.fusermount.display()
        ),
    }
}

fn still_mounted(point: &Path) -> bool {
    mount::MountTable::open()
        .and_then(|mut t| t.fuse_mounted(point))
        .unwrap_or(true)
}
