//! The loop that keeps one name certified: it sleeps until the next attempt ([`schedule`]), then
//! orders ([`order::obtain`]), stores the new pair in the state directory and swaps it in, so the
//! next handshake presents it (open connections keep theirs). A failure is logged, counted and
//! shown on `/status`, and retried after the backoff; the certificate already served, if any,
//! keeps serving meanwhile.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::Account;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Mutex;

use crate::acme::account::{self, AccountSettings};
use crate::acme::certs::{load_stored, AcmeCerts, Served};
use crate::acme::challenge::Challenge;
use crate::acme::schedule;
use crate::acme::state::StateDir;
use crate::acme::{order, OrderLabels};
use crate::front::tls::unix_seconds;

/// The longest single sleep: the schedule is looked at again at least daily.
const MAX_SLEEP: Duration = Duration::from_secs(86_400);

/// What every name's loop shares.
pub struct Shared {
    pub certs: Arc<AcmeCerts>,
    pub state: StateDir,
    pub settings: AccountSettings,
    pub challenge: Challenge,
    pub renew_before: Option<Duration>,
    pub orders: Family<OrderLabels, Counter>,
    /// The account, made at the first order.
    pub account: Mutex<Option<Account>>,
}

fn now() -> i64 {
    unix_seconds(std::time::SystemTime::now())
}

/// Keeps `name` certified, forever (spawn it).
pub async fn keep_certified(shared: Arc<Shared>, name: String) {
    let mut recent: Vec<i64> = Vec::new();
    let mut failures: u32 = 0;
    let mut failure_wait: Option<u64> = None;
    let mut jitter: f64 = rand::random();
    loop {
        let now = now();
        let due = match &shared.certs.get(&name).served {
            Some(served) => schedule::renewal_due(
                served.validity,
                shared.renew_before.map(|d| d.as_secs()),
                jitter,
            ),
            None => now,
        };
        let next = schedule::next_attempt(due, now, failure_wait, &recent);
        shared.certs.update(&name, |s| s.next_attempt = Some(next));
        if next > now {
            let wait = Duration::from_secs(u64::try_from(next - now).unwrap_or(0));
            tokio::time::sleep(wait.min(MAX_SLEEP)).await;
            if wait > MAX_SLEEP {
                continue;
            }
        }
        recent.retain(|&t| t > now - 3600);
        recent.push(self::now());
        match attempt(&shared, &name).await {
            Ok(served) => {
                tracing::info!(%name, serial = %served.serial, not_after = %served.info.not_after_text, "ACME certificate obtained and served");
                shared.certs.update(&name, |s| {
                    s.served = Some(served);
                    s.orders += 1;
                });
                count(&shared, "ok");
                (failures, failure_wait, jitter) = (0, None, rand::random());
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = schedule::backoff(failures, e.retry_after, rand::random());
                tracing::warn!(%name, error = %e.message, retry_in_s = wait, "ACME order failed");
                let at = self::now();
                shared.certs.update(&name, |s| {
                    s.last_error = Some(e.message);
                    s.last_error_at = Some(at);
                    s.orders += 1;
                });
                count(&shared, "failed");
                failure_wait = Some(wait);
            }
        }
    }
}

fn count(shared: &Shared, result: &'static str) {
    shared.orders.get_or_create(&OrderLabels { result }).inc();
}

/// One order for `name`, its pair stored and read back checked.
async fn attempt(shared: &Shared, name: &str) -> Result<Served, order::OrderError> {
    let account = {
        let mut slot = shared.account.lock().await;
        match slot.as_ref() {
            Some(account) => account.clone(),
            None => {
                let made = account::account(&shared.state, &shared.settings)
                    .await
                    .map_err(|message| order::OrderError {
                        message,
                        retry_after: None,
                    })?;
                slot.insert(made).clone()
            }
        }
    };
    tracing::info!(%name, challenge = shared.challenge.name(), "ACME order placed");
    let issued = order::obtain(&account, name, shared.challenge, &shared.certs.challenges).await?;
    let stored = shared
        .state
        .store_pair(name, &issued.chain_pem, &issued.key_pem)
        .and_then(|()| load_stored(&shared.state, name));
    match stored {
        Ok(Some(served)) => Ok(served),
        Ok(None) => Err(order::OrderError {
            message: format!("the new certificate for {name} was not stored"),
            retry_after: None,
        }),
        Err(message) => Err(order::OrderError {
            message,
            retry_after: None,
        }),
    }
}
