//! `--redirect-http`: the plain listener answers every request with `308 Permanent Redirect` to
//! the same host and path on the TLS listener's port.
//!
//! 308 rather than 301 so a POST stays a POST. The host is the request's own (Host header, or the
//! authority of an absolute-form target), checked by the shared Host rule, with its port replaced
//! by the TLS port (left out when that is 443). A request naming no valid host gets 400: there is
//! nowhere safe to send it. Pure, no I/O.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;

/// The answer to `req` when the TLS listener is on `tls_port`.
pub fn respond<B>(req: &Request<B>, tls_port: u16) -> Response<Full<Bytes>> {
    match location(req, tls_port).and_then(|l| HeaderValue::from_str(&l).ok()) {
        Some(location) => {
            let mut resp =
                Response::new(Full::new(Bytes::from_static(b"308 Permanent Redirect\n")));
            *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
            resp.headers_mut().insert(header::LOCATION, location);
            resp
        }
        None => {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"400 Bad Request\n")));
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            resp
        }
    }
}

/// `https://host[:port]/path?query`, or `None` when the request names no valid host.
fn location<B>(req: &Request<B>, tls_port: u16) -> Option<String> {
    let host = match req.headers().get(header::HOST) {
        Some(h) => h.as_bytes().to_vec(),
        None => req.uri().authority()?.as_str().as_bytes().to_vec(),
    };
    if !shared::host::is_valid_host(&host) {
        return None;
    }
    let host = std::str::from_utf8(&host).ok()?;
    let name = strip_port(host);
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    Some(if tls_port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{tls_port}{path}")
    })
}

/// `example:8080` -> `example`, `[::1]:80` -> `[::1]`.
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.find(']') {
        return &host[..=end];
    }
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, host: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(target);
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn same_host_and_path_on_the_tls_port() {
        let r = respond(&req("/count?x=1", Some("shop.example:5000")), 5443);
        assert_eq!(r.status(), 308);
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://shop.example:5443/count?x=1"
        );
        let r = respond(&req("/", Some("[::1]:80")), 443);
        assert_eq!(r.headers()[header::LOCATION], "https://[::1]/");
        let r = respond(&req("http://a.example/p", None), 8443);
        assert_eq!(r.headers()[header::LOCATION], "https://a.example:8443/p");
    }

    #[test]
    fn no_valid_host_is_a_400() {
        assert_eq!(respond(&req("/", None), 443).status(), 400);
        assert_eq!(
            respond(&req("/", Some("evil.example/x")), 443).status(),
            400
        );
        assert_eq!(respond(&req("/", Some("a@b")), 443).status(), 400);
    }
}
