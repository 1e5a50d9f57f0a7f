//! A minimal HTTP/1.1 client for the plain-HTTP endpoints nodewarden polls on the host: IMDS,
//! the ECS agent's introspection API, and our own health endpoint (for `nodewarden status`).

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Responses larger than this are refused: nothing nodewarden reads is anywhere near it.
const MAX_BODY_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{method} {uri}: no answer within {timeout:?}")]
    Timeout { method: Method, uri: Uri, timeout: Duration },
    #[error("{method} {uri}: {detail}")]
    Transport { method: Method, uri: Uri, detail: String },
    #[error("{method} {uri}: could not build the request: {detail}")]
    Request { method: Method, uri: Uri, detail: String },
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        HttpClient { inner: Client::builder(TokioExecutor::new()).build(connector) }
    }

    /// Sends one request and reads the whole body, all within `timeout`.
    pub async fn send(
        &self,
        method: Method,
        uri: Uri,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<HttpResponse, HttpError> {
        let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(Bytes::new())).map_err(|e| HttpError::Request {
            method: method.clone(),
            uri: uri.clone(),
            detail: e.to_string(),
        })?;
        let exchange = async {
            // hyper-util's own text is terse ("client error (Connect)"): include the causes.
            let response = self.inner.request(request).await.map_err(|e| crate::error::chain(&e))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e}"))?
                .to_bytes();
            Ok::<_, String>(HttpResponse { status, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(detail)) => Err(HttpError::Transport { method, uri, detail }),
            Err(_) => Err(HttpError::Timeout { method, uri, timeout }),
        }
    }

    pub async fn get(&self, uri: Uri, headers: &[(&str, &str)], timeout: Duration) -> Result<HttpResponse, HttpError> {
        self.send(Method::GET, uri, headers, timeout).await
    }
}

/// Joins `base` (scheme and authority, maybe a path prefix) with an absolute `path`.
pub fn join(base: &Uri, path: &str) -> Result<Uri, String> {
    let prefix = base.path().trim_end_matches('/');
    let text = format!(
        "{}://{}{prefix}{path}",
        base.scheme_str().unwrap_or("http"),
        base.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    text.parse().map_err(|e| format!("{text}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_paths_onto_bases() {
        let base: Uri = "http://127.0.0.1:1338".parse().unwrap();
        assert_eq!(join(&base, "/latest/api/token").unwrap().to_string(), "http://127.0.0.1:1338/latest/api/token");
        let prefixed: Uri = "http://host/prefix/".parse().unwrap();
        assert_eq!(join(&prefixed, "/v1/metadata").unwrap().to_string(), "http://host/prefix/v1/metadata");
    }
}
