//! The h2c pool against a raw HTTP/2 backend on loopback that refuses, resets, breaks or goes
//! silent on cue: what comes back unsent (safe to retry), what fails, and what is counted.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the raw backend does with a request's HEADERS frame on stream `id`.
#[derive(Clone, Copy)]
enum Answer {
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY naming stream 0 as the last one processed (NO_ERROR).
    GoAwayBelow,
    /// Closes the connection without a word.
    Close,
    /// Never answers again, not even PINGs: a peer that died without closing.
    Silent,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A backend speaking just enough raw HTTP/2 to answer every request with `answer`; counts
/// the connections it accepted.
async fn raw_backend(answer: Answer) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                if s.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let _ = s.write_all(&frame(4, 0, 0, &[])).await;
                let mut head = [0u8; 9];
                while s.read_exact(&mut head).await.is_ok() {
                    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                    let mut payload = vec![0u8; len];
                    if s.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    let reply = match (head[3], head[4] & 1 == 0) {
                        (4, true) => frame(4, 1, 0, &[]),
                        (1, _) => match answer {
                            Answer::Reset(code) => frame(3, 0, id, &code.to_be_bytes()),
                            Answer::GoAwayBelow => frame(7, 0, 0, &[0u8; 8]),
                            Answer::Close => return,
                            Answer::Silent => continue,
                        },
                        _ => continue,
                    };
                    if s.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn request() -> Request<RequestBody> {
    Request::post("/count")
        .header(HOST, "app:5000")
        .body(RequestBody::bodiless())
        .unwrap()
}

/// Sends `times` requests one after the other on one worker's pool; the last one's outcome.
async fn send_times(
    answer: Answer,
    times: usize,
) -> (Result<(), H2SendError>, UpstreamMetrics, usize) {
    let (addr, accepted) = raw_backend(answer).await;
    let metrics = UpstreamMetrics::default();
    let settings = H2Settings {
        connect_timeout: Duration::from_secs(2),
        keep_alive: Duration::from_secs(10),
    };
    let pool = H2Pool::new(settings, 0, metrics.clone());
    let endpoint = H2Endpoint::new(1);
    let mut sent = Ok(());
    for _ in 0..times {
        sent = pool.send(&endpoint, addr, request()).await.map(|_| ());
    }
    (sent, metrics, accepted.load(Ordering::SeqCst))
}

async fn send(answer: Answer) -> (Result<(), H2SendError>, UpstreamMetrics, usize) {
    send_times(answer, 1).await
}

#[tokio::test]
async fn a_refused_stream_comes_back_unsent_and_is_counted() {
    let (sent, metrics, accepted) = send(Answer::Reset(7)).await;
    match sent {
        Err(H2SendError::NotSent { request, error }) => {
            assert_eq!(request.uri().path(), "/count");
            assert_eq!(request.headers()[HOST], "app:5000");
            assert!(error.contains("refused"), "{error}");
        }
        _ => panic!("REFUSED_STREAM must come back as never sent"),
    }
    assert_eq!(metrics.streams_refused.get(), 1);
    assert_eq!(
        accepted, 1,
        "refused on a fresh connection: back at once, for the next backend"
    );
    // Refused on a pooled connection: once more on a fresh one before giving up on the backend.
    let (sent, metrics, accepted) = send_times(Answer::Reset(7), 2).await;
    assert!(matches!(sent, Err(H2SendError::NotSent { .. })));
    assert_eq!((metrics.streams_refused.get(), accepted), (3, 2));
}

#[tokio::test]
async fn streams_above_a_goaway_come_back_unsent_on_a_new_connection_first() {
    let (sent, metrics, accepted) = send_times(Answer::GoAwayBelow, 2).await;
    assert!(matches!(sent, Err(H2SendError::NotSent { .. })));
    assert_eq!(
        accepted, 2,
        "the connection that went away is not used again"
    );
    assert!(metrics.streams_refused.get() >= 2);
}

#[tokio::test]
async fn a_reset_after_sending_is_a_failure_never_a_retry() {
    let (sent, metrics, accepted) = send(Answer::Reset(2)).await;
    match sent {
        Err(H2SendError::Failed(e)) => assert_eq!(classify(&e), Fate::Reset),
        _ => panic!("INTERNAL_ERROR reset must not be retried"),
    }
    assert_eq!(metrics.streams_reset.get(), 1);
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn a_connection_that_breaks_after_the_request_went_out_is_a_failure() {
    let (sent, metrics, accepted) = send(Answer::Close).await;
    match sent {
        Err(H2SendError::Failed(e)) => assert_eq!(classify(&e), Fate::Other),
        _ => panic!("a broken connection after sending must not be retried"),
    }
    assert_eq!(
        (metrics.streams_refused.get(), metrics.streams_reset.get()),
        (0, 0)
    );
    assert_eq!(accepted, 1);
}

/// PINGs every half keep-alive, answered within the other half: a peer that went silent is
/// noticed, its stream failed (never retried: it may have been processed) and the connection
/// closed, within the keep-alive (`--health-interval`).
#[tokio::test]
async fn a_silent_connection_is_noticed_within_the_keep_alive() {
    let (addr, _) = raw_backend(Answer::Silent).await;
    let keep_alive = Duration::from_millis(400);
    let settings = H2Settings {
        connect_timeout: Duration::from_secs(2),
        keep_alive,
    };
    let pool = H2Pool::new(settings, 0, UpstreamMetrics::default());
    let endpoint = H2Endpoint::new(1);
    let started = std::time::Instant::now();
    let sent = tokio::time::timeout(
        Duration::from_secs(5),
        pool.send(&endpoint, addr, request()),
    )
    .await
    .expect("the keep-alive ends the wait, not this timeout");
    let took = started.elapsed();
    assert!(matches!(sent, Err(H2SendError::Failed(_))), "never retried");
    // A PING goes out at most half the keep-alive after the last frame, and gets the other
    // half to be answered; scheduling slack on a loaded machine on top.
    assert!(
        took < keep_alive + Duration::from_millis(600),
        "noticed after {took:?}"
    );
    for _ in 0..100 {
        if endpoint.connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(endpoint.connections(), 0, "the dead connection is gone");
}

#[test]
fn errors_without_an_h2_cause_are_other() {
    let io = std::io::Error::other("boom");
    assert_eq!(classify(&io), Fate::Other);
    let local = h2::Error::from(h2::Reason::REFUSED_STREAM);
    assert_eq!(
        classify(&local),
        Fate::Other,
        "only the backend's refusal counts"
    );
}

#[test]
fn the_h2_form_is_absolute_and_idempotent() {
    let mut req = request();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    to_h2_form(&mut req, addr).unwrap();
    assert_eq!(req.uri().to_string(), "http://app:5000/count");
    req.headers_mut()
        .insert(HOST, http::HeaderValue::from_static("other:1"));
    to_h2_form(&mut req, addr).unwrap();
    assert_eq!(req.uri().to_string(), "http://other:1/count");
    req.headers_mut().remove(HOST);
    to_h2_form(&mut req, addr).unwrap();
    assert_eq!(req.uri().to_string(), "http://127.0.0.1:9/count");
    assert_eq!(req.version(), Version::HTTP_2);
}
