//! The NGINX configuration generated from the project's top-level `nginx.conf` (the single source
//! of truth for the NGINX setup), with only mechanical swaps. Here, in the test library, so the browser tests
//! render the same configuration as `cargo xtask up` and the benchmark.
//!
//! The swaps, and nothing else:
//! * each `server` line of `upstream app_replicas { … }` becomes one line per loopback replica,
//!   keeping its parameters (`max_fails=…`);
//! * `listen <port>;` becomes `listen 127.0.0.1:<port>;` so the port can be chosen (tests and CI
//!   need free ports) and nothing listens beyond loopback;
//! * for the equal-CPU benchmark setting, `worker_processes auto;` becomes `worker_processes N;`.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};

/// The upstream block the project's `nginx.conf` must contain.
const UPSTREAM_NAME: &str = "app_replicas";

/// The directive text of a line: comments removed, surrounding whitespace trimmed.
pub fn directive(line: &str) -> &str {
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
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../nginx.conf")).unwrap();
        let listen = SocketAddr::from(([127, 0, 0, 1], 6002));
        let out = render_config(&template, &addrs(&[7001, 7002, 7003]), listen, Some(1)).unwrap();
        assert_eq!(out.matches("server 127.0.0.1:70").count(), 3);
        assert!(out.contains("worker_processes 1;"));
    }
}
