//! The ACME state directory (`--acme-state`): the account (`account.json`: the directory URL it
//! belongs to and instant-acme's credentials, with the account key) and, per name,
//! `NAME.crt` (the chain, leaf first) and `NAME.key` (its private key, PKCS#8 PEM).
//!
//! The directory is created 0700 and must belong to this user; files are written 0600 through a
//! temporary file renamed into place, so a crash never leaves half a key. Errors name the path and
//! never include a file's contents (a key must not reach the log).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The state directory, checked usable.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Creates the directory (0700) if needed, and checks that it is a directory of this user
    /// that can be written. The error is one line for `--acme-state`.
    pub fn open(dir: &Path) -> Result<StateDir, String> {
        let show = dir.display();
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {show}: {e}"))?;
        }
        let meta = fs::metadata(dir).map_err(|e| format!("{show}: {e}"))?;
        if !meta.is_dir() {
            return Err(format!("{show} is not a directory"));
        }
        let state = StateDir {
            dir: dir.to_path_buf(),
        };
        state
            .write(".probe", b"")
            .map_err(|e| format!("cannot write in {show}: {e}"))?;
        // The probe is ours: its owner is this process's user.
        let me = fs::metadata(state.path(".probe")).map_or(meta.uid(), |m| m.uid());
        let _ = fs::remove_file(state.path(".probe"));
        if meta.uid() != me {
            return Err(format!(
                "{show} belongs to uid {}, not to this process (uid {me})",
                meta.uid()
            ));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot make {show} private (0700): {e}"))?;
        }
        Ok(state)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Writes `file` (0600) atomically: a temporary file, then a rename.
    pub fn write(&self, file: &str, contents: &[u8]) -> Result<(), String> {
        let path = self.path(file);
        let tmp = self.path(&format!(".{file}.tmp"));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(contents)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        result.map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The contents of `file`; `Ok(None)` when it does not exist.
    pub fn read(&self, file: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.path(file);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The stored pair of `name`: (chain file, key file).
    pub fn pair_files(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.path(&format!("{name}.crt")),
            self.path(&format!("{name}.key")),
        )
    }

    /// Stores a new pair for `name`, key first (a chain without its key is never left).
    pub fn store_pair(&self, name: &str, chain_pem: &str, key_pem: &str) -> Result<(), String> {
        self.write(&format!("{name}.key"), key_pem.as_bytes())?;
        self.write(&format!("{name}.crt"), chain_pem.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_private_and_files_are_0600() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        let state = StateDir::open(&dir).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        state.store_pair("a.example", "CHAIN", "KEY").unwrap();
        let key = fs::metadata(state.path("a.example.key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        assert_eq!(state.read("a.example.crt").unwrap().unwrap(), b"CHAIN");
        assert!(state.read("nope").unwrap().is_none());
    }

    #[test]
    fn a_file_in_the_way_is_a_clear_error() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        let e = StateDir::open(&file).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        let e = StateDir::open(&file.join("below")).unwrap_err();
        assert!(e.contains("cannot create"), "{e}");
    }
}
