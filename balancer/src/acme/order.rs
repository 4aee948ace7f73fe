//! One order for one name (RFC 8555 section 7.4): the order, its authorization answered with
//! the configured challenge (published in [`Challenges`] for as long as the order runs), the
//! CSR (a fresh ECDSA P-256 key, rcgen) and the certificate chain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use crate::acme::challenge::{Challenge, Challenges, Pending};

/// How long validation and issuance may take before the order counts as failed.
const POLL_TIMEOUT: Duration = Duration::from_secs(90);

/// Why an order failed, and how long the CA asked to wait (`Retry-After`), if it did.
#[derive(Debug)]
pub struct OrderError {
    pub message: String,
    pub retry_after: Option<u64>,
}

impl OrderError {
    fn new(message: impl Into<String>) -> Self {
        OrderError {
            message: message.into(),
            retry_after: None,
        }
    }
}

fn acme(context: &str) -> impl Fn(instant_acme::Error) -> OrderError + '_ {
    move |e| {
        let retry_after = match &e {
            instant_acme::Error::Timeout(Some(at)) => {
                Some(at.saturating_duration_since(Instant::now()).as_secs())
            }
            _ => None,
        };
        OrderError {
            message: format!("{context}: {e}"),
            retry_after,
        }
    }
}

/// A new certificate: the chain (leaf first) and its key, PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Orders a certificate for `name`, answering `challenge`.
pub async fn obtain(
    account: &Account,
    name: &str,
    challenge: Challenge,
    challenges: &Arc<Challenges>,
) -> Result<Issued, OrderError> {
    let identifiers = [Identifier::Dns(name.to_owned())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(acme("new order"))?;
    let mut published = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(acme("authorization"))?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(OrderError::new(format!("authorization is {other:?}"))),
        }
        let kind = match challenge {
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            Challenge::Http01 => ChallengeType::Http01,
        };
        let mut handle = authorization.challenge(kind).ok_or_else(|| {
            OrderError::new(format!("the CA offers no {} challenge", challenge.name()))
        })?;
        let key_authorization = handle.key_authorization();
        published.push(match challenge {
            Challenge::Http01 => {
                Pending::http(challenges, &handle.token, key_authorization.as_str())
            }
            Challenge::TlsAlpn01 => {
                Pending::alpn(challenges, name, key_authorization.digest().as_ref())
                    .map_err(OrderError::new)?
            }
        });
        handle.set_ready().await.map_err(acme("challenge"))?;
    }
    let retries = RetryPolicy::new().timeout(POLL_TIMEOUT);
    let status = order
        .poll_ready(&retries)
        .await
        .map_err(acme("validation"))?;
    if status != OrderStatus::Ready {
        return Err(OrderError::new(format!(
            "validation failed: the order is {status:?}{}",
            challenge_errors(&mut order).await
        )));
    }
    let (csr, key_pem) = csr(name).map_err(OrderError::new)?;
    order.finalize_csr(&csr).await.map_err(acme("finalize"))?;
    let chain_pem = order
        .poll_certificate(&retries)
        .await
        .map_err(acme("certificate"))?;
    drop(published);
    Ok(Issued { chain_pem, key_pem })
}

/// The challenges' own errors, e.g. the CA's connection error, for the log and `/status`.
async fn challenge_errors(order: &mut instant_acme::Order) -> String {
    let mut errors = String::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                errors.push_str(&format!(" ({problem})"));
            }
        }
    }
    errors
}

/// A CSR for `name` with a new key: (DER, the key as PKCS#8 PEM).
fn csr(name: &str) -> Result<(Vec<u8>, String), String> {
    let why = |e: rcgen::Error| format!("CSR for {name}: {e}");
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(why)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let key = rcgen::KeyPair::generate().map_err(why)?;
    let csr = params.serialize_request(&key).map_err(why)?;
    Ok((csr.der().to_vec(), key.serialize_pem()))
}
