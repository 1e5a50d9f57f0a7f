//! An IMDSv2 test server, faithful to the real one where nodewarden depends on it: a token from
//! `PUT /latest/api/token` with a TTL header (1–21600 s, else 400), 401 for a missing, unknown
//! or expired token, 404 for absent paths (spot/instance-action until a notice is set), and
//! user-data as raw bytes. What cloud-init's Ec2 datasource walks is there too: every path
//! under `/latest` and the dated versions (`/2021-03-23/…`), directory listings
//! (`/latest/meta-data/` lists its keys, subdirectories with a trailing `/`), the network
//! interface by MAC, and instance-profile credentials when a role is set. Everything is
//! settable at run time, with faults: a delay before answers (or only token answers), N
//! answers of 500, and N dropped connections.

use std::collections::{BTreeMap, HashMap};
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
    /// The instance's network interface, for `network/interfaces/macs/…`.
    pub mac: String,
    pub local_ipv4: String,
    /// The instance profile's role: `iam/security-credentials/ROLE` serves (dummy) credentials.
    pub iam_role: Option<String>,
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
            mac: "06:00:00:00:00:01".into(),
            local_ipv4: "10.0.0.10".into(),
            iam_role: None,
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
    match lookup(&s, request.uri().path()) {
        Some(body) => answer(StatusCode::OK, body),
        None => answer(StatusCode::NOT_FOUND, ""),
    }
}

/// The metadata versions the service answers besides `latest` (cloud-init asks for these).
const VERSIONS: &[&str] = &["2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23"];

/// A leaf's value, or a directory's listing, for a path under any version.
fn lookup(s: &ImdsState, path: &str) -> Option<Bytes> {
    let path = path.strip_prefix('/')?;
    let (version, rest) = path.split_once('/').unwrap_or((path, ""));
    if version != "latest" && !VERSIONS.contains(&version) {
        return None;
    }
    let tree = tree(s);
    if let Some(value) = tree.get(rest) {
        return Some(Bytes::from(value.clone()));
    }
    let dir = rest.trim_end_matches('/');
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    let mut children: Vec<String> = Vec::new();
    for key in tree.keys().filter_map(|k| k.strip_prefix(prefix.as_str())) {
        let child = match key.split_once('/') {
            Some((first, _)) => format!("{first}/"),
            None => key.to_string(),
        };
        if !children.contains(&child) {
            children.push(child);
        }
    }
    (!children.is_empty()).then(|| Bytes::from(children.join("\n")))
}

/// Every leaf the instance has, keyed by its path below the version.
fn tree(s: &ImdsState) -> BTreeMap<String, Vec<u8>> {
    let mut tree: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |key: String, value: &str| {
        tree.insert(key, value.as_bytes().to_vec());
    };
    let hostname = format!("ip-{}.ec2.internal", s.local_ipv4.replace('.', "-"));
    for (key, value) in [
        ("ami-id", "ami-0123456789abcdef0"),
        ("instance-id", s.instance_id.as_str()),
        ("instance-type", s.instance_type.as_str()),
        ("hostname", hostname.as_str()),
        ("local-hostname", hostname.as_str()),
        ("local-ipv4", s.local_ipv4.as_str()),
        ("mac", s.mac.as_str()),
        ("placement/availability-zone", s.availability_zone.as_str()),
        ("placement/region", s.region.as_str()),
        ("services/domain", "amazonaws.com"),
        ("services/partition", "aws"),
    ] {
        put(format!("meta-data/{key}"), value);
    }
    let nic = format!("meta-data/network/interfaces/macs/{}", s.mac);
    for (key, value) in [
        ("device-number", "0"),
        ("interface-id", "eni-0123456789abcdef0"),
        ("local-ipv4s", s.local_ipv4.as_str()),
        ("mac", s.mac.as_str()),
        ("subnet-ipv4-cidr-block", "10.0.0.0/16"),
        ("vpc-id", "vpc-0123456789abcdef0"),
    ] {
        put(format!("{nic}/{key}"), value);
    }
    if let Some(action) = &s.spot_action {
        put("meta-data/spot/instance-action".into(), action);
    }
    if let Some(state) = &s.lifecycle_state {
        put("meta-data/autoscaling/target-lifecycle-state".into(), state);
    }
    if let Some(role) = &s.iam_role {
        let expiration =
            humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(6 * 3600));
        let credentials = serde_json::json!({
            "Code": "Success",
            "LastUpdated": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "Type": "AWS-HMAC",
            "AccessKeyId": "ASIATESTINSTANCEPROFILE",
            "SecretAccessKey": "instance-profile-test-secret",
            "Token": "instance-profile-test-token",
            "Expiration": expiration.to_string(),
        });
        put(format!("meta-data/iam/security-credentials/{role}"), &credentials.to_string());
    }
    put("dynamic/instance-identity/document".into(), &identity_document(s));
    if let Some(user_data) = &s.user_data {
        tree.insert("user-data".into(), user_data.clone());
    }
    tree
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
        "privateIp": s.local_ipv4,
        "region": s.region,
        "version": "2017-09-30"
    })
    .to_string()
}
