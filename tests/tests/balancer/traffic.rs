//! Traffic management with real processes (issue 13): least-request against a slow replica,
//! slow start, 5xx ejection and its half cap, the per-client rate limit, the connection limit and
//! the drain API. Backends are [`TunableBackend`]s (a status and a delay the test changes live)
//! unless a real app and Redis are needed (the rate limit's `/count`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use e2e::backends::TunableBackend;
use e2e::balancer_status::{backend_entry, status};
use e2e::load::{count_tags, quantile, tagged_load, Budget, Tagged};
use e2e::raw::{self, RawResponse};
use e2e::{App, Balancer, RedisServer};
use http::Method;

const T: Duration = Duration::from_secs(20);
const TOKEN: &str = "test-token-0123456789";

async fn tunables(n: usize, delay: Duration) -> Vec<TunableBackend> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TunableBackend::start(200, delay).await);
    }
    out
}

async fn balancer_for(backends: &[&TunableBackend], args: &[&str]) -> Balancer {
    let list: Vec<String> = backends.iter().map(|b| b.addr().to_string()).collect();
    let b = Balancer::builder()
        .upstreams(&list.join(","))
        .args(args)
        .start()
        .await;
    let n = backends.len() as u64;
    let admin = b.admin_url("/status");
    assert!(
        e2e::wait_until_async(T, || async {
            status(&admin).await["healthy_backends"].as_u64() == Some(n)
        })
        .await,
        "not all healthy: {}",
        status(&admin).await
    );
    b
}

fn share(samples: &[Tagged], addr: SocketAddr) -> f64 {
    let n = samples
        .iter()
        .filter(|s| s.tag.as_deref() == Some(addr.to_string().as_str()))
        .count();
    n as f64 / samples.len().max(1) as f64
}

fn p99(samples: &[Tagged]) -> Duration {
    quantile(samples.iter().map(|s| s.latency).collect(), 0.99)
}

fn all_ok(samples: &[Tagged]) -> bool {
    samples.iter().all(|s| s.status == Some(200))
}

/// 3,000 requests at 32 connections over three replicas, one 50 ms slower: its share, the p99
/// and p90, and who served what.
async fn slow_share(balance: &str) -> (f64, String, HashMap<String, usize>) {
    let fast = tunables(2, Duration::ZERO).await;
    let slow = TunableBackend::start(200, Duration::from_millis(50)).await;
    let b = balancer_for(&[&fast[0], &fast[1], &slow], &["--balance", balance]).await;
    let began = Instant::now();
    let samples = tagged_load(&b.url("/"), 32, "x-backend", Budget::Requests(3000)).await;
    let took = began.elapsed();
    assert_eq!(samples.len(), 3000);
    assert!(all_ok(&samples), "{:?}", count_tags(&samples));
    let p90 = quantile(samples.iter().map(|s| s.latency).collect(), 0.9);
    let figures = format!("p99 {:?}, p90 {p90:?}, {took:?} in all", p99(&samples));
    (share(&samples, slow.addr()), figures, count_tags(&samples))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_sends_a_slow_replica_far_less_than_round_robin() {
    e2e::bounded("least-request vs round-robin", async {
        let (lr_share, lr_figures, lr) = slow_share("least-request").await;
        let (rr_share, rr_figures, rr) = slow_share("round-robin").await;
        println!(
            "slow replica share: least-request {:.1} % ({lr_figures}; {lr:?}), \
             round-robin {:.1} % ({rr_figures}; {rr:?})",
            lr_share * 100.0,
            rr_share * 100.0
        );
        assert!(
            lr_share < 0.15,
            "least-request gave the slow replica {lr_share}"
        );
        assert!(
            (0.30..=0.37).contains(&rr_share),
            "round-robin gave {rr_share}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_replica_that_comes_back() {
    e2e::bounded("slow start", async {
        let up = tunables(2, Duration::from_millis(2)).await;
        let port = e2e::free_port();
        let late_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let b = Balancer::builder()
            .upstreams(&format!("{},{},{late_addr}", up[0].addr(), up[1].addr()))
            .args(&["--slow-start", "5s", "--health-interval", "200ms"])
            .start()
            .await;
        // Load first, then the third replica appears and passes its first health check.
        let url = b.url("/");
        let load =
            tokio::spawn(async move { tagged_load(&url, 8, "x-backend", Budget::For(Duration::from_secs(10))).await });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let late = TunableBackend::start_on(port, 200, Duration::from_millis(2)).await;
        let samples = load.await.expect("load task");
        assert!(all_ok(&samples), "{:?}", count_tags(&samples));
        let tag = late.addr().to_string();
        let first = samples
            .iter()
            .find(|s| s.tag.as_deref() == Some(tag.as_str()))
            .map(|s| s.finished)
            .expect("the late replica served nothing");
        let window = |from: Duration, to: Duration| -> Vec<Tagged> {
            samples
                .iter()
                .filter(|s| s.finished >= first + from && s.finished < first + to)
                .cloned()
                .collect()
        };
        let first_second = share(&window(Duration::ZERO, Duration::from_secs(1)), late.addr());
        let after = window(Duration::from_millis(5500), Duration::from_secs(8));
        let full = share(&after, late.addr());
        println!(
            "slow start 5 s: late replica's share {:.1} % in its first second, {:.1} % after the window ({} requests)",
            first_second * 100.0,
            full * 100.0,
            after.len()
        );
        assert!(first_second < 0.10, "first second: {first_second}");
        assert!(after.len() > 100, "too little traffic after the window");
        assert!((0.25..=0.42).contains(&full), "after the window: {full}");
    })
    .await;
}

#[tokio::test]
async fn consecutive_5xx_eject_a_replica_but_never_more_than_half() {
    e2e::bounded("5xx ejection", async {
        let backends = tunables(4, Duration::ZERO).await;
        let refs: Vec<&TunableBackend> = backends.iter().collect();
        let b = balancer_for(&refs, &["--max-5xx", "3", "--fail-timeout", "60s"]).await;
        backends[1].set_status(500);
        let client = e2e::http::Client::new();
        for _ in 0..40 {
            client.get(&b.url("/")).await.expect("answer");
        }
        assert_eq!(
            backends[1].hits(),
            3,
            "ejected after exactly 3 consecutive 5xx"
        );
        let s = status(&b.admin_url("/status")).await;
        let entry = backend_entry(&s, &backends[1].addr().to_string());
        assert_eq!(entry["ejected"], true, "{entry}");
        assert_eq!(entry["healthy"], false);
        assert!(
            entry["reason"].as_str().unwrap_or("").contains("5xx"),
            "{entry}"
        );

        // Now the app itself fails: every replica answers 500. At most half are ejected.
        for backend in &backends {
            backend.set_status(500);
        }
        for _ in 0..200 {
            let r = client.get(&b.url("/")).await.expect("answer");
            assert_eq!(r.status, 500, "the 500s are relayed, not turned into 503s");
        }
        let s = status(&b.admin_url("/status")).await;
        let ejected = s["backends"]
            .as_array()
            .map_or(0, |bs| bs.iter().filter(|e| e["ejected"] == true).count());
        println!(
            "all four answering 500: {ejected} ejected, ejections_total {}",
            s["ejections_total"]
        );
        assert_eq!(ejected, 2, "half of 4, never more: {s}");
    })
    .await;
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: traffic.test\r\nConnection: close\r\n\r\n")
}

async fn get_from(source: IpAddr, b: &Balancer, path: &str) -> RawResponse {
    let bytes = raw::exchange_from(source, b.addr(), get_request(path).as_bytes(), T)
        .await
        .unwrap_or_else(|e| panic!("from {source}: {e}"));
    RawResponse::parse(&bytes).unwrap_or_else(|why| panic!("from {source}: {why}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_without_forwarding_and_spares_other_clients() {
    e2e::bounded("rate limit", async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        let b = Balancer::builder()
            .apps(&[&app])
            .args(&["--rate-limit", "6/m", "--rate-burst", "5"])
            .start()
            .await;
        let (greedy, other) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        let mut statuses: HashMap<u16, usize> = HashMap::new();
        for _ in 0..25 {
            let r = get_from(greedy, &b, "/count").await;
            if r.status == 429 {
                let retry: u64 = r
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .expect("429 without a numeric Retry-After");
                assert!((1..=60).contains(&retry), "Retry-After {retry}");
            }
            *statuses.entry(r.status).or_default() += 1;
        }
        // Another client at the same time is unaffected.
        for _ in 0..5 {
            assert_eq!(get_from(other, &b, "/count").await.status, 200);
        }
        println!("one client, 25 requests at 6/m burst 5: {statuses:?}");
        assert_eq!(statuses.get(&200), Some(&5), "{statuses:?}");
        assert_eq!(statuses.get(&429), Some(&20), "{statuses:?}");
        // Nothing over the limit was counted: 5 + 5 visits.
        assert_eq!(redis.get_i64(e2e::COUNTER_KEY).await, 10);
        let s = status(&b.admin_url("/status")).await;
        assert_eq!(s["rate_limited_total"], 20);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_table_stays_within_its_bound_for_100_000_addresses() {
    e2e::bounded("rate limit table bound", async {
        let backend = TunableBackend::start(200, Duration::ZERO).await;
        let b = balancer_for(
            &[&backend],
            &[
                "--rate-limit",
                "100/s",
                "--rate-limit-clients",
                "20000",
                "--workers",
                "2",
            ],
        )
        .await;
        let pid = b.pid();
        let rss_before = e2e::resources::rss_kib(pid).expect("balancer RSS from /proc");
        let began = Instant::now();
        let addresses: Vec<IpAddr> = (0..100_000u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x7f01_0000 + i)))
            .collect();
        let addr = b.addr();
        let mut tasks = Vec::new();
        for chunk in addresses.chunks(100_000 / 32) {
            let chunk = chunk.to_vec();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0usize;
                for source in chunk {
                    let req = get_request("/");
                    if let Ok(bytes) = raw::exchange_from(source, addr, req.as_bytes(), T).await {
                        ok += usize::from(raw::status_of(&bytes) == Some(200));
                    }
                }
                ok
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.expect("client task");
        }
        let rss_after = e2e::resources::rss_kib(pid).expect("balancer RSS from /proc");
        let metrics = e2e::http::get(&b.admin_url("/metrics"))
            .await
            .expect("metrics")
            .text();
        let clients: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("balancer_rate_limit_clients "))
            .and_then(|v| v.trim().parse().ok())
            .expect("balancer_rate_limit_clients in /metrics");
        println!(
            "100,000 client addresses in {:?}: {ok} answered 200, table {clients} entries \
             (bound 20,000), RSS {rss_before} KiB -> {rss_after} KiB",
            began.elapsed()
        );
        assert_eq!(ok, 100_000);
        assert!((19_000..=20_016).contains(&clients), "table {clients}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_and_service_comes_back() {
    e2e::bounded("max connections", async {
        let backend = TunableBackend::start(200, Duration::ZERO).await;
        let b = balancer_for(&[&backend], &["--max-connections", "20"]).await;
        // 20 keep-alive clients, each with one request done and the connection left open.
        let mut held = Vec::new();
        for _ in 0..20 {
            let mut s = tokio::net::TcpStream::connect(b.addr())
                .await
                .expect("connect");
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .expect("write");
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.expect("read");
            assert_eq!(raw::status_of(&buf[..n]), Some(200));
            held.push(s);
        }
        // 100 more are refused cleanly, while the accept loop goes on.
        for _ in 0..100 {
            let r = raw::send(b.addr(), get_request("/").as_bytes(), T).await;
            let resp = RawResponse::parse(&r.bytes).expect("a refused connection gets an answer");
            assert_eq!(resp.status, 503);
            assert_eq!(resp.header("connection"), Some("close"));
            assert!(r.closed, "closed after the 503");
        }
        let metrics = e2e::http::get(&b.admin_url("/metrics"))
            .await
            .expect("metrics")
            .text();
        for want in [
            "balancer_connections 20",
            "balancer_max_connections 20",
            "balancer_connections_refused_total 100",
        ] {
            assert!(metrics.lines().any(|l| l == want), "no `{want}` in metrics");
        }
        drop(held);
        assert!(
            e2e::wait_until_async(T, || async {
                e2e::http::get(&b.url("/"))
                    .await
                    .is_ok_and(|r| r.status == 200)
            })
            .await,
            "service did not come back once the connections closed"
        );
    })
    .await;
}

async fn post(b: &Balancer, path: &str, token: Option<&str>) -> e2e::http::Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    e2e::http::request(Method::POST, &b.admin_url(path), &headers, "")
        .await
        .expect("admin answers")
}

#[tokio::test]
async fn drain_api_needs_a_configured_token() {
    let backend = TunableBackend::start(200, Duration::ZERO).await;
    let path = format!("/backends/{}/drain", backend.addr());
    let open = balancer_for(&[&backend], &[]).await;
    assert_eq!(post(&open, &path, Some(TOKEN)).await.status, 403);
    let guarded = Balancer::builder()
        .upstreams(&backend.addr().to_string())
        .env("BALANCER_ADMIN_TOKEN", TOKEN)
        .start()
        .await;
    let no_auth = post(&guarded, &path, None).await;
    assert_eq!(no_auth.status, 401);
    assert_eq!(no_auth.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        post(&guarded, &path, Some("wrong-token-0123456789"))
            .await
            .status,
        401
    );
    assert_eq!(
        post(&guarded, "/backends/127.0.0.1:1/drain", Some(TOKEN))
            .await
            .status,
        404
    );
    assert_eq!(
        e2e::http::get(&guarded.admin_url(&path))
            .await
            .expect("get")
            .status,
        405
    );
    assert_eq!(
        e2e::http::get(&guarded.admin_url("/status"))
            .await
            .expect("get")
            .status,
        200
    );
    let ok = post(&guarded, &path, Some(TOKEN)).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["state"], "draining");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_replica_gets_no_new_requests_and_none_fail() {
    e2e::bounded("drain under load", async {
        let backends = tunables(3, Duration::from_millis(20)).await;
        let refs: Vec<&TunableBackend> = backends.iter().collect();
        let b = Balancer::builder()
            .upstreams(
                &refs
                    .iter()
                    .map(|b| b.addr().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .env("BALANCER_ADMIN_TOKEN", TOKEN)
            .start()
            .await;
        let victim = backends[1].addr();
        let url = b.url("/");
        let load = tokio::spawn(async move {
            tagged_load(&url, 12, "x-backend", Budget::For(Duration::from_secs(6))).await
        });
        let admin = b.admin_url("/status");
        assert!(e2e::wait_until_async(T, || async { backends[1].hits() > 20 }).await);
        let drained = post(&b, &format!("/backends/{victim}/drain"), Some(TOKEN)).await;
        assert_eq!(drained.status, 200);
        let drained_at = Instant::now();
        // In-flight ones finish; then nothing more arrives.
        assert!(
            e2e::wait_until_async(T, || async {
                backend_entry(&status(&admin).await, &victim.to_string())["in_flight"] == 0
            })
            .await
        );
        let s = status(&admin).await;
        assert_eq!(backend_entry(&s, &victim.to_string())["state"], "draining");
        let hits_after_drain = backends[1].hits();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            backends[1].hits(),
            hits_after_drain,
            "a drained replica got new requests"
        );
        let undrained = post(&b, &format!("/backends/{victim}/undrain"), Some(TOKEN)).await;
        assert_eq!(undrained.status, 200);
        assert!(
            e2e::wait_until_async(T, || async { backends[1].hits() > hits_after_drain + 20 }).await,
            "undrain did not bring it back"
        );
        let samples = load.await.expect("load");
        let failed: Vec<_> = samples.iter().filter(|s| s.status != Some(200)).collect();
        println!(
            "drain under load: {} requests, {} failed, victim idle {:?} after the drain call",
            samples.len(),
            failed.len(),
            drained_at.elapsed()
        );
        assert!(failed.is_empty(), "{failed:?}");
    })
    .await;
}
