//! gRPC through the balancer (issue 29): a real grpcio server behind `--upstream-protocol h2c`, a
//! real grpcio client in front. Every kind of call passes with its headers and trailers (the
//! `grpc-status`/`grpc-message` of an error, a deadline as `grpc-timeout`), and
//! `--health-check grpc` asks the server's own health service while `tcp` only connects.

use std::time::Duration;

use e2e::balancer_status::{backend_status, wait_health};
use e2e::grpc::{self, GrpcServer};
use e2e::{bounded, wait_until_async, Balancer};
use serde_json::{json, Value};

/// How long a probe verdict may take to show in `/status`.
const VERDICT: Duration = Duration::from_secs(10);
/// `--health-interval` of the health tests: verdicts come quickly.
const PROBES: &str = "200ms";
/// `--health-interval` of the calls test. The balancer PINGs its h2c connections every half
/// interval, and a gRPC core server answers more than two PINGs in a row without data of its own
/// with GOAWAY `too_many_pings`, killing the calls on the connection: at the default 2 s no call
/// here is quiet long enough for that.
const CALLS_PROBES: &str = "2s";

/// False (after [`e2e::skip::or_fail`]) when python3 has no grpcio.
fn grpc_available() -> bool {
    match grpc::available() {
        Ok(()) => true,
        Err(reason) => {
            e2e::skip::or_fail(&reason);
            false
        }
    }
}

/// A balancer in front of `servers` over h2c, probing them with `health_check` every `interval`.
async fn grpc_balancer(servers: &[&GrpcServer], health_check: &str, interval: &str) -> Balancer {
    let upstreams: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    Balancer::builder()
        .upstreams(&upstreams.join(","))
        .args(&[
            "--upstream-protocol",
            "h2c",
            "--health-check",
            health_check,
            "--health-interval",
            interval,
        ])
        .start()
        .await
}

/// The parts of one call's report that do not vary from run to run.
fn call(code: &str, details: &str, response: Value, kind: &str) -> Value {
    json!({
        "code": code,
        "details": details,
        "response": response,
        "initial": {"x-client-seen": "c1"},
        "trailing": {"x-kind": kind},
    })
}

#[tokio::test]
async fn grpc_calls_of_every_kind_pass_through_with_their_trailers() {
    bounded("grpc calls", async {
        if !grpc_available() {
            return;
        }
        let server = GrpcServer::start(true);
        let mut balancer = grpc_balancer(&[&server], "grpc", CALLS_PROBES).await;
        assert!(
            wait_health(&balancer, server.addr, true, VERDICT)
                .await
                .is_some(),
            "the SERVING server never passed --health-check grpc: {:?}",
            backend_status(&balancer, server.addr).await
        );
        let mut got = grpc::client(balancer.addr(), "all").await;
        eprintln!("{got}");
        // The deadline the server saw: the client's 7 s, less the way there.
        let left: f64 = got["deadline"]["response"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no deadline reached the server: {}", got["deadline"]));
        assert!(left > 0.0 && left <= 7.5, "deadline {left}");
        got["deadline"]["response"] = json!("seen");
        // The balancer's own headers on every answer: its request ID and the date.
        for (name, report) in got.as_object_mut().unwrap() {
            let initial = report["initial"].as_object_mut().unwrap();
            let id = initial.remove("x-request-id");
            assert!(
                id.as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.len() == 32),
                "{name}: request ID {id:?}"
            );
            initial.remove("date");
        }
        // Its details are grpcio's own wording; the code is the contract.
        let exceeded = got["deadline_exceeded"].take();
        assert_eq!(exceeded["code"], "DEADLINE_EXCEEDED", "{exceeded}");
        got.as_object_mut().unwrap().remove("deadline_exceeded");
        let want = json!({
            "unary": call("OK", "", json!("echo:hello"), "unary"),
            "unary_big": call("OK", "", json!((1 << 20) + 5), "unary"),
            "server_stream": call("OK", "", json!(["part-0", "part-1", "part-2"]), "server-stream"),
            "client_stream": call("OK", "", json!("a+b+c"), "client-stream"),
            "bidi": call("OK", "", json!(["re:x", "re:y"]), "bidi"),
            "not_found": call("NOT_FOUND", "no such thing: not-found", Value::Null, "unary"),
            "deadline": call("OK", "", json!("seen"), "unary"),
        });
        assert_eq!(got, want);
        balancer.process().assert_running();
    })
    .await;
}

/// Whether `/status` says the backend at `server` is out with NOT_SERVING as its last error.
async fn out_for_not_serving(balancer: &Balancer, server: &GrpcServer) -> bool {
    backend_status(balancer, server.addr)
        .await
        .is_some_and(|b| {
            b["healthy"] == false && b["last_error"].to_string().contains("NOT_SERVING")
        })
}

async fn wait_out_for_not_serving(balancer: &Balancer, server: &GrpcServer) {
    let out = wait_until_async(VERDICT, || out_for_not_serving(balancer, server)).await;
    assert!(
        out,
        "a NOT_SERVING server is not out for it: {:?}",
        backend_status(balancer, server.addr).await
    );
}

/// The ports of the servers that answered ten `whoami` calls through `balancer`, sorted, once each.
async fn answered_by(balancer: &Balancer) -> Vec<String> {
    let got = grpc::client(balancer.addr(), "whoami").await;
    let mut ports: Vec<String> = got["whoami"]
        .as_array()
        .unwrap_or_else(|| panic!("whoami: {got}"))
        .iter()
        .map(|p| p.as_str().unwrap_or_default().to_owned())
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

fn port_of(server: &GrpcServer) -> String {
    format!("port:{}", server.addr.port())
}

async fn set_serving(server: &GrpcServer, which: &str) {
    let set = grpc::client(server.addr, which).await;
    assert_eq!(set["set_serving"]["code"], "OK", "{set}");
}

async fn wait_healthy(balancer: &Balancer, server: &GrpcServer) {
    assert!(
        wait_health(balancer, server.addr, true, VERDICT)
            .await
            .is_some(),
        "{} not admitted: {:?}",
        server.addr,
        backend_status(balancer, server.addr).await
    );
}

/// `--health-check grpc` keeps a NOT_SERVING server out (the calls go to the SERVING one), takes
/// one out when it turns NOT_SERVING and admits one that turns SERVING; `--health-check tcp`
/// admits both. (With every backend out the balancer tries them all, so a lone NOT_SERVING
/// backend still gets the calls: it takes a SERVING one beside it to see it kept out.)
#[tokio::test]
async fn grpc_health_check_keeps_a_not_serving_backend_out_and_tcp_admits_it() {
    bounded("grpc health", async {
        if !grpc_available() {
            return;
        }
        let (up, down) = (GrpcServer::start(true), GrpcServer::start(false));
        let grpc_checked = grpc_balancer(&[&up, &down], "grpc", PROBES).await;
        wait_healthy(&grpc_checked, &up).await;
        wait_out_for_not_serving(&grpc_checked, &down).await;
        assert_eq!(answered_by(&grpc_checked).await, [port_of(&up)]);

        let tcp_checked = grpc_balancer(&[&up, &down], "tcp", PROBES).await;
        wait_healthy(&tcp_checked, &up).await;
        wait_healthy(&tcp_checked, &down).await;
        let mut both = vec![port_of(&up), port_of(&down)];
        both.sort();
        assert_eq!(answered_by(&tcp_checked).await, both);

        // The verdicts follow the health service both ways.
        set_serving(&up, "not-serving").await;
        set_serving(&down, "serving").await;
        wait_out_for_not_serving(&grpc_checked, &up).await;
        wait_healthy(&grpc_checked, &down).await;
        assert_eq!(answered_by(&grpc_checked).await, [port_of(&down)]);
    })
    .await;
}
