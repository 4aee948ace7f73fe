//! The balancer's routes file (`--config`): writing it the ways users and orchestrators do, starting a
//! balancer on it, reloading it (SIGHUP, `POST /config/reload`, or a change of the file seen by its
//! 2 s poll) and reading what `/status` and `/metrics` say about routes, groups and reloads.
//!
//! A [`ConfigFile`] lives in its own temporary directory (removed on drop) and changes the three ways
//! a file changes under a running process: written in place (a bind mount edited by hand,
//! [`ConfigFile::write_in_place`]), replaced by a new inode renamed over it (what most editors do,
//! [`ConfigFile::rename_over`]), and, in the Kubernetes ConfigMap layout, a `..data` symlink swapped
//! to a new directory ([`ConfigFile::symlink_swap`]).

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use http::Method;
use sha2::{Digest, Sha256};

use crate::http::Resp;
use crate::{bin_path, App, Balancer, BalancerBuilder, RedisServer};

/// The admin token of the balancers [`balancer_for`] starts (`--admin-token`, at least 16 characters).
pub const ADMIN_TOKEN: &str = "routes-e2e-token-0123456789";

/// The file's name in its directory.
const FILE_NAME: &str = "balancer.toml";

/// How the file sits in its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `dir/balancer.toml`, a regular file.
    Plain,
    /// A ConfigMap volume: `dir/balancer.toml -> ..data/balancer.toml`, `..data -> ..<generation>`.
    ConfigMap,
}

/// A routes file in a temporary directory, removed on drop.
pub struct ConfigFile {
    dir: tempfile::TempDir,
    layout: Layout,
    generation: u32,
}

impl ConfigFile {
    /// A regular file holding `toml`.
    pub fn plain(toml: &str) -> ConfigFile {
        let file = ConfigFile::empty(Layout::Plain);
        file.write_in_place(toml);
        file
    }

    /// `toml` laid out as Kubernetes mounts a ConfigMap: the path is a symlink through `..data`.
    pub fn configmap(toml: &str) -> ConfigFile {
        let mut file = ConfigFile::empty(Layout::ConfigMap);
        let first = file.generation_dir(toml);
        must(
            symlink(&first, file.dir.path().join("..data")),
            "symlink ..data",
        );
        must(
            symlink(
                Path::new("..data").join(FILE_NAME),
                file.dir.path().join(FILE_NAME),
            ),
            "symlink the file",
        );
        file.generation += 1;
        file
    }

    fn empty(layout: Layout) -> ConfigFile {
        let dir = must(
            tempfile::Builder::new().prefix("e2e-routes-").tempdir(),
            "temporary directory",
        );
        ConfigFile {
            dir,
            layout,
            generation: 0,
        }
    }

    /// The path the balancer is given (a symlink in the ConfigMap layout).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(FILE_NAME)
    }

    /// The path as text, for `--config`.
    pub fn path_str(&self) -> String {
        self.path().display().to_string()
    }

    /// Truncates the file and writes `toml` into the same inode.
    pub fn write_in_place(&self, toml: &str) {
        must(fs::write(self.path(), toml), "write the config in place");
    }

    /// Writes `toml` to a new file beside it and renames that over the path: a new inode.
    pub fn rename_over(&self, toml: &str) {
        assert_eq!(
            self.layout,
            Layout::Plain,
            "rename_over is for a plain file"
        );
        let tmp = self.dir.path().join(".balancer.toml.new");
        must(fs::write(&tmp, toml), "write the new config");
        must(fs::rename(&tmp, self.path()), "rename the new config over");
    }

    /// What the kubelet does when a ConfigMap changes: the new content in a new `..<generation>`
    /// directory, a `..data_tmp` symlink to it renamed over `..data`, the old directory removed.
    pub fn symlink_swap(&mut self, toml: &str) {
        assert_eq!(
            self.layout,
            Layout::ConfigMap,
            "symlink_swap is for a ConfigMap"
        );
        let old = must(fs::read_link(self.dir.path().join("..data")), "read ..data");
        let new = self.generation_dir(toml);
        let tmp = self.dir.path().join("..data_tmp");
        must(symlink(&new, &tmp), "symlink ..data_tmp");
        must(
            fs::rename(&tmp, self.dir.path().join("..data")),
            "swap ..data",
        );
        must(
            fs::remove_dir_all(self.dir.path().join(old)),
            "remove the old generation",
        );
        self.generation += 1;
    }

    /// `..<generation>/balancer.toml` holding `toml`; returns the directory's name.
    fn generation_dir(&self, toml: &str) -> PathBuf {
        let name = PathBuf::from(format!("..2026_01_01_00_00_{:02}", self.generation));
        let dir = self.dir.path().join(&name);
        must(fs::create_dir(&dir), "create a ConfigMap generation");
        must(
            fs::write(dir.join(FILE_NAME), toml),
            "write a ConfigMap generation",
        );
        name
    }

    /// Deletes the file (the path no longer exists).
    pub fn remove(&self) {
        must(fs::remove_file(self.path()), "remove the config");
    }

    /// The inode the path leads to now (symlinks followed).
    pub fn inode(&self) -> u64 {
        must(fs::metadata(self.path()), "stat the config").ino()
    }

    /// The file's content now.
    pub fn content(&self) -> String {
        must(fs::read_to_string(self.path()), "read the config")
    }
}

fn must<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The lower-case hex SHA-256 of `text`, as `sha256sum` prints it.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// The file's text

/// An `[[upstream]]` table: `name`, `servers` from the replicas, a 100 ms health interval and
/// `extra` lines (`key = value`, TOML as written).
pub fn upstream(name: &str, servers: &[SocketAddr], extra: &[&str]) -> String {
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    let mut table = format!(
        "[[upstream]]\nname = \"{name}\"\nservers = [{}]\nhealth_interval = \"100ms\"\n",
        servers.join(", ")
    );
    for line in extra {
        table.push_str(line);
        table.push('\n');
    }
    table.push('\n');
    table
}

/// The addresses of some replicas.
pub fn addrs(apps: &[&App]) -> Vec<SocketAddr> {
    apps.iter().map(|a| a.addr()).collect()
}

/// `n` app replicas named `{prefix}-1..` on `redis`.
pub async fn replicas(redis: &RedisServer, prefix: &str, n: usize) -> Vec<App> {
    let mut apps = Vec::with_capacity(n);
    for i in 1..=n {
        apps.push(
            App::builder(redis)
                .name(&format!("{prefix}-{i}"))
                .start()
                .await,
        );
    }
    apps
}

// The balancer

/// A balancer on `file` (`--config`), with the admin token [`ADMIN_TOKEN`]; add to it and `start()`.
pub fn balancer_for(file: &ConfigFile) -> BalancerBuilder {
    Balancer::builder()
        .args(&["--config", &file.path_str()])
        .env("BALANCER_ADMIN_TOKEN", ADMIN_TOKEN)
}

/// `POST /config/reload` on the admin port, with `Authorization: Bearer <token>` when given.
pub async fn post_reload(b: &Balancer, token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let url = b.admin_url("/config/reload");
    match crate::http::request(Method::POST, &url, &headers, "").await {
        Ok(r) => r,
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// SIGHUP to the balancer.
pub fn sighup(b: &mut Balancer) {
    b.signal(libc::SIGHUP);
}

/// The admin `/status` document.
pub async fn status(b: &Balancer) -> serde_json::Value {
    crate::balancer_status::status(&b.admin_url("/status")).await
}

/// Polls `/status` until `done` holds for it, for up to `timeout`; returns that status, or fails
/// the test with the last one seen, naming `what`.
pub async fn wait_status(
    b: &Balancer,
    what: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    let reached = crate::wait_until_async(timeout, || async {
        let Ok(resp) = crate::http::get(&b.admin_url("/status")).await else {
            return false;
        };
        let Ok(s) = serde_json::from_slice::<serde_json::Value>(&resp.body) else {
            return false;
        };
        let ok = done(&s);
        *shared::sync::lock(&last) = s;
        ok
    })
    .await;
    let last = shared::sync::lock(&last).clone();
    assert!(
        reached,
        "{what}: not reached within {timeout:?}; last /status config: {}",
        last["config"]
    );
    last
}

/// Waits until `/status` says the configuration in force is the one whose text is `toml`.
pub async fn wait_config(b: &Balancer, toml: &str, timeout: Duration) -> serde_json::Value {
    let sha = sha256_hex(toml);
    wait_status(b, "the new config in force", timeout, |s| {
        s["config"]["sha256"] == sha.as_str()
    })
    .await
}

/// The `routes` entry of `/status` named `name`.
pub fn route_entry<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["routes"]
        .as_array()
        .and_then(|r| r.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("route {name} not in /status routes: {}", status["routes"]))
}

/// The backends of upstream group `group` in `/status` (its `groups` entry; `upstreams` lists
/// the resolved names).
pub fn group_backends<'a>(
    status: &'a serde_json::Value,
    group: &str,
) -> &'a Vec<serde_json::Value> {
    status["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|e| e["name"] == group))
        .and_then(|g| g["backends"].as_array())
        .unwrap_or_else(|| panic!("group {group} not in /status groups: {}", status["groups"]))
}

/// A series of the admin `/metrics`: `name` (every label set summed) or `name{labels}` as printed;
/// 0 when absent.
pub async fn metric(b: &Balancer, series: &str) -> f64 {
    let text = match crate::http::get(&b.admin_url("/metrics")).await {
        Ok(r) => r.text(),
        Err(e) => panic!("GET /metrics: {e}"),
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(name, _)| {
            *name == series || (!series.contains('{') && name.starts_with(&format!("{series}{{")))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

// Requests

/// GET `path` through the balancer with `Host: host` on a fresh connection; the response must come.
pub async fn get_host(b: &Balancer, host: &str, path: &str) -> Resp {
    let url = b.url(path);
    match crate::http::request(Method::GET, &url, &[("host", host)], "").await {
        Ok(r) => r,
        Err(e) => panic!("GET {url} (Host: {host}): {e}"),
    }
}

/// Who served a response: its `X-Served-By` (an app replica's name, or `recorder`), `-` when none
/// (the balancer itself answered).
pub fn served_by(resp: &Resp) -> String {
    resp.header("x-served-by").unwrap_or("-").to_string()
}

/// Polls GET `path` (fresh connections, `Host: host`) until a replica whose name starts with
/// `prefix` answers; false after `timeout`.
pub async fn wait_routed_to(
    b: &Balancer,
    host: &str,
    path: &str,
    prefix: &str,
    timeout: Duration,
) -> bool {
    let url = b.url(path);
    crate::wait_until_async(timeout, || async {
        crate::http::request(Method::GET, &url, &[("host", host)], "")
            .await
            .is_ok_and(|r| served_by(&r).starts_with(prefix))
    })
    .await
}

// check-config and start-up errors

/// How long a balancer run by [`run_balancer`] may take to exit.
pub const RUN_BOUND: Duration = Duration::from_secs(20);

/// `balancer <args>` with `env` (and a scrubbed environment otherwise), run until it exits; what it
/// printed and its exit status. Fails the test when it still runs after [`RUN_BOUND`] (it is killed).
pub async fn run_balancer(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(bin_path("balancer"));
    for var in crate::services::SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(RUN_BOUND, cmd.output()).await {
        Ok(out) => must(out, "run the balancer"),
        Err(_) => panic!("balancer {args:?} still ran after {RUN_BOUND:?}"),
    }
}

/// Non-empty lines of stdout and stderr together.
pub fn printed_lines(out: &Output) -> Vec<String> {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_file_changes_in_place_or_by_a_new_inode() {
        let file = ConfigFile::plain("a = 1\n");
        let inode = file.inode();
        file.write_in_place("a = 2\n");
        assert_eq!((file.content().as_str(), file.inode()), ("a = 2\n", inode));
        file.rename_over("a = 3\n");
        assert_eq!(file.content(), "a = 3\n");
        assert_ne!(file.inode(), inode);
        file.remove();
        assert!(!file.path().exists());
    }

    #[test]
    fn a_configmap_swaps_its_data_symlink() {
        let mut file = ConfigFile::configmap("a = 1\n");
        let path = file.path();
        assert!(must(fs::symlink_metadata(&path), "lstat")
            .file_type()
            .is_symlink());
        let first = must(fs::read_link(file.dir.path().join("..data")), "..data");
        file.symlink_swap("a = 2\n");
        assert_eq!(file.content(), "a = 2\n");
        let second = must(fs::read_link(file.dir.path().join("..data")), "..data");
        assert_ne!(first, second);
        assert!(
            !file.dir.path().join(first).exists(),
            "the old generation is gone"
        );
        file.symlink_swap("a = 3\n");
        assert_eq!(file.content(), "a = 3\n");
    }

    #[test]
    fn sha256_is_what_sha256sum_prints() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
