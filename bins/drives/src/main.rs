//! `drives`: seed, mirror and serve hyperdrives and folders. See `drives --help`.
//!
//! Exit codes: 0 on success, 1 on an error (`Error: ...` on stderr), 2 on bad usage.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use bin_support::runtime::{Flavor, Shutdown};
use bin_support::Report;
use clap::Parser;
use drives_cli::cli::{Cli, Command, NetArg, StorageArg, TimeoutArg};
use drives_cli::util::{self, byte_size, Crayon, DriveId};
use holepunch::drive::{resolve_from, resolve_key, Drive, Entry};
use holepunch::localdrive::Localdrive;
use holepunch::mirror::{Diff, Mirror, MirrorEvent, MirrorOptions, Op};

mod blind;
mod encryption;
mod hyper;
mod mount;
mod quick_check;
mod seed;
mod serve;

/// Runtime errors: `Error: <message>`.
const REPORT: Report = Report::new("Error: ");

fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = std::time::Instant::now();
    if bin_support::logging::init() {
        tracing::debug!(since_start = ?started.elapsed(), "drives: started");
    }
    REPORT.exit(bin_support::runtime::run(
        Flavor::MultiThread(2),
        Shutdown::Timeout(Duration::from_millis(500)),
        run(cli),
    ))
}

/// Output context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    pub(crate) c: Crayon,
}

impl Out {
    pub(crate) fn new() -> Self {
        Out {
            c: Crayon(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()),
        }
    }
}

/// The corestore folder for these options.
pub(crate) fn storage_dir(storage: &StorageArg) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let home = std::env::var_os("HOME").map(PathBuf::from);
    util::find_corestore(storage.storage.as_deref(), &cwd, home.as_deref())
}

/// drives' `noticeStorage`: printed when one of `args` is a key (or always with `None`).
/// The storage folder of a command ([`storage_dir`]), with its notice ([`notice_storage`]).
fn storage_notice(out: Out, storage: &StorageArg, args: Option<&[&str]>) -> PathBuf {
    let dir = storage_dir(storage);
    notice_storage(out, &dir, args);
    dir
}

/// The drive key of a path argument, or `None` when the default ignore filter excludes it (JS drives then
/// does nothing).
fn filtered_key(path: &str) -> anyhow::Result<Option<String>> {
    let key = resolve_key(path);
    Ok(util::generate_filter(&[])?(&key).then_some(key))
}

pub(crate) fn notice_storage(out: Out, dir: &Path, args: Option<&[&str]>) {
    if let Some(args) = args {
        if !args.iter().any(|a| util::drive_id(a) == DriveId::Key) {
            return;
        }
    }
    if dir.exists() {
        println!("{}", out.c.gray(&format!("Storage: {}", dir.display())));
    } else {
        println!(
            "{} {}",
            out.c.red("Notice:"),
            out.c.gray(&format!("new storage at {}", dir.display()))
        );
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Out::new();
    encryption::set(cli.encryption_key);
    match cli.command {
        Command::Init => {
            let cwd = std::env::current_dir().context("current folder")?;
            let dir = cwd.join(".drives").join("corestore");
            notice_storage(out, &dir, None);
            hyper::init_store(&dir)?;
            Ok(())
        }
        Command::Touch {
            use_cwd,
            encrypted,
            storage,
        } => {
            let dir = storage_notice(out, &storage, None);
            let encryption_key = encryption::for_new_drive(encrypted);
            let key = hyper::touch(&dir, use_cwd, encryption_key)?;
            println!("New drive: {}", out.c.magenta(&key));
            if let Some(k) = encryption_key {
                println!("Encryption key: {}", out.c.magenta(&k.encode()));
            }
            Ok(())
        }
        Command::Mirror {
            src,
            dst,
            live,
            prefix,
            filter,
            dry_run,
            version,
            silent,
            verbose,
            no_chunking,
            timeout,
            storage,
            net,
        } => {
            hyper::set_chunking(!no_chunking);
            let args = MirrorArgs {
                src,
                dst,
                live,
                prefix,
                filter,
                dry_run,
                version,
                silent,
                verbose,
                timeout,
            };
            mirror_cmd(out, args, &storage, &net).await
        }
        Command::Ls {
            src,
            path,
            recursive,
            prefix,
            storage,
            net,
        } => {
            if path.is_some() && prefix.is_some() {
                bail!("Can not use prefix argument with --prefix option");
            }
            let dir = storage_notice(out, &storage, Some(&[&src]));
            let drive = hyper::open_drive(&src, hyper::Role::Read, &dir, &net, false).await?;
            ls(
                out,
                drive.as_drive(),
                &resolve_key(path.or(prefix).as_deref().unwrap_or("/")),
                recursive,
            )
            .await?;
            drive.close().await;
            Ok(())
        }
        Command::Seed {
            keys,
            all,
            storage,
            net,
        } => {
            let dir = storage_notice(out, &storage, None);
            println!();
            match keys.as_slice() {
                [] if !all => hyper::seed(out, &dir, None, &net).await,
                [key] => hyper::seed(out, &dir, Some(key), &net).await,
                _ => seed::seed_many(out, &dir, &keys, all, &net).await,
            }
        }
        Command::Download {
            key,
            timeout,
            storage,
            net,
        } => {
            let dir = storage_notice(out, &storage, None);
            hyper::download(out, &dir, &key, &net, timeout.duration()).await
        }
        Command::Serve {
            src,
            host,
            port,
            disable_any_port,
            verbose,
            storage,
            net,
        } => {
            let dir = storage_notice(out, &storage, Some(&[&src]));
            let _ = verbose;
            let (drive, _swarm) = hyper::open_drive(&src, hyper::Role::Read, &dir, &net, true)
                .await?
                .into_drive();
            serve::serve(drive, host.as_deref(), port, !disable_any_port).await
        }
        Command::Put {
            src,
            path,
            blob,
            storage,
            net,
        } => {
            let dir = storage_notice(out, &storage, Some(&[&src]));
            let Some(key) = filtered_key(&path)? else {
                return Ok(());
            };
            let drive = hyper::open_drive(&src, hyper::Role::Write, &dir, &net, false).await?;
            drive
                .as_drive()
                .put(&key, blob.as_bytes(), Default::default())
                .await?;
            drive.as_drive().flush().await?;
            println!("{}", out.c.green("File saved."));
            drive.close().await;
            Ok(())
        }
        Command::Entry {
            src,
            path,
            storage,
            net,
        } => {
            let dir = storage_notice(out, &storage, Some(&[&src]));
            let Some(key) = filtered_key(&path)? else {
                return Ok(());
            };
            let drive = hyper::open_drive(&src, hyper::Role::Read, &dir, &net, false).await?;
            let entry = hyper::with_timeout(drive.as_drive().entry(&key)).await;
            print_entry(out, entry?);
            drive.close().await;
            Ok(())
        }
        Command::Get {
            src,
            path,
            storage,
            net,
        } => {
            let dir = storage_notice(out, &storage, Some(&[&src]));
            let Some(key) = filtered_key(&path)? else {
                return Ok(());
            };
            let drive = hyper::open_drive(&src, hyper::Role::Read, &dir, &net, false).await?;
            match hyper::with_timeout(drive.as_drive().get(&key)).await {
                Ok(Some(bytes)) => println!("{}", String::from_utf8_lossy(&bytes)),
                Ok(None) => println!("{}", out.c.red("Blob not found.")),
                Err(e) if hyper::is_timeout(&e) => println!("{}", out.c.red("Entry timeout.")),
                Err(e) => return Err(e),
            }
            drive.close().await;
            Ok(())
        }
        Command::Rm {
            src,
            path,
            recursive,
            storage,
        } => {
            let dir = storage_notice(out, &storage, Some(&[&src]));
            let Some(key) = filtered_key(&path)? else {
                return Ok(());
            };
            let drive =
                hyper::open_drive(&src, hyper::Role::Read, &dir, &NetArg::default(), false).await?;
            let d = drive.as_drive();
            if recursive {
                for e in d.list(&key, None).await? {
                    d.del(&e.key).await?;
                }
            } else {
                d.del(&key).await?;
            }
            d.flush().await?;
            println!("{}", out.c.green("File deleted."));
            drive.close().await;
            Ok(())
        }
        Command::Info { key, storage } => {
            let dir = storage_notice(out, &storage, None);
            hyper::info(out, &dir, &key).await
        }
        Command::Mount {
            src,
            dir,
            version,
            timeout,
            storage,
            net,
        } => {
            let store = storage_notice(out, &storage, None);
            let opts = mount::MountArgs {
                src,
                dir,
                version,
                timeout: timeout.map(Duration::from_secs),
            };
            mount::run(out, &store, &net, opts).await
        }
        Command::Purge { key, storage } => {
            let dir = storage_notice(out, &storage, None);
            hyper::purge(&dir, &key).await
        }
    }
}

fn print_entry(out: Out, entry: Option<Entry>) {
    let c = out.c;
    let Some(entry) = entry else {
        println!("{}", c.red("Entry not found."));
        return;
    };
    println!(
        "Sequence: {}",
        c.yellow(&entry.seq.map_or_else(String::new, |s| s.to_string()))
    );
    println!("Key: {}", c.green(&entry.key));
    println!("Executable? {}", c.yellow(&entry.executable.to_string()));
    match &entry.linkname {
        Some(l) => println!("Linkname: {}", c.cyan(l)),
        None => println!("{}", c.gray("Linkname: null")),
    }
    match entry.byte_length {
        Some(n) if entry.linkname.is_none() => {
            println!("Blob size: {}", c.yellow(&byte_size(i128::from(n))))
        }
        _ => println!("{}", c.gray("Blob: null")),
    }
    match &entry.metadata {
        Some(m) => println!("Metadata: {m}"),
        None => println!("{}", c.gray("Metadata: null")),
    }
}

async fn ls(out: Out, drive: &dyn Drive, prefix: &str, recursive: bool) -> anyhow::Result<()> {
    let filter = util::generate_filter(&[])?;
    if !filter(prefix) {
        return Ok(());
    }
    let mut lines = Lines::default();
    if !recursive {
        for name in drive.readdir(prefix).await? {
            let key = resolve_from(prefix, &name);
            if !filter(&key) {
                continue;
            }
            let entry = drive.entry(&key).await?;
            lines.push(&format_entry(out, drive, entry.as_ref(), &name).await?)?;
        }
        return lines.flush();
    }
    // Recursive: the listing's own entries, a page at a time when the drive has pages (a hyperdrive), so
    // memory stays bounded whatever the number of entries.
    let mut after = None;
    loop {
        let (entries, next) = match drive.list_page(prefix, after.take(), LS_PAGE).await? {
            Some(page) => (page.entries, page.next),
            None => (drive.list(prefix, None).await?, None),
        };
        for e in &entries {
            if filter(&e.key) {
                lines.push(&format_entry(out, drive, Some(e), &e.key).await?)?;
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => return lines.flush(),
        }
    }
}

/// Entries `ls -r` reads at once.
const LS_PAGE: usize = 4096;

/// Output lines gathered and written to stdout in large writes (one `write` per line costs more than the
/// listing itself for a million entries).
#[derive(Default)]
struct Lines(Vec<u8>);

impl Lines {
    fn push(&mut self, line: &str) -> anyhow::Result<()> {
        self.0.extend_from_slice(line.as_bytes());
        self.0.push(b'\n');
        if self.0.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&self.0)?;
        stdout.flush()?;
        self.0.clear();
        Ok(())
    }
}

async fn entry_color(drive: &dyn Drive, entry: Option<&Entry>) -> anyhow::Result<&'static str> {
    let Some(entry) = entry else {
        return Ok("blue");
    };
    if let Some(link) = &entry.linkname {
        let target = drive.entry(&resolve_from(&entry.key, link)).await?;
        return Ok(if target.is_some() { "cyan" } else { "red" });
    }
    Ok(if entry.executable { "green" } else { "white" })
}

fn paint(c: Crayon, color: &str, s: &str) -> String {
    match color {
        "blue" => c.blue(s),
        "cyan" => c.cyan(s),
        "red" => c.red(s),
        "green" => c.green(s),
        _ => c.white(s),
    }
}

async fn format_entry(
    out: Out,
    drive: &dyn Drive,
    entry: Option<&Entry>,
    name: &str,
) -> anyhow::Result<String> {
    let c = out.c;
    let color = entry_color(drive, entry).await?;
    if let Some(e) = entry {
        if let Some(link) = &e.linkname {
            let target = drive.entry(&resolve_from(&e.key, link)).await?;
            let tcolor = if target.is_some() {
                entry_color(drive, target.as_ref()).await?
            } else {
                "red"
            };
            return Ok(format!(
                "{} -> {}",
                paint(c, color, &c.bold(name)),
                paint(c, tcolor, link)
            ));
        }
        if let Some(n) = e.byte_length {
            let shown = if e.executable {
                c.bold(name)
            } else {
                name.to_string()
            };
            return Ok(format!(
                "{} {}",
                paint(c, color, &shown),
                c.gray(&format!("({})", byte_size(i128::from(n))))
            ));
        }
    }
    Ok(paint(c, color, &c.bold(name)))
}

/// Files a mirror into a folder compares and writes at once.
const FOLDER_WRITE_WINDOW: usize = 32;

struct MirrorArgs {
    src: String,
    dst: String,
    live: bool,
    prefix: Option<String>,
    filter: Option<Vec<String>>,
    dry_run: bool,
    version: Option<String>,
    silent: bool,
    verbose: bool,
    timeout: TimeoutArg,
}

fn format_diff(c: Crayon, d: &Diff) -> String {
    let (color, symbol): (fn(Crayon, &str) -> String, &str) = match d.op {
        Op::Add => (Crayon::green, "+"),
        Op::Remove => (Crayon::red, "-"),
        _ => (Crayon::yellow, "~"),
    };
    let bytes = match d.op {
        Op::Remove => byte_size(i128::from(d.bytes_removed)),
        _ => byte_size(i128::from(d.bytes_added)),
    };
    let mut bytes = c.cyan(&bytes);
    if d.op == Op::Change {
        let delta = i128::from(d.bytes_added) - i128::from(d.bytes_removed);
        let s = format!("{}{}", if delta > 0 { "+" } else { "" }, byte_size(delta));
        let painted = match delta.signum() {
            1 => c.green(&s),
            -1 => c.red(&s),
            _ => c.gray(&s),
        };
        bytes = format!("{bytes} {painted}");
    }
    format!("{} {} {}", color(c, symbol), color(c, &d.key), bytes)
}

/// A mirror's diff lines on stdout: each written at once on a terminal; otherwise (a file, a pipe) gathered
/// and written 64 KiB or 100 ms at a time (a line per `write` was a tenth of a 100k-file import's system
/// calls), and always before anything goes to stderr and at the end of the run.
struct DiffLines {
    buf: Option<Vec<u8>>,
    since: std::time::Instant,
}

impl DiffLines {
    const BYTES: usize = 64 << 10;
    const EVERY: std::time::Duration = std::time::Duration::from_millis(100);

    fn new() -> Self {
        let buffered = !std::io::stdout().is_terminal();
        DiffLines {
            buf: buffered.then(|| Vec::with_capacity(Self::BYTES)),
            since: std::time::Instant::now(),
        }
    }

    fn push(&mut self, line: &str) {
        let Some(buf) = &mut self.buf else {
            println!("{line}");
            return;
        };
        if buf.is_empty() {
            self.since = std::time::Instant::now();
        }
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        if buf.len() >= Self::BYTES || self.since.elapsed() >= Self::EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        use std::io::Write;
        if let Some(buf) = self.buf.as_mut().filter(|b| !b.is_empty()) {
            let mut out = std::io::stdout().lock();
            // (A closed stdout does not stop the mirror: its files matter more than its lines.)
            let _ = out.write_all(buf).and_then(|()| out.flush());
            buf.clear();
        }
    }
}

pub(crate) fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{bar:30} {bytes}/{total_bytes} {msg} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    Some(pb)
}

async fn mirror_cmd(
    out: Out,
    a: MirrorArgs,
    storage: &StorageArg,
    net: &NetArg,
) -> anyhow::Result<()> {
    let c = out.c;
    let dir = storage_dir(storage);
    notice_storage(out, &dir, Some(&[&a.src, &a.dst]));
    let src_is_key = util::drive_id(&a.src) == DriveId::Key;
    let dst_is_key = util::drive_id(&a.dst) == DriveId::Key;
    // The source swarms whenever it is a hyperdrive; the destination only with --live (as JS drives).
    let pair = hyper::open_pair(
        &a.src,
        &a.dst,
        &dir,
        net,
        src_is_key || (a.live && dst_is_key),
        a.live,
    )
    .await?;
    let Pair { mut src, dst, keep } = pair;
    if let Some(v) = &a.version {
        let v: u64 = v
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .context("Invalid --version value")?;
        src = src.checkout(v)?;
    }
    if a.verbose {
        let kind = |k: bool| if k { "hyperdrive" } else { "localdrive" };
        let shown = |arg: &str, k: bool| {
            if k {
                arg.to_string()
            } else {
                std::path::absolute(arg)
                    .map_or_else(|_| arg.to_string(), |p| p.display().to_string())
            }
        };
        println!(
            "{} {}: {}",
            c.blue("Source"),
            c.gray(&format!("({})", kind(src_is_key))),
            c.magenta(&shown(&a.src, src_is_key))
        );
        println!(
            "{} {}: {}",
            c.green("Target"),
            c.gray(&format!("({})", kind(dst_is_key))),
            c.magenta(&shown(&a.dst, dst_is_key))
        );
        println!();
    }
    if a.dry_run {
        println!(
            "{}",
            c.gray("NOTE: This is a dry run, no changes will be persisted.")
        );
        println!();
    }
    let prefix = resolve_key(a.prefix.as_deref().unwrap_or("/"));
    let mut patterns = a.filter.clone().unwrap_or_default();
    if !src_is_key {
        // Extension: the source folder's .drivesignore adds --filter patterns.
        if let Ok(text) = std::fs::read_to_string(Path::new(&a.src).join(".drivesignore")) {
            patterns.extend(util::parse_drivesignore(&text));
        }
    }
    let filter = util::generate_filter(&patterns).context("--filter")?;
    let opts = MirrorOptions {
        prefix: vec![prefix.clone()],
        filter: Some(filter.clone()),
        ignore: vec!["/.drives".into(), "/.git".into()],
        dry_run: a.dry_run,
        // A folder destination: a file is several file-system round trips, overlap them (and the block
        // waits of a remote source). A hyperdrive destination writes one file at a time anyway.
        concurrency: if dst_is_key { 1 } else { FOLDER_WRITE_WINDOW },
        // Files left equal by the last run of this same mirror, unchanged since, are not read again.
        state_file: quick_check::state_file(&dir, &src, &dst),
        ..MirrorOptions::default()
    };

    tracing::debug!("mirror: drives opened, swarm joined");
    // Download side: wait for the remote drive before comparing.
    src.prepare(hyper::PeerWait {
        timeout: a.timeout.duration(),
        quiet: a.silent,
    })
    .await?;
    tracing::debug!(version = ?src.version(), "mirror: source ready (peer found, updated)");
    if let (hyper::AnyDrive::Local(d), false) = (&dst, a.dry_run) {
        // What a killed earlier run was writing (never under a file's own name): gone.
        let removed = d.remove_stale_temp_files().await?;
        tracing::debug!(removed, "mirror: stale temporary files removed");
    }

    let pb = progress_bar();
    let silent = a.silent;
    let run_once = |first: bool| {
        let src = &src;
        let dst = &dst;
        let mut opts = opts.clone();
        let pb = pb.clone();
        if let Some(bar) = &pb {
            let bar = bar.clone();
            opts.progress = Some(std::sync::Arc::new(move |n| bar.inc(n)));
        }
        async move {
            let mirror = Mirror::new(src.as_drive(), dst.as_drive(), opts);
            let mut lines = DiffLines::new();
            let sum = mirror.run(|ev| match ev {
                MirrorEvent::Planned { bytes, .. } => {
                    if let Some(pb) = &pb {
                        pb.set_length(bytes);
                        pb.set_position(0);
                    }
                }
                MirrorEvent::Diff(d) => {
                    if d.op == Op::Equal {
                        return;
                    }
                    let line = format_diff(c, &d);
                    match &pb {
                        Some(pb) if !silent => pb.println(line),
                        _ if silent => print!("\x1b[2K\x1b[200D{line}"),
                        _ => lines.push(&line),
                    }
                }
                // The bar moves with `progress` (bytes inside files too).
                MirrorEvent::Done { .. } => {}
                MirrorEvent::Skipped { key, reason } => {
                    lines.flush();
                    eprintln!("{} {key}: {reason}", c.red("Skipped"));
                }
            });
            let sum = sum.await;
            lines.flush();
            let sum = sum?;
            if let Some(pb) = &pb {
                pb.finish_and_clear();
            }
            if first {
                let version = dst
                    .version()
                    .map(|v| format!(" | Version: {}", c.yellow(&v.to_string())))
                    .unwrap_or_default();
                let count = format!(
                    "{} {} {}",
                    c.green(&format!("+{}", sum.count.add)),
                    c.red(&format!("-{}", sum.count.remove)),
                    c.yellow(&format!("~{}", sum.count.change))
                );
                if silent {
                    println!(
                        "\x1b[2K\x1b[200D{} Total files: {} ({count}){version}",
                        c.green("✔"),
                        c.yellow(&sum.count.files.to_string())
                    );
                } else {
                    if sum.count.add + sum.count.remove + sum.count.change > 0 {
                        println!();
                    }
                    println!(
                        "{} Total files: {} ({count}){version}",
                        c.green("✔"),
                        sum.count.files
                    );
                }
            }
            anyhow::Ok(sum)
        }
    };
    // A remote source: fetch every block under the prefix in bulk, in the background, while the mirror
    // compares and writes (as mirror-drive's preload); reads of blocks not there yet wait for them.
    let prefetch = src.prefetch(&prefix);
    let mut watcher = src.watcher(&prefix);
    if a.live {
        watcher.prime().await;
    }
    let target = if dst_is_key {
        format!("the store at {}", dir.display())
    } else {
        a.dst.clone()
    };
    run_once(true).await.map_err(|e| disk_full(e, &target))?;
    tracing::debug!("mirror: done");
    if let Some(p) = prefetch {
        p.abort();
    }
    if !a.live {
        src.close().await;
        dst.close().await;
        if let Some(k) = keep {
            k.close().await;
        }
        return Ok(());
    }
    println!();
    // Live: re-mirror whenever the source changes.
    loop {
        watcher.changed().await?;
        run_once(false).await.map_err(|e| disk_full(e, &target))?;
    }
}

/// An error caused by a full disk (`ENOSPC`, `EDQUOT`) says so first, with where it was writing; others
/// are returned as they are.
pub(crate) fn disk_full(e: anyhow::Error, target: &str) -> anyhow::Error {
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|n| n == 28 || n == 122)
    }) || {
        let text = format!("{e:#}");
        text.contains("os error 28") || text.contains("os error 122")
    };
    if full {
        e.context(format!(
            "the disk is full: no space left writing to {target} (free some space and run the command again; \
             what was written so far is kept)"
        ))
    } else {
        e
    }
}

/// A source/destination pair and what keeps them alive (the swarm).
pub(crate) struct Pair {
    pub(crate) src: hyper::AnyDrive,
    pub(crate) dst: hyper::AnyDrive,
    pub(crate) keep: Option<hyper::Swarming>,
}

/// Entries of a local folder, for the polling watcher.
pub(crate) type Snapshot = Vec<(String, u64, bool, Option<String>, u64)>;

/// A listing of a folder's entries with sizes, modes and times.
pub(crate) async fn local_snapshot(drive: &Localdrive, prefix: &str) -> Snapshot {
    let list = drive.list(prefix, None).await.unwrap_or_default();
    list.into_iter()
        .map(|e| {
            (
                e.key,
                e.byte_length.unwrap_or(0),
                e.executable,
                e.linkname,
                e.mtime.unwrap_or(0.0).to_bits(),
            )
        })
        .collect()
}
