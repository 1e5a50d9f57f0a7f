//! An IMDSv2 test server, faithful to the real one where nodewarden depends on it: a token from
//! `PUT /latest/api/token` with a TTL header (1–21600 s, else 400), 401 for a missing, unknown
//! or expired token, 404 for absent paths (spot/instance-action until a notice is set), and
//! user-data as raw bytes. Everything is settable at run time, with faults: a delay before
//! answers (or only token answers), N answers of 500, and N dropped connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Added before every answer.
    pub delay: Duration,
    /// Added before token answers only (a slow token service).
    pub token_delay: Duration,
    /// The next N requests get HTTP 500.
    pub fail_next: u32,
    /// The next N requests have their connection dropped without an answer.
    pub drop_next: u32,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub token_requests: u32,
    pub requests: u32,
    pub unauthorized: u32,
}

#[derive(Debug)]
pub struct ImdsState {
    tokens: HashMap<String, Instant>,
    next_token: u64,
    pub user_data: Option<Vec<u8>>,
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    pub account_id: String,
    pub instance_type: String,
    /// JSON of spot/instance-action, e.g. {"action":"terminate","time":"…"}; 404 while None.
    pub spot_action: Option<String>,
    /// autoscaling/target-lifecycle-state ("InService", "Terminated"); 404 while None.
    pub lifecycle_state: Option<String>,
    pub faults: Faults,
    pub stats: Stats,
}

impl Default for ImdsState {
    fn default() -> Self {
        ImdsState {
            tokens: HashMap::new(),
            next_token: 0,
            user_data: None,
            instance_id: "i-0123456789abcdef0".into(),
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            account_id: "123456789012".into(),
            instance_type: "m5.large".into(),
            spot_action: None,
            lifecycle_state: None,
            faults: Faults::default(),
            stats: Stats::default(),
        }
    }
}

pub struct ImdsServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<ImdsState>>,
    task: JoinHandle<()>,
}

impl ImdsServer {
    pub async fn start() -> ImdsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the IMDS test server on loopback");
        let addr = listener.local_addr().expect("a bound address");
        let state = Arc::new(Mutex::new(ImdsState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        ImdsServer { addr, state, task }
    }

    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` for this server.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, ImdsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_user_data(&self, bytes: impl Into<Vec<u8>>) {
        self.state().user_data = Some(bytes.into());
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    pub fn stats(&self) -> Stats {
        self.state().stats
    }

    /// Makes every issued token expire now, as after 6 hours.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for expiry in self.state().tokens.values_mut() {
            *expiry = now;
        }
    }
}

impl Drop for ImdsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = Result<Response<Full<Bytes>>, std::io::Error>;

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    let response = Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(body.into()))
        .expect("a static response is valid");
    Ok(response)
}

async fn handle(state: Arc<Mutex<ImdsState>>, request: Request<Incoming>) -> Answer {
    let is_token = request.uri().path() == "/latest/api/token";
    let (delay, fail, drop_connection) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.stats.requests += 1;
        let drop_connection = s.faults.drop_next > 0;
        if drop_connection {
            s.faults.drop_next -= 1;
        }
        let fail = !drop_connection && s.faults.fail_next > 0;
        if fail {
            s.faults.fail_next -= 1;
        }
        let delay = s.faults.delay + if is_token { s.faults.token_delay } else { Duration::ZERO };
        (delay, fail, drop_connection)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if drop_connection {
        // An error from the service makes hyper close the connection without answering.
        return Err(std::io::Error::other("fault injection: dropping the connection"));
    }
    if fail {
        return answer(StatusCode::INTERNAL_SERVER_ERROR, "fault injection");
    }
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if is_token {
        return token(&mut s, &request);
    }
    if request.method() != Method::GET {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    let presented = request.headers().get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok());
    let valid = presented.and_then(|t| s.tokens.get(t)).is_some_and(|expiry| Instant::now() < *expiry);
    if !valid {
        s.stats.unauthorized += 1;
        return answer(StatusCode::UNAUTHORIZED, "");
    }
    let found: Option<Bytes> = match request.uri().path() {
        "/latest/user-data" => s.user_data.clone().map(Bytes::from),
        "/latest/meta-data/instance-id" => Some(s.instance_id.clone().into()),
        "/latest/meta-data/placement/region" => Some(s.region.clone().into()),
        "/latest/meta-data/placement/availability-zone" => Some(s.availability_zone.clone().into()),
        "/latest/meta-data/instance-type" => Some(s.instance_type.clone().into()),
        "/latest/meta-data/spot/instance-action" => s.spot_action.clone().map(Bytes::from),
        "/latest/meta-data/autoscaling/target-lifecycle-state" => s.lifecycle_state.clone().map(Bytes::from),
        "/latest/dynamic/instance-identity/document" => Some(identity_document(&s).into()),
        _ => None,
    };
    match found {
        Some(body) => answer(StatusCode::OK, body),
        None => answer(StatusCode::NOT_FOUND, ""),
    }
}

fn token(s: &mut ImdsState, request: &Request<Incoming>) -> Answer {
    if request.method() != Method::PUT {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    // The real service refuses token requests that went through a proxy.
    if request.headers().contains_key("x-forwarded-for") {
        return answer(StatusCode::FORBIDDEN, "");
    }
    let ttl = request
        .headers()
        .get("x-aws-ec2-metadata-token-ttl-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ttl| (1..=21_600).contains(ttl));
    let Some(ttl) = ttl else { return answer(StatusCode::BAD_REQUEST, "") };
    s.stats.token_requests += 1;
    s.next_token += 1;
    let value = format!("AQAEA-test-token-{:08}", s.next_token);
    s.tokens.insert(value.clone(), Instant::now() + Duration::from_secs(ttl));
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("x-aws-ec2-metadata-token-ttl-seconds", ttl.to_string())
        .body(Full::new(Bytes::from(value)))
        .expect("a static response is valid");
    Ok(response)
}

fn identity_document(s: &ImdsState) -> String {
    serde_json::json!({
        "accountId": s.account_id,
        "architecture": "x86_64",
        "availabilityZone": s.availability_zone,
        "imageId": "ami-0123456789abcdef0",
        "instanceId": s.instance_id,
        "instanceType": s.instance_type,
        "pendingTime": "2026-11-26T00:00:00Z",
        "privateIp": "10.0.0.10",
        "region": s.region,
        "version": "2017-09-30"
    })
    .to_string()
}
