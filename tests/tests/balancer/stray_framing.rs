//! Issue 29: the other ways a backend puts bytes on a pooled HTTP/1.1 connection that no request
//! asked for (a `Content-Length` shorter than the bytes sent, a `100 Continue` after the final
//! answer, a body after a `HEAD`, an answer before the request body was sent), each against a real
//! balancer with one worker (so every request would share its pool) and [`framing_backend`]. Each
//! checks that the requests that follow on the same balancer get their own answer, never the stray
//! bytes, and what `balancer_upstream_stray_bytes_total` (as `/status` shows it) says.

use std::time::Duration;

use e2e::backends::{framing_backend, TestBackend, STRAY_BODY};
use e2e::http::Client;
use e2e::Balancer;
use http::Method;

/// Requests sent after the misbehaving one, each of which must get its own answer.
const VICTIMS: usize = 20;

async fn start(backend: &TestBackend) -> Balancer {
    Balancer::builder()
        .upstreams(&backend.addr.to_string())
        .args(&["--workers", "1", "--max-fails", "1000000"])
        .start()
        .await
}

/// `/status`'s stray counter and quarantine for `backend`.
async fn strays(balancer: &Balancer, backend: &TestBackend) -> (u64, bool) {
    let status = e2e::balancer_status::status(&balancer.admin_url("/status")).await;
    let entry = e2e::balancer_status::backend_entry(&status, &backend.addr.to_string());
    let (Some(total), Some(quarantined)) = (
        entry["stray_bytes_total"].as_u64(),
        entry["stray_quarantined"].as_bool(),
    ) else {
        panic!("/status has no stray_bytes_total / stray_quarantined: {entry}");
    };
    (total, quarantined)
}

/// Sends the misbehaving request, then `VICTIMS` echo requests on the same keep-alive client,
/// each of which must get its own body back (the misbehaving request's own outcome is printed).
async fn misbehave_then_victims(balancer: &Balancer, method: Method, path: &str, body: Vec<u8>) {
    let client = Client::new();
    let first = client
        .request(method.clone(), &balancer.url(path), &[], body)
        .await;
    eprintln!("{method} {path}: {:?}", first.as_ref().map(|r| r.status));
    for i in 0..VICTIMS {
        let token = format!("victim-{i}");
        let resp = client
            .request(Method::POST, &balancer.url("/echo"), &[], token.clone())
            .await;
        let Ok(resp) = resp else {
            panic!(
                "victim {i} after {method} {path} failed: {resp:?}\n{}",
                balancer.log()
            );
        };
        assert_eq!(resp.status, 200, "victim {i} after {method} {path}");
        assert_eq!(
            resp.text(),
            token,
            "victim {i} after {method} {path} got another answer ({STRAY_BODY} is the stray one)"
        );
    }
}

/// Waits until the stray counter shows `backend`'s stray bytes, with the quarantine on.
async fn assert_counted(balancer: &Balancer, backend: &TestBackend, case: &str) {
    let counted = e2e::wait_until_async(Duration::from_secs(5), || async {
        strays(balancer, backend).await.0 >= 1
    })
    .await;
    let (total, quarantined) = strays(balancer, backend).await;
    assert!(
        counted && quarantined,
        "{case}: stray bytes counted ({total}) and the backend quarantined ({quarantined})\n{}",
        balancer.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_length_shorter_than_the_bytes_sent_is_stray_and_contained() {
    e2e::bounded("short Content-Length", async {
        let backend = framing_backend().await;
        let balancer = start(&backend).await;
        misbehave_then_victims(&balancer, Method::POST, "/short", b"short".to_vec()).await;
        assert_counted(&balancer, &backend, "short Content-Length").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_continue_after_the_final_answer_is_stray_and_contained() {
    e2e::bounded("late 100 Continue", async {
        let backend = framing_backend().await;
        let balancer = start(&backend).await;
        misbehave_then_victims(&balancer, Method::POST, "/continue-late", b"late".to_vec()).await;
        assert_counted(&balancer, &backend, "100 Continue after the answer").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_100_continue_before_the_answer_are_legal_and_not_counted() {
    e2e::bounded("two 100 Continue", async {
        let backend = framing_backend().await;
        let balancer = start(&backend).await;
        let client = Client::new();
        let resp = client
            .request(Method::POST, &balancer.url("/continue-twice"), &[], "twice")
            .await;
        let Ok(resp) = resp else {
            panic!("two 100 Continue, then the answer: {resp:?}");
        };
        assert_eq!((resp.status, resp.text()), (200, "twice".to_owned()));
        misbehave_then_victims(
            &balancer,
            Method::POST,
            "/continue-twice",
            b"again".to_vec(),
        )
        .await;
        assert_eq!(
            strays(&balancer, &backend).await,
            (0, false),
            "RFC 9110 allows several 1xx before the final answer: nothing stray"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_after_a_head_response_is_stray_and_contained() {
    e2e::bounded("HEAD with a body", async {
        let backend = framing_backend().await;
        let balancer = start(&backend).await;
        misbehave_then_victims(&balancer, Method::HEAD, "/anything", Vec::new()).await;
        assert_counted(&balancer, &backend, "HEAD with a body").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_request_body_was_sent_leaves_the_connection_unused() {
    e2e::bounded("early answer", async {
        let backend = framing_backend().await;
        let balancer = start(&backend).await;
        // 8 MiB: more than the socket buffers hold, still on its way when the answer comes.
        misbehave_then_victims(&balancer, Method::POST, "/early", vec![b'x'; 8 << 20]).await;
        // The backend answers the body as a request of its own: those bytes reach the connection
        // while it is being closed (counted) or after (not); either way no victim had them.
        let (total, _) = strays(&balancer, &backend).await;
        eprintln!("early answer: stray bytes counted {total}");
        assert!(backend.hits() > VICTIMS, "the backend saw the requests");
    })
    .await;
}
