//! What the suite's tests share: a Redis, two upstream groups of app replicas (`web-1`, `web-2`
//! and `api-1`) and the routes files that send `/` to one group or the other.

use std::time::Duration;

use e2e::routes::{addrs, post_reload, replicas, upstream, ConfigFile, ADMIN_TOKEN};
use e2e::Balancer;
use e2e::{App, RedisServer};

/// Bound on one reload being seen in `/status` or in routing: the file poll is every 2 s, a
/// reload itself takes well under a second here.
pub const RELOAD_BOUND: Duration = Duration::from_secs(15);

/// Redis and two groups of replicas: `web` (2) and `api` (1).
pub struct Groups {
    /// Kept running for the replicas' `/health`.
    _redis: RedisServer,
    pub web: Vec<App>,
    pub api: Vec<App>,
}

impl Groups {
    pub async fn start() -> Groups {
        let redis = RedisServer::start().await;
        let web = replicas(&redis, "web", 2).await;
        let api = replicas(&redis, "api", 1).await;
        Groups {
            _redis: redis,
            web,
            api,
        }
    }

    /// The two `[[upstream]]` tables.
    pub fn upstreams(&self) -> String {
        let web: Vec<&App> = self.web.iter().collect();
        let api: Vec<&App> = self.api.iter().collect();
        upstream("web", &addrs(&web), &[]) + &upstream("api", &addrs(&api), &[])
    }

    /// The groups and one route `main`: `/` to `group`.
    pub fn all_to(&self, group: &str) -> String {
        format!(
            "{}[[route]]\nname = \"main\"\npath = \"/\"\nupstream = \"{group}\"\n",
            self.upstreams()
        )
    }
}

/// GET `/about` through the balancer (fresh connection) is answered 200 by a replica of `group`.
pub async fn assert_routed(b: &e2e::Balancer, group: &str) {
    let r = e2e::routes::get_host(b, &b.addr().to_string(), "/about").await;
    let who = e2e::routes::served_by(&r);
    assert!(
        r.status == 200 && who.starts_with(&format!("{group}-")),
        "/about: want {group}, got {who} {}",
        r.status
    );
}

/// Waits until `/about` is served by `group` and `/status` shows `toml` in force and a last
/// reload that went through; returns that status.
pub async fn wait_reloaded(b: &e2e::Balancer, toml: &str, group: &str) -> serde_json::Value {
    let host = b.addr().to_string();
    let prefix = format!("{group}-");
    let routed = e2e::routes::wait_routed_to(b, &host, "/about", &prefix, RELOAD_BOUND).await;
    assert!(
        routed,
        "/about not routed to {group} within {RELOAD_BOUND:?}"
    );
    let sha = e2e::routes::sha256_hex(toml);
    let s = e2e::routes::wait_status(b, "the reload recorded", RELOAD_BOUND, |s| {
        s["config"]["sha256"] == sha.as_str() && s["config"]["last_reload"]["result"] == "ok"
    })
    .await;
    let last = &s["config"]["last_reload"];
    assert!(!last["at"].is_null(), "{last}");
    assert!(last["error"].is_null(), "{last}");
    assert_eq!(last["restart_needed"], serde_json::json!([]), "{last}");
    s
}

/// The trigger `/status` names for the last reload.
pub fn trigger(status: &serde_json::Value) -> String {
    let trigger = status["config"]["last_reload"]["trigger"].as_str();
    trigger
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("no trigger in {}", status["config"]))
        .to_string()
}

/// Writes `toml` (plus a comment that makes it new) and POSTs a reload with the token; returns
/// the text written and the 200 answer. The file's 2 s poll may see the write before the POST
/// does (then the POST finds it `unchanged`): that is tried again with another comment.
pub async fn post_new_content(
    b: &Balancer,
    file: &ConfigFile,
    toml: &str,
) -> (String, e2e::http::Resp) {
    for attempt in 1..=3 {
        let text = format!("{toml}# attempt {attempt}\n");
        file.write_in_place(&text);
        let r = post_reload(b, Some(ADMIN_TOKEN)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        if r.json()["result"] != "unchanged" {
            return (text, r);
        }
    }
    panic!("three POST reloads in a row found the file already loaded");
}
