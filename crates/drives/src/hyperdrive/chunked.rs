//! "Diffable" files: streamed writes cut with content-defined chunking, a changed file re-using the blocks of
//! its previous version through a block map ([`crate::hyperblobs::cdc`]), and what reading such entries
//! needs (their content length lives in the map, block-map downloads).

use super::{entry_from, is_compat, BlobError, Hyperdrive};
use crate::drive::{Entry, Result};
use crate::hyperblobs::{BlobId, BlobWriter, Hyperblobs};

impl Hyperdrive {
    /// The previous version's blob of the file at `key` (a normalized key), looked up locally.
    fn local_blob(&self, key: &str) -> Option<BlobId> {
        let e = self.files().get(key.as_bytes()).ok().flatten()?;
        let e = entry_from(e).ok()?;
        e.linkname.is_none().then_some(e.blob).flatten()
    }

    /// The blob writer of a streamed file at `key` (normalized): chunked, re-using the previous version's
    /// blocks, when the drive's [`chunking`](super::DriveOptions::chunking) is on; plain 64 KiB blocks else,
    /// and always for a compat drive (one of a JS drives 2.9.1 store: its hyperdrive 11 may come with a
    /// hyperblobs older than block maps).
    pub(super) async fn blob_writer(&self, blobs: &Hyperblobs, key: &str) -> BlobWriter {
        if !self.shared.opts.chunking || is_compat(&self.shared.db) {
            return blobs.writer().await;
        }
        let previous = self.local_blob(key);
        blobs.chunked_writer(previous.as_ref()).await
    }

    /// Sets the content length of a block-map entry (its blob id gives the map's size, not the file's):
    /// the sum of its map (JS `getByteLength`), read or fetched as the drive's wait options allow.
    pub(super) async fn resolve_size(&self, entry: &mut Entry) -> Result<()> {
        let Some(blob) = entry.blob.filter(|b| b.block_map) else {
            return Ok(());
        };
        if entry.linkname.is_some() {
            return Ok(());
        }
        let blobs = self.blobs().await?;
        entry.byte_length = Some(blobs.byte_size(&blob).await?);
        Ok(())
    }

    /// The blocks block-map blobs list, as `[start, end)` runs (their map blocks are downloaded first).
    pub(super) async fn mapped_runs(
        &self,
        blobs: &Hyperblobs,
        ids: impl Iterator<Item = BlobId>,
    ) -> Result<Vec<(u64, u64)>> {
        let mut runs = Vec::new();
        for id in ids.filter(|b| b.block_map && b.block_length > 0) {
            for (i, _) in blobs.block_map(&id).await? {
                let end = i
                    .checked_add(1)
                    .ok_or_else(|| BlobError::Corrupt(format!("block map lists block {i}")))?;
                runs.push((i, end));
            }
        }
        Ok(runs)
    }
}
