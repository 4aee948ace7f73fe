//! NGINX as the alternative front door, run in the foreground under a prefix directory we own,
//! with the configuration [`e2e::nginx_config`] generates from the project's `nginx.conf` (and,
//! for the HTTPS benches, an `ssl` listener added by [`with_tls`]; for the compression bench,
//! `gzip on` by [`with_gzip`]).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use e2e::nginx_config::{directive, render_config};

use e2e::Process;

use super::binaries::workspace_root;
use super::launch::Launch;
use super::{answers_ok, spawn};
use crate::tools::procstats;

/// The project's `nginx.conf`.
pub fn template_path() -> PathBuf {
    workspace_root().join("nginx.conf")
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
        let mut process = spawn("nginx", command(false), &prefix.join("nginx.log"))?;
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
        pids.extend(procstats::children_of(master));
        pids
    }
}

/// Adds an HTTPS listener on `tls` to the generated NGINX server (after its plain `listen`), with
/// the same pair and session settings as `nginx-tls/tls.conf`.
pub fn with_tls(config: &str, tls: SocketAddr, cert: &Path, key: &Path) -> Result<String> {
    let directives = [
        format!("listen {tls} ssl http2;"),
        format!("ssl_certificate {};", cert.display()),
        format!("ssl_certificate_key {};", key.display()),
        "ssl_protocols TLSv1.2 TLSv1.3;".to_string(),
        "ssl_session_cache shared:TLS:10m;".to_string(),
        "ssl_session_tickets on;".to_string(),
        // NGINX ends an HTTP/2 connection with GOAWAY after 1,000 requests by default,
        // which oha counts as errors; the balancer sets no such limit.
        "keepalive_requests 1000000;".to_string(),
    ];
    after_listen(config, &directives, "TLS")
}

/// Turns on NGINX's `gzip` at `level` in the generated server (after its plain `listen`), for
/// the compression bench: the same minimum size (1 KiB) and types as the balancer's `compress`.
pub fn with_gzip(config: &str, level: u32) -> Result<String> {
    let types = "text/css text/plain text/xml text/javascript application/javascript \
                 application/json application/xml image/svg+xml";
    let directives = [
        "gzip on;".to_string(),
        format!("gzip_comp_level {level};"),
        "gzip_min_length 1024;".to_string(),
        format!("gzip_types {types};"),
        "gzip_vary on;".to_string(),
    ];
    after_listen(config, &directives, "gzip")
}

/// `directives` inserted after the first `listen` line of `config`, at its indentation.
fn after_listen(config: &str, directives: &[String], what: &str) -> Result<String> {
    let mut out = Vec::new();
    let mut added = false;
    for line in config.lines() {
        out.push(line.to_string());
        if !added && directive(line).starts_with("listen ") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.extend(directives.iter().map(|d| format!("{indent}{d}")));
            added = true;
        }
    }
    if !added {
        bail!("the generated nginx config has no `listen` line to add {what} after");
    }
    Ok(out.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_gets_an_https_listen_after_its_plain_one() {
        let config = "http {\n    server {\n        listen 127.0.0.1:1;\n    }\n}\n";
        let tls = SocketAddr::from(([127, 0, 0, 1], 2));
        let out = with_tls(config, tls, Path::new("/c.pem"), Path::new("/k.pem")).unwrap();
        assert!(
            out.contains("        listen 127.0.0.1:1;\n        listen 127.0.0.1:2 ssl http2;\n")
        );
        assert!(out.contains("ssl_certificate /c.pem;") && out.contains("ssl_session_tickets on;"));
        assert!(with_tls("http {}\n", tls, Path::new("c"), Path::new("k")).is_err());
    }

    #[test]
    fn nginx_gets_gzip_at_the_level_after_its_listen() {
        let config = "http {\n    server {\n        listen 127.0.0.1:1;\n    }\n}\n";
        let out = with_gzip(config, 5).unwrap();
        assert!(out.contains("        listen 127.0.0.1:1;\n        gzip on;\n"));
        assert!(out.contains("gzip_comp_level 5;") && out.contains("application/json"));
        assert!(with_gzip("http {}\n", 5).is_err());
    }
}

#[cfg(test)]
mod real_nginx_tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::thread;
    use std::time::Duration;

    use super::*;
    use crate::stack::{free_port, probe};
    use crate::tools::locate;

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
        let bin = locate::nginx().unwrap();
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
