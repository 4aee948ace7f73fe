//! The balancer's config files (`--config`) the benches write: `--routes N` of the instructions
//! bench (one host-less route, or N/2 hosts × 2 paths that the measured requests look up) and
//! the two contents the reload bench alternates. It owns the TOML text, where it is written and
//! what a client adds to reach the route (its `Host`); the runners own the processes.
//!
//! The many-route table: hosts `h0.example.test` … `h{N/2-1}.example.test`, each with the paths
//! `/count` and `/static`, all to the group `app`; the measured requests carry the
//! `Host` of the host 57 % of the way along (`h57.example.test` of 100), so each is matched
//! among all N routes. One more host-less route `/` takes what no host names (the readiness
//! probes' `/health`), so the file has N + 1 routes.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A written config file and the `Host` its measured requests carry (`None`: any host).
#[derive(Debug, Clone)]
pub struct RouteFile {
    pub path: PathBuf,
    pub host: Option<String>,
    /// Routes in the file.
    pub routes: usize,
}

impl RouteFile {
    /// `--routes N`'s file in `dir` (`balancer-routes-N.toml`): N = 1 one host-less route `/`,
    /// N ≥ 2 (even) N/2 hosts × 2 paths plus the host-less `/`.
    pub fn write(dir: &Path, routes: usize, servers: &[SocketAddr]) -> Result<Self> {
        let (text, host) = routes_toml(routes, servers);
        let path = dir.join(format!("balancer-routes-{routes}.toml"));
        write_text(&path, &text)?;
        let routes = text.matches("[[route]]").count();
        Ok(Self { path, host, routes })
    }

    /// The balancer's flags that read it.
    pub fn balancer_flags(&self) -> Vec<String> {
        vec!["--config".to_string(), self.path.display().to_string()]
    }

    /// oha's flags that send the route's `Host` (`--host`).
    pub fn oha_flags(&self) -> Vec<String> {
        match &self.host {
            Some(host) => vec!["--host".to_string(), host.clone()],
            None => Vec::new(),
        }
    }
}

/// Writes `text` to `path` whole (a new file renamed over the old, as editors do).
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("toml.tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The `[[upstream]]` table of `name` over `servers`.
fn upstream(name: &str, servers: &[SocketAddr]) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[[upstream]]\nname = \"{name}\"\nservers = [{}]\n\n",
        list.join(", ")
    )
}

/// A `[[route]]` of `path` (on `host` if given) to the group `app`.
fn route(name: &str, host: Option<&str>, path: &str) -> String {
    let host = host.map_or(String::new(), |h| format!("host = \"{h}\"\n"));
    format!("[[route]]\nname = \"{name}\"\n{host}path = \"{path}\"\nupstream = \"app\"\n\n")
}

/// The text of `--routes N`'s file and the `Host` the measured requests carry.
pub fn routes_toml(routes: usize, servers: &[SocketAddr]) -> (String, Option<String>) {
    let mut text = format!("# cargo xtask bench --routes {routes}\n\n");
    text.push_str(&upstream("app", servers));
    if routes <= 1 {
        text.push_str(&route("default", None, "/"));
        return (text, None);
    }
    let hosts = routes.div_ceil(2);
    for i in 0..hosts {
        let host = format!("h{i}.example.test");
        text.push_str(&route(&format!("h{i}-count"), Some(&host), "/count"));
        text.push_str(&route(&format!("h{i}-static"), Some(&host), "/static"));
    }
    text.push_str(&route("fallback", None, "/"));
    (text, Some(format!("h{}.example.test", hosts * 57 / 100)))
}

/// One of the reload bench's two contents: groups `app` (all `servers`) and `next` (the first);
/// `/` split 90/10 between them (`second` false) or 50/50 plus a route `/extra` (`second` true).
/// A reload between them changes a route's weights and adds or removes a route; both groups
/// stay as they are, so they keep their health state and connections.
pub fn reload_toml(servers: &[SocketAddr], second: bool) -> String {
    let mut text = String::from("# cargo xtask bench --reload\n\n");
    text.push_str(&upstream("app", servers));
    text.push_str(&upstream("next", &servers[..1.min(servers.len())]));
    let (app, next) = if second { (50, 50) } else { (90, 10) };
    text.push_str(&format!(
        "[[route]]\nname = \"site\"\npath = \"/\"\nupstreams = [{{ name = \"app\", weight = {app} }}, {{ name = \"next\", weight = {next} }}]\n\n"
    ));
    if second {
        text.push_str(&route("extra", None, "/extra"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Vec<SocketAddr> {
        vec![
            "127.0.0.1:4001".parse().unwrap(),
            "127.0.0.1:4002".parse().unwrap(),
        ]
    }

    #[test]
    fn two_hundred_routes_are_a_hundred_hosts_of_two_paths_and_a_fallback() {
        let (text, host) = routes_toml(200, &servers());
        assert_eq!(text.matches("[[route]]").count(), 201);
        assert_eq!(text.matches("[[upstream]]").count(), 1);
        assert_eq!(host.as_deref(), Some("h57.example.test"));
        assert!(text.contains("host = \"h57.example.test\"\npath = \"/count\""));
        assert!(text.contains("servers = [\"127.0.0.1:4001\", \"127.0.0.1:4002\"]"));
    }

    #[test]
    fn one_route_is_hostless() {
        let (text, host) = routes_toml(1, &servers());
        assert_eq!(text.matches("[[route]]").count(), 1);
        assert!(host.is_none());
    }

    #[test]
    fn the_reload_contents_differ_in_weights_and_a_route() {
        let (a, b) = (
            reload_toml(&servers(), false),
            reload_toml(&servers(), true),
        );
        assert!(a.contains("weight = 90") && b.contains("weight = 50"));
        assert_eq!(
            a.matches("[[route]]").count() + 1,
            b.matches("[[route]]").count()
        );
    }
}
