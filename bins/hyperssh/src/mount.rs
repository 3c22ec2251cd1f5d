//! What `hyperssh-fuse` needs around sshfs: the checks before it starts (sshfs, FUSE, a fusermount to
//! unmount with, the mount point), watching the mount table for the mount to come up or go away, and the
//! unmount itself.
//!
//! The mount table is `/proc/self/mountinfo`; `poll(2)` on it reports `POLLPRI` when any mount of the
//! namespace changes, so [`MountTable::wait_change`] waits for a change instead of re-reading on a timer.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The FUSE device.
pub const FUSE_DEVICE: &str = "/dev/fuse";

/// The unmount helpers, preferred first (fuse3's, then fuse2's).
pub const FUSERMOUNTS: [&str; 2] = ["fusermount3", "fusermount"];

/// Why `hyperssh-fuse` cannot mount.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// `sshfs` is not on `PATH`.
    #[error("sshfs is not installed (not found on PATH); install it (Debian/Ubuntu: apt-get install sshfs)")]
    NoSshfs,
    /// Neither `fusermount3` nor `fusermount` is on `PATH`.
    #[error("neither fusermount3 nor fusermount is on PATH; install FUSE (Debian/Ubuntu: apt-get install fuse3)")]
    NoFusermount,
    /// `/dev/fuse` does not exist.
    #[error("{FUSE_DEVICE} is missing: FUSE is not available here (load the fuse kernel module; in a container, run it with --device /dev/fuse --cap-add SYS_ADMIN)")]
    NoFuseDevice,
    /// `/dev/fuse` cannot be opened.
    #[error("cannot open {FUSE_DEVICE}: {0} (FUSE is not usable by this user)")]
    FuseDevice(std::io::Error),
    /// The mount point is not an existing folder.
    #[error("mount point {path}: {reason}")]
    MountPoint {
        /// The mount point as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Something is mounted on the mount point already.
    #[error("mount point {0}: something is mounted there already")]
    AlreadyMounted(PathBuf),
    /// The mount table cannot be read.
    #[error("reading the mount table: {0}")]
    MountTable(std::io::Error),
}

/// Finds `program` in the directories of `path` (a `PATH` value): the first executable regular file.
pub fn find_program(program: &str, path: Option<OsString>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = path?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// What the checks found: the programs to run and the mount point to watch.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The sshfs executable.
    pub sshfs: PathBuf,
    /// The fusermount executable to unmount with.
    pub fusermount: PathBuf,
    /// The mount point, absolute and with symbolic links resolved (as the mount table shows it).
    pub mount: PathBuf,
}

/// Checks everything that can be checked before sshfs runs, so that a missing piece is a clear error
/// instead of an sshfs failure later: sshfs and a fusermount on `PATH`, `/dev/fuse` present and openable,
/// the mount point an existing folder with nothing mounted on it.
pub fn prepare(mount: &Path) -> Result<Prepared, MountError> {
    let path = std::env::var_os("PATH");
    let sshfs = find_program("sshfs", path.clone()).ok_or(MountError::NoSshfs)?;
    let fusermount = FUSERMOUNTS
        .iter()
        .find_map(|p| find_program(p, path.clone()))
        .ok_or(MountError::NoFusermount)?;
    check_fuse_device(Path::new(FUSE_DEVICE))?;
    let bad = |reason: String| MountError::MountPoint {
        path: mount.to_path_buf(),
        reason,
    };
    let canonical = std::fs::canonicalize(mount).map_err(|e| bad(e.to_string()))?;
    if !canonical.is_dir() {
        return Err(bad("not a folder".into()));
    }
    let table = std::fs::read_to_string("/proc/self/mountinfo").map_err(MountError::MountTable)?;
    if fuse_mounted(&table, &canonical) {
        return Err(MountError::AlreadyMounted(mount.to_path_buf()));
    }
    Ok(Prepared {
        sshfs,
        fusermount,
        mount: canonical,
    })
}

/// Checks that the FUSE device exists and that this process may open it.
pub fn check_fuse_device(device: &Path) -> Result<(), MountError> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(MountError::NoFuseDevice),
        Err(e) => Err(MountError::FuseDevice(e)),
    }
}

/// Undoes the octal escapes of a mountinfo field (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Whether `table` (the text of a `/proc/*/mountinfo`) has a FUSE file system (type `fuse` or
/// `fuse.*`, as sshfs's `fuse.sshfs`) mounted on `point` (absolute, symbolic links resolved).
pub fn fuse_mounted(table: &str, point: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let want = point.as_os_str().as_bytes();
    table.lines().any(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
        let mount_point = line.split(' ').nth(4);
        let fs_type = line
            .split_once(" - ")
            .and_then(|(_, rest)| rest.split(' ').next());
        matches!((mount_point, fs_type), (Some(m), Some(t))
            if unescape(m) == want && (t == "fuse" || t.starts_with("fuse.")))
    })
}

/// This process's mount table, open for reading and for waiting on changes.
#[derive(Debug)]
pub struct MountTable {
    file: File,
}

impl MountTable {
    /// Opens `/proc/self/mountinfo`.
    pub fn open() -> std::io::Result<Self> {
        File::open("/proc/self/mountinfo").map(|file| Self { file })
    }

    /// Whether a FUSE file system is mounted on `point` now (see [`fuse_mounted`]).
    pub fn fuse_mounted(&mut self, point: &Path) -> std::io::Result<bool> {
        self.file.seek(SeekFrom::Start(0))?;
        let mut text = String::new();
        self.file.read_to_string(&mut text)?;
        Ok(fuse_mounted(&text, point))
    }

    /// Waits until the mount table changed since the last wait (or since it was opened), at most
    /// `timeout`; returns whether it changed.
    pub fn wait_change(&mut self, timeout: Duration) -> std::io::Result<bool> {
        use std::os::fd::AsRawFd;
        let mut fds = [libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        }];
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(rc > 0 && fds[0].revents & (libc::POLLPRI | libc::POLLERR) != 0)
    }
}

/// Blocks until a FUSE file system is mounted on `point` and answers (`true`), or `gave_up()` says to
/// stop (`false`, checked at least every `every`).
///
/// sshfs 3 mounts before its ssh connection is up (a failed login then takes the mount down again), so
/// being in the mount table is not enough: the mount's root must also answer a `stat`, which sshfs serves
/// only once logged in (a password prompt holds it until answered).
pub fn wait_mounted(
    point: &Path,
    every: Duration,
    gave_up: impl Fn() -> bool,
) -> std::io::Result<bool> {
    let mut table = MountTable::open()?;
    loop {
        if table.fuse_mounted(point)? && std::fs::metadata(point).is_ok() {
            return Ok(true);
        }
        if gave_up() {
            return Ok(false);
        }
        table.wait_change(every)?;
    }
}

/// Unmounts `point` with `fusermount -u` (the fuse3 or fuse2 one); its stderr goes to ours.
pub async fn unmount(fusermount: &Path, point: &Path) -> std::io::Result<std::process::ExitStatus> {
    tokio::process::Command::new(fusermount)
        .arg("-u")
        .arg(point)
        .stdin(std::process::Stdio::null())
        .status()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:31 / /proc rw,nosuid - proc proc rw
91 22 0:45 / /tmp/my\\040mount rw,nosuid,nodev shared:50 - fuse.sshfs maf@localhost: rw,user_id=0
92 22 0:46 / /tmp/plain rw - tmpfs tmpfs rw
";

    #[test]
    fn finds_fuse_mounts() {
        assert!(fuse_mounted(TABLE, Path::new("/tmp/my mount")));
        assert!(!fuse_mounted(TABLE, Path::new("/tmp/my")));
        assert!(!fuse_mounted(TABLE, Path::new("/tmp/plain")), "not FUSE");
        assert!(!fuse_mounted(TABLE, Path::new("/")));
        assert!(!fuse_mounted("", Path::new("/")));
        assert!(!fuse_mounted("garbage\n1 2\n - \n", Path::new("/")));
    }

    #[test]
    fn unescapes() {
        assert_eq!(unescape("a\\040b\\134c"), b"a b\\c");
        assert_eq!(unescape("x\\04"), b"x\\04", "a short escape stays");
        assert_eq!(unescape("\\999"), b"\\999");
    }

    #[test]
    fn finds_programs() {
        let path = std::env::join_paths(["/nonexistent", "/bin", "/usr/bin"]).ok();
        assert!(find_program("sh", path.clone()).is_some());
        assert!(find_program("no-such-program-here", path).is_none());
        assert!(find_program("sh", None).is_none());
    }

    #[test]
    fn missing_fuse_device() {
        assert!(matches!(
            check_fuse_device(Path::new("/nonexistent/fuse")),
            Err(MountError::NoFuseDevice)
        ));
    }

    #[test]
    fn bad_mount_points() {
        // The checks for sshfs and /dev/fuse come first: only run where they pass.
        if find_program("sshfs", std::env::var_os("PATH")).is_none()
            || check_fuse_device(Path::new(FUSE_DEVICE)).is_err()
        {
            eprintln!("skipped: sshfs or {FUSE_DEVICE} unusable here");
            return;
        }
        assert!(matches!(
            prepare(Path::new("/nonexistent/mnt")),
            Err(MountError::MountPoint { .. })
        ));
        let file = std::env::current_exe().unwrap_or_default();
        assert!(matches!(prepare(&file), Err(MountError::MountPoint { .. })));
    }

    #[test]
    fn the_mount_table_reads() -> std::io::Result<()> {
        let mut table = MountTable::open()?;
        assert!(!table.fuse_mounted(Path::new("/nonexistent/mnt"))?);
        // Nothing changes the table here: the wait times out.
        let _ = table.wait_change(Duration::from_millis(1))?;
        Ok(())
    }
}
