//! Helpers of the `drives` tool that match JS drives 2.9.1 behaviour: the drive-id guess, the storage
//! lookup, the default filter, tiny-byte-size formatting and HTTP range parsing (range-parser).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// What an argument names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveId {
    /// A hyperdrive key.
    Key,
    /// A folder.
    Path,
}

/// drives' `drive-id.js`: anything with `/` or `.` is a path; 52 or 64 characters is a key; else a path.
pub fn drive_id(id: &str) -> DriveId {
    if id.contains('/') || id.contains('.') {
        return DriveId::Path;
    }
    match id.chars().count() {
        52 | 64 => DriveId::Key,
        _ => DriveId::Path,
    }
}

/// drives' `findCorestore`: `--storage DIR` gives `DIR/corestore`; else the first existing
/// `.drives/corestore` from `cwd` upwards; else `home/.drives/corestore`.
pub fn find_corestore(storage: Option<&Path>, cwd: &Path, home: Option<&Path>) -> PathBuf {
    if let Some(s) = storage {
        return std::path::absolute(s)
            .unwrap_or_else(|_| s.to_path_buf())
            .join("corestore");
    }
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        let candidate = d.join(".drives").join("corestore");
        if candidate.exists() {
            return candidate;
        }
        dir = d.parent();
    }
    home.map_or_else(
        || cwd.join(".drives").join("corestore"),
        |h| h.join(".drives").join("corestore"),
    )
}

/// drives' default ignore list (generate-filter.js), case-insensitive: a path component `.drives`, `.git`,
/// `.github`, `.DS_Store`, `package-lock.json` or the pair `node_modules/.package-lock.json`.
pub fn default_ignored(key: &str) -> bool {
    const NAMES: [&str; 5] = [
        ".drives",
        ".git",
        ".github",
        ".ds_store",
        "package-lock.json",
    ];
    let comps: Vec<&str> = key.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        // Components after the leading `/` only.
        if i == 0 {
            continue;
        }
        let lc = c.to_ascii_lowercase();
        if NAMES.contains(&lc.as_str()) {
            return true;
        }
        if lc == "node_modules"
            && comps
                .get(i + 1)
                .is_some_and(|n| n.eq_ignore_ascii_case(".package-lock.json"))
        {
            return true;
        }
    }
    false
}

/// A key filter: true keeps the key.
pub type Filter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// drives' `generateFilter(custom)`: the default ignore list, then each custom glob (minimatch, case
/// insensitive; a pattern without a leading `/` is matched at any depth, as `**/pattern`).
pub fn generate_filter(custom: &[String]) -> Result<Filter, globset::Error> {
    let set = build_globs(custom)?;
    Ok(Arc::new(move |key: &str| {
        !default_ignored(key) && !set.as_ref().is_some_and(|s| s.is_match(key))
    }))
}

fn build_globs(custom: &[String]) -> Result<Option<GlobSet>, globset::Error> {
    if custom.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for f in custom {
        let pattern = if f.starts_with('/') {
            f.clone()
        } else {
            format!("**/{f}")
        };
        b.add(
            GlobBuilder::new(&pattern)
                .case_insensitive(true)
                .literal_separator(true)
                .build()?,
        );
    }
    Ok(Some(b.build()?))
}

/// Patterns of a `.drivesignore` file: one per line, blank lines and `#` comments skipped.
pub fn parse_drivesignore(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// tiny-byte-size: decimal units, one decimal, no space (`5B`, `1.5kB`, `-2MB`).
pub fn byte_size(bytes: i128) -> String {
    let b = bytes.unsigned_abs() as f64;
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut scale = 1.0f64;
    let mut unit = units[0];
    for (i, u) in units.iter().enumerate() {
        let limit = 1e3f64.powi(i as i32 + 1);
        if b < limit || i == units.len() - 1 {
            scale = 1e3f64.powi(i as i32);
            unit = u;
            break;
        }
    }
    let n = (10.0 * (bytes as f64) / scale).round() / 10.0;
    format!("{}{unit}", js_number(n))
}

/// A number as JS prints it (no `.0` on integers).
pub fn js_number(n: f64) -> String {
    if n == n.trunc() && n.abs() < 1e21 {
        format!("{}", n as i128)
    } else {
        format!("{n}")
    }
}

/// range-parser's result for one `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The first satisfiable range, inclusive.
    Bytes {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// No range is satisfiable (range-parser's -1).
    Unsatisfiable,
    /// The header is malformed (range-parser's -2).
    Malformed,
}

/// Parses a `Range: bytes=...` header for a body of `size` bytes as range-parser does (first range used).
pub fn parse_range(size: u64, header: &str) -> Range {
    let Some((unit, spec)) = header.split_once('=') else {
        return Range::Malformed;
    };
    if unit.trim() != "bytes" {
        return Range::Malformed;
    }
    let mut first = None;
    for part in spec.split(',') {
        let Some((s, e)) = part.trim().split_once('-') else {
            return Range::Malformed;
        };
        let (s, e) = (s.trim(), e.trim());
        let (start, end) = if s.is_empty() {
            let Ok(suffix) = e.parse::<u64>() else {
                return Range::Malformed;
            };
            (size.saturating_sub(suffix), size.saturating_sub(1))
        } else {
            let Ok(start) = s.parse::<u64>() else {
                return Range::Malformed;
            };
            let end = if e.is_empty() {
                size.saturating_sub(1)
            } else {
                match e.parse::<u64>() {
                    Ok(v) => v.min(size.saturating_sub(1)),
                    Err(_) => return Range::Malformed,
                }
            };
            (start, end)
        };
        if size == 0 || start > end || start >= size {
            continue;
        }
        if first.is_none() {
            first = Some(Range::Bytes { start, end });
        }
    }
    first.unwrap_or(Range::Unsatisfiable)
}

/// ANSI colouring as tiny-crayon: only when stdout is a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Crayon(pub bool);

impl Crayon {
    fn wrap(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    /// Red.
    pub fn red(self, s: &str) -> String {
        self.wrap("31", s)
    }
    /// Green.
    pub fn green(self, s: &str) -> String {
        self.wrap("32", s)
    }
    /// Yellow.
    pub fn yellow(self, s: &str) -> String {
        self.wrap("33", s)
    }
    /// Blue.
    pub fn blue(self, s: &str) -> String {
        self.wrap("34", s)
    }
    /// Magenta.
    pub fn magenta(self, s: &str) -> String {
        self.wrap("35", s)
    }
    /// Cyan.
    pub fn cyan(self, s: &str) -> String {
        self.wrap("36", s)
    }
    /// White.
    pub fn white(self, s: &str) -> String {
        self.wrap("37", s)
    }
    /// Gray.
    pub fn gray(self, s: &str) -> String {
        self.wrap("90", s)
    }
    /// Bold.
    pub fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(drive_id("./x"), DriveId::Path);
        assert_eq!(drive_id("folder"), DriveId::Path);
        assert_eq!(drive_id(&"a".repeat(64)), DriveId::Key);
        assert_eq!(drive_id(&"y".repeat(52)), DriveId::Key);
    }

    #[test]
    fn sizes_like_tiny_byte_size() {
        assert_eq!(byte_size(0), "0B");
        assert_eq!(byte_size(999), "999B");
        assert_eq!(byte_size(1000), "1kB");
        assert_eq!(byte_size(1550), "1.6kB");
        assert_eq!(byte_size(50_000), "50kB");
        assert_eq!(byte_size(-2_000_000), "-2MB");
        assert_eq!(byte_size(200 * 1024 * 1024), "209.7MB");
    }

    #[test]
    fn filters() -> Result<(), globset::Error> {
        let f = generate_filter(&["*.tmp".into(), "/build".into()])?;
        assert!(f("/a/b.txt"));
        assert!(!f("/.git/config"));
        assert!(!f("/x/.DS_Store"));
        assert!(!f("/node_modules/.package-lock.json"));
        assert!(f("/node_modules/x.json"));
        assert!(!f("/a/B.TMP"));
        assert!(!f("/build"));
        assert!(f("/src/build"));
        Ok(())
    }

    #[test]
    fn ranges_like_range_parser() {
        assert_eq!(
            parse_range(100, "bytes=0-9"),
            Range::Bytes { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(100, "bytes=90-"),
            Range::Bytes { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(100, "bytes=-10"),
            Range::Bytes { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(100, "bytes=50-1000"),
            Range::Bytes { start: 50, end: 99 }
        );
        assert_eq!(parse_range(100, "bytes=200-300"), Range::Unsatisfiable);
        assert_eq!(parse_range(100, "items=0-1"), Range::Malformed);
        assert_eq!(parse_range(100, "bytes=x-1"), Range::Malformed);
    }

    proptest::proptest! {
        #[test]
        fn ranges_never_panic_and_stay_in_bounds(size in 0u64..1_000_000, header in ".{0,40}") {
            if let Range::Bytes { start, end } = parse_range(size, &header) {
                proptest::prop_assert!(start <= end && end < size);
            }
        }

        #[test]
        fn ranges_of_numbers_stay_in_bounds(size in 0u64..1000, a in 0u64..2000, b in 0u64..2000) {
            for h in [format!("bytes={a}-{b}"), format!("bytes=-{a}"), format!("bytes={a}-"), format!("bytes={a}-{b},{b}-")] {
                if let Range::Bytes { start, end } = parse_range(size, &h) {
                    proptest::prop_assert!(start <= end && end < size);
                }
            }
        }
    }

    #[test]
    fn storage_lookup() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("home");
        let deep = tmp.path().join("p/q/r");
        std::fs::create_dir_all(&deep).expect("mkdir");
        assert_eq!(
            find_corestore(None, &deep, Some(&home)),
            home.join(".drives/corestore")
        );
        std::fs::create_dir_all(tmp.path().join("p/.drives/corestore")).expect("mkdir");
        assert_eq!(
            find_corestore(None, &deep, Some(&home)),
            tmp.path().join("p/.drives/corestore")
        );
        assert_eq!(
            find_corestore(Some(Path::new("/s")), &deep, Some(&home)),
            PathBuf::from("/s/corestore")
        );
    }
}
