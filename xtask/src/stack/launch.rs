//! How a front door's process is started: directly, or under a wrapper command such as
//! `valgrind --tool=callgrind` (the instruction-count benchmark), which also needs longer to
//! become ready because valgrind translates the program's code as it first runs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How to start a front door (the default: directly).
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Program and arguments put before the door's own command line.
    pub wrapper: Vec<String>,
    /// NGINX only: `master_process off`, so the one process serving requests is the one started.
    pub single_process: bool,
}

impl Launch {
    /// Under `valgrind --tool=callgrind`, counting only once told to (`--instr-atstart=no`), its
    /// profile written to `profile`; NGINX as one process.
    pub fn callgrind(profile: &Path) -> Launch {
        Launch {
            wrapper: vec![
                "valgrind".into(),
                "--tool=callgrind".into(),
                "--instr-atstart=no".into(),
                format!("--callgrind-out-file={}", profile.display()),
            ],
            single_process: true,
        }
    }

    /// The command for `bin`, wrapped unless it is only a configuration check.
    pub fn command(&self, bin: &Path, check_only: bool) -> Command {
        match self.wrapper.split_first() {
            Some((program, args)) if !check_only => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
            _ => Command::new(bin),
        }
    }

    /// How long the process may take to serve: valgrind translates code as it first runs.
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs(if self.wrapper.is_empty() { 20 } else { 120 })
    }
}
