//! Locating and building the workspace's own executables a stack runs: `app` and `balancer`,
//! built in release (the benchmark must never measure a debug build), and the hyper floor
//! example; and where the workspace and its target directory are. The system tools
//! (`redis-server`, `nginx`, `oha`) are found by [`crate::tools::locate`].

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Paths of the two workspace binaries a stack runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub app: PathBuf,
    pub balancer: PathBuf,
}

/// How to obtain [`Binaries`]: flags shared by `up` and `bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BinaryArgs {
    /// Use this `app` executable instead of building the workspace's (needs --balancer-bin too).
    #[arg(long, value_name = "PATH", requires = "balancer_bin")]
    pub app_bin: Option<PathBuf>,
    /// Use this `balancer` executable instead of building the workspace's (needs --app-bin too).
    #[arg(long, value_name = "PATH", requires = "app_bin")]
    pub balancer_bin: Option<PathBuf>,
    /// Skip `cargo build --release` and use the release binaries already in the target directory.
    #[arg(long, conflicts_with = "app_bin")]
    pub no_build: bool,
}

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

impl BinaryArgs {
    /// Builds (unless told otherwise) and returns the `app` and `balancer` executables.
    pub fn resolve(&self) -> Result<Binaries> {
        if let (Some(app), Some(balancer)) = (&self.app_bin, &self.balancer_bin) {
            return Ok(Binaries {
                app: existing(app)?,
                balancer: existing(balancer)?,
            });
        }
        if !self.no_build {
            build_release()?;
        }
        let release = target_dir().join("release");
        Ok(Binaries {
            app: existing(&release.join("app"))?,
            balancer: existing(&release.join("balancer"))?,
        })
    }
}

fn existing(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        bail!(
            "{} does not exist (build it, or drop --no-build)",
            path.display()
        )
    }
}

/// `balancer/examples/hyper_floor.rs` in release, built unless `no_build` and already there.
pub fn hyper_floor(no_build: bool) -> Result<PathBuf> {
    let bin = target_dir().join("release/examples/hyper_floor");
    if no_build && bin.is_file() {
        return Ok(bin);
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // `-p app` too: the same packages as `build_release`, so cargo unifies the same features and
    // reuses its dependencies instead of building them a second time.
    let args = [
        "build",
        "--release",
        "-p",
        "app",
        "-p",
        "balancer",
        "--example",
        "hyper_floor",
    ];
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    existing(&bin)
}

/// `cargo build --release -p app -p balancer` in the workspace root, output shown to the user.
fn build_release() -> Result<()> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: building app and balancer in release (fat LTO: slow the first time)...");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "app", "-p", "balancer"])
        .current_dir(workspace_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p app -p balancer failed ({status})");
    }
    Ok(())
}
