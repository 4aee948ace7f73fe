//! The report of a loopback or Compose bench: its data ([`model`]), how runs become medians,
//! ratios and notes ([`summary`]), the issues' targets ([`targets`]), `report.md` and the
//! terminal summary ([`markdown`]), `report.svg` ([`chart`] on [`svg`]) and the machine it was
//! measured on ([`machine`]).
//!
//! Pure functions of the records the runners collect, except [`machine`] (which reads `/proc`
//! and runs `git` and the tools for their versions) and [`write_all`]. It may use
//! [`crate::stack`] (the request-log setting, the workspace root) and [`crate::tools`] (tool
//! versions); it knows nothing of the runners.

mod chart;
mod machine;
mod markdown;
pub mod model;
mod summary;
mod svg;
mod targets;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use machine::{describe_machine, git_describe};
pub use markdown::{console_summary, markdown};
pub use summary::{build, median};

use model::Report;

/// Writes report.json, report.md and report.svg into `dir`; returns their paths.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    let outputs = [
        ("report.json", json),
        ("report.md", markdown(report)),
        ("report.svg", chart::render(report)),
    ];
    let mut written = Vec::new();
    for (name, text) in outputs {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
