//! A unix socket only root can connect to: the speaker's API and the agent's CNI server.
//!
//! Bound under a temporary name, made mode 0600, then renamed into place, so that there is no
//! moment at which the socket exists with the umask's wider mode.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} exists and is not a socket: not replacing it")]
    NotASocket(PathBuf),
}

/// Listens on `path` (mode 0600), replacing a stale socket of an earlier run; refuses to remove
/// anything that is not a socket. Creates the parent directory if needed.
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener, Error> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| Error::Io { path: p, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(io(path))?,
        Ok(_) => return Err(Error::NotASocket(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    // Left by a run of ours that died between bind and rename (same pid after a restart).
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp).map_err(io(&tmp))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test]
    async fn owner_only_replaces_a_stale_socket_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("sart-unix-socket-{}", std::process::id()));
        let path = dir.join("sub/api.sock");
        let first = bind(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        drop(first);
        // The file of a listener that is gone: replaced.
        let _second = bind(&path).unwrap();
        tokio::net::UnixStream::connect(&path).await.unwrap();
        let other = dir.join("file");
        std::fs::write(&other, b"keep").unwrap();
        assert!(matches!(bind(&other), Err(Error::NotASocket(_))));
        assert_eq!(std::fs::read(&other).unwrap(), b"keep");
        // No temporary name is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
