//! `drives mount KEY DIR`: a hyperdrive as a folder, through FUSE (the `fuser` crate, which mounts without
//! libfuse), in the foreground until unmounted.
//!
//! - A drive this store can write is mounted read-write. A file being written lives in an anonymous temporary
//!   file until it is closed (every `close`, i.e. FUSE `flush`) or fsynced: then its content becomes a blob
//!   and its entry a new version of the drive. Folders are not entries: `mkdir` makes a folder that lives in
//!   this mount until a file is put in it (or it is removed). A rename is one db append (a batch).
//! - Any other drive (or `--version N`) is read-only and sparse: `ls`, `stat` and `find` read entries only,
//!   and a read fetches only the blocks it covers. A live drive (no `--version`) follows the writer: the
//!   kernel keeps entries and attributes for one second, and a file opened again reads the new content.
//! - Errors are errnos: EROFS for writes to a read-only drive, ENOENT, EIO when no peer sends a block within
//!   `--timeout` (never a wait without end).
//!
//! FUSE requests are read by one `fuser` thread. Requests that may wait for peers (lookups, attributes,
//! listings, reads) run as tasks on the tokio runtime and reply when done, so one slow block never holds up
//! the others; writes to a writable drive (local, quick) run on the FUSE thread in order, blocking on the
//! runtime's handle where the drive API is async.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use bin_support::{Signal, Signals};
use drives_cli::cli::NetArg;
use drives_cli::util::{self, DriveId};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, Session, TimeOrNow,
    WriteFlags,
};
use holepunch::drive::{Drive, DriveError, Entry, WriteOptions};
use holepunch::hyperblobs::{ReadRange, WaitOptions};
use holepunch::hyperdrive::{DriveOptions, Hyperdrive, ListOptions};
use holepunch::id_encoding;
use serde_json::Value;
use tokio::runtime::Handle;

use crate::hyper::{self, AnyDrive, PeerWait};
use crate::Out;

/// How long a read waits for a block without `--timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the kernel keeps entries and attributes before asking again (a live drive changes).
const TTL: Duration = Duration::from_secs(1);
/// Chunk size when a file is copied into or out of its temporary file.
const COPY_CHUNK: usize = 1 << 20;
/// The signals that unmount.
const STOP_SIGNALS: [Signal; 3] = [Signal::Interrupt, Signal::Terminate, Signal::Hangup];
/// The FUSE device.
const FUSE_DEVICE: &str = "/dev/fuse";

/// What `drives mount` was given.
#[derive(Debug)]
pub(crate) struct MountArgs {
    pub(crate) src: String,
    pub(crate) dir: PathBuf,
    pub(crate) version: Option<u64>,
    pub(crate) timeout: Option<Duration>,
}

/// `drives mount`.
pub(crate) async fn run(
    out: Out,
    store_dir: &Path,
    net: &NetArg,
    a: MountArgs,
) -> anyhow::Result<()> {
    if util::drive_id(&a.src) != DriveId::Key {
        bail!(
            "drives mount needs a hyperdrive key (52 characters of z-base-32 or 64 hex digits), not {:?}",
            a.src
        );
    }
    let point = std::fs::canonicalize(&a.dir)
        .with_context(|| format!("mount point {}", a.dir.display()))?;
    let meta =
        std::fs::metadata(&point).with_context(|| format!("mount point {}", a.dir.display()))?;
    if !meta.is_dir() {
        bail!("mount point {}: not a folder", a.dir.display());
    }
    check_fuse_device()?;
    let key = id_encoding::decode(&a.src)
        .map_err(|e| anyhow::anyhow!("invalid drive key {:?}: {e}", a.src))?;
    let timeout = a.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let store = hyper::open_store(store_dir)?;
    let opts = DriveOptions {
        wait: WaitOptions {
            wait: true,
            timeout: Some(timeout),
        },
        ..DriveOptions::default()
    };
    let drive = Hyperdrive::open_key(&store, key, opts).with_context(|| {
        format!(
            "cannot open drive {} (corrupt store?)",
            id_encoding::encode(&key)
        )
    })?;
    let swarm = hyper::swarming(vec![drive.clone()], net, true, false, out).await?;
    AnyDrive::Hyper(drive.clone())
        .prepare(PeerWait::DEFAULT)
        .await?;
    let view = match a.version {
        Some(v) if v > drive.version() => {
            bail!("--version {v}: the drive is at version {}", drive.version())
        }
        Some(v) => drive.checkout(v),
        None => drive.clone(),
    };
    let writable = drive.writable() && a.version.is_none();
    // A live replica: take every new head a peer announces.
    let follow = (!drive.writable() && a.version.is_none()).then(|| {
        let d = drive.clone();
        tokio::spawn(async move {
            let mut rx = d.watch();
            while rx.changed().await.is_ok() {
                let _ = d.update().await;
            }
        })
    });

    use std::os::unix::fs::MetadataExt;
    let fs = MountFs {
        inner: Arc::new(Inner::new(
            view.clone(),
            writable,
            Handle::current(),
            (meta.uid(), meta.gid()),
        )),
    };
    let shown_key = id_encoding::encode(&key);
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("hyperdrive:{shown_key}")),
        MountOption::Subtype("drives".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        if writable {
            MountOption::RW
        } else {
            MountOption::RO
        },
    ];
    let at = point.clone();
    let mut session = tokio::task::spawn_blocking(move || Session::new(fs, &at, &config))
        .await
        .context("mounting")?
        .with_context(|| format!("mounting on {}", point.display()))?;
    let mut unmounter = session.unmount_callable();
    let (tx, mut ended) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("drives-fuse".into())
        .spawn(move || {
            let _ = tx.send(session.run());
        })
        .context("starting the FUSE thread")?;
    println!(
        "Mounted {shown_key} on {} ({}, version {})",
        point.display(),
        if writable { "read-write" } else { "read-only" },
        view.version()
    );
    let mut signals = Signals::listen_to(&STOP_SIGNALS)?;
    let result = tokio::select! {
        r = &mut ended => r,
        _ = signals.recv() => {
            let unmounted = tokio::task::spawn_blocking(move || unmounter.unmount()).await;
            match unmounted {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("drives: unmounting {}: {e}", point.display()),
                Err(e) => eprintln!("drives: unmounting {}: {e}", point.display()),
            }
            ended.await
        }
    };
    if let Some(f) = follow {
        f.abort();
    }
    swarm.close().await;
    drive.close();
    match result {
        Ok(Ok(())) => {
            println!("Unmounted {}", point.display());
            Ok(())
        }
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("the FUSE session failed")),
        Err(_) => bail!("the FUSE thread ended without a result"),
    }
}

/// Checks that the FUSE device exists and can be opened, with a clear error otherwise.
fn check_fuse_device() -> anyhow::Result<()> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(FUSE_DEVICE)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{FUSE_DEVICE} is missing: FUSE is not available here (load the fuse kernel module; in a \
             container, run it with --device /dev/fuse --cap-add SYS_ADMIN)"
        ),
        Err(e) => bail!("cannot open {FUSE_DEVICE}: {e} (FUSE is not usable by this user)"),
    }
}

/// The errno of a drive error.
fn errno(e: &DriveError) -> Errno {
    match e {
        DriveError::ReadOnly | DriveError::DestinationNotWritable => Errno::EROFS,
        DriveError::InvalidPath { .. } | DriveError::Path(_) => Errno::EINVAL,
        DriveError::RecursiveSymlink => Errno::from_i32(libc::ELOOP),
        DriveError::Io { source, .. } => source.raw_os_error().map_or(Errno::EIO, Errno::from_i32),
        _ => Errno::EIO,
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File { size: u64, executable: bool },
    Link { len: u64 },
}

/// A file being written: its content so far, in an anonymous temporary file.
#[derive(Debug)]
struct Pending {
    file: Arc<File>,
    dirty: bool,
    executable: bool,
    metadata: Option<Value>,
    opens: usize,
}

/// An open file or folder.
#[derive(Debug)]
enum Open {
    /// Read from the drive: the entry as it was when opened (boxed: entries are big).
    Read(Box<Entry>),
    /// Written (reads and writes go to the [`Pending`] of the inode).
    Write(u64),
    /// A folder's listing, taken when it was opened.
    Dir(Vec<(u64, FileType, String)>),
}

#[derive(Debug, Default)]
struct State {
    paths: HashMap<u64, String>,
    inos: HashMap<String, u64>,
    next_ino: u64,
    /// Folders made by `mkdir` (a hyperdrive has no folders, only entries below them).
    empty_dirs: BTreeSet<String>,
    /// Files being written, by inode.
    pending: HashMap<u64, Pending>,
    handles: HashMap<u64, Open>,
    next_fh: u64,
}

impl State {
    fn ino(&mut self, path: &str) -> u64 {
        if let Some(&i) = self.inos.get(path) {
            return i;
        }
        self.next_ino += 1;
        let i = self.next_ino;
        self.inos.insert(path.to_owned(), i);
        self.paths.insert(i, path.to_owned());
        i
    }

    fn pending_at(&self, path: &str) -> Option<&Pending> {
        self.inos.get(path).and_then(|i| self.pending.get(i))
    }

    /// Whether a file being written is below `folder`.
    fn pending_below(&self, folder: &str) -> bool {
        let prefix = child_prefix(folder);
        self.pending
            .keys()
            .filter_map(|i| self.paths.get(i))
            .any(|p| p.starts_with(&prefix))
    }

    fn handle(&mut self, open: Open) -> u64 {
        self.next_fh += 1;
        self.handles.insert(self.next_fh, open);
        self.next_fh
    }

    /// Forgets the inode of `path` (a file being written there stays open, but is committed nowhere).
    fn forget_path(&mut self, path: &str) {
        if let Some(i) = self.inos.remove(path) {
            self.paths.remove(&i);
        }
    }

    /// Renames `from` (and everything below it) to `to` in the inode table and the made folders.
    fn move_paths(&mut self, from: &str, to: &str) {
        let below = child_prefix(from);
        let moved = |p: &str| -> Option<String> {
            if p == from {
                Some(to.to_owned())
            } else {
                p.strip_prefix(&below)
                    .map(|rest| format!("{}{rest}", child_prefix(to)))
            }
        };
        let renames: Vec<(u64, String)> = self
            .paths
            .iter()
            .filter_map(|(&i, p)| moved(p).map(|n| (i, n)))
            .collect();
        for (i, new) in renames {
            self.forget_path(&new);
            if let Some(old) = self.paths.insert(i, new.clone()) {
                self.inos.remove(&old);
            }
            self.inos.insert(new, i);
        }
        let dirs: Vec<String> = self
            .empty_dirs
            .iter()
            .filter(|d| moved(d).is_some())
            .cloned()
            .collect();
        for d in dirs {
            self.empty_dirs.remove(&d);
            if let Some(n) = moved(&d) {
                self.empty_dirs.insert(n);
            }
        }
    }
}

/// `/a` -> `/a/`, `/` -> `/`.
fn child_prefix(folder: &str) -> String {
    if folder.ends_with('/') {
        folder.to_owned()
    } else {
        format!("{folder}/")
    }
}

fn join(parent: &str, name: &str) -> String {
    format!("{}{name}", child_prefix(parent))
}

fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path.get(..i).unwrap_or("/").to_owned(),
    }
}

struct Inner {
    drive: Hyperdrive,
    writable: bool,
    rt: Handle,
    owner: (u32, u32),
    time: SystemTime,
    state: Mutex<State>,
}

impl Inner {
    fn new(drive: Hyperdrive, writable: bool, rt: Handle, owner: (u32, u32)) -> Self {
        let mut state = State {
            next_ino: 1,
            ..State::default()
        };
        state.paths.insert(1, "/".into());
        state.inos.insert("/".into(), 1);
        Self {
            drive,
            writable,
            rt,
            owner,
            time: SystemTime::now(),
            state: Mutex::new(state),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, ino: INodeNo) -> Result<String, Errno> {
        self.state().paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: u64, kind: Kind) -> FileAttr {
        let ro = |m: u16| if self.writable { m } else { m & !0o222 };
        let (kind, perm, size, nlink) = match kind {
            Kind::Dir => (FileType::Directory, ro(0o755), 0, 2),
            Kind::File { size, executable } => (
                FileType::RegularFile,
                ro(if executable { 0o755 } else { 0o644 }),
                size,
                1,
            ),
            Kind::Link { len } => (FileType::Symlink, 0o777, len, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.time,
            mtime: self.time,
            ctime: self.time,
            crtime: self.time,
            kind,
            perm,
            nlink,
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            blksize: 65536,
            flags: 0,
        }
    }

    /// The committed entry at `path` (`None` for a name no entry can have).
    async fn entry(&self, path: &str) -> Result<Option<Entry>, Errno> {
        match self.drive.entry(path).await {
            Ok(e) => Ok(e),
            Err(DriveError::Path(_) | DriveError::InvalidPath { .. }) => Ok(None),
            Err(e) => Err(errno(&e)),
        }
    }

    async fn is_folder(&self, path: &str) -> Result<bool, Errno> {
        if path == "/" {
            return Ok(true);
        }
        {
            let st = self.state();
            if st.empty_dirs.contains(path) || st.pending_below(path) {
                return Ok(true);
            }
        }
        match self.drive.is_folder(path).await {
            Ok(b) => Ok(b),
            Err(DriveError::Path(_) | DriveError::InvalidPath { .. }) => Ok(false),
            Err(e) => Err(errno(&e)),
        }
    }

    /// What `path` is, if anything: a file being written, an entry, else a folder.
    async fn kind(&self, path: &str) -> Result<Option<Kind>, Errno> {
        if path == "/" {
            return Ok(Some(Kind::Dir));
        }
        if let Some(p) = self.state().pending_at(path) {
            let size = p.file.metadata().map_err(|e| io_errno(&e))?.len();
            return Ok(Some(Kind::File {
                size,
                executable: p.executable,
            }));
        }
        if let Some(e) = self.entry(path).await? {
            return Ok(Some(kind_of(&e)));
        }
        Ok(self.is_folder(path).await?.then_some(Kind::Dir))
    }

    async fn stat(&self, path: &str) -> Result<FileAttr, Errno> {
        let kind = self.kind(path).await?.ok_or(Errno::ENOENT)?;
        let ino = self.state().ino(path);
        Ok(self.attr(ino, kind))
    }

    /// A folder's listing: `.`, `..`, then its files, links and folders by name.
    async fn listing(&self, ino: u64, path: &str) -> Result<Vec<(u64, FileType, String)>, Errno> {
        let entries = self
            .drive
            .list_with(
                path,
                ListOptions {
                    recursive: false,
                    skip_invalid: true,
                },
            )
            .await
            .map_err(|e| errno(&e))?;
        let prefix = child_prefix(path);
        let mut names: BTreeMap<String, FileType> = BTreeMap::new();
        for e in &entries {
            let Some(rest) = e.key.strip_prefix(&prefix) else {
                continue;
            };
            let (name, kind) = match rest.split_once('/') {
                Some((name, _)) => (name, FileType::Directory),
                None if e.linkname.is_some() => (rest, FileType::Symlink),
                None => (rest, FileType::RegularFile),
            };
            names.entry(name.to_owned()).or_insert(kind);
        }
        let mut st = self.state();
        let made: Vec<String> = st
            .empty_dirs
            .iter()
            .chain(st.pending.keys().filter_map(|i| st.paths.get(i)))
            .filter_map(|p| p.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect();
        for rest in made {
            let (name, kind) = match rest.split_once('/') {
                Some((name, _)) => (name.to_owned(), FileType::Directory),
                None if st.empty_dirs.contains(&join(path, &rest)) => {
                    (rest.clone(), FileType::Directory)
                }
                None => (rest.clone(), FileType::RegularFile),
            };
            names.entry(name).or_insert(kind);
        }
        let parent = st.ino(&parent_of(path));
        let mut out = vec![
            (ino, FileType::Directory, ".".to_owned()),
            (parent, FileType::Directory, "..".to_owned()),
        ];
        for (name, kind) in names {
            let i = st.ino(&join(path, &name));
            out.push((i, kind, name));
        }
        Ok(out)
    }

    /// Reads `size` bytes at `offset` of a committed entry (sparse: only the blocks the range covers).
    async fn read_entry(&self, entry: &Entry, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let Some(blob) = entry.blob.filter(|_| entry.linkname.is_none()) else {
            return Ok(Vec::new());
        };
        let len = entry.len();
        if offset >= len || size == 0 {
            return Ok(Vec::new());
        }
        let n = u64::from(size).min(len - offset);
        let range = ReadRange {
            start: Some(offset),
            end: None,
            length: Some(n),
        };
        let mut reader = self
            .drive
            .blob_reader(&blob, range)
            .await
            .map_err(|e| errno(&e))?;
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        while let Some(chunk) = reader.next_chunk().await.map_err(|_| Errno::EIO)? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Makes a [`Pending`] for the file at `ino` if it has none: its committed content copied in (none
    /// with `truncate`).
    fn ensure_pending(&self, ino: u64, truncate: bool) -> Result<(), Errno> {
        let path = {
            let st = self.state();
            if st.pending.contains_key(&ino) {
                return Ok(());
            }
            st.paths.get(&ino).cloned().ok_or(Errno::ENOENT)?
        };
        let file = tempfile::tempfile().map_err(|e| io_errno(&e))?;
        let entry = self.rt.block_on(self.entry(&path))?;
        let (executable, metadata) = entry
            .as_ref()
            .map_or((false, None), |e| (e.executable, e.metadata.clone()));
        if let (Some(e), false) = (&entry, truncate) {
            let mut offset = 0u64;
            while offset < e.len() {
                let chunk = self.rt.block_on(self.read_entry(
                    e,
                    offset,
                    u32::try_from(COPY_CHUNK).unwrap_or(u32::MAX),
                ))?;
                if chunk.is_empty() {
                    return Err(Errno::EIO);
                }
                file.write_all_at(&chunk, offset)
                    .map_err(|e| io_errno(&e))?;
                offset += chunk.len() as u64;
            }
        }
        self.state().pending.entry(ino).or_insert(Pending {
            file: Arc::new(file),
            dirty: truncate || entry.is_none(),
            executable,
            metadata,
            opens: 0,
        });
        Ok(())
    }

    /// Makes the file being written at `ino` a new version of the drive, if it changed since the last
    /// commit. A file whose name was removed meanwhile is committed nowhere.
    fn commit(&self, ino: u64) -> Result<(), Errno> {
        let (path, file, opts) = {
            let st = self.state();
            let Some(p) = st.pending.get(&ino).filter(|p| p.dirty) else {
                return Ok(());
            };
            let Some(path) = st.paths.get(&ino) else {
                return Ok(());
            };
            (
                path.clone(),
                p.file.clone(),
                WriteOptions {
                    executable: p.executable,
                    metadata: p.metadata.clone(),
                },
            )
        };
        let mut writer = self
            .rt
            .block_on(self.drive.writer(&path, opts))
            .map_err(|e| errno(&e))?;
        let mut buf = vec![0u8; COPY_CHUNK];
        let mut offset = 0u64;
        loop {
            let n = file.read_at(&mut buf, offset).map_err(|e| io_errno(&e))?;
            if n == 0 {
                break;
            }
            writer
                .write(buf.get(..n).unwrap_or_default())
                .map_err(|e| errno(&e))?;
            offset += n as u64;
        }
        writer.finish().map_err(|e| errno(&e))?;
        if let Some(p) = self.state().pending.get_mut(&ino) {
            p.dirty = false;
        }
        Ok(())
    }

    /// Drops one open of the file being written at `ino`, and its [`Pending`] with the last.
    fn close_pending(&self, ino: u64) {
        let mut st = self.state();
        if let Some(p) = st.pending.get_mut(&ino) {
            p.opens = p.opens.saturating_sub(1);
            if p.opens == 0 {
                st.pending.remove(&ino);
            }
        }
    }

    fn check_writable(&self) -> Result<(), Errno> {
        if self.writable {
            Ok(())
        } else {
            Err(Errno::EROFS)
        }
    }

    /// Whether anything is at `path` (file being written, entry, folder).
    fn exists(&self, path: &str) -> Result<bool, Errno> {
        Ok(self.rt.block_on(self.kind(path))?.is_some())
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<String, Errno> {
        let name = name.to_str().ok_or(Errno::EINVAL)?;
        if name.is_empty() || name.contains('/') || name.contains('\\') {
            return Err(Errno::EINVAL);
        }
        Ok(join(&self.path(parent)?, name))
    }

    fn create_file(&self, path: &str, mode: u32, opens: usize) -> Result<(u64, FileAttr), Errno> {
        self.check_writable()?;
        if self.exists(path)? {
            return Err(Errno::EEXIST);
        }
        let file = tempfile::tempfile().map_err(|e| io_errno(&e))?;
        let executable = mode & 0o100 != 0;
        let ino = {
            let mut st = self.state();
            let ino = st.ino(path);
            st.pending.insert(
                ino,
                Pending {
                    file: Arc::new(file),
                    dirty: true,
                    executable,
                    metadata: None,
                    opens,
                },
            );
            ino
        };
        Ok((
            ino,
            self.attr(
                ino,
                Kind::File {
                    size: 0,
                    executable,
                },
            ),
        ))
    }

    fn unlink(&self, path: &str) -> Result<(), Errno> {
        self.check_writable()?;
        let entry = self.rt.block_on(self.entry(path))?;
        let pending = self.state().pending_at(path).is_some();
        if entry.is_none() && !pending {
            return Err(if self.rt.block_on(self.is_folder(path))? {
                Errno::EISDIR
            } else {
                Errno::ENOENT
            });
        }
        if entry.is_some() {
            self.drive.remove(path).map_err(|e| errno(&e))?;
        }
        self.state().forget_path(path);
        Ok(())
    }

    fn rmdir(&self, path: &str) -> Result<(), Errno> {
        self.check_writable()?;
        if self.rt.block_on(self.entry(path))?.is_some() {
            return Err(Errno::ENOTDIR);
        }
        let below = self.state().pending_below(path);
        let stored = self
            .rt
            .block_on(self.drive.is_folder(path))
            .map_err(|e| errno(&e))?;
        if below || stored {
            return Err(Errno::ENOTEMPTY);
        }
        let mut st = self.state();
        let prefix = child_prefix(path);
        if st.empty_dirs.iter().any(|d| d.starts_with(&prefix)) {
            return Err(Errno::ENOTEMPTY);
        }
        if !st.empty_dirs.remove(path) {
            return Err(Errno::ENOENT);
        }
        st.forget_path(path);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str, flags: RenameFlags) -> Result<(), Errno> {
        self.check_writable()?;
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return Err(Errno::EINVAL);
        }
        if from == to {
            return Ok(());
        }
        let from_kind = self.rt.block_on(self.kind(from))?.ok_or(Errno::ENOENT)?;
        let to_kind = self.rt.block_on(self.kind(to))?;
        if flags.contains(RenameFlags::RENAME_NOREPLACE) && to_kind.is_some() {
            return Err(Errno::EEXIST);
        }
        let mut batch = self.drive.new_batch().map_err(|e| errno(&e))?;
        if from_kind == Kind::Dir {
            match to_kind {
                // A folder with entries below it (one made by mkdir is empty: replaced).
                Some(Kind::Dir) if self.rt.block_on(self.drive.is_folder(to)).unwrap_or(true) => {
                    return Err(Errno::ENOTEMPTY);
                }
                Some(Kind::Dir) | None => {}
                Some(_) => return Err(Errno::ENOTDIR),
            }
            if to.starts_with(&child_prefix(from)) {
                return Err(Errno::EINVAL);
            }
            let entries = self
                .rt
                .block_on(self.drive.list_with(
                    from,
                    ListOptions {
                        recursive: true,
                        skip_invalid: true,
                    },
                ))
                .map_err(|e| errno(&e))?;
            let below = child_prefix(from);
            for e in &entries {
                let Some(rest) = e.key.strip_prefix(&below) else {
                    continue;
                };
                batch
                    .put_entry(&join(to, rest), &e.value())
                    .map_err(|e| errno(&e))?;
                batch.del(&e.key).map_err(|e| errno(&e))?;
            }
        } else {
            if to_kind == Some(Kind::Dir) {
                return Err(Errno::EISDIR);
            }
            if let Some(e) = self.rt.block_on(self.entry(from))? {
                batch.put_entry(to, &e.value()).map_err(|e| errno(&e))?;
                batch.del(from).map_err(|e| errno(&e))?;
            }
        }
        if !batch.is_empty() {
            batch.flush().map_err(|e| errno(&e))?;
        }
        self.state().move_paths(from, to);
        Ok(())
    }

    fn setattr(&self, ino: u64, mode: Option<u32>, size: Option<u64>) -> Result<FileAttr, Errno> {
        let path = self.path(INodeNo(ino))?;
        if mode.is_none() && size.is_none() {
            return self.rt.block_on(self.stat(&path));
        }
        self.check_writable()?;
        let kind = self.rt.block_on(self.kind(&path))?.ok_or(Errno::ENOENT)?;
        if !matches!(kind, Kind::File { .. }) {
            // Folders and links have no bits of their own in a hyperdrive.
            return self.rt.block_on(self.stat(&path));
        }
        if let Some(n) = size {
            self.ensure_pending(ino, n == 0)?;
            let opens = {
                let mut st = self.state();
                let p = st.pending.get_mut(&ino).ok_or(Errno::EIO)?;
                p.file.set_len(n).map_err(|e| io_errno(&e))?;
                p.dirty = true;
                p.opens
            };
            if opens == 0 {
                let r = self.commit(ino);
                self.state().pending.remove(&ino);
                r?;
            }
        }
        if let Some(m) = mode {
            let executable = m & 0o100 != 0;
            let committed_too = {
                let mut st = self.state();
                match st.pending.get_mut(&ino) {
                    Some(p) => {
                        p.executable = executable;
                        !p.dirty
                    }
                    None => true,
                }
            };
            if committed_too {
                if let Some(mut e) = self.rt.block_on(self.entry(&path))? {
                    if e.executable != executable && e.linkname.is_none() {
                        e.executable = executable;
                        self.drive
                            .put_value(&path, &e.value())
                            .map_err(|e| errno(&e))?;
                    }
                }
            }
        }
        self.rt.block_on(self.stat(&path))
    }
}

fn kind_of(e: &Entry) -> Kind {
    match &e.linkname {
        Some(l) => Kind::Link {
            len: l.len() as u64,
        },
        None => Kind::File {
            size: e.len(),
            executable: e.executable,
        },
    }
}

/// The file system `fuser` runs.
struct MountFs {
    inner: Arc<Inner>,
}

impl MountFs {
    /// Runs `f` on the runtime (for requests that may wait for peers).
    fn spawn<F>(&self, f: impl FnOnce(Arc<Inner>) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let fut = f(self.inner.clone());
        self.inner.rt.spawn(fut);
    }
}

impl Filesystem for MountFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let path = match self.inner.child(parent, name) {
            Ok(p) => p,
            Err(_) => return reply.error(Errno::ENOENT),
        };
        self.spawn(|inner| async move {
            match inner.stat(&path).await {
                Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
                Err(e) => reply.error(e),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let path = match self.inner.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|inner| async move {
            match inner.stat(&path).await {
                Ok(attr) => reply.attr(&TTL, &attr),
                Err(e) => reply.error(e),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.inner.setattr(ino.0, mode, size) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let path = match self.inner.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|inner| async move {
            match inner.entry(&path).await {
                Ok(Some(Entry {
                    linkname: Some(l), ..
                })) => reply.data(l.as_bytes()),
                Ok(Some(_)) => reply.error(Errno::EINVAL),
                Ok(None) => reply.error(Errno::ENOENT),
                Err(e) => reply.error(e),
            }
        });
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            if mode & libc::S_IFMT != libc::S_IFREG {
                return Err(Errno::EPERM);
            }
            let path = self.inner.child(parent, name)?;
            let (ino, attr) = self.inner.create_file(&path, mode, 0)?;
            let r = self.inner.commit(ino);
            self.inner.state().pending.remove(&ino);
            r.map(|()| attr)
        })();
        match r {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            self.inner.check_writable()?;
            let path = self.inner.child(parent, name)?;
            if self.inner.exists(&path)? {
                return Err(Errno::EEXIST);
            }
            let mut st = self.inner.state();
            st.empty_dirs.insert(path.clone());
            let ino = st.ino(&path);
            Ok(self.inner.attr(ino, Kind::Dir))
        })();
        match r {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self
            .inner
            .child(parent, name)
            .and_then(|p| self.inner.unlink(&p))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self
            .inner
            .child(parent, name)
            .and_then(|p| self.inner.rmdir(&p))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            self.inner.check_writable()?;
            let path = self.inner.child(parent, link_name)?;
            let target = target.to_str().ok_or(Errno::EINVAL)?;
            if self.inner.exists(&path)? {
                return Err(Errno::EEXIST);
            }
            self.inner
                .drive
                .symlink_with(&path, target, None)
                .map_err(|e| errno(&e))?;
            let ino = self.inner.state().ino(&path);
            Ok(self.inner.attr(
                ino,
                Kind::Link {
                    len: target.len() as u64,
                },
            ))
        })();
        match r {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.inner.child(parent, name).and_then(|from| {
            let to = self.inner.child(newparent, newname)?;
            self.inner.rename(&from, &to, flags)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let truncate = flags.0 & libc::O_TRUNC != 0;
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY || truncate;
        if write {
            let r = (|| {
                self.inner.check_writable()?;
                self.inner.ensure_pending(ino.0, truncate)?;
                let mut st = self.inner.state();
                let p = st.pending.get_mut(&ino.0).ok_or(Errno::EIO)?;
                if truncate {
                    p.file.set_len(0).map_err(|e| io_errno(&e))?;
                    p.dirty = true;
                }
                p.opens += 1;
                Ok(st.handle(Open::Write(ino.0)))
            })();
            return match r {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(e),
            };
        }
        let path = match self.inner.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|inner| async move {
            // A file being written is read from its pending content; others from the entry as it is now.
            if inner.state().pending.contains_key(&ino.0) {
                let fh = {
                    let mut st = inner.state();
                    if let Some(p) = st.pending.get_mut(&ino.0) {
                        p.opens += 1;
                    }
                    st.handle(Open::Write(ino.0))
                };
                return reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            match inner.entry(&path).await {
                Ok(Some(e)) => {
                    let fh = inner.state().handle(Open::Read(Box::new(e)));
                    reply.opened(FileHandle(fh), FopenFlags::empty());
                }
                Ok(None) => reply.error(Errno::ENOENT),
                Err(e) => reply.error(e),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let entry = {
            let st = self.inner.state();
            match st.handles.get(&fh.0) {
                Some(Open::Read(e)) => (**e).clone(),
                Some(Open::Write(ino)) => {
                    let Some(p) = st.pending.get(ino) else {
                        return reply.error(Errno::EBADF);
                    };
                    let mut buf = vec![0u8; size as usize];
                    let mut got = 0;
                    while got < buf.len() {
                        let Some(rest) = buf.get_mut(got..) else {
                            break;
                        };
                        match p.file.read_at(rest, offset + got as u64) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(e) => return reply.error(io_errno(&e)),
                        }
                    }
                    return reply.data(buf.get(..got).unwrap_or_default());
                }
                _ => return reply.error(Errno::EBADF),
            }
        };
        self.spawn(|inner| async move {
            match inner.read_entry(&entry, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.inner.state();
        let Some(Open::Write(ino)) = st.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let ino = *ino;
        let Some(p) = st.pending.get_mut(&ino) else {
            return reply.error(Errno::EBADF);
        };
        match p.file.write_all_at(data, offset) {
            Ok(()) => {
                p.dirty = true;
                reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX));
            }
            Err(e) => reply.error(io_errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let ino = match self.inner.state().handles.get(&fh.0) {
            Some(Open::Write(ino)) => Some(*ino),
            _ => None,
        };
        match ino.map_or(Ok(()), |i| self.inner.commit(i)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.flush(req, ino, fh, LockOwner(0), reply);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let open = self.inner.state().handles.remove(&fh.0);
        let r = match open {
            Some(Open::Write(ino)) => {
                let r = self.inner.commit(ino);
                self.inner.close_pending(ino);
                r
            }
            _ => Ok(()),
        };
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let path = match self.inner.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|inner| async move {
            match inner.listing(ino.0, &path).await {
                Ok(list) => {
                    let fh = inner.state().handle(Open::Dir(list));
                    reply.opened(FileHandle(fh), FopenFlags::empty());
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = self.inner.state();
        let Some(Open::Dir(list)) = st.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in list.iter().enumerate().skip(skip) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.inner.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.inner.child(parent, name).and_then(|path| {
            let (ino, attr) = self.inner.create_file(&path, mode, 1)?;
            let fh = self.inner.state().handle(Open::Write(ino));
            Ok((attr, fh))
        });
        match r {
            Ok((attr, fh)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/"), "/");
        assert_eq!(child_prefix("/"), "/");
        assert_eq!(child_prefix("/x"), "/x/");
    }

    #[test]
    fn renames_move_inodes_and_made_folders() {
        let mut st = State {
            next_ino: 1,
            ..State::default()
        };
        let a = st.ino("/a");
        let ab = st.ino("/a/b");
        let abc = st.ino("/a/b/c");
        let other = st.ino("/ab");
        let target = st.ino("/z/b");
        st.empty_dirs.insert("/a/b/d".into());
        st.empty_dirs.insert("/ab2".into());
        st.move_paths("/a/b", "/z/b");
        assert_eq!(st.paths.get(&a).map(String::as_str), Some("/a"));
        assert_eq!(st.paths.get(&ab).map(String::as_str), Some("/z/b"));
        assert_eq!(st.paths.get(&abc).map(String::as_str), Some("/z/b/c"));
        assert_eq!(st.paths.get(&other).map(String::as_str), Some("/ab"));
        assert_eq!(st.paths.get(&target), None, "the replaced inode is gone");
        assert_eq!(st.inos.get("/z/b/c"), Some(&abc));
        assert_eq!(st.inos.get("/a/b"), None);
        assert!(st.empty_dirs.contains("/z/b/d"));
        assert!(st.empty_dirs.contains("/ab2"));
        assert!(!st.empty_dirs.contains("/a/b/d"));
    }
}
