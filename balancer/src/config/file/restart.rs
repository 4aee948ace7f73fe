//! Which settings a reload cannot change: everything but the groups and the routes (listeners,
//! workers, TLS, traffic limits, admin, logs) is set up once at start. A reload names those that
//! differ, and applies the rest.

use super::Loaded;
use crate::config::Config;

impl Loaded {
    /// The flags (`--listen`, ...) whose values differ in `next` and need a restart to apply.
    pub fn needs_restart(&self, next: &Loaded) -> Vec<String> {
        let now = restart_settings(&self.config);
        let then = restart_settings(&next.config);
        now.iter()
            .zip(&then)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| format!("--{}", a.0))
            .collect()
    }
}

/// Every setting outside the groups, by its flag's long name, with its value written out (only
/// compared, never shown: `--admin-token` is among them). `restart::tests` checks that every
/// flag but the group's is here.
pub(super) fn restart_settings(c: &Config) -> Vec<(&'static str, String)> {
    let (f, t, x, a, l) = (&c.front, &c.tls, &c.traffic, &c.admin, &c.log);
    let acme = &c.acme;
    vec![
        ("config", format!("{:?}", c.routes_file)),
        ("listen", format!("{:?}", f.listen)),
        ("workers", format!("{:?}", f.workers)),
        (
            "header-read-timeout",
            format!("{:?}", f.header_read_timeout),
        ),
        ("max-connections", format!("{:?}", f.max_connections)),
        ("shutdown-timeout", format!("{:?}", f.shutdown_timeout)),
        ("tls-listen", format!("{:?}", t.tls_listen)),
        ("tls-cert", format!("{:?}", t.tls_cert)),
        ("tls-key", format!("{:?}", t.tls_key)),
        ("redirect-http", format!("{:?}", t.redirect_http)),
        ("hsts", format!("{:?}", t.hsts)),
        ("max-body", format!("{:?}", x.max_body)),
        ("rate-limit", format!("{:?}", x.rate_limit)),
        ("rate-burst", format!("{:?}", x.rate_burst)),
        ("rate-limit-clients", format!("{:?}", x.rate_limit_clients)),
        ("trusted-proxies", format!("{:?}", x.trusted_proxies)),
        ("admin-listen", format!("{:?}", a.admin_listen)),
        ("admin-token", format!("{:?}", a.admin_token)),
        ("log-format", format!("{:?}", l.log_format)),
        ("access-log", format!("{:?}", l.access_log)),
        ("acme-domain", format!("{:?}", acme.acme_domain)),
        ("acme-email", format!("{:?}", acme.acme_email)),
        ("acme-directory", format!("{:?}", acme.acme_directory)),
        ("acme-state", format!("{:?}", acme.acme_state)),
        ("acme-ca", format!("{:?}", acme.acme_ca)),
        ("acme-challenge", format!("{:?}", acme.acme_challenge)),
        ("acme-renew-before", format!("{:?}", acme.acme_renew_before)),
        ("keep-alive-timeout", format!("{:?}", f.keep_alive_timeout)),
        ("handover", format!("{:?}", f.handover)),
        (
            "rate-limit-ipv6-prefix",
            format!("{:?}", x.rate_limit_ipv6_prefix),
        ),
    ]
}
