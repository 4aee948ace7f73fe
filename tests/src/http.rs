//! A small HTTP client for tests, on hyper.
//!
//! [`get`] and [`request`] open a fresh connection per call, so each request is independent (what a test of
//! round-robin or of a killed backend wants). [`Client`] keeps connections alive, for load loops.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Bound on a whole exchange, so a hung server fails the test instead of hanging it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(value) => value,
            Err(e) => panic!("response is not JSON ({e}): {}", self.text()),
        }
    }

    /// A header's value as text, when present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// GET on a fresh connection.
pub async fn get(url: &str) -> Result<Resp, Error> {
    request(Method::GET, url, &[], Bytes::new()).await
}

/// GET on a fresh connection that must complete (any status): a transport error fails the test, naming
/// the URL.
pub async fn get_or_panic(url: &str) -> Resp {
    match get(url).await {
        Ok(resp) => resp,
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// A bodiless request on a fresh connection that must complete (any status): a transport error fails
/// the test, naming the method and URL.
pub async fn request_or_panic(method: Method, url: &str, headers: &[(&str, &str)]) -> Resp {
    match request(method.clone(), url, headers, Bytes::new()).await {
        Ok(resp) => resp,
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// Any request on a fresh HTTP/1.1 connection. `Host` is set from the URL unless `headers` sets it.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Resp, Error> {
    let uri: Uri = url.parse()?;
    let authority = uri.authority().ok_or("URL has no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let req = build(method, &uri, headers, body.into())?;
    within_timeout(url, async move {
        let stream = tokio::net::TcpStream::connect((authority.host(), port)).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let response = sender.send_request(req).await?;
        read(response).await
    })
    .await
}

/// `exchange`, failed with a message naming `url` when it takes longer than [`REQUEST_TIMEOUT`].
async fn within_timeout(
    url: &str,
    exchange: impl std::future::Future<Output = Result<Resp, Error>>,
) -> Result<Resp, Error> {
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{url}: no complete response within {REQUEST_TIMEOUT:?}"))?
}

/// A keep-alive client for many requests.
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Client {
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Client { inner }
    }

    pub async fn get(&self, url: &str) -> Result<Resp, Error> {
        self.request(Method::GET, url, &[], Bytes::new()).await
    }

    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Resp, Error> {
        let uri: Uri = url.parse()?;
        let req = build(method, &uri, headers, body.into())?;
        within_timeout(url, async {
            let response = self.inner.request(req).await?;
            read(response).await
        })
        .await
    }
}

fn build(
    method: Method,
    uri: &Uri,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Error> {
    let mut req = Request::builder().method(method).uri(uri.clone());
    let has_host = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
    if !has_host {
        if let Some(authority) = uri.authority() {
            req = req.header(http::header::HOST, authority.as_str());
        }
    }
    let mut req = req.body(Full::new(body))?;
    for (name, value) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    Ok(req)
}

async fn read(response: http::Response<hyper::body::Incoming>) -> Result<Resp, Error> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    Ok(Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}
