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

/// Fails with a clear error when a drive opened to be read has a db header that does not decode: encrypted,
/// and opened without its key or with another one (a blind open is left alone).
pub(crate) async fn check_readable(drive: &Hyperdrive) -> anyhow::Result<()> {
    if drive.options().blind || drive.version() == 0 {
        return Ok(());
    }
    if drive
        .header_decodes()
        .await
        .context("reading the drive header")?
    {
        return Ok(());
    }
    let key = holepunch::id_encoding::encode(&drive.key());
    if drive.options().encryption_key.is_some() {
        anyhow::bail!("cannot read drive {key}: wrong encryption key (its header does not decrypt)")
    }
    anyhow::bail!(
        "drive {key} is encrypted: pass its key with --encryption-key or DRIVES_ENCRYPTION_KEY"
    )
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
