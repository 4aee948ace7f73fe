//! NGINX as the alternative front door, run in the foreground under a prefix directory we own,
//! with the configuration [`e2e::nginx_config`] generates from the project's `nginx.conf`.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use e2e::nginx_config::{directive, render_config};

use e2e::Process;

use crate::launch::Launch;
use crate::stack::{self, answers_ok};

/// The project's `nginx.conf`.
pub fn template_path() -> PathBuf {
    crate::binaries::workspace_root().join("nginx.conf")
}

/// A running NGINX (master in the foreground; workers are its children).
#[derive(Debug)]
pub struct Nginx {
    pub process: Process,
    pub addr: SocketAddr,
    pub prefix: PathBuf,
}

impl Nginx {
    /// Renders the configuration into `prefix`, checks it with `nginx -t`, starts NGINX and waits
    /// until it serves `/health` through a replica.
    pub fn start(
        bin: &Path,
        prefix: &Path,
        upstreams: &[SocketAddr],
        listen: SocketAddr,
        workers: Option<usize>,
    ) -> Result<Self> {
        Self::start_launched(
            bin,
            prefix,
            upstreams,
            (listen, listen),
            workers,
            &Launch::default(),
            Ok,
        )
    }

    /// [`Nginx::start`] with `edit` applied to the generated configuration (the TLS bench turns
    /// its `listen` into an HTTPS one); readiness is then checked on `ready_on`, a plain listener.
    pub fn start_edited(
        bin: &Path,
        prefix: &Path,
        upstreams: &[SocketAddr],
        listens: (SocketAddr, SocketAddr),
        workers: Option<usize>,
        edit: impl FnOnce(String) -> Result<String>,
    ) -> Result<Self> {
        let launch = Launch::default();
        Self::start_launched(bin, prefix, upstreams, listens, workers, &launch, edit)
    }

    /// The general form: `edit` applied to the configuration, run as `launch` says (e.g. one
    /// process under valgrind), ready when `ready_on` serves `/health` through a replica.
    pub fn start_launched(
        bin: &Path,
        prefix: &Path,
        upstreams: &[SocketAddr],
        (listen, ready_on): (SocketAddr, SocketAddr),
        workers: Option<usize>,
        launch: &Launch,
        edit: impl FnOnce(String) -> Result<String>,
    ) -> Result<Self> {
        let template_path = template_path();
        let template = fs::read_to_string(&template_path)
            .with_context(|| format!("reading {}", template_path.display()))?;
        let config = render_config(&template, upstreams, listen, workers).with_context(|| {
            format!(
                "generating the nginx config from {}",
                template_path.display()
            )
        })?;
        let config = edit(config)?;
        fs::create_dir_all(prefix).with_context(|| format!("creating {}", prefix.display()))?;
        let prefix = prefix
            .canonicalize()
            .with_context(|| format!("resolving {}", prefix.display()))?;
        let conf_path = prefix.join("nginx.conf");
        fs::write(&conf_path, &config)
            .with_context(|| format!("writing {}", conf_path.display()))?;
        let error_log = prefix.join("error.log");
        let mut globals = format!("pid {};", prefix.join("nginx.pid").display());
        if !config.lines().any(|l| directive(l).starts_with("daemon ")) {
            // Foreground master, so it is our child and stops with us.
            globals.push_str(" daemon off;");
        }
        if launch.single_process {
            globals.push_str(" master_process off;");
        }
        let command = |test: bool| {
            let mut cmd = launch.command(bin, test);
            cmd.arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(&error_log)
                .arg("-g")
                .arg(&globals);
            if test {
                cmd.arg("-t");
            }
            cmd
        };
        let check = command(true).output().context("running nginx -t")?;
        if !check.status.success() {
            bail!(
                "nginx rejected the generated config {}: {}",
                conf_path.display(),
                String::from_utf8_lossy(&check.stderr).trim()
            );
        }
        let mut process = stack::spawn("nginx", command(false), &prefix.join("nginx.log"))?;
        process.wait_ready(
            "GET /health through a replica = 200",
            launch.ready_timeout(),
            || answers_ok(ready_on, "/health"),
        )?;
        Ok(Self {
            process,
            addr: listen,
            prefix,
        })
    }

    /// Master and worker PIDs: the processes NGINX's CPU and memory are charged to.
    pub fn pids(&self) -> Vec<u32> {
        let master = self.process.pid();
        let mut pids = vec![master];
        pids.extend(crate::procstats::children_of(master));
        pids
    }
}

#[cfg(test)]
mod real_nginx_tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::thread;
    use std::time::Duration;

    use super::*;
    use crate::probe;
    use crate::stack::free_port;

    /// A tiny HTTP/1.1 upstream answering every request with its own `name`.
    fn upstream(name: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut writer = &stream;
                    loop {
                        let mut head_done = false;
                        let mut line = String::new();
                        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                            if line == "\r\n" {
                                head_done = true;
                                break;
                            }
                            line.clear();
                        }
                        if !head_done {
                            return;
                        }
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                            name.len()
                        );
                        if writer.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn generated_config_runs_under_real_nginx_and_round_robins() {
        let bin = crate::binaries::nginx().unwrap();
        let prefix = tempfile::tempdir().unwrap();
        let upstreams = [upstream("first"), upstream("second")];
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
        let nginx = Nginx::start(&bin, prefix.path(), &upstreams, listen, Some(1)).unwrap();
        let bodies: Vec<String> = (0..4)
            .map(|_| {
                let reply = probe::http_get(listen, "/x", Duration::from_secs(5)).unwrap();
                assert_eq!(reply.status, 200);
                String::from_utf8(reply.body).unwrap()
            })
            .collect();
        assert_eq!(
            bodies.iter().filter(|b| *b == "first").count(),
            2,
            "{bodies:?}"
        );
        assert_eq!(
            bodies.iter().filter(|b| *b == "second").count(),
            2,
            "{bodies:?}"
        );
        // worker_processes 1: the master and exactly one worker.
        assert_eq!(nginx.pids().len(), 2, "{:?}", nginx.pids());
        let master = nginx.process.pid();
        drop(nginx);
        assert!(
            !Path::new(&format!("/proc/{master}")).exists(),
            "nginx stopped on drop"
        );
    }
}
