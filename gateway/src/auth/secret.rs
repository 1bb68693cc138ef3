//! Where the HS256 user secret comes from: `--jwt-secret`, else `<data-dir>/jwt-secret`, generated
//! on first start (mode 0600) and reused, so `chat-gateway token` and `serve` agree without
//! configuration.

use std::path::Path;

use crate::config::StoreArgs;
use crate::error::{Error, Result};

const SECRET_FILE: &str = "jwt-secret";

/// The configured secret: `--jwt-secret` first, else the data dir's file (created if missing).
/// Signed file URLs derive their key from it too, so every pod of a cluster accepts them.
pub fn resolve_secret(args: &StoreArgs) -> Result<String> {
    if let Some(secret) = args.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
        return Ok(secret.to_owned());
    }
    load_or_create_secret(&args.data_dir)
}

pub(super) fn load_or_create_secret(dir: &Path) -> Result<String> {
    let path = dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::internal(format!("reading {}", path.display()), e)),
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("creating {}", dir.display()), e))?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, &secret)
        .map_err(|e| Error::internal(format!("writing {}", path.display()), e))?;
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("chat-auth-{}", uuid::Uuid::new_v4().simple()));
        let first = load_or_create_secret(&dir).unwrap();
        assert_eq!(first, load_or_create_secret(&dir).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
