//! Path normalization as hyperdrive 13 does it (`std(name)` = `unix-path-resolve('/', name)`).
//!
//! Facts of `unix-path-resolve` 1.0.2:
//! - a path is split on `/` and `\`;
//! - when it has more than one part and the first ends with `:`, it is absolute and "URL-like": a 2-character
//!   first part (`c:`) drops that part, `file:` drops it, anything else (`http:` + `` + host) drops 3 parts;
//! - otherwise it is absolute when it starts with `/` or `\`; relative names resolve against `/`;
//! - empty parts and `.` are skipped, `..` removes the last part and is an error at the root ("too many '..'"),
//!   so a normalized path never escapes the root;
//! - the result starts with `/`, has no trailing slash, no empty, `.` or `..` part.
//!
//! hyperdrive rejects the root itself as a file name (`Invalid filename: /`).

/// Why a path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// More `..` than parts above the root (JS: "Path cannot be resolved, too many '..'").
    #[error("path cannot be resolved, too many '..': {0:?}")]
    TooManyDotDot(String),
    /// The root as a file name (JS: "Invalid filename: /").
    #[error("invalid filename: {0:?}")]
    InvalidFilename(String),
}

/// Splits like `unix-path-resolve`'s `parse`: the parts and whether the path is absolute.
fn parse(addr: &str) -> (bool, Vec<&str>) {
    let names: Vec<&str> = addr.split(['/', '\\']).collect();
    if names.len() > 1 && names.first().is_some_and(|n| n.ends_with(':')) {
        let first = names.first().map_or("", |n| n);
        let skip = if first.chars().count() == 2 || first == "file:" {
            1
        } else {
            3
        };
        return (true, names.into_iter().skip(skip).collect());
    }
    let absolute = addr.starts_with('/') || addr.starts_with('\\');
    (absolute, names)
}

fn push_names(mut p: String, names: &[&str], original: &str) -> Result<String, PathError> {
    for &n in names {
        match n {
            "" | "." => {}
            ".." => {
                if p.len() == 1 {
                    return Err(PathError::TooManyDotDot(original.to_owned()));
                }
                let cut = p.rfind('/').unwrap_or(0);
                p.truncate(cut);
                if p.is_empty() {
                    p.push('/');
                }
            }
            name => {
                if p.len() != 1 {
                    p.push('/');
                }
                p.push_str(name);
            }
        }
    }
    Ok(p)
}

/// `unix-path-resolve('/', name)`: the absolute normalized form of `name`.
pub fn resolve(name: &str) -> Result<String, PathError> {
    let (_, names) = parse(name);
    // Absolute or not, resolving against '/' gives the same result.
    push_names(String::from("/"), &names, name)
}

/// `unix-path-resolve(base, name)` for an absolute `base` (used to follow symlinks: `resolve_from(entry key,
/// linkname)`).
pub fn resolve_from(base: &str, name: &str) -> Result<String, PathError> {
    let (abs, names) = parse(name);
    if abs {
        return push_names(String::from("/"), &names, name);
    }
    let (_, base_names) = parse(base);
    let p = push_names(String::from("/"), &base_names, base)?;
    push_names(p, &names, name)
}

/// hyperdrive's `std(name, false)`: the key a file is stored under. The root is not a valid file name.
pub fn normalize(name: &str) -> Result<String, PathError> {
    let p = resolve(name)?;
    if p == "/" {
        return Err(PathError::InvalidFilename(name.to_owned()));
    }
    Ok(p)
}

/// hyperdrive's `std(folder, true)`: a folder as a range prefix (`""` for the root, else `/a/b`).
pub fn normalize_folder(name: &str) -> Result<String, PathError> {
    let p = resolve(name)?;
    Ok(if p == "/" { String::new() } else { p })
}

/// True when `key` is a key hyperdrive itself could have written: its own normalized form (starts with `/`, no
/// empty, `.` or `..` part, no backslash, not the root). Entries with other keys come from a hostile or broken
/// writer and could point outside a folder they are mirrored into.
pub fn is_normalized(key: &str) -> bool {
    !key.contains('\\') && normalize(key).is_ok_and(|n| n == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_as_unix_path_resolve() {
        let cases = [
            ("a", "/a"),
            ("/a/b.txt", "/a/b.txt"),
            ("a//b/", "/a/b"),
            ("./a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("a\\b", "/a/b"),
            ("c:/x/y", "/x/y"),
            ("file:/x", "/x"),
            ("http://host/x/y", "/x/y"),
            ("/", "/"),
            ("", "/"),
            ("/ünïcode/名前", "/ünïcode/名前"),
        ];
        for (input, want) in cases {
            assert_eq!(resolve(input).as_deref(), Ok(want), "{input:?}");
        }
        assert!(matches!(resolve("../x"), Err(PathError::TooManyDotDot(_))));
        assert!(matches!(
            resolve("/a/../../x"),
            Err(PathError::TooManyDotDot(_))
        ));
        assert!(matches!(normalize("/"), Err(PathError::InvalidFilename(_))));
        assert_eq!(normalize_folder("/").as_deref(), Ok(""));
        assert_eq!(normalize_folder("/a/").as_deref(), Ok("/a"));
    }

    #[test]
    fn symlinks_resolve_against_the_entry() {
        assert_eq!(resolve_from("/a/b", "c").as_deref(), Ok("/a/b/c"));
        assert_eq!(resolve_from("/a/b", "../c").as_deref(), Ok("/a/c"));
        assert_eq!(resolve_from("/a/b", "/c").as_deref(), Ok("/c"));
    }

    #[test]
    fn hostile_keys_are_not_normalized() {
        for k in [
            "../x", "/../x", "/a/../x", "a", "/a/", "//a", "/a\\b", "/./a", "/",
        ] {
            assert!(!is_normalized(k), "{k:?}");
        }
        assert!(is_normalized("/a/b c.txt"));
    }
}
