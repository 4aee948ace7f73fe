//! Locating the workspace binaries under test, building them first.
//!
//! Integration tests in a separate package cannot use `CARGO_BIN_EXE_*` for another package's binary, and a
//! binary left over from an earlier build would test stale code. So the first call runs `cargo build
//! --workspace --bins` with the same profile as the test itself (a no-op when everything is up to date; one
//! invocation for all binaries, so every test process agrees on one feature set and nothing is rebuilt twice),
//! and later calls in the same process return the paths at once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of the workspace binary `name`, built for the current profile. Panics with cargo's output when
/// the build fails: a test cannot run without its binary.
pub fn bin_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = match BUILT.get_or_init(build_all) {
        Ok(dir) => dir,
        Err(why) => panic!("cannot build the workspace binaries: {why}"),
    };
    let path = dir.join(name);
    if !path.is_file() {
        panic!(
            "`{name}` is not a binary of this workspace ({} is missing)",
            path.display()
        );
    }
    path
}

/// `target/<profile>`, found from this test executable's own path (`target/<profile>/deps/<test>-<hash>`).
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let deps = exe
        .parent()
        .ok_or("test executable has no parent directory")?;
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().ok_or("deps directory has no parent")?
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}

/// Builds every binary of the workspace; returns the directory they are in.
fn build_all() -> Result<PathBuf, String> {
    let dir = profile_dir()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--workspace", "--bins"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if let Some(target_dir) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target_dir);
    }
    cmd.current_dir(workspace_root());
    let out = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir)
}

/// The workspace root (the parent of this package's directory).
pub fn workspace_root() -> &'static Path {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here)
}
