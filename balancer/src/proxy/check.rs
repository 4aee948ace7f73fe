//! The request rules applied before any backend is involved: no CONNECT, exactly one valid Host
//! (an HTTP/2 `:authority` becomes the Host), an origin-form target, a declared body within
//! `--max-body`. Pure: a request in, the refusal's status and text out.

use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode};
use hyper::body::Body;
use shared::host::{check_hosts, is_valid_host, HostProblem};

use super::headers;

/// The `Allow` header of the 405 answer to CONNECT.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Why a request was refused before any backend was involved: the status and the text of the
/// balancer's answer.
pub struct Refused(pub StatusCode, pub &'static str);

/// The request rules applied before any backend is involved: no CONNECT, one valid Host (an
/// HTTP/2 `:authority` becomes the Host, in the request and in `found`), an origin-form target,
/// a declared body within `max_body`.
pub fn check<B: Body>(
    req: &mut Request<B>,
    found: &mut headers::Scan,
    max_body: u64,
) -> Result<(), Refused> {
    if req.method() == Method::CONNECT {
        return Err(Refused(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n",
        ));
    }
    check_host(req, found)?;
    if req.uri().path_and_query().is_none() && req.uri().authority().is_some() {
        return Err(Refused(StatusCode::BAD_REQUEST, "400 Bad Request\n"));
    }
    if req.body().size_hint().exact().is_some_and(|n| n > max_body) {
        return Err(Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413 Payload Too Large\n",
        ));
    }
    Ok(())
}

/// The Host is forwarded verbatim and copied into X-Forwarded-Host, so it must be a plain
/// `host[:port]`: anything else would hand the backend a value it may trust blindly.
fn check_host<B>(req: &mut Request<B>, found: &mut headers::Scan) -> Result<(), Refused> {
    match check_hosts(found.hosts, found.host.as_ref(), req.version()) {
        Ok(()) => {}
        Err(HostProblem::Missing | HostProblem::Repeated) => {
            return Err(Refused(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: exactly one Host header is required\n",
            ))
        }
        Err(HostProblem::Invalid) => {
            return Err(Refused(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: invalid Host header\n",
            ))
        }
    }
    if found.host.is_some() {
        return Ok(());
    }
    // HTTP/2 carries the host in :authority; HTTP/1.0 may have none at all.
    let Some(authority) = req.uri().authority() else {
        return Ok(());
    };
    if !is_valid_host(authority.as_str().as_bytes()) {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: invalid :authority\n",
        ));
    }
    if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
        req.headers_mut().insert(header::HOST, v.clone());
        found.hosts = 1;
        found.host = Some(v);
    }
    Ok(())
}
