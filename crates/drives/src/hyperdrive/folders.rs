//! Folders of a hyperdrive: they are not entries, a folder exists while some entry is below it.

use super::{folder_range, path, Hyperdrive};
use crate::drive::Result;
use crate::hyperbee::RangeOptions;

impl Hyperdrive {
    /// Whether some entry is below `folder` (the root always is a folder). One bounded range read, however
    /// many entries the folder holds (fetching the db blocks it needs from peers, as other reads do).
    pub async fn is_folder(&self, folder: &str) -> Result<bool> {
        let folder = path::normalize_folder(folder)?;
        if folder.is_empty() {
            return Ok(true);
        }
        let range = RangeOptions {
            limit: Some(1),
            ..folder_range(&folder, "/")
        };
        Ok(!self.bee_read(|b| b.range_vec(&range)).await?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use crate::corestore::Corestore;
    use crate::drive::{Drive, WriteOptions};
    use crate::hyperdrive::{DriveOptions, Hyperdrive};

    #[tokio::test]
    async fn folders_exist_while_entries_are_below() -> crate::drive::Result<()> {
        let dir = testkit::scratch_dir("hyperdrive-folders");
        let store = Corestore::open_with_primary_key(&dir, [2; 32])?;
        let drive = Hyperdrive::open(&store, DriveOptions::default())?;
        assert!(drive.is_folder("/").await?);
        assert!(!drive.is_folder("/a").await?);
        drive.put("/a/b/c", b"x", WriteOptions::default()).await?;
        drive.put("/ab", b"y", WriteOptions::default()).await?;
        for yes in ["/a", "a/b", "/a/b/", "/"] {
            assert!(drive.is_folder(yes).await?, "{yes}");
        }
        for no in ["/a/b/c", "/ab", "/a/c", "/b"] {
            assert!(!drive.is_folder(no).await?, "{no}");
        }
        drive.del("/a/b/c").await?;
        assert!(!drive.is_folder("/a").await?);
        Ok(())
    }
}
