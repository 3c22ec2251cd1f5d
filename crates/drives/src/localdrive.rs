//! Compatibility with JS `localdrive` 2.2: a folder as a [`Drive`].
//!
//! Keys are absolute unix paths below the folder (`/a/b.txt`). Entries are regular files (with the owner's
//! executable bit and the modification time) and symlinks (link names inside the folder are shown
//! relative to it, starting with `/`, as localdrive does); folders are not entries, and other file types
//! (sockets, FIFOs, devices) and names that are not UTF-8 are left out.
//!
//! Reads resolve keys as unix-path-resolve does (`..` clamped at the root), so a read never leaves the folder.
//! Writes are stricter, since their keys usually come from another drive, possibly a hostile one:
//!
//! - a key with a `..` component, a NUL or naming the root is refused ([`DriveError::InvalidPath`]);
//! - every parent folder is created or checked component by component *without following symlinks*: a
//!   symlink (or a file) where a folder is needed refuses the write, so a hostile drive cannot first plant
//!   `/evil -> /etc` and then write `/evil/passwd`;
//! - content goes to a temporary file in the same folder (`.NAME.PID.N.localdrive.tmp`), is synced to disk
//!   (`fdatasync`), then renamed over the key: the rename replaces a symlink at the key instead of writing
//!   through it, and neither readers nor a crash (a killed process, a power loss) ever leave half a file
//!   under the key's name. Temporary files are left out of listings; those a killed process left behind
//!   are removed by [`Localdrive::remove_stale_temp_files`];
//! - symlinks whose target resolves (lexically) outside the folder are refused.
//!
//! Deleting a file removes the folders it leaves empty, up to the root, as localdrive does.
//!
//! With [`Localdrive::follow_links`] (drives `serve` uses it), entries are stat'ed through symlinks.

use std::io::{ErrorKind, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use crate::drive::{
    clean_key, resolve_key, BlobReader, BlobWriter, Drive, DriveError, Entry, FileContents,
    FileStat, IgnoreFn, Result, Walk, WriteOptions, CHUNK_SIZE,
};

/// A walk whose first folder could not be read: its error, then the end.
struct Failed(Option<DriveError>);

#[async_trait]
impl Walk for Failed {
    async fn next_page(&mut self) -> Result<Vec<Entry>> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(Vec::new()),
        }
    }
}

/// A folder as a drive.
#[derive(Debug)]
pub struct Localdrive {
    root: PathBuf,
    follow_links: bool,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn mtime_ms(meta: &std::fs::Metadata) -> f64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn file_stat(meta: &std::fs::Metadata) -> FileStat {
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    FileStat {
        dev: meta.dev(),
        ino: meta.ino(),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
    }
}

/// Runs file-system work on tokio's blocking pool (one hand-off for several calls).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DriveError::io("file-system task", std::io::Error::other(e.to_string())))?
}

/// [`Localdrive`]'s parent-folder preparation: creates or checks every parent folder of the clean `key`
/// under `root`, component by component and without following symlinks; returns the file's path.
fn prepare_parent_sync(root: &Path, key: &str) -> Result<PathBuf> {
    let comps: Vec<&str> = key.split('/').filter(|c| !c.is_empty()).collect();
    let Some((last, dirs)) = comps.split_last() else {
        return Err(DriveError::InvalidPath {
            path: key.to_string(),
            reason: "names the root",
        });
    };
    std::fs::create_dir_all(root).map_err(|e| DriveError::io(root.display(), e))?;
    let mut p = root.to_path_buf();
    for d in dirs {
        p.push(d);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(DriveError::InvalidPath {
                    path: key.to_string(),
                    reason: "a parent folder is a symlink",
                })
            }
            Ok(_) => {
                return Err(DriveError::InvalidPath {
                    path: key.to_string(),
                    reason: "a parent folder is a file",
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => match std::fs::create_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let m = std::fs::symlink_metadata(&p)
                        .map_err(|e| DriveError::io(p.display(), e))?;
                    if !m.is_dir() {
                        return Err(DriveError::InvalidPath {
                            path: key.to_string(),
                            reason: "a parent folder is not a folder",
                        });
                    }
                }
                Err(e) => return Err(DriveError::io(p.display(), e)),
            },
            Err(e) => return Err(DriveError::io(p.display(), e)),
        }
    }
    p.push(last);
    Ok(p)
}

/// The suffix of [`tmp_path`]'s names.
const TMP_SUFFIX: &str = ".localdrive.tmp";

/// The process id in a name [`tmp_path`] made (`.NAME.PID.N.localdrive.tmp`), `None` for other names.
fn tmp_name_pid(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(TMP_SUFFIX)?;
    let mut parts = stem.rsplitn(3, '.');
    let n = parts.next()?;
    let pid = parts.next()?;
    let rest = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !rest.starts_with('.') || rest.len() < 2 || !digits(n) || !digits(pid) {
        return None;
    }
    pid.parse().ok()
}

/// Whether the process `pid` is alive (on Linux; elsewhere every process counts as alive, so nothing of
/// a running writer is ever removed).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The temporary name a write of `target` goes to before its rename.
fn tmp_path(target: &Path, fallback: &str) -> PathBuf {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(fallback);
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".{name}.{}.{n}.localdrive.tmp", std::process::id()))
}

/// A whole file written as [`Localdrive`]'s writer does (parents checked, temporary file with the exact
/// mode, renamed over the key unless a folder is in the way), in one blocking call.
fn put_sync(root: &Path, key: &str, data: &[u8], executable: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let target = prepare_parent_sync(root, key)?;
    let tmp = tmp_path(&target, "file");
    let mode = if executable { 0o755 } else { 0o644 };
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have cleared bits: set them exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        // On disk before it takes the key's name: a crash never leaves a short file under it.
        file.sync_data()
    })();
    let res = written
        .map_err(|e| DriveError::io(tmp.display(), e))
        .and_then(|()| {
            if let Ok(m) = std::fs::symlink_metadata(&target) {
                if m.is_dir() {
                    return Err(DriveError::io(
                        target.display(),
                        std::io::Error::new(ErrorKind::IsADirectory, "a folder is in the way"),
                    ));
                }
            }
            std::fs::rename(&tmp, &target).map_err(|e| DriveError::io(target.display(), e))
        });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

impl Localdrive {
    /// A drive on the folder `root` (made absolute; it need not exist yet).
    pub fn new(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref();
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        Localdrive {
            root: normalize_path(&root),
            follow_links: false,
        }
    }

    /// Stat entries through symlinks (localdrive's `followLinks`).
    pub fn follow_links(mut self, follow: bool) -> Self {
        self.follow_links = follow;
        self
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file name of a key, for reading (`..` clamped at the root).
    pub fn to_path(&self, key: &str) -> PathBuf {
        let key = resolve_key(key);
        let mut p = self.root.clone();
        for comp in key.split('/').filter(|c| !c.is_empty()) {
            p.push(comp);
        }
        p
    }

    fn entry_from_meta(
        &self,
        key: String,
        path: &Path,
        meta: &std::fs::Metadata,
    ) -> Result<Option<Entry>> {
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| DriveError::io(path.display(), e))?;
            let Some(mut link) = target.to_str().map(str::to_string) else {
                return Ok(None);
            };
            if let Some(root) = self.root.to_str() {
                if let Some(rest) = link.strip_prefix(root) {
                    if rest.is_empty() || rest.starts_with('/') {
                        link = if rest.is_empty() {
                            "/".to_string()
                        } else {
                            rest.to_string()
                        };
                    }
                }
            }
            return Ok(Some(Entry {
                key,
                executable: false,
                linkname: Some(link),
                byte_length: None,
                metadata: None,
                mtime: Some(mtime_ms(meta)),
                seq: None,
                blob: None,
                stat: Some(file_stat(meta)),
            }));
        }
        if !ft.is_file() {
            return Ok(None);
        }
        Ok(Some(Entry {
            key,
            executable: meta.permissions().mode() & 0o100 != 0,
            linkname: None,
            byte_length: Some(meta.len()),
            metadata: None,
            mtime: Some(mtime_ms(meta)),
            seq: None,
            blob: None,
            stat: Some(file_stat(meta)),
        }))
    }

    async fn stat(&self, path: &Path) -> Result<Option<std::fs::Metadata>> {
        let res = if self.follow_links {
            tokio::fs::metadata(path).await
        } else {
            tokio::fs::symlink_metadata(path).await
        };
        match res {
            Ok(m) => Ok(Some(m)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Ok(None)
            }
            Err(e) => Err(DriveError::io(path.display(), e)),
        }
    }

    /// Creates the parent folders of a clean key without following symlinks; returns the file's path.
    /// One blocking task for all the folder checks.
    async fn prepare_parent(&self, key: &str) -> Result<PathBuf> {
        let (root, key) = (self.root.clone(), key.to_string());
        blocking(move || prepare_parent_sync(&root, &key)).await
    }

    async fn gc_empty_folders(&self, mut dir: PathBuf) {
        while dir != self.root && dir.starts_with(&self.root) {
            if tokio::fs::remove_dir(&dir).await.is_err() {
                break;
            }
            if !dir.pop() {
                break;
            }
        }
    }

    /// Removes the temporary files of writes that never finished (a killed process's `.NAME.PID.N.localdrive.tmp`
    /// files, whose process is gone) anywhere in the folder; returns how many. Symlinks are not followed.
    pub async fn remove_stale_temp_files(&self) -> Result<u64> {
        let root = self.root.clone();
        blocking(move || {
            let mut removed = 0;
            let mut dirs = vec![root];
            while let Some(dir) = dirs.pop() {
                let rd = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
                    {
                        continue
                    }
                    Err(e) => return Err(DriveError::io(dir.display(), e)),
                };
                for dirent in rd {
                    let dirent = dirent.map_err(|e| DriveError::io(dir.display(), e))?;
                    let Ok(ft) = dirent.file_type() else {
                        continue;
                    };
                    if ft.is_dir() {
                        dirs.push(dirent.path());
                        continue;
                    }
                    let name = dirent.file_name();
                    let Some(pid) = name.to_str().and_then(tmp_name_pid) else {
                        continue;
                    };
                    if !process_alive(pid) {
                        let path = dirent.path();
                        match std::fs::remove_file(&path) {
                            Ok(()) => removed += 1,
                            Err(e) if e.kind() == ErrorKind::NotFound => {}
                            Err(e) => return Err(DriveError::io(path.display(), e)),
                        }
                    }
                }
            }
            Ok(removed)
        })
        .await
    }

    fn has_entries(&self, dir: &Path, key: &str) -> Result<bool> {
        let mut walk = LocalWalk::new(self, dir.to_path_buf(), key, None, 1)?;
        Ok(!walk.next_page_sync()?.is_empty())
    }

    /// The names in `dir` a listing walks (not UTF-8, temporary files and ignored keys left out), each with
    /// whether it is a folder to descend into, in key order: a folder's name sorts as if it ended in `/`
    /// (`/a.txt` before `/a/b`, since `.` < `/`). Nothing for a missing folder or a file.
    fn walk_dir(&self, dir: &Path, key: &str, ignore: Option<IgnoreFn<'_>>) -> Result<Vec<Child>> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(DriveError::io(dir.display(), e)),
        };
        let mut children = Vec::new();
        for dirent in rd {
            let dirent = dirent.map_err(|e| DriveError::io(dir.display(), e))?;
            let name = dirent.file_name();
            let Some(name) = name.to_str() else {
                tracing::warn!(dir = %dir.display(), "skipping a file name that is not UTF-8");
                continue;
            };
            if tmp_name_pid(name).is_some() {
                continue;
            }
            let child = child_key(key, name);
            if ignore.is_some_and(|f| f(&child)) {
                continue;
            }
            // Not following links: the type the folder gives (no stat); following them: a stat.
            let is_dir = if self.follow_links {
                std::fs::metadata(dirent.path()).is_ok_and(|m| m.is_dir())
            } else {
                match dirent.file_type() {
                    Ok(t) => t.is_dir(),
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(DriveError::io(dirent.path().display(), e)),
                }
            };
            let name_at = child.len() - name.len();
            children.push(Child {
                key: child,
                name_at,
                is_dir,
                dirent,
            });
        }
        children.sort_unstable_by(|a, b| a.sort_key().cmp(b.sort_key()));
        Ok(children)
    }
}

/// A name in a folder being walked (its folder entry kept: a file is stat'ed relative to the open folder,
/// no path walk per file).
struct Child {
    /// Its key (the folder's key, `/`, its name).
    key: String,
    /// Where its name starts in `key`.
    name_at: usize,
    is_dir: bool,
    dirent: std::fs::DirEntry,
}

impl Child {
    fn name(&self) -> &str {
        self.key.get(self.name_at..).unwrap_or_default()
    }

    /// The bytes the name sorts by among its siblings: a folder's with a `/` after it.
    fn sort_key(&self) -> impl Iterator<Item = u8> + '_ {
        self.name().bytes().chain(self.is_dir.then_some(b'/'))
    }
}

fn child_key(key: &str, name: &str) -> String {
    if key == "/" {
        format!("/{name}")
    } else {
        format!("{key}/{name}")
    }
}

/// A folder being walked: its path and its names (in reverse key order: the next is popped), each with its
/// key.
struct Frame {
    dir: PathBuf,
    rest: Vec<Child>,
}

/// [`Localdrive`]'s walk ([`Drive::walk`]): depth first, each folder's names read and sorted when the walk
/// enters it, files stat'ed as they are listed. It holds the names of the folders it is in, not the entries
/// listed so far.
struct LocalWalk<'a> {
    drive: &'a Localdrive,
    ignore: Option<IgnoreFn<'a>>,
    page: usize,
    stack: Vec<Frame>,
}

impl<'a> LocalWalk<'a> {
    fn new(
        drive: &'a Localdrive,
        dir: PathBuf,
        key: &str,
        ignore: Option<IgnoreFn<'a>>,
        page: usize,
    ) -> Result<Self> {
        let mut rest = drive.walk_dir(&dir, key, ignore)?;
        rest.reverse();
        Ok(LocalWalk {
            drive,
            ignore,
            page: page.max(1),
            stack: vec![Frame { dir, rest }],
        })
    }

    fn next_page_sync(&mut self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        while out.len() < self.page {
            let Some(frame) = self.stack.last_mut() else {
                break;
            };
            let Some(child) = frame.rest.pop() else {
                self.stack.pop();
                continue;
            };
            let path = |frame: &Frame| frame.dir.join(child.name());
            if child.is_dir {
                let dir = path(frame);
                let mut rest = self.drive.walk_dir(&dir, &child.key, self.ignore)?;
                rest.reverse();
                self.stack.push(Frame { dir, rest });
                continue;
            }
            let meta = if self.drive.follow_links {
                std::fs::metadata(path(frame))
            } else {
                child.dirent.metadata()
            };
            let meta = match meta {
                Ok(m) => m,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    continue
                }
                Err(e) => return Err(DriveError::io(path(frame).display(), e)),
            };
            // The file's path only for a symlink (its target is read); a file's entry needs none.
            let file = if meta.file_type().is_symlink() {
                path(frame)
            } else {
                PathBuf::new()
            };
            // (A folder now where a file was listed is left out: a listing never holds folders.)
            if let Some(e) = self.drive.entry_from_meta(child.key, &file, &meta)? {
                out.push(e);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Walk for LocalWalk<'_> {
    async fn next_page(&mut self) -> Result<Vec<Entry>> {
        self.next_page_sync()
    }
}

/// Lexical normalization of an absolute path (`.` dropped, `..` pops).
fn normalize_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Reads a file chunk by chunk on tokio's blocking pool, one chunk ahead: the next chunk is read while the
/// caller works on the current one (for a big file, reading and hashing overlap on two cores). Chunks are
/// read into fresh buffers that are handed over as they are, never copied again.
struct FileReader {
    file: Arc<std::fs::File>,
    /// The chunk being read (or already read), if any.
    ahead: Option<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>>,
    /// A chunk read when the file was opened, not handed out yet.
    ready: Option<Vec<u8>>,
    /// Bytes not yet asked of the file.
    unread: u64,
    path: PathBuf,
}

/// Reads up to `want` bytes from the file's position (fewer only at its end) into a new buffer.
fn read_chunk(file: &std::fs::File, want: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(CHUNK_SIZE));
    file.take(want).read_to_end(&mut buf)?;
    Ok(buf)
}

impl FileReader {
    /// Opens `path` at `start` for `length` bytes (`None`: to the end) and reads the first chunk, all in one
    /// trip to the blocking pool.
    async fn open(path: PathBuf, start: u64, length: Option<u64>) -> Result<Self> {
        let p = path.clone();
        let opened = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            use std::io::Seek;
            let mut file = std::fs::File::open(&p)?;
            let size = file.metadata()?.len();
            let start = start.min(size);
            if start > 0 {
                file.seek(SeekFrom::Start(start))?;
            }
            let total = length.map_or(size - start, |l| l.min(size - start));
            let first = read_chunk(&file, total.min(CHUNK_SIZE as u64))?;
            Ok((file, total, first))
        })
        .await
        .map_err(|e| DriveError::io(path.display(), std::io::Error::other(e)))?;
        let (file, total, first) = opened.map_err(|e| DriveError::io(path.display(), e))?;
        let unread = if (first.len() as u64) < total.min(CHUNK_SIZE as u64) {
            0 // the file shrank under us: its end is here
        } else {
            total - first.len() as u64
        };
        Ok(FileReader {
            file: Arc::new(file),
            ahead: None,
            ready: (!first.is_empty()).then_some(first),
            unread,
            path,
        })
    }

    /// Starts reading the next chunk, if any is left.
    fn read_ahead(&mut self) {
        if self.unread == 0 || self.ahead.is_some() {
            return;
        }
        let want = self.unread.min(CHUNK_SIZE as u64);
        self.unread -= want;
        let file = Arc::clone(&self.file);
        self.ahead = Some(tokio::task::spawn_blocking(move || read_chunk(&file, want)));
    }
}

#[async_trait]
impl BlobReader for FileReader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(chunk) = self.ready.take() {
            self.read_ahead();
            return Ok(Some(chunk));
        }
        self.read_ahead();
        let Some(pending) = self.ahead.take() else {
            return Ok(None);
        };
        let chunk = pending
            .await
            .map_err(|e| DriveError::io(self.path.display(), std::io::Error::other(e)))?
            .map_err(|e| DriveError::io("read", e))?;
        if chunk.is_empty() {
            // The file shrank under us: report the end.
            self.unread = 0;
            return Ok(None);
        }
        self.read_ahead();
        Ok(Some(chunk))
    }
}

/// The keys of the files a [`Localdrive::read_files`] reads, with their listed sizes: one string for all the
/// keys (no allocation per file).
struct FileKeys {
    keys: String,
    files: Vec<(std::ops::Range<usize>, u64)>,
}

/// [`Localdrive::read_files`]' file-system task: each file opened relative to its folder (the folder opened
/// once for the files of it that come one after another, as a walk lists them), read into one buffer with
/// one `read` when it is no bigger than listed: a read that fills the listed size and one byte more found
/// the file grown (left to an ordinary read, `None`); a shorter one than listed is confirmed by reading the
/// end and checking that it is still a regular file (opened without blocking: a FIFO put in its place
/// fails its read, it does not hang the mirror). A name that no longer opens fails its own read only.
fn read_files_sync(root: &Path, keys: &FileKeys) -> FileContents {
    use std::io::Read;
    use std::os::fd::AsFd;
    let total: u64 = keys.files.iter().map(|(_, n)| n.saturating_add(1)).sum();
    let mut out = FileContents {
        data: Vec::with_capacity(usize::try_from(total).unwrap_or(0).min(64 << 20)),
        files: Vec::with_capacity(keys.files.len()),
    };
    // The folder open now: its key (from the root, without a trailing `/`) and descriptor.
    let mut dir: Option<(String, std::fs::File)> = None;
    for (range, listed) in &keys.files {
        let key = resolve_key(&keys.keys[range.clone()]);
        let (parent, name) = key.rsplit_once('/').unwrap_or(("", &key));
        let fail = |e: std::io::Error| Some(Err(DriveError::io(&key, e)));
        if dir.as_ref().is_none_or(|(k, _)| k != parent) {
            let mut path = root.to_path_buf();
            path.extend(parent.split('/').filter(|c| !c.is_empty()));
            dir = match std::fs::File::open(&path) {
                Ok(f) => Some((parent.to_string(), f)),
                Err(e) => {
                    out.files.push(fail(e));
                    continue;
                }
            };
        }
        let Some((_, d)) = &dir else {
            continue;
        };
        // Not blocking on a FIFO put where a file was listed; no controlling terminal from a device.
        let flags = rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::CLOEXEC
            | rustix::fs::OFlags::NOCTTY
            | rustix::fs::OFlags::NONBLOCK;
        let mut file = match rustix::fs::openat(d.as_fd(), name, flags, rustix::fs::Mode::empty()) {
            Ok(fd) => std::fs::File::from(fd),
            Err(e) => {
                out.files.push(fail(e.into()));
                continue;
            }
        };
        let Ok(want) = usize::try_from(listed.saturating_add(1)) else {
            out.files.push(None);
            continue;
        };
        let start = out.data.len();
        out.data.resize(start + want, 0);
        let mut got = 0;
        let mut res = loop {
            match file.read(&mut out.data[start + got..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    got += n;
                    // Filled to the listed size: done, unless it gave more (grown).
                    if got as u64 >= *listed {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        out.data.truncate(start + got);
        // Shorter than listed: still a file that shrank, not a FIFO or a device put in its place (their
        // reads end early too)?
        if res.is_ok() && (got as u64) < *listed {
            res = match file.metadata() {
                Ok(m) if m.is_file() => Ok(()),
                Ok(_) => Err(std::io::Error::other("no longer a regular file")),
                Err(e) => Err(e),
            };
        }
        match res {
            Err(e) => out.files.push(fail(e)),
            Ok(()) if got as u64 > *listed => {
                out.data.truncate(start);
                out.files.push(None);
            }
            Ok(()) => out.files.push(Some(Ok(start..start + got))),
        }
    }
    out
}

struct FileWriter {
    file: tokio::fs::File,
    tmp: PathBuf,
    target: PathBuf,
    done: bool,
}

#[async_trait]
impl BlobWriter for FileWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| DriveError::io(self.tmp.display(), e))
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        self.file
            .flush()
            .await
            .map_err(|e| DriveError::io(self.tmp.display(), e))?;
        // On disk before it takes the key's name: a crash never leaves a short file under it.
        self.file
            .sync_data()
            .await
            .map_err(|e| DriveError::io(self.tmp.display(), e))?;
        if let Ok(m) = tokio::fs::symlink_metadata(&self.target).await {
            if m.is_dir() {
                return Err(DriveError::io(
                    self.target.display(),
                    std::io::Error::new(ErrorKind::IsADirectory, "a folder is in the way"),
                ));
            }
        }
        tokio::fs::rename(&self.tmp, &self.target)
            .await
            .map_err(|e| DriveError::io(self.target.display(), e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[async_trait]
impl Drive for Localdrive {
    async fn entry(&self, key: &str) -> Result<Option<Entry>> {
        let key = resolve_key(key);
        let path = self.to_path(&key);
        let Some(meta) = self.stat(&path).await? else {
            return Ok(None);
        };
        if meta.is_dir() {
            return Ok(None);
        }
        self.entry_from_meta(key, &path, &meta)
    }

    async fn list(&self, folder: &str, ignore: Option<IgnoreFn<'_>>) -> Result<Vec<Entry>> {
        let key = resolve_key(folder);
        let dir = self.to_path(&key);
        let mut walk = LocalWalk::new(self, dir, &key, ignore, usize::MAX)?;
        walk.next_page_sync()
    }

    /// The folder's tree in key order (see [`LocalWalk`]); a folder that cannot be read fails the page
    /// that reaches it.
    fn walk<'a>(
        &'a self,
        folder: &str,
        ignore: Option<IgnoreFn<'a>>,
        page: usize,
    ) -> Box<dyn Walk + 'a> {
        let key = resolve_key(folder);
        let dir = self.to_path(&key);
        match LocalWalk::new(self, dir, &key, ignore, page) {
            Ok(w) => Box::new(w),
            Err(e) => Box::new(Failed(Some(e))),
        }
    }

    async fn readdir(&self, folder: &str) -> Result<Vec<String>> {
        let key = resolve_key(folder);
        let dir = self.to_path(&key);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(DriveError::io(dir.display(), e)),
        };
        let mut names = Vec::new();
        for dirent in rd {
            let dirent = dirent.map_err(|e| DriveError::io(dir.display(), e))?;
            let Some(name) = dirent.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if tmp_name_pid(&name).is_some() {
                continue;
            }
            let child = if key == "/" {
                format!("/{name}")
            } else {
                format!("{key}/{name}")
            };
            let path = dirent.path();
            let Some(meta) = self.stat(&path).await? else {
                continue;
            };
            let keep = if meta.is_dir() {
                self.has_entries(&path, &child)?
            } else {
                self.entry_from_meta(child, &path, &meta)?.is_some()
            };
            if keep {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    async fn read(
        &self,
        entry: &Entry,
        start: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn BlobReader>> {
        let path = self.to_path(&entry.key);
        Ok(Box::new(FileReader::open(path, start, length).await?))
    }

    /// Every file in one file-system task (see [`read_files_sync`]).
    async fn read_files(&self, entries: &[&Entry]) -> FileContents {
        let mut keys = FileKeys {
            keys: String::with_capacity(entries.iter().map(|e| e.key.len()).sum()),
            files: Vec::with_capacity(entries.len()),
        };
        for e in entries {
            let start = keys.keys.len();
            keys.keys.push_str(&e.key);
            keys.files.push((start..keys.keys.len(), e.len()));
        }
        let root = self.root.clone();
        let n = entries.len();
        match tokio::task::spawn_blocking(move || read_files_sync(&root, &keys)).await {
            Ok(contents) => contents,
            Err(e) => FileContents {
                data: Vec::new(),
                files: (0..n)
                    .map(|_| {
                        let e = std::io::Error::other(e.to_string());
                        Some(Err(DriveError::io("file-system task", e)))
                    })
                    .collect(),
            },
        }
    }

    async fn write(&self, key: &str, opts: WriteOptions) -> Result<Box<dyn BlobWriter>> {
        let key = clean_key(key)?;
        let target = self.prepare_parent(&key).await?;
        let tmp = tmp_path(&target, "file");
        let mode = if opts.executable { 0o755 } else { 0o644 };
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .await
            .map_err(|e| DriveError::io(tmp.display(), e))?;
        // The umask may have cleared bits: set them exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .await
            .map_err(|e| DriveError::io(tmp.display(), e))?;
        Ok(Box::new(FileWriter {
            file,
            tmp,
            target,
            done: false,
        }))
    }

    /// A whole file in one blocking task (what [`Drive::write`] does in several), for small files.
    async fn put(&self, key: &str, data: &[u8], opts: WriteOptions) -> Result<()> {
        let key = clean_key(key)?;
        let (root, data) = (self.root.clone(), data.to_vec());
        blocking(move || put_sync(&root, &key, &data, opts.executable)).await
    }

    async fn del(&self, key: &str) -> Result<()> {
        let key = resolve_key(key);
        if key == "/" {
            return Ok(());
        }
        let path = self.to_path(&key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(())
            }
            Err(e) => return Err(DriveError::io(path.display(), e)),
        }
        if let Some(parent) = path.parent() {
            self.gc_empty_folders(parent.to_path_buf()).await;
        }
        Ok(())
    }

    async fn symlink(&self, key: &str, linkname: &str) -> Result<()> {
        let key = clean_key(key)?;
        if linkname.contains('\0') || linkname.is_empty() {
            return Err(DriveError::InvalidPath {
                path: linkname.to_string(),
                reason: "bad link name",
            });
        }
        // The link must resolve inside the folder, `..` never climbing above it.
        let parent = key
            .rsplit_once('/')
            .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
        let mut depth: i64 = if linkname.starts_with('/') {
            0
        } else {
            parent.split('/').filter(|c| !c.is_empty()).count() as i64
        };
        for comp in linkname.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    depth -= 1;
                    if depth < 0 {
                        return Err(DriveError::InvalidPath {
                            path: linkname.to_string(),
                            reason: "symlink target outside the folder",
                        });
                    }
                }
                _ => depth += 1,
            }
        }
        let pointer = self.prepare_parent(&key).await?;
        let target: PathBuf = if linkname.starts_with('/') {
            self.to_path(linkname)
        } else {
            PathBuf::from(linkname)
        };
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = pointer
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("link");
        let tmp =
            pointer.with_file_name(format!(".{name}.{}.{n}.localdrive.tmp", std::process::id()));
        tokio::fs::symlink(&target, &tmp)
            .await
            .map_err(|e| DriveError::io(tmp.display(), e))?;
        if let Err(e) = tokio::fs::rename(&tmp, &pointer).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(DriveError::io(pointer.display(), e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::{Mirror, MirrorEvent, MirrorOptions, Op};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn read_files_reads_each_file_whole_in_one_buffer() {
        rt().block_on(async {
            let dir = tempfile::tempdir().expect("tmp");
            let d = Localdrive::new(dir.path());
            for (key, data) in [
                ("/a/1", &b"one"[..]),
                ("/a/2", b""),
                ("/b/c/3", b"three"),
                ("/b/grows", b"12"),
                ("/b/shrinks", b"123456"),
                ("/top", b"top"),
            ] {
                d.put(key, data, WriteOptions::default())
                    .await
                    .expect("put");
            }
            let mut listed = d.list("/", None).await.expect("list");
            listed.push(Entry::file("/a/gone", 4, false));
            listed.push(Entry::file("/../top", 3, false));
            // Changed since the listing: one grew past its listed size, one shrank.
            std::fs::write(dir.path().join("b/grows"), b"123").expect("write");
            std::fs::write(dir.path().join("b/shrinks"), b"1").expect("write");
            let refs: Vec<&Entry> = listed.iter().collect();
            let got = d.read_files(&refs).await;
            assert_eq!(got.files.len(), refs.len());
            let mut contents = Vec::new();
            for (e, f) in refs.iter().zip(&got.files) {
                let c = match f {
                    Some(Ok(range)) => Some(got.get(range).to_vec()),
                    Some(Err(_)) => Some(b"error".to_vec()),
                    None => None,
                };
                contents.push((e.key.as_str(), c));
            }
            let want: Vec<(&str, Option<Vec<u8>>)> = vec![
                ("/a/1", Some(b"one".to_vec())),
                ("/a/2", Some(Vec::new())),
                ("/b/c/3", Some(b"three".to_vec())),
                // Grown: left to an ordinary read.
                ("/b/grows", None),
                ("/b/shrinks", Some(b"1".to_vec())),
                ("/top", Some(b"top".to_vec())),
                // Missing: only its own read fails.
                ("/a/gone", Some(b"error".to_vec())),
                // Resolved as reads are (`..` clamped at the root).
                ("/../top", Some(b"top".to_vec())),
            ];
            assert_eq!(contents, want);
        });
    }

    #[cfg(unix)]
    #[test]
    fn read_files_does_not_wait_on_a_fifo_put_where_a_file_was_listed() {
        rt().block_on(async {
            let dir = tempfile::tempdir().expect("tmp");
            let d = Localdrive::new(dir.path());
            d.put("/f", b"data", WriteOptions::default())
                .await
                .expect("put");
            d.put("/g", b"more", WriteOptions::default())
                .await
                .expect("put");
            let listed = d.list("/", None).await.expect("list");
            std::fs::remove_file(dir.path().join("f")).expect("rm");
            rustix::fs::mknodat(
                rustix::fs::CWD,
                dir.path().join("f"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .expect("mkfifo");
            let refs: Vec<&Entry> = listed.iter().collect();
            let got = d.read_files(&refs).await;
            assert!(matches!(got.files[0], Some(Err(_))), "{:?}", got.files);
            match &got.files[1] {
                Some(Ok(range)) => assert_eq!(got.get(range), b"more"),
                other => panic!("{other:?}"),
            }
        });
    }

    #[test]
    fn put_get_list_del() {
        rt().block_on(async {
            let dir = tempfile::tempdir().expect("tmp");
            let d = Localdrive::new(dir.path());
            d.put("/a/b/c.txt", b"hello", WriteOptions::default())
                .await
                .expect("put");
            d.put(
                "x.sh",
                b"#!/bin/sh",
                WriteOptions {
                    executable: true,
                    metadata: None,
                },
            )
            .await
            .expect("put");
            d.put("/empty", b"", WriteOptions::default())
                .await
                .expect("put");
            d.symlink("/link", "a/b/c.txt").await.expect("symlink");
            let list = d.list("/", None).await.expect("list");
            let keys: Vec<_> = list.iter().map(|e| e.key.as_str()).collect();
            assert_eq!(keys, ["/a/b/c.txt", "/empty", "/link", "/x.sh"]);
            assert!(list[3].executable);
            assert!(!list[0].executable);
            assert_eq!(list[1].byte_length, Some(0));
            assert_eq!(list[2].linkname.as_deref(), Some("a/b/c.txt"));
            assert_eq!(
                d.get("/a/b/c.txt").await.expect("get").as_deref(),
                Some(&b"hello"[..])
            );
            assert_eq!(
                d.readdir("/").await.expect("readdir"),
                ["a", "empty", "link", "x.sh"]
            );
            let e = d.entry("/a/b/c.txt").await.expect("entry").expect("some");
            let mut r = d.read(&e, 1, Some(3)).await.expect("read");
            assert_eq!(
                r.next_chunk().await.expect("chunk").as_deref(),
                Some(&b"ell"[..])
            );
            d.del("/a/b/c.txt").await.expect("del");
            assert!(!dir.path().join("a").exists(), "empty folders collected");
            assert_eq!(
                d.readdir("/").await.expect("readdir"),
                ["empty", "link", "x.sh"]
            );
        });
    }

    #[test]
    fn refuses_writes_outside() {
        rt().block_on(async {
            let outer = tempfile::tempdir().expect("tmp");
            let root = outer.path().join("root");
            let d = Localdrive::new(&root);
            assert!(d
                .put("/../escape", b"x", WriteOptions::default())
                .await
                .is_err());
            assert!(d
                .put("/a/../../escape", b"x", WriteOptions::default())
                .await
                .is_err());
            assert!(d.symlink("/l", "../../etc").await.is_err());
            assert!(d.symlink("/a/l", "../../x").await.is_err());
            d.symlink("/a/ok", "../b").await.expect("inside link");
            // A symlinked folder planted by someone else is never written through.
            std::os::unix::fs::symlink(outer.path(), root.join("evil")).expect("plant");
            assert!(d
                .put("/evil/passwd", b"x", WriteOptions::default())
                .await
                .is_err());
            assert!(!outer.path().join("passwd").exists());
            // A symlink at the key is replaced, not written through.
            std::os::unix::fs::symlink(outer.path().join("victim"), root.join("f")).expect("plant");
            d.put("/f", b"data", WriteOptions::default())
                .await
                .expect("put");
            assert!(!outer.path().join("victim").exists());
            assert_eq!(std::fs::read(root.join("f")).expect("read"), b"data");
            // Reads clamp `..` at the root.
            assert_eq!(d.to_path("/../../etc/passwd"), root.join("etc/passwd"));
        });
    }

    #[test]
    fn mirror_folder_to_folder() {
        rt().block_on(async {
            let a = tempfile::tempdir().expect("tmp");
            let b = tempfile::tempdir().expect("tmp");
            let src = Localdrive::new(a.path());
            let dst = Localdrive::new(b.path());
            src.put("/one", b"1", WriteOptions::default())
                .await
                .expect("put");
            src.put(
                "/dir/two",
                b"22",
                WriteOptions {
                    executable: true,
                    metadata: None,
                },
            )
            .await
            .expect("put");
            src.put("/dir/ünï", b"", WriteOptions::default())
                .await
                .expect("put");
            dst.put("/stale", b"old", WriteOptions::default())
                .await
                .expect("put");
            dst.put("/one", b"X", WriteOptions::default())
                .await
                .expect("put");

            let mut diffs = Vec::new();
            let sum = Mirror::new(&src, &dst, MirrorOptions::default())
                .run(|e| {
                    if let MirrorEvent::Diff(d) = e {
                        diffs.push((d.op, d.key));
                    }
                })
                .await
                .expect("mirror");
            assert_eq!(
                diffs,
                [
                    (Op::Remove, "/stale".to_string()),
                    (Op::Add, "/dir/two".to_string()),
                    (Op::Add, "/dir/ünï".to_string()),
                    (Op::Change, "/one".to_string()),
                ]
            );
            assert_eq!(
                (
                    sum.count.files,
                    sum.count.add,
                    sum.count.change,
                    sum.count.remove
                ),
                (3, 2, 1, 1)
            );
            let meta = std::fs::metadata(b.path().join("dir/two")).expect("two");
            assert_eq!(meta.permissions().mode() & 0o777, 0o755);

            // Unchanged files are compared by content and not rewritten: the mtime stays.
            let before = std::fs::metadata(b.path().join("one"))
                .expect("one")
                .modified()
                .expect("mtime");
            let sum = Mirror::new(&src, &dst, MirrorOptions::default())
                .run(|_| {})
                .await
                .expect("mirror");
            assert_eq!(
                (sum.count.add, sum.count.change, sum.count.remove),
                (0, 0, 0)
            );
            let after = std::fs::metadata(b.path().join("one"))
                .expect("one")
                .modified()
                .expect("mtime");
            assert_eq!(before, after);

            // Same size, other bytes: a change. Executable bit only: a change too.
            std::fs::write(a.path().join("one"), b"2").expect("write");
            std::fs::set_permissions(
                a.path().join("dir/ünï"),
                std::fs::Permissions::from_mode(0o755),
            )
            .expect("chmod");
            let mut ops = Vec::new();
            Mirror::new(
                &src,
                &dst,
                MirrorOptions {
                    dry_run: true,
                    ..Default::default()
                },
            )
            .run(|e| {
                if let MirrorEvent::Diff(d) = e {
                    ops.push((d.op, d.key));
                }
            })
            .await
            .expect("dry run");
            assert_eq!(
                ops,
                [
                    (Op::Change, "/dir/ünï".to_string()),
                    (Op::Change, "/one".to_string())
                ]
            );
            assert_eq!(
                std::fs::read(b.path().join("one")).expect("read"),
                b"1",
                "dry run writes nothing"
            );

            // Prefix and filter.
            let sum = Mirror::new(
                &src,
                &dst,
                MirrorOptions {
                    prefix: vec!["/dir".into()],
                    filter: Some(std::sync::Arc::new(|k: &str| !k.ends_with("two"))),
                    ..Default::default()
                },
            )
            .run(|_| {})
            .await
            .expect("mirror");
            assert_eq!((sum.count.files, sum.count.change), (1, 1));
            assert_eq!(
                std::fs::read(b.path().join("one")).expect("read"),
                b"1",
                "outside the prefix"
            );
        });
    }
}
