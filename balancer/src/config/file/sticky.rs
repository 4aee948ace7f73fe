//! An `[[upstream]]`'s `sticky = { cookie = "NAME", secret = "..." }` into its
//! [`StickyCookie`]: the cookie name an RFC 6265 token, the optional secret long enough to be
//! one, no other key; each refused at its line and column.

use std::sync::Arc;

use toml::Spanned;

use super::schema::Value;
use super::source::Source;
use super::LoadError;
use crate::backends::sticky::{cookie, StickyCookie};

/// The shortest and longest `secret` taken.
const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=1024;

/// The group's `sticky` table, checked.
pub(super) fn sticky(src: &Source, value: &Spanned<Value>) -> Result<StickyCookie, LoadError> {
    let Value::Table(entries) = value.get_ref() else {
        let why = format!(
            "`sticky` is a table, `{{ cookie = \"NAME\" }}`, not {}",
            value.get_ref().kind()
        );
        return Err(src.error(&value.span(), why));
    };
    let (mut name, mut secret) = (None, None);
    for (key, entry) in entries {
        let text = match entry.get_ref() {
            Value::Text(text) => text,
            other => {
                let why = format!("sticky `{key}` is a string, not {}", other.kind());
                return Err(src.error(&entry.span(), why));
            }
        };
        match key.as_str() {
            "cookie" => {
                cookie::check_name(text).map_err(|why| src.error(&entry.span(), why))?;
                name = Some(Arc::from(text.as_str()));
            }
            "secret" => {
                if !SECRET_LEN.contains(&text.len()) {
                    let why = format!(
                        "sticky `secret` is {} bytes long; it takes {} to {}",
                        text.len(),
                        SECRET_LEN.start(),
                        SECRET_LEN.end()
                    );
                    return Err(src.error(&entry.span(), why));
                }
                secret = Some(Arc::from(text.as_str()));
            }
            other => {
                let why = format!("`sticky` has no key `{other}` (it takes `cookie`, `secret`)");
                return Err(src.error(&entry.span(), why));
            }
        }
    }
    let name = name.ok_or_else(|| {
        src.error(
            &value.span(),
            "`sticky` needs `cookie = \"NAME\"`, the cookie's name",
        )
    })?;
    Ok(StickyCookie { name, secret })
}
