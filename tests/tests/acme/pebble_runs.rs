//! The test ACME server itself: pebble starts with the helper's configuration, serves its
//! directory over TLS from the test's CA and hands out its issuing root.

use e2e::pebble::{Pebble, PebbleOptions};
use e2e::tls::run_bounded;

#[tokio::test]
async fn pebble_serves_its_directory_and_root() {
    let pebble = Pebble::start(
        e2e::free_port(),
        e2e::free_port(),
        &PebbleOptions::default(),
    )
    .expect("pebble starts");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--fail", "--cacert"])
        .arg(pebble.acme_ca())
        .arg(&pebble.directory);
    let out = run_bounded(cmd, b"").await;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("newOrder"), "{body}");
    let root = pebble.issuing_root().await.expect("pebble's root");
    let pem = std::fs::read_to_string(root).expect("root written");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
}
