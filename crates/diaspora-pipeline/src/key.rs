use diaspora_clean::PseudonymKey;
use diaspora_config::Settings;
use diaspora_core::{Error, Result};

/// Loads the pseudonymisation key: the environment variable named in settings, else the key file. When
/// neither exists and `generate_local_key` is set (offline sample profile only), a random 32-byte key is made and
/// kept in the key file (mode 0600). The key is never logged.
pub fn load_key(settings: &Settings) -> Result<PseudonymKey> {
    let ps = &settings.pseudonym;
    if let Ok(text) = std::env::var(&ps.key_env) {
        return PseudonymKey::from_text(&text).map_err(|e| Error::config(format!("{}: {e}", ps.key_env)));
    }
    if let Some(path) = &ps.key_file {
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
            return PseudonymKey::from_text(&text).map_err(|e| Error::config(format!("{}: {e}", path.display())));
        }
        if ps.generate_local_key {
            if !settings.offline {
                return Err(Error::config(
                    "generate_local_key is only allowed in an offline profile; provide a key for live data",
                ));
            }
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| Error::internal(format!("random key: {e}")))?;
            let text = diaspora_core::hex(&key);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create", &e))?;
            }
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Error::io(path, "create key file", &e))?;
            f.write_all(text.as_bytes()).map_err(|e| Error::io(path, "write", &e))?;
            tracing::info!(path = %path.display(), "generated a local pseudonymisation key for the offline sample");
            return PseudonymKey::from_text(&text).map_err(Error::internal);
        }
    }
    Err(Error::config(format!(
        "no pseudonymisation key: set {} (at least 32 bytes, or 64 hex digits) or pseudonym.key_file",
        ps.key_env
    )))
}
