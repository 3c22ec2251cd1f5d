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
use clap::Parser;
use holepunch::hyperdht::bootstrap;
use hyperssh_cli::cli::{sshfs_args, FuseCli};
use hyperssh_cli::mount::{self, Prepared};
use hyperssh_cli::{current_user, proxy_config};
use hypertele_tool::client::Proxy;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How long sshfs may take to go away by itself after a Ctrl-C (the terminal sends SIGINT to it too, and
/// libfuse then unmounts) before this process unmounts it.
const SELF_UNMOUNT_GRACE: Duration = Duration::from_secs(2);
/// How long sshfs may take to exit once unmounted before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// How often the mount watcher checks whether to give up (it wakes on mount table changes anyway).
const WATCH_TICK: Duration = Duration::from_millis(250);

fn main() -> ExitCode {
    let cli = FuseCli::parse();
    hypertele_tool::init_logging();
    let nodes = match bootstrap::choose(
        cli.bootstrap.clone().map(|b| b.0),
        std::env::var_os(bootstrap::ENV),
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("Error: {}: {e}", bootstrap::ENV);
            return ExitCode::from(2);
        }
    };
    let prepared = match mount::prepare(&cli.mount) {
        Ok(p) => p,
        Err(e) => return fail(&e.into()),
    };
    let cfg = match proxy_config(&cli.server, cli.identity.as_deref(), 0) {
        Ok(cfg) => cfg,
        Err(e) => return fail(&e.into()),
    };
    let runtime = match hypertele_tool::runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e.into()),
    };
    let result = runtime.block_on(async {
        let proxy = Proxy::bind(&cfg, bootstrap::resolve(&nodes).await?).await?;
        let result = run(&cli, &proxy, &prepared).await;
        proxy.close().await;
        result
    });
    runtime.shutdown_timeout(hypertele_tool::CLOSE_TIMEOUT);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("Error: {e:#}");
    ExitCode::FAILURE
}

/// The signals that end the mount.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGINT: from a terminal, sshfs got it too and unmounts by itself.
    Interrupt,
    /// SIGTERM or SIGHUP: for this process alone.
    Terminate,
}

impl Signals {
    fn listen() -> anyhow::Result<Self> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("installing the {name} handler"))
        };
        Ok(Self {
            int: install(SignalKind::interrupt(), "SIGINT")?,
            term: install(SignalKind::terminate(), "SIGTERM")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    async fn wait(&mut self) -> Stop {
        tokio::select! {
            _ = self.int.recv() => Stop::Interrupt,
            _ = self.term.recv() => Stop::Terminate,
            _ = self.hup.recv() => Stop::Terminate,
        }
    }
}

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
    let mut signals = Signals::listen()?;
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
                return Ok(exit_code(status));
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
            s = signals.wait() => break s,
        }
    };
    drop(give_up);

    // A Ctrl-C in the terminal reached sshfs too: give it a moment to unmount by itself.
    if stop == Stop::Interrupt {
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

fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    use std::os::unix::process::ExitStatusExt;
    status
        .signal()
        .and_then(|sig| u8::try_from(128 + sig).ok())
        .unwrap_or(1)
}
