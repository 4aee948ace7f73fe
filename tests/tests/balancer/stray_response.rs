//! Issue 15: a replica that answers a request and then, 2 ms later, writes a second, unasked-for
//! response on the same connection.
//!
//! Over pooled HTTP/1.1 (`--upstream-protocol http1`) nothing ties a response to its request, so the
//! stray one is handed to whichever client's request reuses the connection next: this test records
//! how many responses went to the wrong client and asserts there are some (so it can fail). Over
//! HTTP/2 (`h2c`) every response carries its stream id, and the stray one names a stream that is
//! already closed: no client may ever get a response that is not its own.
//!
//! Every client sends a body naming itself and the request; the backend echoes it. A 200 whose body
//! is not the request's own token is a mix-up.

use std::time::{Duration, Instant};

use e2e::backends::{stray_h2_backend, stray_http1_backend, TestBackend};
use e2e::http::Client;
use e2e::Balancer;
use http::Method;

const CLIENTS: usize = 16;
const REQUESTS_PER_CLIENT: usize = 300;
const RUN_FOR: Duration = Duration::from_secs(4);

#[derive(Default, Debug)]
struct Tally {
    own: usize,
    mixed: usize,
    failed: usize,
}

impl Tally {
    fn sent(&self) -> usize {
        self.own + self.mixed + self.failed
    }
}

/// `CLIENTS` keep-alive clients, each sending up to `REQUESTS_PER_CLIENT` requests (bounded by
/// `RUN_FOR`), every one with its own token as body.
async fn run(balancer: &Balancer) -> Tally {
    let url = balancer.url("/echo");
    let deadline = Instant::now() + RUN_FOR;
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let url = url.clone();
        clients.spawn(async move {
            let client = Client::new();
            let mut tally = Tally::default();
            for i in 0..REQUESTS_PER_CLIENT {
                if Instant::now() > deadline {
                    break;
                }
                let token = format!("client-{c}-request-{i}");
                match client.request(Method::POST, &url, &[], token.clone()).await {
                    Ok(resp) if resp.status == 200 && resp.text() == token => tally.own += 1,
                    Ok(resp) if resp.status == 200 => tally.mixed += 1,
                    _ => tally.failed += 1,
                }
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = clients.join_next().await {
        let Ok(t) = joined else {
            panic!("a client task panicked");
        };
        total.own += t.own;
        total.mixed += t.mixed;
        total.failed += t.failed;
    }
    total
}

async fn through_balancer(backend: &TestBackend, protocol: &str) -> (Tally, Balancer) {
    let balancer = Balancer::builder()
        .upstreams(&backend.addr.to_string())
        .args(&[
            "--upstream-protocol",
            protocol,
            "--health-interval",
            "300ms",
            // The mix-ups are the subject here, not the passive health check taking it out.
            "--max-fails",
            "1000000",
        ])
        .start()
        .await;
    let tally = run(&balancer).await;
    let status = e2e::balancer_status::status(&balancer.admin_url("/status")).await;
    let entry = e2e::balancer_status::backend_entry(&status, &backend.addr.to_string());
    assert_eq!(entry["protocol"], protocol, "{entry}");
    eprintln!(
        "stray response over {protocol}: upstream connections open after the run {}, streams refused {}, reset {}",
        entry["upstream_connections"], status["upstream_streams_refused_total"], status["upstream_streams_reset_total"]
    );
    eprintln!(
        "stray response over {protocol}: sent {}, own response {}, another's response {} ({:.1} %), failed {}; backend saw {} requests",
        tally.sent(),
        tally.own,
        tally.mixed,
        100.0 * tally.mixed as f64 / tally.sent().max(1) as f64,
        tally.failed,
        backend.hits(),
    );
    if tally.failed > 0 {
        let log = balancer.log();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).take(5).collect();
        eprintln!(
            "stray response over {protocol}: first warnings:\n{}",
            warnings.join("\n")
        );
    }
    (tally, balancer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http1_stray_responses_reach_other_clients() {
    e2e::bounded("stray response over http1", async {
        let backend = stray_http1_backend().await;
        let (tally, _balancer) = through_balancer(&backend, "http1").await;
        assert!(
            tally.mixed > 0,
            "the HTTP/1.1 figure is the baseline: some responses must go astray ({tally:?})"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_h2c_no_client_ever_gets_another_response() {
    e2e::bounded("stray response over h2c", async {
        let backend = stray_h2_backend().await;
        let (tally, balancer) = through_balancer(&backend, "h2c").await;
        let status = e2e::balancer_status::status(&balancer.admin_url("/status")).await;
        let entry = e2e::balancer_status::backend_entry(&status, &backend.addr.to_string());
        let connections = entry["upstream_connections"].as_u64().unwrap_or(u64::MAX);
        assert!(
            connections <= 4,
            "a handful of multiplexed connections, not one per client: {entry}"
        );
        assert_eq!(
            tally.mixed, 0,
            "a stray response reached a client: {tally:?}"
        );
        assert!(
            tally.own >= tally.sent() * 9 / 10 && tally.own >= 500,
            "most requests must get their own answer: {tally:?}\n{}",
            balancer.log()
        );
    })
    .await;
}
