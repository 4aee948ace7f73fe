//! Hostile-input cases against one front door (the app, or the balancer): each case is sent raw, must get
//! a clear 4xx or a closed connection and must leave no effect behind (a visit counted, a request
//! forwarded), and a normal request right after must still work.

use std::future::Future;

use crate::raw::RawReply;

/// The server a hostile suite attacks, with what it checks before and after each case.
pub trait HostileTarget {
    /// What a case did besides the reply (visits counted, requests forwarded).
    type Effect;

    /// Which front door this is, for the report lines.
    fn front(&self) -> &'static str;

    /// Sends one case raw; returns the reply and its effect.
    fn send(&self, bytes: &[u8]) -> impl Future<Output = (RawReply, Self::Effect)>;

    /// The effect in a few words, for the report line.
    fn describe(effect: &Self::Effect) -> String;

    /// Why the effect is wrong for a case that must be rejected, or None when it left nothing behind.
    fn leak(effect: &Self::Effect) -> Option<String>;

    /// After a case: the checks that the server still serves and did not panic.
    fn after(&mut self, case: &str) -> impl Future<Output = ()>;
}

/// Cases that must be rejected outright (`exact`: with that status; else any 4xx or a close) and leave
/// no effect; collects every miss before failing, so one run shows them all.
pub async fn expect_rejected<T: HostileTarget>(
    target: &mut T,
    cases: &[(&str, Vec<u8>)],
    exact: Option<u16>,
) {
    let mut misses = Vec::new();
    for (case, bytes) in cases {
        let (reply, effect) = target.send(bytes).await;
        eprintln!(
            "hostile {}: {case}: {} in {:?}, {}",
            target.front(),
            reply.verdict(),
            reply.elapsed,
            T::describe(&effect)
        );
        let status_ok = match exact {
            Some(code) => reply.status() == Some(code),
            None => reply.rejected(),
        };
        if !status_ok {
            misses.push(format!(
                "{case}: expected {}, got {} ({:?})",
                exact.map_or("a 4xx or a close".to_string(), |c| c.to_string()),
                reply.verdict(),
                String::from_utf8_lossy(&reply.bytes[..reply.bytes.len().min(200)])
            ));
        }
        if let Some(leak) = T::leak(&effect) {
            misses.push(format!("{case}: {leak}"));
        }
        target.after(case).await;
    }
    assert!(
        misses.is_empty(),
        "hostile cases mishandled:\n{}",
        misses.join("\n")
    );
}

/// A fresh keep-alive-free GET that must answer 200: "a normal request still works".
pub async fn assert_normal_request(url: &str, what: &str) {
    match crate::http::get(url).await {
        Ok(resp) => assert_eq!(
            resp.status,
            200,
            "after {what}: a normal GET {url} answered {} ({})",
            resp.status,
            resp.text()
        ),
        Err(e) => panic!("after {what}: a normal GET {url} failed: {e}"),
    }
}

/// Whether a process has logged a panic.
pub fn panicked(log: &str) -> bool {
    log.contains("panicked")
}
