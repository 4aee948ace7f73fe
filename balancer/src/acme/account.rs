//! The ACME account: restored from `account.json` in the state directory when it belongs to the
//! configured directory URL, otherwise created (with `--acme-email` as its contact, terms of
//! service agreed) and stored. The HTTP client trusts the public roots, or only `--acme-ca`.

use instant_acme::{Account, AccountBuilder, AccountCredentials, NewAccount};
use serde::{Deserialize, Serialize};

use crate::acme::state::StateDir;

const FILE: &str = "account.json";

/// What `account.json` holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    directory: String,
    credentials: AccountCredentials,
}

/// Where and as whom to order.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub directory: String,
    pub email: Option<String>,
    pub ca: Option<std::path::PathBuf>,
}

fn builder(settings: &AccountSettings) -> Result<AccountBuilder, String> {
    match &settings.ca {
        Some(ca) => {
            Account::builder_with_root(ca).map_err(|e| format!("--acme-ca {}: {e}", ca.display()))
        }
        None => Account::builder().map_err(|e| format!("the ACME HTTP client: {e}")),
    }
}

/// Restores or creates the account. Errors are for the log and `/status` (no secret in them).
pub async fn account(state: &StateDir, settings: &AccountSettings) -> Result<Account, String> {
    if let Some(bytes) = state.read(FILE)? {
        let stored: Stored = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not an account file: {e}", state.path(FILE).display()))?;
        if stored.directory == settings.directory {
            return builder(settings)?
                .from_credentials(stored.credentials)
                .await
                .map_err(|e| format!("restoring the ACME account: {e}"));
        }
        tracing::warn!(
            stored = %stored.directory,
            configured = %settings.directory,
            "the stored ACME account belongs to another directory; creating a new one"
        );
    }
    let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder(settings)?
        .create(&new, settings.directory.clone(), None)
        .await
        .map_err(|e| format!("creating an ACME account at {}: {e}", settings.directory))?;
    let stored = Stored {
        directory: settings.directory.clone(),
        credentials,
    };
    let json = serde_json::to_vec(&stored).map_err(|e| format!("the account file: {e}"))?;
    state.write(FILE, &json)?;
    tracing::info!(directory = %settings.directory, "ACME account created");
    Ok(account)
}
