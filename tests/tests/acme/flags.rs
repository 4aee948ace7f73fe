//! Start-up errors of the ACME flags: each exits 2 with one line naming the flag, before any
//! order, and never with a key in it.

use std::os::unix::fs::PermissionsExt;

use e2e::net::dead_port;

/// Runs the balancer with `args` (on dead ports); its exit code and stderr.
fn start_failing(args: &[&str]) -> (Option<i32>, String) {
    e2e::services::balancer_start_failing(args, &[])
}

#[test]
fn bad_acme_settings_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(12_345), Some(12_345))
        .expect("chown (tests run as root)");
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o777)).unwrap();
    let under_file = file.join("state").display().to_string();
    let (foreign, file) = (foreign.display().to_string(), file.display().to_string());
    let tls = format!("127.0.0.1:{}", dead_port());
    let acme = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["--tls-listen", &tls, "--acme-domain", "a.example.com"];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    };
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec!["--acme-domain".into(), "a.example.com".into()],
            "--tls-listen",
            "",
        ),
        (
            acme(&["--acme-state", &under_file]),
            "--acme-state",
            "cannot create",
        ),
        (
            acme(&["--acme-state", &file]),
            "--acme-state",
            "not a directory",
        ),
        (
            acme(&["--acme-state", &foreign]),
            "--acme-state",
            "belongs to uid 12345",
        ),
        (
            acme(&["--acme-challenge", "dns-01"]),
            "--acme-challenge",
            "",
        ),
        (
            acme(&["--acme-directory", "http://x"]),
            "--acme-directory",
            "https://",
        ),
        (
            acme(&["--acme-renew-before", "4000d"]),
            "--acme-renew-before",
            "",
        ),
        (acme(&["--acme-ca", "/nonexistent.pem"]), "--acme-ca", ""),
        (
            vec![
                "--tls-listen".into(),
                tls.clone(),
                "--acme-domain".into(),
                "*.example.com".into(),
            ],
            "--acme-domain",
            "wildcard",
        ),
    ];
    for (args, flag, why) in cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = start_failing(&argv);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(why),
            "{args:?}: {stderr}"
        );
    }
}
