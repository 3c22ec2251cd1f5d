//! `hypershell-copy`: copies files and folders to and from a hypershell server. See
//! `hypershell-copy --help`.
//!
//! Exit codes: 0 when copied, 1 on an error (one line on stderr), 2 on bad usage.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bin_support::runtime::{Flavor, Shutdown};
use bin_support::Report;
use clap::{CommandFactory, Parser};
use holepunch::protomux::Mux;
use hypershell_cli::cli::{parse_remote_path, CopyCli};
use hypershell_cli::transfer::{self, Counter};
use hypershell_cli::{keys, CLOSE_TIMEOUT};

/// Runtime errors: `hypershell-copy: <message>`.
const REPORT: Report = Report::new("hypershell-copy: ");

fn main() -> ExitCode {
    let cli = CopyCli::parse();
    bin_support::logging::init();
    let nodes = match cli.dht.bootstrap_nodes(CopyCli::command()) {
        Ok(n) => n,
        Err(e) => e.exit(),
    };
    let relay = match cli.dht.relay(CopyCli::command()) {
        Ok(r) => r,
        Err(e) => e.exit(),
    };
    // Download when the source is remote, else upload to a remote target.
    let (server, remote, local, is_download) = match (
        parse_remote_path(&cli.source),
        parse_remote_path(&cli.target),
    ) {
        (Some((s, p)), _) => (s, p, keys::expand_home(&cli.target), true),
        (None, Some((s, p))) => (s, p, keys::expand_home(&cli.source), false),
        (None, None) => CopyCli::command()
            .error(
                clap::error::ErrorKind::InvalidValue,
                "Invalid source or target path: one must be remote (@name:path or KEY:path)",
            )
            .exit(),
    };
    if remote.is_empty() {
        eprintln!(
            "Error: Invalid {} path.",
            if is_download { "source" } else { "target" }
        );
        return ExitCode::FAILURE;
    }
    let counter = Counter::default();
    REPORT.exit(bin_support::runtime::run(
        Flavor::CurrentThread,
        Shutdown::Background,
        async {
            let keyfile = cli.keyfile.clone().unwrap_or_else(keys::default_keyfile);
            let key_pair = keys::load_or_generate(&keyfile)?;
            let server = keys::resolve_server(&server)?;
            let dht = hypershell_cli::open_dht(&nodes, cli.dht.net.lan()).await?;
            let result = async {
                let conn = hypershell_cli::connect(&dht, &server, &key_pair, relay).await?;
                let mux = Mux::new(conn);
                let copy = async {
                    if is_download {
                        transfer::download(&mux, &remote, &local, &counter).await
                    } else {
                        transfer::upload(&mux, &local, &remote, &counter).await
                    }
                };
                let result = with_progress(copy, &counter).await;
                mux.destroy();
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, mux.closed()).await;
                result
            }
            .await;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, dht.destroy()).await;
            result
        },
    ))
}

/// Runs `copy`, showing the bytes moved on stderr when it is a terminal.
async fn with_progress(
    copy: impl std::future::Future<Output = anyhow::Result<()>>,
    counter: &Counter,
) -> anyhow::Result<()> {
    if !std::io::stderr().is_terminal() {
        return copy.await;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bytes} ({bytes_per_sec}) {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    tokio::pin!(copy);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let result = loop {
        tokio::select! {
            r = &mut copy => break r,
            _ = tick.tick() => bar.set_position(counter.load(Ordering::Relaxed)),
        }
    };
    bar.set_position(counter.load(Ordering::Relaxed));
    bar.finish();
    result
}
