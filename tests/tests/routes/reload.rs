//! Each way the routes file is reloaded live changes where requests go: SIGHUP, `POST
//! /config/reload` with the admin token, and the file's content changing under the 2 s poll
//! (written in place, a new inode renamed over it, a ConfigMap's symlink swap). A request in
//! flight when its group is removed finishes on the old table.

use std::time::Duration;

use e2e::backends::echo_backend;
use e2e::routes::{
    balancer_for, get_host, post_reload, sighup, status, upstream, ConfigFile, ADMIN_TOKEN,
};
use e2e::Balancer;

use crate::fixture::{assert_routed, post_new_content, trigger, wait_reloaded, Groups};

/// The groups and a balancer whose file (plain or ConfigMap) sends everything to `web`.
async fn start(configmap: bool) -> (Groups, ConfigFile, Balancer) {
    let groups = Groups::start().await;
    let toml = groups.all_to("web");
    let file = if configmap {
        ConfigFile::configmap(&toml)
    } else {
        ConfigFile::plain(&toml)
    };
    let b = balancer_for(&file).start().await;
    assert_routed(&b, "web").await;
    (groups, file, b)
}

#[tokio::test]
async fn sighup_reloads_the_routes() {
    e2e::bounded("SIGHUP", async {
        let (groups, file, mut b) = start(false).await;
        let next = groups.all_to("api");
        file.write_in_place(&next);
        sighup(&mut b);
        let s = wait_reloaded(&b, &next, "api").await;
        println!("SIGHUP reload: trigger {:?}", trigger(&s));
        b.assert_running();
    })
    .await;
}

#[tokio::test]
async fn an_admin_post_with_the_token_reloads_and_answers_json() {
    e2e::bounded("POST /config/reload", async {
        let (groups, file, b) = start(false).await;
        let refused = post_reload(&b, None).await;
        assert_eq!(refused.status, 401, "no token: {}", refused.text());
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        let wrong = post_reload(&b, Some("wrong-token-0123456789")).await;
        assert_eq!(wrong.status, 401, "wrong token: {}", wrong.text());
        let get = e2e::http::get_or_panic(&b.admin_url("/config/reload")).await;
        assert_eq!(get.status, 405, "GET /config/reload: {}", get.text());

        let (next, r) = post_new_content(&b, &file, &groups.all_to("api")).await;
        let answer = r.json();
        assert_eq!(answer["result"], "ok", "{answer}");
        assert_eq!(answer["sha256"], e2e::routes::sha256_hex(&next), "{answer}");
        assert!(answer["error"].is_null(), "{answer}");
        assert_eq!(answer["restart_needed"], serde_json::json!([]), "{answer}");
        // The answer comes once the new table is in force.
        assert_routed(&b, "api").await;
        let s = wait_reloaded(&b, &next, "api").await;
        println!("admin reload: trigger {:?}", trigger(&s));

        let again = post_reload(&b, Some(ADMIN_TOKEN)).await;
        assert_eq!(again.status, 200, "{}", again.text());
        assert_eq!(again.json()["result"], "unchanged", "{}", again.text());
        assert_routed(&b, "api").await;
    })
    .await;
}

#[tokio::test]
async fn the_reload_api_is_forbidden_without_a_configured_token() {
    e2e::bounded("POST /config/reload without a token", async {
        let groups = Groups::start().await;
        let file = ConfigFile::plain(&groups.all_to("web"));
        let b = Balancer::builder()
            .args(&["--config", &file.path_str()])
            .start()
            .await;
        let r = post_reload(&b, Some(ADMIN_TOKEN)).await;
        assert_eq!(r.status, 403, "{}", r.text());
        let s = status(&b).await;
        assert!(s["config"]["last_reload"].is_null(), "{}", s["config"]);
    })
    .await;
}

#[tokio::test]
async fn an_edit_in_place_is_seen_by_the_poll() {
    e2e::bounded("edit in place", async {
        let (groups, file, b) = start(false).await;
        let inode = file.inode();
        for (group, next) in [("api", groups.all_to("api")), ("web", groups.all_to("web"))] {
            file.write_in_place(&next);
            assert_eq!(file.inode(), inode, "an edit in place keeps the inode");
            let s = wait_reloaded(&b, &next, group).await;
            println!("edit in place: trigger {:?}", trigger(&s));
        }
    })
    .await;
}

#[tokio::test]
async fn a_new_file_renamed_over_is_seen_by_the_poll() {
    e2e::bounded("rename over", async {
        let (groups, file, b) = start(false).await;
        // The second file also drops the web group altogether.
        let api = groups.api.iter().collect::<Vec<_>>();
        let api_only = upstream("api", &e2e::routes::addrs(&api), &[])
            + "[[route]]\nname = \"main\"\nupstream = \"api\"\n";
        for (group, next) in [("api", api_only), ("web", groups.all_to("web"))] {
            let inode = file.inode();
            file.rename_over(&next);
            assert_ne!(file.inode(), inode, "a rename over gives a new inode");
            let s = wait_reloaded(&b, &next, group).await;
            println!("rename over: trigger {:?}", trigger(&s));
        }
    })
    .await;
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_seen_by_the_poll() {
    e2e::bounded("ConfigMap swap", async {
        let (groups, mut file, b) = start(true).await;
        for (group, next) in [("api", groups.all_to("api")), ("web", groups.all_to("web"))] {
            file.symlink_swap(&next);
            let s = wait_reloaded(&b, &next, group).await;
            println!("ConfigMap swap: trigger {:?}", trigger(&s));
        }
    })
    .await;
}

#[tokio::test]
async fn each_trigger_is_named_in_the_last_reload() {
    e2e::bounded("triggers", async {
        let (groups, file, mut b) = start(false).await;
        let to_api = groups.all_to("api");
        file.write_in_place(&to_api);
        sighup(&mut b);
        let by_signal = trigger(&wait_reloaded(&b, &to_api, "api").await);
        let (to_web, _) = post_new_content(&b, &file, &groups.all_to("web")).await;
        let by_api = trigger(&wait_reloaded(&b, &to_web, "web").await);
        file.write_in_place(&to_api);
        let by_file = trigger(&wait_reloaded(&b, &to_api, "api").await);
        println!("triggers: SIGHUP {by_signal:?}, admin {by_api:?}, file {by_file:?}");
        assert!(
            by_signal != by_api && by_api != by_file && by_signal != by_file,
            "three triggers, three names: {by_signal:?}, {by_api:?}, {by_file:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_request_in_flight_when_its_group_is_removed_finishes() {
    e2e::bounded("in flight across a reload", async {
        let groups = Groups::start().await;
        let slow = echo_backend().await;
        let with_slow = groups.upstreams()
            + &upstream("slow", &[slow.addr], &[])
            + "[[route]]\nname = \"main\"\nupstream = \"web\"\n\n\
               [[route]]\nname = \"slow\"\npath = \"/slow\"\nupstream = \"slow\"\n";
        let file = ConfigFile::plain(&with_slow);
        let b = balancer_for(&file).start().await;
        let url = b.url("/slow?ms=1500");
        let in_flight = tokio::spawn(async move { e2e::http::get(&url).await });
        assert!(
            e2e::wait_until(Duration::from_secs(10), || slow.hits() == 1).await,
            "the slow request did not reach its backend"
        );
        post_new_content(&b, &file, &groups.all_to("web")).await;
        // New requests for /slow now take the `/` route to web (the app has no /slow: its 404).
        let after = get_host(&b, &b.addr().to_string(), "/slow?ms=1").await;
        assert!(
            e2e::routes::served_by(&after).starts_with("web-"),
            "{after:?}"
        );
        let done = match in_flight.await {
            Ok(Ok(resp)) => resp,
            other => panic!("the in-flight request failed: {other:?}"),
        };
        assert_eq!(done.status, 200, "{}", done.text());
        assert_eq!(
            done.header("x-backend"),
            Some(slow.addr.to_string().as_str())
        );
        assert_eq!(slow.hits(), 1, "nothing else reached the removed group");
    })
    .await;
}
