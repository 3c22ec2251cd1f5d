//! [`Drive`] for [`Hyperdrive`]: entries with their seq and blob id, content through hyperblobs readers and
//! writers, writes through a [`DriveBatch`] when the mirror asks for one, `put_entry` keeping the blob.

use async_trait::async_trait;

use super::{
    entry_from, folder_range, path, DriveBatch, DriveWriter, EntryValue, Hyperdrive, ListOptions,
};
use crate::drive::{
    ignored_or_under, BlobReader, BlobWriter, Drive, DriveError, Entry, IgnoreFn, ListPage, Result,
    WriteBatch, WriteOptions,
};
use crate::hyperblobs::ReadRange;

struct Reader(crate::hyperblobs::BlobReader);

#[async_trait]
impl BlobReader for Reader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.0.next_chunk().await?)
    }
}

struct Writer(DriveWriter);

#[async_trait]
impl BlobWriter for Writer {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.0.write(chunk)
    }
    async fn finish(self: Box<Self>) -> Result<()> {
        self.0.finish()
    }
}

/// [`WriteBatch`] over a [`DriveBatch`].
struct Batch(DriveBatch);

#[async_trait]
impl WriteBatch for Batch {
    async fn put(&mut self, key: &str, data: &[u8], opts: WriteOptions) -> Result<()> {
        self.0.put(key, data, opts).await
    }

    async fn put_stream(
        &mut self,
        key: &str,
        src: &mut dyn BlobReader,
        opts: WriteOptions,
    ) -> Result<()> {
        let mut w = self.0.writer(key, opts).await?;
        while let Some(chunk) = src.next_chunk().await? {
            w.write(&chunk)?;
        }
        self.0.finish_writer(w)
    }

    async fn symlink(&mut self, key: &str, linkname: &str) -> Result<()> {
        self.0.symlink(key, linkname, None)
    }

    async fn put_entry(&mut self, key: &str, existing: &Entry, opts: WriteOptions) -> Result<()> {
        self.0.put_entry(key, &kept_blob(existing, opts))
    }

    fn last_entry(&self) -> Option<Entry> {
        let (key, value) = self.0.last_value()?;
        let value = EntryValue::decode(value?).ok()?;
        let mut e = Entry::from_value(key.to_string(), 0, value);
        e.seq = None;
        Some(e)
    }

    fn pending(&self) -> usize {
        self.0.len()
    }

    /// Waits for a [`flush_behind`](WriteBatch::flush_behind) first; the pending entries are committed
    /// even when it failed (its error is returned).
    async fn flush(&mut self) -> Result<()> {
        let behind = self.0.settle().await;
        let now = self.0.flush().map(|_| ());
        behind.and(now)
    }

    async fn flush_behind(&mut self) -> Result<()> {
        self.0.flush_behind().await
    }
}

/// The value `put_entry` writes: `existing`'s blob with new executable bit and metadata.
fn kept_blob(existing: &Entry, opts: WriteOptions) -> EntryValue {
    EntryValue {
        executable: opts.executable,
        linkname: None,
        blob: existing.blob,
        metadata: opts.metadata,
    }
}

struct Empty;

#[async_trait]
impl BlobReader for Empty {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

#[async_trait]
impl Drive for Hyperdrive {
    /// The entry at `key` (JS `entry(path)`; a block-map entry with its content length), without following
    /// symlinks (see
    /// [`entry_follow`](Hyperdrive::entry_follow)).
    async fn entry(&self, key: &str) -> Result<Option<Entry>> {
        let key = path::normalize(key)?;
        let found = self.bee_read(|b| b.get(key.as_bytes())).await?;
        let Some(mut e) = found.map(entry_from).transpose()? else {
            return Ok(None);
        };
        self.resolve_size(&mut e).await?;
        Ok(Some(e))
    }

    /// Every entry under `folder`, recursively, leaving out entries whose key or value is invalid (see
    /// [`list_with`](Hyperdrive::list_with) for the other listings).
    async fn list(&self, folder: &str, ignore: Option<IgnoreFn<'_>>) -> Result<Vec<Entry>> {
        let opts = ListOptions {
            recursive: true,
            skip_invalid: true,
        };
        let list = self.list_with(folder, opts).await?;
        let mut list: Vec<Entry> = list
            .into_iter()
            .filter(|e| !ignore.is_some_and(|f| ignored_or_under(f, &e.key)))
            .collect();
        for e in &mut list {
            self.resolve_size(e).await?;
        }
        Ok(list)
    }

    /// A page of the recursive listing: one bounded range read of the db from the cursor (the last key of the
    /// previous page), entries decoded and invalid ones left out as [`list`](Drive::list) does.
    async fn list_page(
        &self,
        folder: &str,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Option<ListPage>> {
        let folder = path::normalize_folder(folder)?;
        if after.is_none() {
            self.download_db().await?;
        }
        let limit = limit.max(1);
        let mut range = folder_range(&folder, "/");
        if after.is_some() {
            range.gt = after;
        }
        range.limit = Some(limit);
        let raw = self.bee_read(|b| b.range_vec(&range)).await?;
        let next = if raw.len() < limit {
            None
        } else {
            raw.last().map(|e| e.key.clone())
        };
        let mut entries = Vec::with_capacity(raw.len());
        for e in raw {
            match entry_from(e) {
                Ok(mut e) => {
                    self.resolve_size(&mut e).await?;
                    entries.push(e);
                }
                Err(DriveError::InvalidKey(_) | DriveError::Entry { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(Some(ListPage { entries, next }))
    }

    /// The names of the direct children of `folder` (files and subfolders; JS `readdir`).
    async fn readdir(&self, folder: &str) -> Result<Vec<String>> {
        let folder = path::normalize_folder(folder)?;
        self.download_db().await?;
        Ok(self
            .shallow(&folder, false)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    async fn read(
        &self,
        entry: &Entry,
        start: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn BlobReader>> {
        let Some(blob) = entry.blob else {
            return Ok(Box::new(Empty));
        };
        // A block map's id gives the map's size; the entry has the content's (see `resolve_size`).
        let size = if blob.block_map {
            entry.len()
        } else {
            blob.byte_length
        };
        let start = start.min(size);
        let length = length.map_or(size - start, |l| l.min(size - start));
        if length == 0 {
            return Ok(Box::new(Empty));
        }
        let range = ReadRange {
            start: Some(start),
            end: None,
            length: Some(length),
        };
        Ok(Box::new(Reader(self.blob_reader(&blob, range).await?)))
    }

    async fn write(&self, key: &str, opts: WriteOptions) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(Writer(self.writer(key, opts).await?)))
    }

    async fn del(&self, key: &str) -> Result<()> {
        self.remove(key).map(|_| ())
    }

    async fn symlink(&self, key: &str, linkname: &str) -> Result<()> {
        self.symlink_with(key, linkname, None)
    }

    async fn put_entry(&self, key: &str, existing: &Entry, opts: WriteOptions) -> Result<bool> {
        self.put_value(key, &kept_blob(existing, opts))?;
        Ok(true)
    }

    async fn batch(&self) -> Result<Option<Box<dyn WriteBatch>>> {
        Ok(Some(Box::new(Batch(self.new_batch()?))))
    }

    /// Entries are keys of one bee: its range is every key a lookup finds (entries whose value does not
    /// decode are left out of both the listing and, for a mirror writing here, overwritten).
    fn listing_is_complete(&self) -> bool {
        true
    }

    /// True when this is the writable drive itself (not a replica, not a checkout).
    fn writable(&self) -> bool {
        self.checkout.is_none() && self.shared.db.writable()
    }

    fn supports_metadata(&self) -> bool {
        true
    }

    /// The content of the file at `key` (JS `get`): `None` when there is no entry or it has no blob (a
    /// symlink).
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read_range(key, ReadRange::default()).await
    }

    /// Writes a file (JS `put(path, buffer, { executable, metadata })`).
    async fn put(&self, key: &str, data: &[u8], opts: WriteOptions) -> Result<()> {
        self.check_writable()?;
        let key = path::normalize(key)?;
        let blob = self.blobs().await?.put(data).await?;
        self.write_value(
            &key,
            &EntryValue::file(blob, opts.executable, opts.metadata),
        )
    }
}
