//! An IMDSv2 client (Bottlerocket's model): a session token from `PUT /latest/api/token`,
//! cached and renewed before it expires or when IMDS answers 401; bounded retries with backoff
//! under an overall deadline; 404 means "absent", not an error; bodies are bytes, since
//! userdata may be gzip. There is deliberately no IMDSv1 fallback.

use std::sync::Mutex;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::{Method, StatusCode, Uri};
use serde::Deserialize;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::http::{self, HttpClient};

const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

#[derive(Debug, Clone)]
pub struct ImdsConfig {
    /// Token lifetime requested from IMDS (the maximum, 6 h, as the AWS SDKs do).
    pub token_ttl: Duration,
    /// Limit for one HTTP exchange.
    pub request_timeout: Duration,
    /// Limit for one call including all retries.
    pub deadline: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for ImdsConfig {
    fn default() -> Self {
        ImdsConfig {
            token_ttl: Duration::from_secs(21_600),
            request_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(60),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    #[error("IMDS at {endpoint} gave no usable answer for {path} within {deadline:?}; last error: {last}")]
    Deadline { endpoint: Uri, path: String, deadline: Duration, last: String },
    #[error("IMDS at {endpoint} refused {path} with HTTP {status}{hint}")]
    Refused { endpoint: Uri, path: String, status: StatusCode, hint: &'static str },
    #[error("IMDS at {endpoint} has no {path} (404); {what}")]
    Missing { endpoint: Uri, path: String, what: &'static str },
    #[error("IMDS at {endpoint} answered {path} with something unexpected: {detail}")]
    Invalid { endpoint: Uri, path: String, detail: String },
}

/// The fields of `dynamic/instance-identity/document` nodewarden uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityDocument {
    pub instance_id: String,
    pub region: String,
    pub account_id: String,
    pub availability_zone: String,
    pub instance_type: String,
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    renew_at: Instant,
}

#[derive(Debug)]
pub struct ImdsClient {
    endpoint: Uri,
    http: HttpClient,
    config: ImdsConfig,
    token: Mutex<Option<Token>>,
}

/// What one attempt produced: done (value or absent), or retry (with why), or give up.
enum Attempt {
    Found(Bytes),
    Absent,
    Retry(String),
    Fail(ImdsError),
}

impl ImdsClient {
    pub fn new(endpoint: Uri, config: ImdsConfig) -> Self {
        ImdsClient { endpoint, http: HttpClient::new(), config, token: Mutex::new(None) }
    }

    pub fn endpoint(&self) -> &Uri {
        &self.endpoint
    }

    /// GETs `path`; `Ok(None)` when IMDS says 404.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, ImdsError> {
        let started = Instant::now();
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        loop {
            let last = match self.attempt(path).await {
                Attempt::Found(body) => return Ok(Some(body)),
                Attempt::Absent => return Ok(None),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry(why) => why,
            };
            let delay = backoff.next_delay();
            if started.elapsed() + delay >= self.config.deadline {
                return Err(ImdsError::Deadline {
                    endpoint: self.endpoint.clone(),
                    path: path.to_string(),
                    deadline: self.config.deadline,
                    last,
                });
            }
            tracing::debug!(path, error = %last, ?delay, "IMDS request failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, path: &str) -> Attempt {
        let token = match self.token().await {
            Ok(token) => token,
            Err(attempt) => return attempt,
        };
        let uri = match http::join(&self.endpoint, path) {
            Ok(uri) => uri,
            Err(detail) => return Attempt::Fail(self.invalid(path, detail)),
        };
        match self.http.get(uri, &[(TOKEN_HEADER, &token)], self.config.request_timeout).await {
            Err(error) => Attempt::Retry(error.to_string()),
            Ok(response) => match response.status {
                StatusCode::OK => Attempt::Found(response.body),
                StatusCode::NOT_FOUND => Attempt::Absent,
                StatusCode::UNAUTHORIZED => {
                    // The token expired or IMDS restarted: fetch a new one on the next attempt.
                    self.forget_token();
                    Attempt::Retry(format!("GET {path}: 401, token rejected"))
                }
                status if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
                    Attempt::Retry(format!("GET {path}: HTTP {status}"))
                }
                status => Attempt::Fail(self.refused(path, status)),
            },
        }
    }

    /// The cached token, or a new one when absent or due for renewal.
    async fn token(&self) -> Result<String, Attempt> {
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        let uri = http::join(&self.endpoint, TOKEN_PATH).map_err(|d| Attempt::Fail(self.invalid(TOKEN_PATH, d)))?;
        let ttl = self.config.token_ttl.as_secs().to_string();
        let response = self
            .http
            .send(Method::PUT, uri, &[(TOKEN_TTL_HEADER, &ttl)], self.config.request_timeout)
            .await
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        match response.status {
            StatusCode::OK => {}
            status if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
                return Err(Attempt::Retry(format!("PUT {TOKEN_PATH}: HTTP {status}")));
            }
            status => return Err(Attempt::Fail(self.refused(TOKEN_PATH, status))),
        }
        let value = String::from_utf8(response.body.to_vec())
            .ok()
            .filter(|t| !t.is_empty() && t.is_ascii())
            .ok_or_else(|| Attempt::Fail(self.invalid(TOKEN_PATH, "the token is empty or not ASCII".into())))?;
        // Renew at 90% of the lifetime so a request never races the expiry.
        let renew_at = Instant::now() + self.config.token_ttl.mul_f64(0.9);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(Token { value: value.clone(), renew_at });
        Ok(value)
    }

    fn cached_token(&self) -> Option<String> {
        let guard = self.token.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|t| Instant::now() < t.renew_at).map(|t| t.value.clone())
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn refused(&self, path: &str, status: StatusCode) -> ImdsError {
        let hint = match status {
            StatusCode::FORBIDDEN => " (is the instance metadata service disabled for this instance?)",
            StatusCode::BAD_REQUEST => " (the token request was malformed)",
            _ => "",
        };
        ImdsError::Refused { endpoint: self.endpoint.clone(), path: path.to_string(), status, hint }
    }

    fn invalid(&self, path: &str, detail: String) -> ImdsError {
        ImdsError::Invalid { endpoint: self.endpoint.clone(), path: path.to_string(), detail }
    }

    async fn required_text(&self, path: &str, what: &'static str) -> Result<String, ImdsError> {
        let body = self.get(path).await?.ok_or_else(|| ImdsError::Missing {
            endpoint: self.endpoint.clone(),
            path: path.to_string(),
            what,
        })?;
        String::from_utf8(body.to_vec()).map_err(|_| self.invalid(path, "not UTF-8".into()))
    }

    /// Raw userdata; `None` when the instance has none.
    pub async fn user_data(&self) -> Result<Option<Bytes>, ImdsError> {
        self.get("/latest/user-data").await
    }

    pub async fn instance_id(&self) -> Result<String, ImdsError> {
        self.required_text("/latest/meta-data/instance-id", "every EC2 instance has an id").await
    }

    pub async fn region(&self) -> Result<String, ImdsError> {
        self.required_text("/latest/meta-data/placement/region", "every EC2 instance has a region").await
    }

    pub async fn identity_document(&self) -> Result<IdentityDocument, ImdsError> {
        let path = "/latest/dynamic/instance-identity/document";
        let text = self.required_text(path, "every EC2 instance has an identity document").await?;
        serde_json::from_str(&text).map_err(|e| self.invalid(path, e.to_string()))
    }
}
