//! NGINX as the alternative front door: its configuration is generated from the project's
//! top-level `nginx.conf` (the single source of truth for the NGINX setup), with only
//! mechanical swaps, and it runs in the foreground under a prefix directory we own.
//!
//! The swaps, and nothing else:
//! * each `server` line of `upstream app_replicas { … }` becomes one line per loopback replica,
//!   keeping its parameters (`max_fails=…`);
//! * `listen <port>;` becomes `listen 127.0.0.1:<port>;` so the port can be chosen (tests and CI
//!   need free ports) and nothing listens beyond loopback;
//! * for the equal-CPU benchmark setting, `worker_processes auto;` becomes `worker_processes N;`.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::stack::{answers_ok, ManagedProcess};

/// The upstream block the project's `nginx.conf` must contain.
const UPSTREAM_NAME: &str = "app_replicas";

/// The directive text of a line: comments removed, surrounding whitespace trimmed.
fn directive(line: &str) -> &str {
    line.split('#').next().unwrap_or_default().trim()
}

fn indentation(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// Generates the NGINX configuration from `template` (the project's `nginx.conf`).
///
/// `workers`: `Some(n)` rewrites `worker_processes` to `n`; `None` keeps the template's value.
pub fn render_config(
    template: &str,
    upstreams: &[SocketAddr],
    listen: SocketAddr,
    workers: Option<usize>,
) -> Result<String> {
    if upstreams.is_empty() {
        bail!("nginx needs at least one upstream replica");
    }
    let mut out = Vec::new();
    // Brace depth inside the upstream block; None while outside it.
    let mut upstream_depth: Option<i32> = None;
    let (mut servers_swapped, mut listens_swapped, mut workers_swapped) = (0, 0, false);
    for line in template.lines() {
        let text = directive(line);
        let words: Vec<&str> = text.split_whitespace().collect();
        if let Some(depth) = upstream_depth.as_mut() {
            if words.first() == Some(&"server") && *depth == 1 {
                let address = words
                    .get(1)
                    .context("upstream `server` line without address")?;
                for upstream in upstreams {
                    let rewritten = text.replacen(address, &upstream.to_string(), 1);
                    out.push(format!("{}{rewritten}", indentation(line)));
                }
                servers_swapped += 1;
                continue;
            }
            *depth += text.matches('{').count() as i32 - text.matches('}').count() as i32;
            if *depth <= 0 {
                upstream_depth = None;
            }
        } else if words.first() == Some(&"upstream") && words.get(1) == Some(&UPSTREAM_NAME) {
            upstream_depth = Some(text.matches('{').count() as i32);
        } else if words.first() == Some(&"listen") {
            let address = words.get(1).context("`listen` without address")?;
            let address = address.trim_end_matches(';');
            if listens_swapped > 0 {
                // A second listen (e.g. `[::]:5002`) would collide with or widen the loopback one.
                continue;
            }
            let rewritten = text.replacen(address, &listen.to_string(), 1);
            out.push(format!("{}{rewritten}", indentation(line)));
            listens_swapped += 1;
            continue;
        } else if words.first() == Some(&"worker_processes") {
            if let Some(n) = workers {
                out.push(format!("{}worker_processes {n};", indentation(line)));
                workers_swapped = true;
                continue;
            }
        }
        out.push(line.to_string());
    }
    if servers_swapped == 0 {
        bail!("nginx.conf has no `server` line inside `upstream {UPSTREAM_NAME} {{ … }}`");
    }
    if listens_swapped == 0 {
        bail!("nginx.conf has no `listen` directive");
    }
    if workers.is_some() && !workers_swapped {
        bail!("nginx.conf has no `worker_processes` directive to set");
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// The project's `nginx.conf`.
pub fn template_path() -> PathBuf {
    crate::binaries::workspace_root().join("nginx.conf")
}

/// A running NGINX (master in the foreground; workers are its children).
#[derive(Debug)]
pub struct Nginx {
    pub process: ManagedProcess,
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
        let template_path = template_path();
        let template = fs::read_to_string(&template_path)
            .with_context(|| format!("reading {}", template_path.display()))?;
        let config = render_config(&template, upstreams, listen, workers).with_context(|| {
            format!(
                "generating the nginx config from {}",
                template_path.display()
            )
        })?;
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
        let command = |test: bool| {
            let mut cmd = Command::new(bin);
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
        let mut process =
            ManagedProcess::spawn("nginx", command(false), &prefix.join("nginx.log"))?;
        process.wait_ready("GET /health through a replica = 200", || {
            answers_ok(listen, "/health")
        })?;
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
mod tests {
    use super::*;

    const TEMPLATE: &str = "worker_processes auto;\n\
        events { worker_connections 4096; }\n\
        http {\n\
        \x20   upstream app_replicas {\n\
        \x20       # server app:9999;\n\
        \x20       server app:5000 max_fails=1 fail_timeout=10s;\n\
        \x20       keepalive 64;\n\
        \x20   }\n\
        \x20   server {\n\
        \x20       listen 5002;\n\
        \x20       location / { proxy_pass http://app_replicas; }\n\
        \x20   }\n\
        }\n";

    fn addrs(ports: &[u16]) -> Vec<SocketAddr> {
        ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect()
    }

    #[test]
    fn swaps_upstreams_listen_and_workers_only() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 6002));
        let out = render_config(TEMPLATE, &addrs(&[7001, 7002]), listen, Some(1)).unwrap();
        assert!(out.contains("        server 127.0.0.1:7001 max_fails=1 fail_timeout=10s;\n"));
        assert!(out.contains("        server 127.0.0.1:7002 max_fails=1 fail_timeout=10s;\n"));
        assert!(!out.contains("server app:5000"));
        assert!(
            out.contains("# server app:9999;"),
            "comments stay as they are"
        );
        assert!(out.contains("listen 127.0.0.1:6002;"));
        assert!(out.starts_with("worker_processes 1;\n"));
        assert!(out.contains("keepalive 64;"));
        // Everything else is byte-for-byte the template.
        let changed: Vec<&str> = TEMPLATE
            .lines()
            .filter(|l| !out.lines().any(|o| o == *l))
            .collect();
        assert_eq!(
            changed,
            vec![
                "worker_processes auto;",
                "        server app:5000 max_fails=1 fail_timeout=10s;",
                "        listen 5002;"
            ]
        );
    }

    #[test]
    fn keeps_worker_processes_when_not_asked() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 6002));
        let out = render_config(TEMPLATE, &addrs(&[7001]), listen, None).unwrap();
        assert!(out.starts_with("worker_processes auto;\n"));
    }

    #[test]
    fn missing_pieces_are_errors() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 6002));
        let no_upstream = TEMPLATE.replace("app_replicas {", "other {");
        assert!(render_config(&no_upstream, &addrs(&[1]), listen, None).is_err());
        let no_listen = TEMPLATE.replace("listen 5002;", "");
        assert!(render_config(&no_listen, &addrs(&[1]), listen, None).is_err());
        assert!(render_config(TEMPLATE, &[], listen, None).is_err());
    }

    #[test]
    fn renders_the_projects_nginx_conf() {
        let template = fs::read_to_string(template_path()).unwrap();
        let listen = SocketAddr::from(([127, 0, 0, 1], 6002));
        let out = render_config(&template, &addrs(&[7001, 7002, 7003]), listen, Some(1)).unwrap();
        assert_eq!(out.matches("server 127.0.0.1:70").count(), 3);
        assert!(out.contains("worker_processes 1;"));
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
