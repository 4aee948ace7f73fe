//! `--handover PATH`: a new balancer takes the listening sockets over from the one serving, which
//! drains and exits 0, with no failed request, a WebSocket tunnel open meanwhile running on; and
//! the refusals: a stale socket file, a second new balancer asking during a handover, a new one
//! that dies halfway, an old one that goes away halfway.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::load::Load;
use e2e::{App, Balancer, RedisServer, COUNTER_KEY};

/// The log line of a balancer that took over.
const TOOK_OVER: &str = "handover: took over the listeners";
const T: Duration = Duration::from_secs(20);

/// The ports and socket every balancer of a test shares.
struct Shared {
    port: u16,
    admin: u16,
    upstreams: String,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Shared {
    fn new(apps: &[&App]) -> Shared {
        let upstreams: Vec<String> = apps.iter().map(|a| a.addr().to_string()).collect();
        Shared::to(&upstreams.join(","))
    }

    fn to(upstreams: &str) -> Shared {
        let dir = tempfile::tempdir().expect("temporary directory");
        Shared {
            port: e2e::free_port(),
            admin: e2e::free_port(),
            upstreams: upstreams.to_owned(),
            path: dir.path().join("handover.sock"),
            _dir: dir,
        }
    }

    fn builder(&self) -> e2e::BalancerBuilder {
        Balancer::builder()
            .port(self.port)
            .admin_port(self.admin)
            .upstreams(&self.upstreams)
            .args(&[
                "--handover",
                &self.path.display().to_string(),
                "--workers",
                "2",
            ])
    }

    fn url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            SocketAddr::from(([127, 0, 0, 1], self.port))
        )
    }
}

/// Waits until `new` logs that it took over; returns how long that took from `spawned`.
async fn wait_took_over(new: &mut Balancer, spawned: Instant) -> Duration {
    let seen = e2e::wait_until(T, || new.log().contains(TOOK_OVER)).await;
    new.assert_running();
    assert!(seen, "no handover within {T:?}:\n{}", new.log_tail(40));
    spawned.elapsed()
}

/// Waits for `old` to exit, and checks it exited 0 after draining.
async fn assert_drained_and_exited(old: &mut Balancer) {
    let exit = old.wait_exit(T).await;
    assert_eq!(
        exit.and_then(|e| e.code()),
        Some(0),
        "the old balancer did not exit 0 after the handover:\n{}",
        old.log_tail(40)
    );
    assert!(old
        .log()
        .contains("handed over to a new balancer, draining"));
}

#[tokio::test]
async fn two_handovers_under_load_fail_no_request_and_lose_no_count() {
    let redis = RedisServer::start().await;
    let (a, b) = (App::start(&redis).await, App::start(&redis).await);
    let shared = Shared::new(&[&a, &b]);
    let mut old = shared.builder().start().await;
    let before = redis.get_i64(COUNTER_KEY).await;
    let url = shared.url("/count");
    let span = Duration::from_secs(10);
    let kept = Load::start(&url, 64, Duration::from_millis(20), span);
    let fresh = Load::start_without_keep_alive(&url, 8, Duration::from_millis(20), span);
    let mut takeovers = Vec::new();
    for at in [3, 6] {
        tokio::time::sleep_until((kept.started + Duration::from_secs(at)).into()).await;
        let spawned = Instant::now();
        let mut new = shared.builder().spawn();
        let took = wait_took_over(&mut new, spawned).await;
        assert_drained_and_exited(&mut old).await;
        takeovers.push((took, spawned.elapsed()));
        old = new;
    }
    tokio::time::sleep_until((kept.started + span).into()).await;
    let (kept, fresh) = (kept.stop().await, fresh.stop().await);
    let ok = kept.ok() + fresh.ok();
    let counted = redis.get_i64(COUNTER_KEY).await - before;
    eprintln!(
        "handover under load: {} requests with keep-alive ({}), {} without ({}); counter +{counted}; \
         takeovers (taken over, old exited) after {takeovers:?}",
        kept.sent(),
        kept.outcomes(),
        fresh.sent(),
        fresh.outcomes()
    );
    assert_eq!(kept.failed(), 0, "keep-alive: {}", kept.outcomes());
    assert_eq!(fresh.failed(), 0, "no keep-alive: {}", fresh.outcomes());
    assert!(
        kept.ok() > 1000 && fresh.ok() > 100,
        "too little load to mean anything"
    );
    assert_eq!(
        counted,
        i64::try_from(ok).unwrap_or(i64::MAX),
        "counter vs 200 responses"
    );
    let last = e2e::http::get_or_panic(&shared.url("/count")).await;
    assert_eq!(last.status, 200, "the last balancer serves");
    old.assert_running();
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_and_the_new_file_is_private() {
    let redis = RedisServer::start().await;
    let app = App::start(&redis).await;
    let shared = Shared::new(&[&app]);
    // A killed balancer's socket: the file stays, nothing listens.
    drop(std::os::unix::net::UnixListener::bind(&shared.path).expect("bind"));
    let balancer = shared.builder().start().await;
    let listening = e2e::wait_until(T, || {
        std::os::unix::net::UnixStream::connect(&shared.path).is_ok()
    })
    .await;
    assert!(
        listening,
        "nothing answers at the handover path:\n{}",
        balancer.log()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&shared.path)
        .expect("the socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "handover socket mode {mode:o}");
    assert_eq!(
        e2e::http::get_or_panic(&shared.url("/count")).await.status,
        200
    );
}

/// Two new balancers racing for one old one: the first is a stand-in that asks and then holds the
/// handover open (a real one is too quick to race on loopback: it would take over from the winner
/// instead), the second is a real balancer, refused with exit 2 and one line while the first
/// one's handover is under way.
#[tokio::test]
async fn a_second_balancer_asking_during_a_handover_exits_2() {
    let redis = RedisServer::start().await;
    let app = App::start(&redis).await;
    let shared = Shared::new(&[&app]);
    let mut old = shared.builder().start().await;
    let path = shared.path.clone();
    let (first, answer) = tokio::task::spawn_blocking(move || ask_and_hold(&path))
        .await
        .expect("the first asker");
    assert!(
        answer.starts_with("balancer-handover 1 listeners listen"),
        "{answer}"
    );
    let mut second = shared.builder().spawn();
    let exit = second.wait_exit(T).await;
    let log = second.log();
    assert_eq!(exit.and_then(|e| e.code()), Some(2), "{log}");
    assert_eq!(log.trim().lines().count(), 1, "one line: {log}");
    assert!(
        log.contains("another balancer is already taking over"),
        "{log}"
    );
    drop(first);
    let logged = e2e::wait_until(T, || {
        old.log().contains("handover failed halfway; still serving")
    })
    .await;
    assert!(logged, "{}", old.log_tail(20));
    old.assert_running();
    assert_eq!(
        e2e::http::get_or_panic(&shared.url("/count")).await.status,
        200
    );
}

#[tokio::test]
async fn a_websocket_tunnel_outlives_the_handover_and_the_old_one_exits_when_it_closes() {
    let ws = e2e::backends::websocket_backend().await;
    let shared = Shared::to(&ws.addr.to_string());
    let mut old = shared.builder().start().await;
    let addr = SocketAddr::from(([127, 0, 0, 1], shared.port));
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let handshake = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream);
    let (mut socket, _) = tokio::time::timeout(T, handshake)
        .await
        .expect("handshake in time")
        .expect("handshake through the balancer");
    echo(&mut socket, "before").await;
    let mut new = shared.builder().spawn();
    wait_took_over(&mut new, Instant::now()).await;
    let draining = e2e::wait_until(T, || old.log().contains("handed over to a new balancer")).await;
    assert!(draining, "{}", old.log_tail(20));
    echo(&mut socket, "after the handover").await;
    assert!(
        old.try_exit().is_none(),
        "the old balancer exited under an open tunnel"
    );
    socket.close(None).await.expect("close");
    drop(socket);
    assert_drained_and_exited(&mut old).await;
}

/// Plays a new balancer that has the sockets and has not said it serves yet: it asks and reads the
/// answer (the sockets are closed with it); dropping the stream hangs up, as a new balancer that
/// dies halfway does.
fn ask_and_hold(path: &Path) -> (std::os::unix::net::UnixStream, String) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
    stream.set_read_timeout(Some(T)).expect("timeout");
    stream
        .write_all(b"balancer-handover 1 take\n")
        .expect("ask");
    let mut answer = [0u8; 256];
    let n = stream.read(&mut answer).expect("answer");
    (stream, String::from_utf8_lossy(&answer[..n]).into_owned())
}

/// Sends `text` on the WebSocket and checks it comes back.
async fn echo(socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, text: &str) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    socket.send(Message::text(text)).await.expect("send");
    let echoed = tokio::time::timeout(T, socket.next()).await;
    let echoed = echoed.ok().flatten().and_then(Result::ok);
    assert_eq!(
        echoed.and_then(|m| m.into_text().ok()).as_deref(),
        Some(text)
    );
}

#[tokio::test]
async fn a_new_balancer_dying_halfway_leaves_the_old_one_serving() {
    let redis = RedisServer::start().await;
    let app = App::start(&redis).await;
    let shared = Shared::new(&[&app]);
    let mut old = shared.builder().start().await;
    let answer = tokio::task::spawn_blocking({
        let path = shared.path.clone();
        move || ask_and_hold(&path).1
    })
    .await
    .expect("the fake taker");
    assert!(
        answer.starts_with("balancer-handover 1 listeners listen"),
        "{answer}"
    );
    let logged = e2e::wait_until(T, || {
        old.log().contains("handover failed halfway; still serving")
    })
    .await;
    assert!(logged, "no line in the old balancer:\n{}", old.log_tail(20));
    old.assert_running();
    assert_eq!(
        e2e::http::get_or_panic(&shared.url("/count")).await.status,
        200
    );
    // And a real handover still works after it.
    let spawned = Instant::now();
    let mut new = shared.builder().spawn();
    wait_took_over(&mut new, spawned).await;
    assert_drained_and_exited(&mut old).await;
}

#[tokio::test]
async fn an_old_balancer_gone_halfway_lets_the_new_one_bind() {
    let redis = RedisServer::start().await;
    let app = App::start(&redis).await;
    let shared = Shared::new(&[&app]);
    // Plays an old balancer killed after the request arrived: it reads it and hangs up.
    let listener = std::os::unix::net::UnixListener::bind(&shared.path).expect("bind");
    let gone = std::thread::spawn(move || {
        use std::io::Read;
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 64];
            let _ = stream.read(&mut request);
        }
    });
    let new = shared.builder().start().await;
    let _ = gone.join();
    assert!(
        new.log()
            .contains("handover failed before the listeners came; binding them instead"),
        "no line in the new balancer:\n{}",
        new.log_tail(20)
    );
    assert_eq!(
        e2e::http::get_or_panic(&shared.url("/count")).await.status,
        200
    );
}

/// HTTPS clients (HTTP/2 and HTTP/1.1 by ALPN, a new TLS connection per request) across a
/// handover of the TLS listener: every request answered 200, the old balancer exited 0.
#[tokio::test]
async fn tls_and_http2_clients_see_no_failure_across_a_handover() {
    let redis = RedisServer::start().await;
    let app = App::start(&redis).await;
    let shared = Shared::new(&[&app]);
    let ca = e2e::tls::TestCa::new();
    let (cert, key) = ca.write("served", &ca.valid("first"));
    let tls = SocketAddr::from(([127, 0, 0, 1], e2e::free_port()));
    let with_tls = || {
        shared
            .builder()
            .env("BALANCER_TLS_LISTEN", &tls.to_string())
            .env("BALANCER_TLS_CERT", &cert.display().to_string())
            .env("BALANCER_TLS_KEY", &key.display().to_string())
    };
    let mut old = with_tls().start().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = [&b"h2"[..], &b"http/1.1"[..]]
        .into_iter()
        .flat_map(|alpn| std::iter::repeat_n(alpn, 4))
        .map(|alpn| {
            let (config, stop, done) = (ca.client_config(&[alpn]), stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let reply = e2e::tls::https_get(tls, "/count", config.clone()).await;
                    outcomes.push(reply.map(|r| r.status).map_err(|e| e.to_string()));
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                outcomes
            })
        })
        .collect();
    // Clients under way before the handover.
    let loaded = e2e::wait_until(T, || done.load(std::sync::atomic::Ordering::SeqCst) >= 16).await;
    assert!(
        loaded,
        "the HTTPS clients got no answers before the handover"
    );
    let mut new = with_tls().spawn();
    wait_took_over(&mut new, Instant::now()).await;
    assert_drained_and_exited(&mut old).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.expect("client task"));
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| !matches!(o, Ok(200))).collect();
    eprintln!(
        "TLS handover: {} HTTPS requests (HTTP/2 and HTTP/1.1), {} not 200",
        outcomes.len(),
        failed.len()
    );
    assert!(outcomes.len() > 20, "too few requests: {}", outcomes.len());
    assert!(
        failed.is_empty(),
        "failed: {:?}",
        &failed[..failed.len().min(5)]
    );
    let reply = e2e::tls::https_get(tls, "/count", ca.client_config(&[b"h2"])).await;
    assert_eq!(
        reply.map(|r| r.status).ok(),
        Some(200),
        "the new balancer serves HTTPS"
    );
}
