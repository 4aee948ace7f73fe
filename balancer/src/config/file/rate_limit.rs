//! A `[[route]]`'s `rate_limit = "100/s"` and `rate_burst = N`: the syntax and ranges of
//! `--rate-limit` and `--rate-burst`, each refused at its place; `rate_burst` needs a
//! `rate_limit`. Each limited route gets a client table of its own, sized and keyed as
//! `--rate-limit-clients` and `--rate-limit-ipv6-prefix` say.

use toml::Spanned;

use super::schema::RouteTable;
use super::source::Source;
use super::LoadError;
use crate::config::traffic::{parse_rate_limit, MAX_BURST};
use crate::config::TrafficConfig;
use crate::policy::rate_limit::RouteRateLimit;
use crate::routes::RouteSpec;
use crate::traffic::rate_limit::Rate;

/// Every route's `rate_limit`, in the file's order (`specs` are the routes of `tables`).
pub(super) fn apply(
    src: &Source,
    tables: &[Spanned<RouteTable>],
    specs: &mut [RouteSpec],
    traffic: &TrafficConfig,
) -> Result<(), LoadError> {
    for (table, spec) in tables.iter().zip(specs) {
        spec.policy.rate_limit = route_rate_limit(src, table.get_ref())?.map(|(rate, burst)| {
            let (clients, keying) = (traffic.clients(), traffic.keying());
            RouteRateLimit::new(spec.name.clone(), rate, burst, clients, keying)
        });
    }
    Ok(())
}

/// The route's rate and burst, checked.
fn route_rate_limit(
    src: &Source,
    route: &RouteTable,
) -> Result<Option<(Rate, Option<u32>)>, LoadError> {
    let Some(raw) = &route.rate_limit else {
        return match &route.rate_burst {
            Some(burst) => Err(src.error(
                &burst.span(),
                "`rate_burst` needs `rate_limit = \"COUNT/UNIT\"` on the route",
            )),
            None => Ok(None),
        };
    };
    let rate = parse_rate_limit(raw.get_ref())
        .map_err(|why| src.error(&raw.span(), format!("rate_limit: {why}")))?;
    let burst = match &route.rate_burst {
        None => None,
        Some(burst) => Some(
            u32::try_from(*burst.get_ref())
                .ok()
                .filter(|b| (1..=MAX_BURST).contains(b))
                .ok_or_else(|| {
                    let why = format!(
                        "rate_burst {} must be between 1 and {MAX_BURST}",
                        burst.get_ref()
                    );
                    src.error(&burst.span(), why)
                })?,
        ),
    };
    Ok(Some((rate, burst)))
}
