//! Encrypted drives without their key: a blind seeder stores and serves the encrypted blocks of both cores
//! and reports block counts; it never decodes an entry (to it the db is ciphertext).

use std::time::Duration;

use anyhow::Context;
use holepunch::hyperdrive::Hyperdrive;

/// Pause before asking peers again after a failed fetch.
const RETRY: Duration = Duration::from_secs(1);

/// `drives download KEY` of an encrypted drive without its key: every block of both cores.
pub(crate) async fn download(drive: &Hyperdrive) -> anyhow::Result<()> {
    let got = drive
        .download_blocks()
        .await
        .context("downloading the encrypted blocks")?;
    println!(
        "Download finished for files ({} blocks, encrypted, no key given)",
        got.files
    );
    println!("Download finished for blobs ({} blocks)", got.blobs);
    Ok(())
}

/// `drives seed KEY` of an encrypted drive without its key: once the header shows the drive cannot be read
/// here, keeps every block of both cores downloaded as the drive grows (a readable drive is seeded as JS
/// does: only what is stored). Runs until aborted.
pub(crate) async fn keep(drive: Hyperdrive) {
    loop {
        match drive.header_decodes().await {
            Ok(true) => return,
            Ok(false) => break,
            // No peer had the header yet (timed out): ask again.
            Err(e) => {
                tracing::debug!("blind seed: header: {e}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    let _db = drive.keep_all();
    loop {
        match drive.blobs().await {
            Ok(_) => break,
            Err(e) => {
                tracing::debug!("blind seed: blobs: {e}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    let _all = drive.keep_all();
    std::future::pending::<()>().await;
}
