//! `cargo xtask dev-cert`: a local development certificate authority and a certificate for
//! `localhost`, `127.0.0.1` and `::1` signed by it (rcgen, ECDSA P-256), written into `./certs`
//! for `docker-compose.tls.yml` and `cargo xtask up --tls`.
//!
//! Files: `ca.pem` (the CA to trust), `ca.key` (mode 0600; only needed to sign more), `cert.pem`
//! (the leaf then the CA, like certbot's `fullchain.pem`) and `key.pem` (PKCS#8; mode 0644 so the
//! containers' non-root user can read it through the bind mount: it is a development key for
//! loopback names, never a real one). Existing files are never overwritten without `--force`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::config_error::config_error;
use crate::stack::binaries::workspace_root;

/// Flags of `cargo xtask dev-cert`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevCertArgs {
    /// Where to write the files (default: `certs/` in the workspace, where Compose looks).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// The four files, in the order they are written.
pub const FILES: [&str; 4] = ["ca.pem", "ca.key", "cert.pem", "key.pem"];

/// Days the leaf is valid (the CA: ten years).
const LEAF_DAYS: i64 = 365;

pub fn run(args: &DevCertArgs) -> Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| workspace_root().join("certs"));
    let written = write(&dir, args.force)?;
    println!("Wrote {}", written.display());
    print_trust_hints(&dir);
    Ok(())
}

/// Generates the CA and the leaf and writes them into `dir`; refuses to replace a file unless
/// `force`. Returns the directory.
pub fn write(dir: &Path, force: bool) -> Result<PathBuf> {
    if !force {
        if let Some(existing) = FILES.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
            return Err(config_error(format!(
                "{} exists; pass --force to replace the development certificates",
                existing.display()
            )));
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca, ca_key) = authority()?;
    let (leaf, leaf_key) = leaf(&ca, &ca_key)?;
    let files = [
        ("ca.pem", ca.pem(), 0o644),
        ("ca.key", ca_key.serialize_pem(), 0o600),
        ("cert.pem", format!("{}{}", leaf.pem(), ca.pem()), 0o644),
        ("key.pem", leaf_key.serialize_pem(), 0o644),
    ];
    for (name, pem, mode) in files {
        write_file(&dir.join(name), &pem, mode)?;
    }
    Ok(dir.to_path_buf())
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

fn authority() -> Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(DnType::CommonName, "visit-counter development CA");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key).context("signing the CA")?;
    Ok((cert, key))
}

fn leaf(ca: &rcgen::Certificate, ca_key: &KeyPair) -> Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate().context("generating the certificate key")?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params.subject_alt_names.extend([
        SanType::IpAddress([127, 0, 0, 1].into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
    ]);
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(LEAF_DAYS);
    let cert = params
        .signed_by(&key, ca, ca_key)
        .context("signing the certificate")?;
    Ok((cert, key))
}

fn print_trust_hints(dir: &Path) {
    let ca = dir.join("ca.pem");
    let ca = ca.display();
    println!(
        "\nA certificate for localhost, 127.0.0.1 and ::1, valid {LEAF_DAYS} days, signed by a new \
         development CA.\nTrust the CA ({ca}) where you test, and only there:\n\
         \x20 curl:            curl --cacert {ca} https://localhost:5443/\n\
         \x20 Debian/Ubuntu:   sudo cp {ca} /usr/local/share/ca-certificates/visit-counter-dev-ca.crt \
         && sudo update-ca-certificates\n\
         \x20 Chromium/Chrome: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n visit-counter-dev -i {ca}\n\
         \x20 Firefox:         Settings > Privacy & Security > Certificates > View Certificates > \
         Authorities > Import\n\
         \x20 macOS:           sudo security add-trusted-cert -d -r trustRoot -k \
         /Library/Keychains/System.keychain {ca}\n\
         Then: docker compose -f docker-compose.yml -f docker-compose.tls.yml up --build   \
         (https://localhost:5443)\n\
         \x20  or: cargo xtask up --tls   (https://localhost:5443)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_chain_that_openssl_verifies_and_never_overwrites_without_force() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), false).unwrap();
        for f in FILES {
            assert!(dir.path().join(f).is_file(), "{f} missing");
        }
        let out = std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(dir.path().join("ca.pem"))
            .arg(dir.path().join("cert.pem"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let before = std::fs::read(dir.path().join("key.pem")).unwrap();
        let err = write(dir.path(), false).unwrap_err();
        assert!(err
            .downcast_ref::<crate::config_error::ConfigError>()
            .is_some());
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("key.pem")).unwrap(), before);
        write(dir.path(), true).unwrap();
        assert_ne!(std::fs::read(dir.path().join("key.pem")).unwrap(), before);
    }
}
