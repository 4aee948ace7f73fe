//! HTTP-01 on the plain listener: `GET /.well-known/acme-challenge/TOKEN` is answered with the
//! key authorization while an order for that token is in progress; every other request (another
//! path, an unknown or finished token) goes on as it would without ACME (proxied, or redirected
//! with `--redirect-http`). Only listeners of a balancer with `--acme-challenge http-01` make this
//! check; the owner of the tokens (`crate::acme`) implements [`Http01Tokens`].

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response};
use http_body_util::Full;

/// The path prefix of HTTP-01 (RFC 8555, 8.3).
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// The tokens of the HTTP-01 validations in progress.
pub trait Http01Tokens: Send + Sync + std::fmt::Debug {
    /// The key authorization for `token`, while its validation is in progress.
    fn key_authorization(&self, token: &str) -> Option<String>;
}

/// The answer to `req` when it is a challenge request for a token in progress.
pub fn answer<B>(req: &Request<B>, tokens: &dyn Http01Tokens) -> Option<Response<Full<Bytes>>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let token = req.uri().path().strip_prefix(PREFIX)?;
    let body = tokens.key_authorization(token)?;
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct One;
    impl Http01Tokens for One {
        fn key_authorization(&self, token: &str) -> Option<String> {
            (token == "tok").then(|| "tok.thumb".to_owned())
        }
    }

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    #[test]
    fn only_tokens_in_progress_are_answered() {
        assert!(answer(&get("/.well-known/acme-challenge/tok"), &One).is_some());
        assert!(answer(&get("/.well-known/acme-challenge/other"), &One).is_none());
        assert!(answer(&get("/count"), &One).is_none());
        let post = Request::post("/.well-known/acme-challenge/tok")
            .body(())
            .unwrap();
        assert!(answer(&post, &One).is_none());
    }
}
