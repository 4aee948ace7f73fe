//! The `--handover` socket file: created mode 0600 beside its final name and renamed over it, so a
//! stale file (a killed balancer's) or the previous balancer's socket is replaced in one step and
//! the path never points at nothing; removed at exit only while it is still this process's.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// The socket file at `--handover PATH` this process created; dropping it removes the file if
/// it is still this one.
pub struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file this process created, to remove only its own.
    identity: (u64, u64),
}

impl SocketFile {
    /// Listens at `path`, replacing whatever file is there.
    pub fn bind(path: &Path) -> std::io::Result<(UnixListener, SocketFile)> {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.new", std::process::id()));
        let temporary = PathBuf::from(temporary);
        // Left over by a killed process with this pid: never live.
        let _ = std::fs::remove_file(&temporary);
        let listener = UnixListener::bind(&temporary)?;
        let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&temporary);
            return Err(e);
        }
        let metadata = std::fs::metadata(path)?;
        let file = SocketFile {
            path: path.to_owned(),
            identity: (metadata.dev(), metadata.ino()),
        };
        Ok((listener, file))
    }
}

impl Drop for SocketFile {
    /// Removes the file if it is still the one this process created (after a handover it is the
    /// new balancer's, and stays).
    fn drop(&mut self) {
        let ours = std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_stale_file_is_private_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handover.sock");
        std::fs::write(&path, b"stale").unwrap();
        let (_first_listener, first) = SocketFile::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (_second_listener, second) = SocketFile::bind(&path).unwrap();
        drop(first);
        assert!(path.exists(), "the second one's file was removed");
        drop(second);
        assert!(!path.exists());
    }
}
