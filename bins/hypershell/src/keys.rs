//! Key and config files under `~/.hypershell` (or wherever `-f` / `--firewall` point).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use holepunch::crypto::KeyPair;
use holepunch::hypershell::{self as proto, ConfigError};

/// `~/.hypershell`.
pub fn shell_dir() -> PathBuf {
    home_dir().join(".hypershell")
}

/// The home directory (`$HOME`, else the current directory).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Expands a leading `~` or `~/` to the home directory.
pub fn expand_home(p: &str) -> PathBuf {
    if p == "~" {
        home_dir()
    } else if let Some(rest) = p.strip_prefix("~/") {
        home_dir().join(rest)
    } else {
        PathBuf::from(p)
    }
}

/// The default key file, `~/.hypershell/peer`.
pub fn default_keyfile() -> PathBuf {
    shell_dir().join("peer")
}

/// Writes a new random key into `path` (mode 600, refusing to overwrite) and returns it.
pub fn generate(path: &Path, comment: Option<&str>) -> anyhow::Result<KeyPair> {
    let kp = KeyPair::generate();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} already exists.", path.display())
        } else {
            anyhow::Error::from(e).context(format!("creating {}", path.display()))
        }
    })?;
    f.write_all(proto::format_seed_file(&kp.seed(), comment).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(kp)
}

/// Reads the key in `path`; when the file does not exist, generates one first (as the JS bins do, printing
/// where and the public key on stderr).
pub fn load_or_generate(path: &Path) -> anyhow::Result<KeyPair> {
    if !path.exists() {
        eprintln!("Generating key.");
        let kp = generate(path, None)?;
        eprintln!("Your key has been saved in {}", path.display());
        eprintln!("The public key is:");
        eprintln!("{}", proto::format_key(&kp.public));
        eprintln!();
        return Ok(kp);
    }
    load(path)
}

/// Reads the key in `path`.
pub fn load(path: &Path) -> anyhow::Result<KeyPair> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the key file {}", path.display()))?;
    proto::parse_seed_file(&text).map_err(|e| bad_file(path, &e))
}

fn bad_file(path: &Path, e: &ConfigError) -> anyhow::Error {
    anyhow::anyhow!("invalid key file {}: {e}", path.display())
}

/// Reads the allow list in `path`, creating an empty one (with its comment line) when missing.
pub fn read_authorized_peers(path: &Path) -> anyhow::Result<Vec<[u8; 32]>> {
    if !path.exists() {
        eprintln!("Notice: creating default firewall {}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(path, "# <public key>\n")
            .with_context(|| format!("creating {}", path.display()))?;
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    proto::parse_authorized_peers(&text)
        .map_err(|e| anyhow::anyhow!("invalid firewall file {}: {e}", path.display()))
}

/// Resolves a server name (from `~/.hypershell/known_peers`) or key.
pub fn resolve_server(host: &str) -> anyhow::Result<[u8; 32]> {
    let path = shell_dir().join("known_peers");
    let known = match fs::read_to_string(&path) {
        Ok(t) => proto::parse_known_peers(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(anyhow::Error::from(e).context(format!("reading {}", path.display()))),
    };
    if let Some((_, key)) = known.iter().find(|(name, _)| name == host) {
        // A name of the file whose key is broken: say so, rather than "not a name".
        return proto::parse_key(key).map_err(|e| {
            anyhow::anyhow!(
                "the entry {host:?} of {} has an invalid key: {e}",
                path.display()
            )
        });
    }
    proto::resolve_peer(host, &known).map_err(|_| {
        anyhow::anyhow!(
            "{host:?} is neither a public key (64 hex digits or 52 z-base32 characters) nor a name in {}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_and_load() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("hypershell-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("sub/peer");
        let kp = generate(&path, Some("hello"))?;
        assert_eq!(load(&path)?.public, kp.public);
        assert!(generate(&path, None).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        }
        fs::write(&path, "not a key\n")?;
        let err = load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("invalid key file"), "{err}");
        let fw = dir.join("authorized_peers");
        assert_eq!(read_authorized_peers(&fw)?, Vec::<[u8; 32]>::new());
        assert_eq!(fs::read_to_string(&fw)?, "# <public key>\n");
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
