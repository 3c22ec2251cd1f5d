//! The encryption key of this run (`--encryption-key`, `DRIVES_ENCRYPTION_KEY`): every drive a command opens
//! by key uses it. Encrypted drives are JS hyperdrive 13's (`encryptionKey`); the key is never stored.

use std::sync::OnceLock;

use holepunch::hyperdrive::EncryptionKey;

static KEY: OnceLock<Option<EncryptionKey>> = OnceLock::new();

/// Sets the key of this run (once, from the command line).
pub(crate) fn set(key: Option<EncryptionKey>) {
    let _ = KEY.set(key);
}

/// The key of this run, if given.
pub(crate) fn key() -> Option<EncryptionKey> {
    KEY.get().copied().flatten()
}

/// The key `drives touch` uses: the one given, else with `--encrypted` a new random one.
pub(crate) fn for_new_drive(encrypted: bool) -> Option<EncryptionKey> {
    key().or_else(|| encrypted.then(EncryptionKey::generate))
}
