//! Automatic HTTPS: the ACME settings (`--acme-*`), the names to certify, the certificate
//! authority's directory, where the account and certificates are kept, which challenge answers.
//! What they drive lives in `crate::acme`.

use std::path::PathBuf;
use std::time::Duration;

use shared::duration::{within, DAY};

pub use crate::acme::challenge::Challenge;

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A DNS name to certify: letters, digits, `-` and `.`, labels of 1 to 63, at most 253 in all,
/// at least two labels; no wildcard (neither challenge here can prove one), kept in lower case.
fn domain(raw: &str) -> Result<String, String> {
    let name = raw.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || name.split('.').count() < 2 || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{raw}` is not a DNS name (letters, digits, `-`, at least two labels, no wildcard)"
        ));
    }
    Ok(name)
}

fn email(raw: &str) -> Result<String, String> {
    match raw.split_once('@') {
        Some((user, host)) if !user.is_empty() && host.contains('.') && !raw.contains(' ') => {
            Ok(raw.to_owned())
        }
        _ => Err(format!("`{raw}` is not an e-mail address")),
    }
}

fn https_url(raw: &str) -> Result<String, String> {
    if raw.starts_with("https://") && raw.len() > "https://".len() && !raw.contains(' ') {
        Ok(raw.to_owned())
    } else {
        Err(format!("`{raw}` is not an https:// URL"))
    }
}

/// The ACME client's settings; off unless `--acme-domain` is given.
#[derive(Debug, Clone, clap::Args)]
pub struct AcmeConfig {
    /// A name to obtain and renew a certificate for over ACME (repeatable; the variable takes a
    /// comma-separated list). Needs --tls-listen; the name must resolve to this machine.
    #[arg(long = "acme-domain", env = "BALANCER_ACME_DOMAINS", value_name = "NAME",
          value_delimiter = ',', value_parser = domain, requires = "tls_listen")]
    pub acme_domain: Vec<String>,

    /// Contact address given to the certificate authority (expiry notices).
    #[arg(long, env = "BALANCER_ACME_EMAIL", value_name = "ADDR", value_parser = email,
          requires = "acme_domain")]
    pub acme_email: Option<String>,

    /// The ACME directory URL. Let's Encrypt's staging directory, for trials without its
    /// production rate limits: https://acme-staging-v02.api.letsencrypt.org/directory
    #[arg(long, env = "BALANCER_ACME_DIRECTORY", value_name = "URL", default_value = LETS_ENCRYPT,
          value_parser = https_url)]
    pub acme_directory: String,

    /// Directory for the ACME account key and the certificates (created 0700, files 0600); keep it
    /// across restarts, or every start orders again.
    #[arg(
        long,
        env = "BALANCER_ACME_STATE",
        value_name = "DIR",
        default_value = "/var/lib/balancer/acme"
    )]
    pub acme_state: PathBuf,

    /// A PEM root certificate the ACME server's own certificate is checked against instead of the
    /// public roots (for test CAs such as pebble).
    #[arg(long, env = "BALANCER_ACME_CA", value_name = "PATH")]
    pub acme_ca: Option<PathBuf>,

    /// How the certificate authority checks the names: tls-alpn-01 (on the TLS listener) or
    /// http-01 (on the plain listener, which must be port 80 to the outside).
    #[arg(
        long,
        env = "BALANCER_ACME_CHALLENGE",
        value_name = "TYPE",
        default_value = "tls-alpn-01"
    )]
    pub acme_challenge: Challenge,

    /// Renew once the certificate expires within this long, if that comes before two-thirds of
    /// its lifetime (the default schedule).
    #[arg(long, env = "BALANCER_ACME_RENEW_BEFORE", value_name = "DURATION",
          value_parser = within(Duration::from_secs(1), DAY * 3650))]
    pub acme_renew_before: Option<Duration>,
}

impl AcmeConfig {
    /// What the ACME client needs of these settings.
    pub fn settings(&self) -> crate::acme::Settings {
        crate::acme::Settings {
            domains: self.acme_domain.clone(),
            state: self.acme_state.clone(),
            account: crate::acme::account::AccountSettings {
                directory: self.acme_directory.clone(),
                email: self.acme_email.clone(),
                ca: self.acme_ca.clone(),
            },
            challenge: self.acme_challenge,
            renew_before: self.acme_renew_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_lowered() {
        assert_eq!(domain("Example.COM.").unwrap(), "example.com");
        for bad in [
            "localhost",
            "*.example.com",
            "-a.example",
            "a..b",
            "a b.c",
            "",
        ] {
            assert!(domain(bad).is_err(), "{bad}");
        }
        assert!(email("me@example.com").is_ok() && email("me").is_err());
        assert!(https_url("http://x").is_err() && https_url(LETS_ENCRYPT).is_ok());
    }
}
