//! The reloads the balancer refuses or cannot fully apply: an invalid file is kept out (its
//! position in the POST's answer, `/status` and the log, the error counted) and reported once,
//! not at every poll; a deleted file leaves the running table in place; `listen` and `workers`
//! changes are named as needing a restart while the routes still apply; and a group whose
//! settings did not change keeps its health state and counters.

use std::time::Duration;

use e2e::routes::{
    balancer_for, group_backends, metric, post_reload, sha256_hex, sighup, status, wait_status,
    ConfigFile, ADMIN_TOKEN,
};
use e2e::{free_port, Balancer};

use crate::fixture::{assert_routed, post_new_content, wait_reloaded, Groups, RELOAD_BOUND};

const ERRORS: &str = r#"balancer_config_reloads_total{result="error"}"#;

/// The groups and a balancer whose plain file sends everything to `web`.
async fn start() -> (Groups, ConfigFile, Balancer) {
    let groups = Groups::start().await;
    let file = ConfigFile::plain(&groups.all_to("web"));
    let b = balancer_for(&file).start().await;
    assert_routed(&b, "web").await;
    (groups, file, b)
}

/// A file routing everything to `api` but for one unknown key in the route (`colour`), alone on
/// its line at column 1; returns the text and that line's number.
fn with_unknown_key(groups: &Groups) -> (String, usize) {
    let text = groups.all_to("api") + "colour = \"blue\"\n";
    (text.clone(), text.lines().count())
}

/// Whether `error` names line `line` and a column (`...:LINE:COLUMN...`).
fn names_position(error: &str, line: usize) -> bool {
    let pattern = format!(r"(^|\D){line}:\d+(\D|$)");
    regex::Regex::new(&pattern).is_ok_and(|re| re.is_match(error))
}

#[tokio::test]
async fn an_invalid_file_is_kept_out_and_its_position_reported() {
    e2e::bounded("invalid file", async {
        let (groups, file, mut b) = start().await;
        let running = sha256_hex(&file.content());
        let errors_before = metric(&b, ERRORS).await;
        let (bad, line) = with_unknown_key(&groups);
        file.write_in_place(&bad);
        let r = post_reload(&b, Some(ADMIN_TOKEN)).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let answer = r.json();
        assert_eq!(answer["result"], "error", "{answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(names_position(error, line), "line {line} not in {error:?}");
        assert!(error.contains("colour"), "the key is named: {error:?}");

        assert_routed(&b, "web").await;
        let s = status(&b).await;
        let config = &s["config"];
        assert_eq!(
            config["sha256"], running,
            "the running config stays: {config}"
        );
        let last = &config["last_reload"];
        assert_eq!(last["result"], "error", "{last}");
        let shown = last["error"].as_str().unwrap_or_default();
        assert!(
            names_position(shown, line),
            "line {line} not in /status {shown:?}"
        );
        assert!(
            metric(&b, ERRORS).await > errors_before,
            "{ERRORS} did not count it"
        );

        // SIGHUP: the same refusal, counted again.
        let counted = metric(&b, ERRORS).await;
        sighup(&mut b);
        assert!(
            e2e::wait_until_async(RELOAD_BOUND, || async {
                metric(&b, ERRORS).await > counted
            })
            .await,
            "SIGHUP on an invalid file was not counted as an error"
        );
        assert_routed(&b, "web").await;
        assert!(
            b.log()
                .lines()
                .any(|l| l.contains("colour") && names_position(l, line)),
            "no log line gives the position"
        );
        b.assert_running();

        // Fixed, it goes through.
        let (fixed, _) = post_new_content(&b, &file, &groups.all_to("api")).await;
        wait_reloaded(&b, &fixed, "api").await;
    })
    .await;
}

#[tokio::test]
async fn malformed_toml_seen_by_the_poll_is_reported_once_not_at_every_poll() {
    e2e::bounded("invalid file under the poll", async {
        let (groups, file, b) = start().await;
        let errors_before = metric(&b, ERRORS).await;
        let bad = groups.all_to("api") + "[[route]\n";
        let line = bad.lines().count();
        file.write_in_place(&bad);
        let s = wait_status(&b, "the poll's error", RELOAD_BOUND, |s| {
            s["config"]["last_reload"]["result"] == "error"
        })
        .await;
        let shown = s["config"]["last_reload"]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(names_position(shown, line), "line {line} not in {shown:?}");
        // (A poll between the truncation and the write may have seen an empty file first.)
        let counted = metric(&b, ERRORS).await;
        assert!(counted > errors_before, "{ERRORS} did not count it");
        assert_routed(&b, "web").await;
        // Two more polls of the same bad content: nothing new to report.
        tokio::time::sleep(Duration::from_millis(4500)).await;
        assert_eq!(
            metric(&b, ERRORS).await,
            counted,
            "the same invalid file was reported again at a later poll"
        );
        assert_routed(&b, "web").await;
    })
    .await;
}

#[tokio::test]
async fn a_deleted_file_at_reload_leaves_the_running_routes() {
    e2e::bounded("deleted file", async {
        let (groups, file, mut b) = start().await;
        let running = sha256_hex(&file.content());
        file.remove();
        let r = post_reload(&b, Some(ADMIN_TOKEN)).await;
        assert!(r.status >= 400, "{}", r.text());
        assert_eq!(r.json()["result"], "error", "{}", r.text());
        assert!(r.json()["error"].as_str().is_some_and(|e| !e.is_empty()));
        sighup(&mut b);
        let s = wait_status(&b, "the deletion reported", RELOAD_BOUND, |s| {
            s["config"]["last_reload"]["result"] == "error"
        })
        .await;
        assert_eq!(s["config"]["sha256"], running, "{}", s["config"]);
        assert_routed(&b, "web").await;
        b.assert_running();
        // Written again, the poll picks it up.
        let back = groups.all_to("api");
        file.write_in_place(&back);
        wait_reloaded(&b, &back, "api").await;
    })
    .await;
}

/// `[server]` with `listen` on `port` and `workers`, then the groups and everything to `group`.
fn server_table(groups: &Groups, port: u16, workers: u32, group: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = {workers}\n\n{}",
        groups.all_to(group)
    )
}

#[tokio::test]
async fn listen_and_workers_changes_need_a_restart_and_the_routes_still_apply() {
    e2e::bounded("restart needed", async {
        let groups = Groups::start().await;
        let (port, other) = (free_port(), free_port());
        let file = ConfigFile::plain(&server_table(&groups, port, 2, "web"));
        let b = balancer_for(&file).listen_from_file(port).start().await;
        assert_routed(&b, "web").await;
        let (next, r) = post_new_content(&b, &file, &server_table(&groups, other, 3, "api")).await;
        let answer = r.json();
        assert_eq!(answer["result"], "ok", "{answer}");
        let needed = answer["restart_needed"].to_string();
        assert!(
            needed.contains("--listen") && needed.contains("--workers"),
            "restart_needed: {needed}"
        );
        // Still on the old address, with the new routes.
        assert_routed(&b, "api").await;
        let s = wait_status(&b, "the reload recorded", RELOAD_BOUND, |s| {
            s["config"]["sha256"] == sha256_hex(&next).as_str()
        })
        .await;
        let shown = s["config"]["last_reload"]["restart_needed"].to_string();
        assert!(
            shown.contains("--listen") && shown.contains("--workers"),
            "{shown}"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", other)).is_err(),
            "the new listen address is not taken before a restart"
        );
        let log = b.log();
        assert!(
            log.lines()
                .any(|l| l.contains("--listen") && l.contains("--workers")),
            "the reload's log line names what needs a restart"
        );
    })
    .await;
}

#[tokio::test]
async fn an_unchanged_group_keeps_its_health_state_and_counters() {
    e2e::bounded("unchanged group", async {
        let groups = Groups::start().await;
        let routes = "[[route]]\nname = \"main\"\nupstream = \"web\"\n\n\
                      [[route]]\nname = \"api\"\npath = \"/api\"\nupstream = \"api\"\nstrip_prefix = true\n";
        let file = ConfigFile::plain(&(groups.upstreams() + routes));
        let b = balancer_for(&file).start().await;
        let host = b.addr().to_string();
        for _ in 0..5 {
            let r = e2e::routes::get_host(&b, &host, "/api/about").await;
            assert_eq!(r.status, 200);
        }
        let before = status(&b).await;
        let api_before = group_backends(&before, "api")[0].clone();
        assert_eq!(api_before["state"], "active", "{api_before}");
        let served = api_before["requests_total"].as_u64().unwrap_or(0);
        assert!(served >= 5, "{api_before}");

        // The web group changes (its balance), api does not; the routes are the same.
        let web: Vec<&e2e::App> = groups.web.iter().collect();
        let api: Vec<&e2e::App> = groups.api.iter().collect();
        let changed = e2e::routes::upstream(
            "web",
            &e2e::routes::addrs(&web),
            &["balance = \"least-request\""],
        ) + &e2e::routes::upstream("api", &e2e::routes::addrs(&api), &[])
            + routes;
        let (_, r) = post_new_content(&b, &file, &changed).await;
        assert_eq!(r.json()["result"], "ok", "{}", r.text());
        let after = status(&b).await;
        let api_after = &group_backends(&after, "api")[0];
        assert_eq!(api_after["state"], "active", "api went back to pending: {api_after}");
        assert!(
            api_after["requests_total"].as_u64().unwrap_or(0) >= served,
            "api's counters were reset: before {api_before}, after {api_after}"
        );
        // The changed group was healthy before the swap: its backends are in the rotation.
        for backend in group_backends(&after, "web") {
            assert_eq!(backend["state"], "active", "{backend}");
        }
    })
    .await;
}
