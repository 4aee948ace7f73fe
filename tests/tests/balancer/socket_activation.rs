//! systemd socket activation: the balancer serves on the socket it inherits as fd 3
//! (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`) instead of binding `--listen`; a badly named
//! socket exits 2 with one line; and the example units in `deploy/systemd/` pass
//! `systemd-analyze verify`.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use e2e::backends::echo_backend;
use e2e::{bin_path, Process};

const T: Duration = Duration::from_secs(20);

/// The balancer started the way systemd starts it: `listener` as fd 3, the variables set, and
/// `LISTEN_PID` its own pid (`sh` execs into it, keeping the pid).
fn activated(listener: &std::net::TcpListener, names: &str, args: &[String]) -> Process {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES={names}; exec \"$0\" \"$@\""
        ))
        .arg(bin_path("balancer"))
        .args(args)
        .env_remove("BALANCER_LISTEN")
        .env_remove("BALANCER_UPSTREAMS");
    let fd = listener.as_raw_fd();
    // SAFETY: only async-signal-safe calls (fcntl, dup2, close) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let high = libc::fcntl(fd, libc::F_DUPFD, 100);
            if high < 0 || libc::dup2(high, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(high);
            Ok(())
        });
    }
    match Process::spawn("balancer-activated", cmd) {
        Ok(process) => process,
        Err(e) => panic!("cannot start the balancer: {e}"),
    }
}

#[tokio::test]
async fn the_balancer_serves_on_the_socket_systemd_passes() {
    let echo = echo_backend().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let passed = listener.local_addr().expect("address");
    let (flag_port, admin) = (e2e::free_port(), e2e::free_port());
    let args: Vec<String> = [
        "--upstreams".to_owned(),
        echo.addr.to_string(),
        "--listen".to_owned(),
        format!("127.0.0.1:{flag_port}"),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{admin}"),
    ]
    .to_vec();
    let mut balancer = activated(&listener, "listen", &args);
    drop(listener);
    let url = format!("http://{passed}/activated");
    let served = e2e::wait_until_async(T, || async {
        e2e::http::get(&url).await.is_ok_and(|r| r.status == 200)
    })
    .await;
    balancer.assert_running();
    assert!(
        served,
        "nothing served on the passed socket:\n{}",
        balancer.log()
    );
    let flag = format!("http://127.0.0.1:{flag_port}/");
    assert!(
        e2e::http::get(&flag).await.is_err(),
        "--listen was bound although systemd passed the socket"
    );
}

#[tokio::test]
async fn a_badly_named_socket_exits_2_with_one_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let admin = e2e::free_port();
    let args = vec![
        "--upstreams".to_owned(),
        "127.0.0.1:9".to_owned(),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{admin}"),
    ];
    let mut balancer = activated(&listener, "web", &args);
    let exit = balancer.wait_exit(T).await;
    let log = balancer.log();
    assert_eq!(exit.and_then(|e| e.code()), Some(2), "{log}");
    assert_eq!(log.trim().lines().count(), 1, "one line: {log}");
    assert!(log.contains("LISTEN_FDNAMES"), "{log}");
}

#[tokio::test]
async fn the_example_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let units = e2e::bins::workspace_root().join("deploy/systemd");
    for unit in ["balancer.socket", "balancer.service"] {
        let text = std::fs::read_to_string(units.join(unit)).expect("the unit");
        // The binary where this build put it, instead of /usr/local/bin.
        let text = text.replace(
            "/usr/local/bin/balancer",
            &bin_path("balancer").display().to_string(),
        );
        std::fs::write(dir.path().join(unit), text).expect("copy");
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "balancer.socket", "balancer.service"])
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze (Debian package systemd, installed by .ci/run): {e}")
        });
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}
