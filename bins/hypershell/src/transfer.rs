//! `hypershell-upload` and `hypershell-download`: files and folders as a tar stream (the layout JS
//! `tar-fs` 2 packs: the source itself as entry `.`, then a folder's contents relative to it), in raw
//! chunks with an empty chunk at the end.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use holepunch::compact_encoding::{Decode, Encode};
use holepunch::hypershell::{
    transfer_message as msg, DownloadHandshake, DownloadHeader, ErrorMessage, UploadHandshake,
    PROTOCOL_DOWNLOAD, PROTOCOL_UPLOAD,
};
use holepunch::protomux::{Channel, ChannelOptions, Mux, ProtomuxError};
use tokio::sync::mpsc;

/// Size of the tar chunks sent.
const CHUNK: usize = 64 * 1024;

/// Bytes moved, for progress display.
pub type Counter = Arc<AtomicU64>;

/// Writes what the tar builder produces into a channel, in chunks.
struct ChunkWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn push(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "transfer closed"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.push()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

/// Reads chunks from a channel.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let rest = self.cur.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(rest.get(..n).unwrap_or_default());
        self.pos += n;
        Ok(n)
    }
}

fn header_for(meta: &fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h
}

/// Packs `source` (a file or a folder) as tar-fs does, into `out`.
pub fn pack(source: &Path, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let meta = fs::symlink_metadata(source)?;
    let mut root = header_for(&meta);
    // The source itself is the entry ".".
    set_name(&mut root, b".")?;
    if meta.is_dir() {
        root.set_size(0);
        root.set_cksum();
        b.append(&root, io::empty())?;
        pack_dir(&mut b, source, Path::new(""))?;
    } else if meta.is_file() {
        root.set_cksum();
        b.append(&root, fs::File::open(source)?)?;
    } else {
        return Err(io::Error::other(format!(
            "unsupported type for {}",
            source.display()
        )));
    }
    b.into_inner()?.flush()
}

fn set_name(h: &mut tar::Header, name: &[u8]) -> io::Result<()> {
    let old = h.as_old_mut();
    let slot = old
        .name
        .get_mut(..name.len())
        .ok_or_else(|| io::Error::other("name too long"))?;
    slot.copy_from_slice(name);
    Ok(())
}

fn pack_dir<W: Write>(b: &mut tar::Builder<W>, dir: &Path, rel: &Path) -> io::Result<()> {
    let mut entries = fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for e in entries {
        let path = e.path();
        let name = rel.join(e.file_name());
        let meta = fs::symlink_metadata(&path)?;
        let mut h = header_for(&meta);
        if meta.is_dir() {
            h.set_size(0);
            b.append_data(&mut h, &name, io::empty())?;
            pack_dir(b, &path, &name)?;
        } else if meta.is_file() {
            b.append_data(&mut h, &name, fs::File::open(&path)?)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)?;
            h.set_size(0);
            b.append_link(&mut h, &name, &target)?;
        } else {
            return Err(io::Error::other(format!(
                "unsupported type for {}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Where an entry goes: `dir/name`, or `file_name` for a single file; `None` for unsafe names.
fn entry_target(dir: &Path, name: &Path, single_file: Option<&Path>) -> Option<PathBuf> {
    if let Some(f) = single_file {
        return Some(f.to_path_buf());
    }
    let mut out = dir.to_path_buf();
    for c in name.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Whether a folder on the way from `target` to `dest` (both excluded) is a symbolic link.
fn through_symlink(target: &Path, dest: &Path) -> bool {
    let Ok(rel) = dest.strip_prefix(target) else {
        return true;
    };
    let mut at = target.to_path_buf();
    let mut parts = rel.components().peekable();
    while let Some(c) = parts.next() {
        if parts.peek().is_none() {
            break;
        }
        at.push(c);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

/// Extracts a tar stream as tar-fs does: into `target` when `is_directory`, else the (single) file
/// becomes `target`. Modes keep the archived ones plus read/write for everyone, less the umask.
pub fn extract(input: impl Read, target: &Path, is_directory: bool) -> io::Result<()> {
    let single = (!is_directory).then_some(target);
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let Some(dest) = entry_target(target, &name, single) else {
            return Err(io::Error::other(format!(
                "refusing the unsafe path {}",
                name.display()
            )));
        };
        // A symlink extracted earlier must not lead a later entry out of the target.
        if single.is_none() && through_symlink(target, &dest) {
            return Err(io::Error::other(format!(
                "refusing {}: it goes through a symbolic link",
                name.display()
            )));
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                let mut b = fs::DirBuilder::new();
                b.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut b, (mode | 0o777) & 0o777);
                b.create(&dest)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent)?;
                }
                let mut o = fs::OpenOptions::new();
                o.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut o, (mode | 0o666) & 0o777);
                let mut f = o.open(&dest)?;
                io::copy(&mut entry, &mut f)?;
            }
            #[cfg(unix)]
            tar::EntryType::Symlink => {
                if let Some(link) = entry.link_name()? {
                    let _ = fs::remove_file(&dest);
                    std::os::unix::fs::symlink(link, &dest)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Sends `source` packed on `channel` (type DATA chunks, then an empty one).
async fn send_packed(channel: &Channel, source: PathBuf, counter: &Counter) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let packer = tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        pack(&source, &mut w).and_then(|()| w.flush())
    });
    while let Some(chunk) = rx.recv().await {
        channel.send(msg::DATA, &chunk).await?;
        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    packer.await.context("packing")??;
    channel.send(msg::DATA, &[]).await?;
    Ok(())
}

/// An extraction running on a blocking thread, fed with chunks.
struct Extraction {
    tx: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    done: tokio::task::JoinHandle<io::Result<()>>,
}

impl Extraction {
    fn start(target: PathBuf, is_directory: bool) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let done = tokio::task::spawn_blocking(move || {
            let mut r = ChunkReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            };
            let res = extract(&mut r, &target, is_directory);
            // Read what follows the archive's end so the sender never blocks on us.
            let _ = io::copy(&mut r, &mut io::sink());
            res
        });
        Self { tx: Some(tx), done }
    }

    fn feed(&mut self, data: Vec<u8>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(data);
        }
    }

    async fn finish(mut self) -> io::Result<()> {
        self.tx = None;
        self.done.await.map_err(io::Error::other)?
    }
}

fn io_error_message(e: &io::Error, path: &str) -> ErrorMessage {
    let code = match e.kind() {
        io::ErrorKind::NotFound => "ENOENT",
        io::ErrorKind::PermissionDenied => "EACCES",
        _ => "EIO",
    };
    ErrorMessage {
        code: code.into(),
        path: path.into(),
        message: e.to_string(),
    }
}

/// Serves one `hypershell-upload` channel: extracts what the client sends into its target.
pub async fn serve_upload(channel: Channel) -> anyhow::Result<()> {
    let handshake = channel.opened().await?;
    channel.open(&UploadHandshake::default().to_bytes())?;
    let up = UploadHandshake::from_bytes(&handshake).context("bad upload handshake")?;
    let mut ex = Some(Extraction::start(
        PathBuf::from(&up.target),
        up.is_directory,
    ));
    while let Some((kind, payload)) = channel.recv().await {
        if kind != msg::DATA {
            continue;
        }
        if payload.is_empty() {
            if let Some(ex) = ex.take() {
                if let Err(e) = ex.finish().await {
                    let _ = channel
                        .send_encoded(msg::ERROR, &io_error_message(&e, &up.target))
                        .await;
                }
            }
            break;
        }
        if let Some(ex) = &mut ex {
            ex.feed(payload);
        }
    }
    channel.close();
    Ok(())
}

/// Serves one `hypershell-download` channel: sends the source the client names.
pub async fn serve_download(channel: Channel) -> anyhow::Result<()> {
    let handshake = channel.opened().await?;
    channel.open(&DownloadHandshake::default().to_bytes())?;
    let down = DownloadHandshake::from_bytes(&handshake).context("bad download handshake")?;
    let source = PathBuf::from(&down.source);
    match fs::symlink_metadata(&source) {
        Ok(meta) => {
            channel
                .send_encoded(
                    msg::HEADER,
                    &DownloadHeader {
                        is_directory: meta.is_dir(),
                    },
                )
                .await?;
            if let Err(e) = send_packed(&channel, source, &Counter::default()).await {
                let _ = channel
                    .send_encoded(
                        msg::ERROR,
                        &ErrorMessage {
                            message: format!("{e:#}"),
                            ..ErrorMessage::default()
                        },
                    )
                    .await;
                channel.close();
                return Ok(());
            }
            // The client closes once it has extracted everything.
            channel.closed().await;
        }
        Err(e) => {
            channel
                .send_encoded(msg::ERROR, &io_error_message(&e, &down.source))
                .await?;
        }
    }
    channel.close();
    Ok(())
}

async fn opened(channel: &Channel, protocol: &str) -> anyhow::Result<()> {
    match channel.opened().await {
        Ok(_) => Ok(()),
        Err(ProtomuxError::Rejected) => {
            anyhow::bail!("the server does not allow file transfers (protocol {protocol} refused)")
        }
        Err(e) => Err(anyhow::Error::from(e).context("opening the transfer channel")),
    }
}

/// Uploads the local `source` to `target` on the server.
pub async fn upload(
    mux: &Mux,
    source: &Path,
    target: &str,
    counter: &Counter,
) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(source).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            anyhow::anyhow!("{}: No such file or directory", source.display())
        } else {
            anyhow::Error::from(e).context(source.display().to_string())
        }
    })?;
    let channel = mux
        .create_channel(ChannelOptions::new(PROTOCOL_UPLOAD))
        .context("the connection closed")?;
    channel.open(
        &UploadHandshake {
            target: target.into(),
            is_directory: meta.is_dir(),
        }
        .to_bytes(),
    )?;
    opened(&channel, PROTOCOL_UPLOAD).await?;
    let sending = send_packed(&channel, source.to_path_buf(), counter);
    let receiving = async {
        while let Some((kind, payload)) = channel.recv().await {
            if kind == msg::ERROR {
                return Some(ErrorMessage::from_bytes(&payload).unwrap_or_default());
            }
        }
        None
    };
    tokio::pin!(sending, receiving);
    let mut sent = false;
    let server_error = loop {
        tokio::select! {
            r = &mut sending, if !sent => { r?; sent = true; }
            e = &mut receiving => break e,
        }
    };
    channel.close();
    if let Some(e) = server_error {
        anyhow::bail!("hypershell-server: {e}");
    }
    if !sent {
        anyhow::bail!("the server closed the upload before it was complete");
    }
    Ok(())
}

/// Downloads `source` from the server into the local `target`.
pub async fn download(
    mux: &Mux,
    source: &str,
    target: &Path,
    counter: &Counter,
) -> anyhow::Result<()> {
    let channel = mux
        .create_channel(ChannelOptions::new(PROTOCOL_DOWNLOAD))
        .context("the connection closed")?;
    channel.open(
        &DownloadHandshake {
            source: source.into(),
        }
        .to_bytes(),
    )?;
    opened(&channel, PROTOCOL_DOWNLOAD).await?;
    let mut ex: Option<Extraction> = None;
    let mut finished = false;
    while let Some((kind, payload)) = channel.recv().await {
        match kind {
            msg::HEADER => {
                let h = DownloadHeader::from_bytes(&payload).context("bad download header")?;
                ex = Some(Extraction::start(target.to_path_buf(), h.is_directory));
            }
            msg::ERROR => {
                let e = ErrorMessage::from_bytes(&payload).unwrap_or_default();
                channel.close();
                anyhow::bail!("hypershell-server: {e}");
            }
            msg::DATA => {
                let Some(x) = ex.as_mut() else {
                    anyhow::bail!("the server sent data before its header");
                };
                if payload.is_empty() {
                    if let Some(x) = ex.take() {
                        x.finish()
                            .await
                            .with_context(|| format!("writing {}", target.display()))?;
                    }
                    finished = true;
                    break;
                }
                counter.fetch_add(payload.len() as u64, Ordering::Relaxed);
                x.feed(payload);
            }
            _ => {}
        }
    }
    channel.close();
    if !finished {
        anyhow::bail!("the server closed the download before it was complete");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) -> io::Result<()> {
            let mut es = fs::read_dir(d)?.collect::<io::Result<Vec<_>>>()?;
            es.sort_by_key(fs::DirEntry::file_name);
            for e in es {
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
                if p.is_dir() {
                    out.push((rel + "/", Vec::new()));
                    walk(base, &p, out)?;
                } else {
                    out.push((rel, fs::read(&p)?));
                }
            }
            Ok(())
        }
        walk(dir, dir, &mut out)?;
        Ok(out)
    }

    /// Every file and folder under `dir`, relative.
    fn listing(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                out.push(p.strip_prefix(dir).unwrap_or(&p).to_path_buf());
                if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    todo.push(p);
                }
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Truncated and mutated archives (bytes from the network) give errors or partial trees, never a
        /// panic, and nothing is written outside the target.
        #[test]
        fn hostile_archives_stay_inside(cut in 0usize..6000, flips in proptest::collection::vec((0usize..6000, proptest::prelude::any::<u8>()), 0..8)) {
            let base = std::env::temp_dir().join(format!("hypershell-tar-fuzz-{}", std::process::id()));
            let _ = fs::remove_dir_all(&base);
            let src = base.join("src");
            fs::create_dir_all(src.join("d/e")).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            fs::write(src.join("d/e/f.txt"), b"content").map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            fs::write(src.join("g"), vec![1u8; 1500]).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let mut tarball = Vec::new();
            pack(&src, &mut tarball).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            tarball.truncate(cut.min(tarball.len()));
            for (at, byte) in flips {
                let n = tarball.len().max(1);
                if let Some(b) = tarball.get_mut(at % n) {
                    *b ^= byte;
                }
            }
            let out = base.join("out");
            let _ = extract(&tarball[..], &out.join("t"), true);
            // Everything written is under out/t.
            for p in listing(&out) {
                proptest::prop_assert!(p.starts_with("t"), "escaped: {}", p.display());
            }
            let _ = fs::remove_dir_all(&base);
        }
    }

    #[test]
    fn pack_extract_round_trip() -> io::Result<()> {
        let base = std::env::temp_dir().join(format!("hypershell-tar-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let src = base.join("src");
        fs::create_dir_all(src.join("a/b"))?;
        fs::write(src.join("top.txt"), b"top")?;
        fs::write(src.join("a/b/deep.bin"), vec![7u8; 100_000])?;
        fs::write(src.join("a/".to_owned() + &"n".repeat(120)), b"long name")?;
        let mut tarball = Vec::new();
        pack(&src, &mut tarball)?;
        extract(&tarball[..], &base.join("dst"), true)?;
        assert_eq!(tree(&src)?, tree(&base.join("dst"))?);

        let mut one = Vec::new();
        pack(&src.join("top.txt"), &mut one)?;
        extract(&one[..], &base.join("single.txt"), false)?;
        assert_eq!(fs::read(base.join("single.txt"))?, b"top");

        // Unsafe names are refused.
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        set_name(&mut h, b"../evil")?;
        h.set_cksum();
        evil.append(&h, &b"x"[..])?;
        let evil = evil.into_inner()?;
        assert!(extract(&evil[..], &base.join("e"), true).is_err());
        assert!(!base.join("evil").exists());
        // Nor through a symlink the archive made.
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        evil.append_link(&mut h, "link", &base)?;
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        evil.append_data(&mut h, "link/escaped", &b"x"[..])?;
        let evil = evil.into_inner()?;
        assert!(extract(&evil[..], &base.join("s"), true).is_err());
        assert!(!base.join("escaped").exists());
        fs::remove_dir_all(&base)
    }
}
