//! A real gRPC server and client, Python's `grpcio` (the scripts are in `tests/grpc/`): the server
//! has `test.Echo` (one method of each kind, raw bytes) and the standard health service; the
//! client calls through a target over h2c and reports every call as JSON (status code, details,
//! responses, initial and trailing metadata).

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::{free_port, Process};

/// How long the server may take to listen, and the client to make its calls.
const READY: Duration = Duration::from_secs(20);
const CALLS: Duration = Duration::from_secs(60);

fn script(name: &str) -> String {
    format!("{}/grpc/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `Err(what is missing)` when `python3` cannot import `grpc` and `grpc_health` (the reason for
/// [`crate::skip::or_fail`]).
pub fn available() -> Result<(), String> {
    let imported = Command::new("python3")
        .args(["-c", "import grpc, grpc_health.v1.health"])
        .output();
    match imported {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(
            "python3 cannot import grpc and grpc_health: python3 -m pip install grpcio \
                  grpcio-health-checking (.ci/run does)"
                .into(),
        ),
    }
}

/// A running `tests/grpc/server.py`, killed on drop.
pub struct GrpcServer {
    pub addr: SocketAddr,
    pub process: Process,
}

impl GrpcServer {
    /// Starts the server on a free port and waits until it accepts connections; `serving` is what
    /// its health service answers for the whole server.
    pub fn start(serving: bool) -> GrpcServer {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.arg("-u")
            .arg(script("server.py"))
            .args(["--port", &port.to_string()]);
        if !serving {
            cmd.arg("--not-serving");
        }
        let mut process = Process::spawn(format!("grpc-server-{port}"), cmd)
            .unwrap_or_else(|e| panic!("cannot start python3 server.py: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if let Err(e) = process.wait_ready("accepts connections", READY, || {
            TcpStream::connect(addr).is_ok()
        }) {
            panic!("{e:#}");
        }
        GrpcServer { addr, process }
    }
}

/// Runs `tests/grpc/client.py target which` (`all` or `unary`) and returns its JSON report; fails
/// the test with the client's output if it does not finish or prints no JSON.
pub async fn client(target: SocketAddr, which: &str) -> serde_json::Value {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script("client.py"))
        .args([&target.to_string(), which])
        .kill_on_drop(true);
    let out = tokio::time::timeout(CALLS, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("client.py {which} did not finish within {CALLS:?}"))
        .unwrap_or_else(|e| panic!("cannot run python3 client.py: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "client.py {which}: {e} ({}); stdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        )
    })
}
