//! Sticky sessions (`sticky = { cookie = "NAME" }` on an `[[upstream]]`): a client that carries
//! the group's cookie goes back to the backend it names while that backend is in the rotation
//! (healthy, not ejected, not drained); any other request is an ordinary pick, and its response
//! sets the cookie to the backend that answered.
//!
//! The cookie holds an opaque tag, never an address: the keyed hash of the backend's address
//! ([`key`]). The tags of a group's backends are computed once per backend set (a [`Table`],
//! rebuilt when discovery swaps the rotation), so a request costs a scan of its `Cookie` headers
//! and a comparison per backend, never a hash. A forged or stale tag matches no backend: the
//! request is an ordinary one. Which backend a tag picks is decided by selection
//! ([`crate::backends::selection::Selection::attempts_pinned`]), which keeps retries on the others.

pub mod cookie;
pub mod key;

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::{self, HeaderMap, HeaderValue};

use crate::backends::backend::Backend;
use crate::backends::selection::MAX_BACKENDS;

/// A group's `sticky` setting.
#[derive(Clone, PartialEq, Eq)]
pub struct StickyCookie {
    /// `cookie`: the cookie's name (an RFC 6265 token, see [`cookie::check_name`]).
    pub name: Arc<str>,
    /// `secret`: derives the key, so that processes and restarts agree (see [`key`]).
    pub secret: Option<Arc<str>>,
}

impl fmt::Debug for StickyCookie {
    /// The secret never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StickyCookie")
            .field("name", &self.name)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One group's sticky state: the key and the tags of the current backend set.
pub struct Sticky {
    name: Arc<str>,
    key: key::Key,
    table: ArcSwap<Table>,
}

/// The tags of one backend set (one rotation snapshot), by index.
pub struct Table {
    backends: Arc<[Arc<Backend>]>,
    entries: Box<[Entry]>,
}

struct Entry {
    tag: u128,
    /// The `Set-Cookie` value, plain and for a client over TLS.
    plain: Option<HeaderValue>,
    secure: Option<HeaderValue>,
}

/// One request's view of the cookie: which backend it names, if any.
pub struct Pin {
    table: Arc<Table>,
    sent: Option<usize>,
}

impl Sticky {
    pub fn new(settings: &StickyCookie) -> Self {
        let name = settings.name.clone();
        let key = key::key(settings.secret.as_deref());
        let table = ArcSwap::from_pointee(Table::build(&name, &key, Arc::from(Vec::new())));
        Sticky { name, key, table }
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The request's pin among `backends` (the rotation selection gets), from its `Cookie`
    /// headers.
    pub fn pin(&self, backends: &Arc<[Arc<Backend>]>, headers: &HeaderMap) -> Pin {
        let table = self.table_for(backends);
        let sent = cookie::values(headers, &self.name)
            .filter_map(cookie::parse_tag)
            .find_map(|tag| table.index_of_tag(tag));
        Pin { table, sent }
    }

    /// The tags of `backends`, built once per backend set.
    fn table_for(&self, backends: &Arc<[Arc<Backend>]>) -> Arc<Table> {
        let current = self.table.load_full();
        if Arc::ptr_eq(&current.backends, backends) {
            return current;
        }
        let fresh = Arc::new(Table::build(&self.name, &self.key, backends.clone()));
        self.table.store(fresh.clone());
        fresh
    }
}

impl Table {
    fn build(name: &str, key: &key::Key, backends: Arc<[Arc<Backend>]>) -> Self {
        let entries = backends
            .iter()
            .take(MAX_BACKENDS)
            .map(|b| {
                let tag = key::tag(key, b.addr.to_string().as_bytes());
                Entry {
                    tag,
                    plain: cookie::set_cookie(name, tag, false),
                    secure: cookie::set_cookie(name, tag, true),
                }
            })
            .collect();
        Table { backends, entries }
    }

    fn index_of_tag(&self, tag: u128) -> Option<usize> {
        self.entries.iter().position(|e| e.tag == tag)
    }
}

impl Pin {
    /// The index (in the rotation) of the backend the cookie names, when it names one.
    pub fn target(&self) -> Option<usize> {
        self.sent
    }

    /// Sets the cookie on the response of `served` unless the request already carried its tag;
    /// `secure` (the client came over TLS) adds `Secure`.
    pub fn stamp(&self, served: &Arc<Backend>, headers: &mut HeaderMap, secure: bool) {
        let Some(at) = self
            .table
            .backends
            .iter()
            .take(self.table.entries.len())
            .position(|b| Arc::ptr_eq(b, served))
        else {
            return;
        };
        if self.sent == Some(at) {
            return;
        }
        let entry = &self.table.entries[at];
        let value = if secure { &entry.secure } else { &entry.plain };
        if let Some(value) = value {
            headers.append(header::SET_COOKIE, value.clone());
        }
    }
}

#[cfg(test)]
mod tests;
