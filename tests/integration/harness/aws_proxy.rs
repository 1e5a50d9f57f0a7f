//! A small proxy in front of moto's server: it counts every AWS call by caller and operation
//! (the API-cost benchmark and assertions read the counts), and makes moto answer like ECS
//! where nodewarden depends on it.
//!
//! moto difference worked around here (see ../shared/reference/moto-notes.md): ECS
//! `ListAttributes` with an `attributeName` and no `attributeValue` returns nothing in moto
//! (it applies the value filter whenever a name is given); real ECS returns every target
//! carrying that attribute. The proxy asks moto without the name and keeps the named ones.
//!
//! moto does not implement Auto Scaling's `CompleteLifecycleAction` and
//! `RecordLifecycleActionHeartbeat` (500, NotImplementedError): the proxy answers them as Auto
//! Scaling does (and counts them), and answers `DescribeAutoScalingInstances` for the instances
//! a test put in a group with `in_group` (state Terminating:Wait), so a daemon can carry a
//! lifecycle hook through to the end.
//!
//! It runs on a thread and runtime of its own, so it serves whatever the test's runtime does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Calls counted per (caller, operation). The caller is the `app/<id>` a client puts in its
/// User-Agent (`AWS_SDK_UA_APP_ID`), or "-".
pub type Counts = BTreeMap<(String, String), u64>;

/// Instance id → Auto Scaling group name, for the instances a test put in a group.
type Groups = Arc<Mutex<BTreeMap<String, String>>>;

pub struct AwsProxy {
    pub port: u16,
    counts: Arc<Mutex<Counts>>,
    groups: Groups,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AwsProxy {
    pub fn start(upstream_port: u16) -> AwsProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the AWS proxy on loopback");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let port = listener.local_addr().expect("the proxy's address").port();
        let counts = Arc::new(Mutex::new(Counts::new()));
        let groups: Groups = Arc::new(Mutex::new(BTreeMap::new()));
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let shared = counts.clone();
        let shared_groups = groups.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the AWS proxy");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
                loop {
                    let (stream, _) = tokio::select! {
                        accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                        _ = &mut stop => return,
                    };
                    let (client, counts, groups) = (client.clone(), shared.clone(), shared_groups.clone());
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            forward(request, client.clone(), counts.clone(), groups.clone(), upstream_port)
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
            });
        });
        AwsProxy { port, counts, groups, shutdown: Some(shutdown), thread: Some(thread) }
    }

    pub fn counts(&self) -> Counts {
        self.counts.lock().expect("the counts lock").clone()
    }

    pub fn reset(&self) {
        self.counts.lock().expect("the counts lock").clear();
    }

    /// Puts `instance` in Auto Scaling group `group`, as `DescribeAutoScalingInstances` answers.
    pub fn in_group(&self, instance: &str, group: &str) {
        self.groups.lock().expect("the groups lock").insert(instance.into(), group.into());
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn caller(request: &Request<Incoming>) -> String {
    let agent = request.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("");
    let from_sdk_ua = request.headers().get("x-amz-user-agent").and_then(|v| v.to_str().ok()).unwrap_or("");
    [agent, from_sdk_ua]
        .iter()
        .flat_map(|h| h.split_whitespace())
        .find_map(|token| token.strip_prefix("app/"))
        .unwrap_or("-")
        .to_string()
}

async fn forward(
    request: Request<Incoming>,
    client: Client<HttpConnector, Full<Bytes>>,
    counts: Arc<Mutex<Counts>>,
    groups: Groups,
    upstream_port: u16,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let caller = caller(&request);
    let (parts, body) = request.into_parts();
    let mut body = body.collect().await?.to_bytes();
    let probe = Request::from_parts(parts, ());
    let operation = operation_of(&probe, &body);
    *counts.lock().expect("the counts lock").entry((caller, operation.clone())).or_default() += 1;
    let (mut parts, ()) = probe.into_parts();
    if let Some(answer) = autoscaling_answer(&operation, &body, &groups) {
        return Ok(Response::new(Full::new(Bytes::from(answer))));
    }

    // moto workaround: ListAttributes by name alone (see the module comment).
    let mut keep_only: Option<String> = None;
    if operation == "ListAttributes"
        && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body)
        && json.get("attributeValue").is_none()
        && let Some(name) = json.as_object_mut().and_then(|o| o.remove("attributeName"))
    {
        keep_only = name.as_str().map(str::to_string);
        body = Bytes::from(serde_json::to_vec(&json).expect("JSON serializes"));
        parts.headers.remove("content-length");
    }

    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    parts.uri = format!("http://127.0.0.1:{upstream_port}{path}").parse().expect("a valid upstream URI");
    let upstream = Request::from_parts(parts, Full::new(body));
    let response = match client.request(upstream).await {
        Ok(response) => response,
        Err(error) => {
            let mut response = Response::new(Full::new(Bytes::from(format!("proxy: moto unreachable: {error}"))));
            *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            return Ok(response);
        }
    };
    let (mut parts, body) = response.into_parts();
    let mut body = body.collect().await?.to_bytes();
    if let Some(name) = keep_only
        && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body)
    {
        if let Some(attributes) = json.get_mut("attributes").and_then(|a| a.as_array_mut()) {
            attributes.retain(|a| a.get("name").and_then(|n| n.as_str()) == Some(name.as_str()));
        }
        body = Bytes::from(serde_json::to_vec(&json).expect("JSON serializes"));
        parts.headers.remove("content-length");
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

const AUTOSCALING_NS: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";

/// Auto Scaling's answer where moto has none (see the module comment).
fn autoscaling_answer(operation: &str, body: &[u8], groups: &Groups) -> Option<String> {
    let form = String::from_utf8_lossy(body);
    let field = |name: &str| form.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).map(str::to_string);
    let envelope = |operation: &str, result: &str| {
        format!(
            "<{operation}Response xmlns=\"{AUTOSCALING_NS}\"><{operation}Result>{result}</{operation}Result>\
             <ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></{operation}Response>"
        )
    };
    match operation {
        "CompleteLifecycleAction" | "RecordLifecycleActionHeartbeat" => Some(envelope(operation, "")),
        "DescribeAutoScalingInstances" => {
            let instance = field("InstanceIds.member.1")?;
            let group = groups.lock().expect("the groups lock").get(&instance).cloned()?;
            let member = format!(
                "<AutoScalingInstances><member><InstanceId>{instance}</InstanceId>\
                 <AutoScalingGroupName>{group}</AutoScalingGroupName><AvailabilityZone>us-east-1a</AvailabilityZone>\
                 <LifecycleState>Terminating:Wait</LifecycleState><HealthStatus>HEALTHY</HealthStatus>\
                 <ProtectedFromScaleIn>false</ProtectedFromScaleIn></member></AutoScalingInstances>"
            );
            Some(envelope(operation, &member))
        }
        _ => None,
    }
}

/// The operation: the JSON protocols' X-Amz-Target suffix, or the query protocols' Action.
fn operation_of(request: &Request<()>, body: &[u8]) -> String {
    if let Some(target) = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let form = String::from_utf8_lossy(body);
    form.split('&').find_map(|pair| pair.strip_prefix("Action=")).unwrap_or("?").to_string()
}

/// For readers of a count table: calls of `operation` by any caller.
pub fn total(counts: &Counts, operation: &str) -> u64 {
    counts.iter().filter(|((_, op), _)| op == operation).map(|(_, n)| n).sum()
}
