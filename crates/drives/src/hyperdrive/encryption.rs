//! Encrypted drives (JS hyperdrive 13 `encryptionKey`).
//!
//! Facts of hyperdrive 13.3.4 / hypercore 11.37 / corestore 7.12:
//! - The one 32-byte `encryptionKey` is handed as is to both cores of the drive, the db core and the blobs
//!   core (`corestore.get({ ..., encryptionKey })`); nothing is derived at the drive level.
//! - Each core then derives its own block key from it and its core key (hypercore's default block encryption,
//!   `lib/default-encryption.js`: `BLAKE2b(DEFAULT_ENCRYPTION || coreKey || encryptionKey)` for manifest cores,
//!   BLAKE2b keyed with the core key for compat cores); so the two cores' blocks are encrypted under different
//!   keys.
//! - The key is not stored anywhere on disk (hypercore 11 never passes it to hypercore-storage, which has a
//!   slot for it): every open of an encrypted drive must give it again. Opened without it (or with another
//!   key), the db header does not decode; that is reported as [`DriveError::Header`](crate::drive::DriveError)
//!   naming the likely cause instead of garbage.
//! - Blocks are encrypted before they are hashed, so replication carries ciphertext: a peer without the key
//!   (a blind seeder, [`DriveOptions::blind`](super::DriveOptions::blind)) stores and serves the blocks,
//!   checks their signatures, and cannot read anything. Key, discovery key, manifest, lengths and block sizes
//!   (plus the 8-byte header per block) stay visible to it.

use std::fmt;

use holepunch_wire::id_encoding;

use super::Hyperdrive;
use crate::drive::{DriveError, Result};
use crate::hyperbee::messages::Header;
use crate::hyperblobs::fetch_block;
use crate::hypercore::replicator::DownloadGuard;

/// A drive's encryption key (32 bytes). Its `Debug` form hides the bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncryptionKey(pub [u8; 32]);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<hidden>)")
    }
}

/// Why an encryption key argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid encryption key: expected 52 characters of z-base-32 or 64 hex digits")]
pub struct BadEncryptionKey;

impl EncryptionKey {
    /// A new random key (from the operating system's generator).
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        Self(key)
    }

    /// Parses a key in the encodings drive keys use (hypercore-id-encoding: z-base-32 or hex).
    pub fn parse(text: &str) -> Result<Self, BadEncryptionKey> {
        id_encoding::decode(text.trim())
            .map(Self)
            .map_err(|_| BadEncryptionKey)
    }

    /// The key as z-base-32 (as drive keys are printed).
    pub fn encode(&self) -> String {
        id_encoding::encode(&self.0)
    }
}

impl std::str::FromStr for EncryptionKey {
    type Err = BadEncryptionKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What [`Hyperdrive::download_blocks`] stored: every block of each core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoreBlocks {
    /// Blocks of the db core (the files).
    pub files: u64,
    /// Blocks of the blobs core.
    pub blobs: u64,
}

impl Hyperdrive {
    /// Downloads every block of both cores, up to the lengths the peers have, without decoding any (what a
    /// blind seeder of an encrypted drive can do: [`download`](Hyperdrive::download) walks the entries).
    pub async fn download_blocks(&self) -> Result<CoreBlocks> {
        let wait = self.shared.opts.wait;
        let bounded = |fut| async move {
            match wait.timeout {
                None => {
                    fut.await;
                    Ok(())
                }
                Some(t) => tokio::time::timeout(t.saturating_mul(64), fut)
                    .await
                    .map_err(|_| DriveError::Timeout),
            }
        };
        self.update().await?;
        let db = &self.shared.db;
        let files = db.length();
        if files > 0 && db.stored_runs(0, files, 2) != [(0, files)] {
            bounded(Box::pin(self.shared.db_rep.download(0, files))).await?;
        }
        if files == 0 {
            return Ok(CoreBlocks::default());
        }
        let blobs = self.blobs().await?;
        let core = blobs.core().clone();
        let mut length = core.length();
        if let Some(rep) = blobs.replicator() {
            if self.shared.db_rep.peers() > 0 {
                // The blobs core joins the connections once it is open: wait for its channel, then its head.
                let head = async {
                    rep.wait_for_peers(1).await;
                    rep.update().await
                };
                length = match wait.timeout {
                    None => head.await,
                    Some(t) => tokio::time::timeout(t, head)
                        .await
                        .map_err(|_| DriveError::Timeout)?,
                };
            }
            if length > 0 && core.stored_runs(0, length, 2) != [(0, length)] {
                bounded(Box::pin(rep.download(0, length))).await?;
            }
        }
        Ok(CoreBlocks {
            files,
            blobs: length,
        })
    }

    /// Whether the db header (block 0, fetched from peers if needed) decodes as a hyperbee header: false for
    /// an encrypted drive opened without its key (or with another key).
    pub async fn header_decodes(&self) -> Result<bool> {
        let block = fetch_block(
            &self.shared.db,
            Some(&self.shared.db_rep),
            self.shared.opts.wait,
            0,
        )
        .await?;
        Ok(Header::decode(&block).is_ok_and(|h| h.protocol == "hyperbee"))
    }

    /// Writes the db header of a new writable drive (what its first write would write), so that the drive is
    /// not empty: opened later without its encryption key, it then fails at once instead of taking
    /// unencrypted writes. Does nothing if the db has blocks.
    pub fn write_header(&self) -> Result<()> {
        self.check_writable()?;
        if self.shared.db.length() == 0 {
            // A delete of a key that cannot exist (entry keys start with `/`) writes the header alone.
            self.shared.files.del(b"")?;
        }
        Ok(())
    }

    /// Keeps every block of both cores downloaded as they grow, until the guards are dropped (a seeder that
    /// holds the whole drive; the blobs core joins once it is open).
    pub fn keep_all(&self) -> Vec<DownloadGuard> {
        let mut guards = vec![self.shared.db_rep.download_all()];
        if let Some(rep) = self
            .blobs_if_open()
            .as_ref()
            .and_then(|b| b.replicator().cloned())
        {
            guards.push(rep.download_all());
        }
        guards
    }
}

/// The error of a db header that does not decode: names the likely causes when the drive may be encrypted.
pub(crate) fn header_error(err: impl fmt::Display, have_key: bool) -> String {
    if have_key {
        format!("{err} (wrong encryption key, or not a hyperdrive?)")
    } else {
        format!("{err} (an encrypted drive? pass its encryption key)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_z32_and_hex_and_hides_debug() {
        let k = EncryptionKey([7; 32]);
        assert_eq!(EncryptionKey::parse(&k.encode()), Ok(k));
        assert_eq!(EncryptionKey::parse(&hex::encode([7u8; 32])), Ok(k));
        assert_eq!(EncryptionKey::parse("nope"), Err(BadEncryptionKey));
        assert_eq!(format!("{k:?}"), "EncryptionKey(<hidden>)");
        assert_ne!(EncryptionKey::generate(), EncryptionKey::generate());
    }
}
