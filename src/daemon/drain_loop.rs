//! The drain loop: the one executor that talks to ECS. It finds this container instance, then
//! drives the drain machine (`drain::protocol`) with what the disk wants and what IMDS says of
//! the instance's fate, making the calls the machine asks for one at a time and writing the
//! drain record down before each. Beside that it serves the other loops' ECS requests (task
//! images for GC, stopping a task for the disk loop) at once, never behind a drain call, and
//! carries the termination lifecycle hook to its end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use super::disk_step::{StopAnswer, StopRequest};
use super::fate::{self, Fate};
use crate::backoff::Backoff;
use crate::drain::ecs_api::{self, StopOutcome};
use crate::drain::protocol::{Inputs, Next, Request};
use crate::drain::record;
use crate::drain::termination::{self, LifecycleSettings};
use crate::drain::{DrainMachine, DrainReason, DrainStatus, EcsApi, Identity, Wants, resolve_identity};
use crate::environment::Environment;
use crate::gc::TaskImages;
use crate::host_paths::HostPaths;
use crate::http::HttpClient;
use crate::imds::{ImdsClient, ImdsConfig};
use crate::node::DiskOutlook;
use crate::settings::{Reloadable, Settings};

/// How long GC waits for ECS to name this instance's task images before it plans with what
/// Docker shows (containers in use) alone.
const TASK_IMAGES_WAIT: Duration = Duration::from_secs(5);
/// How long a stop request may take, ListTasks and StopTask together.
const STOP_WAIT: Duration = Duration::from_secs(20);

/// What other loops ask of ECS.
pub enum EcsRequest {
    /// The images of the tasks ECS placed here, or that ECS could not say.
    TaskImages(oneshot::Sender<TaskImages>),
    StopTask(StopRequest, oneshot::Sender<StopAnswer>),
}

/// How the other loops reach ECS: through the drain loop, which owns the client.
#[derive(Debug, Clone)]
pub struct EcsHandle(mpsc::Sender<EcsRequest>);

impl EcsHandle {
    pub fn channel() -> (EcsHandle, mpsc::Receiver<EcsRequest>) {
        let (tx, rx) = mpsc::channel(8);
        (EcsHandle(tx), rx)
    }

    /// This instance's task images, normalized as Docker lists them; unknown (with a warning)
    /// when ECS does not answer in time.
    pub async fn task_images(&self) -> TaskImages {
        let (reply, answer) = oneshot::channel();
        if self.0.send(EcsRequest::TaskImages(reply)).await.is_err() {
            return TaskImages::Unknown;
        }
        match tokio::time::timeout(TASK_IMAGES_WAIT, answer).await {
            Ok(Ok(images)) => images,
            _ => {
                tracing::warn!(wait = ?TASK_IMAGES_WAIT, "ECS did not name this instance's task images in time; keeping images of unknown use");
                TaskImages::Unknown
            }
        }
    }

    pub async fn stop_task(&self, request: StopRequest) -> StopAnswer {
        let (reply, answer) = oneshot::channel();
        if self.0.send(EcsRequest::StopTask(request, reply)).await.is_err() {
            return StopAnswer::Failed("the drain loop stopped".into());
        }
        tokio::time::timeout(STOP_WAIT, answer)
            .await
            .unwrap_or(Ok(StopAnswer::Failed("ECS did not answer in time".into())))
            .unwrap_or(StopAnswer::Failed("the drain loop stopped".into()))
    }
}

pub struct DrainLoop {
    api: EcsApi,
    autoscaling: aws_sdk_autoscaling::Client,
    imds: ImdsClient,
    imds_endpoint: hyper::Uri,
    cluster: String,
    introspection: hyper::Uri,
    record_path: PathBuf,
    on_spot: bool,
    on_termination: bool,
    lifecycle: LifecycleSettings,
    /// The settings SIGHUP changes; this loop reads `max_draining_fraction`.
    settings: watch::Receiver<Arc<Reloadable>>,
    status: watch::Sender<DrainStatus>,
}

impl DrainLoop {
    /// Builds the loop and what it talks to: IMDS (identity, Region, spot and lifecycle) and
    /// the AWS clients.
    pub async fn from_settings(
        paths: &HostPaths,
        settings: &Settings,
        environment: &Environment,
        settings_rx: watch::Receiver<Arc<Reloadable>>,
        status: watch::Sender<DrainStatus>,
    ) -> DrainLoop {
        let imds = ImdsClient::new(environment.imds_endpoint.clone(), fate_imds_config());
        let proxy = crate::aws::AwsProxy::choose(environment.proxy_in_environment, &settings.ecs.config);
        let (clients, region_unknown) = crate::aws::Clients::resolve(environment, &imds, &proxy).await;
        if let Some(why) = region_unknown {
            tracing::warn!(%why, "the SDK's default chain decides the Region");
        }
        DrainLoop {
            api: clients.ecs_api(),
            autoscaling: clients.autoscaling,
            imds,
            imds_endpoint: environment.imds_endpoint.clone(),
            cluster: settings.ecs.cluster.as_str().to_string(),
            introspection: environment.agent_introspection.clone(),
            record_path: paths.drain_record(),
            on_spot: settings.drain.on_spot_interruption,
            on_termination: settings.drain.on_termination,
            lifecycle: LifecycleSettings {
                hook: settings.drain.lifecycle_hook.clone(),
                heartbeat_every: settings.drain.heartbeat_interval,
                timeout: settings.drain.termination_timeout,
            },
            settings: settings_rx,
            status,
        }
    }

    pub async fn run(
        self,
        mut outlook: watch::Receiver<DiskOutlook>,
        mut requests: mpsc::Receiver<EcsRequest>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let (fate_tx, mut fate) = watch::channel(Fate::default());
        // The fate poller has an IMDS client of its own (its token too): nothing shared.
        let imds = ImdsClient::new(self.imds_endpoint.clone(), fate_imds_config());
        let poller = tokio::spawn(fate::poll(imds, self.on_spot, self.on_termination, fate_tx, shutdown.clone()));
        let Some(identity) = self.find_identity(&mut requests, &mut shutdown).await else {
            poller.abort();
            return;
        };
        tracing::info!(arn = %identity.container_instance_arn, "found this container instance");
        let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        let mut machine = DrainMachine::new(identity.clone(), record::load(&self.record_path), seed);
        // One call at start, so the waits before the first read of the cluster fit its size.
        match self.api.registered_count(&identity.cluster).await {
            Ok(registered) => machine.know_registered(tokio::time::Instant::now().into_std(), registered),
            Err(error) => tracing::debug!(%error, "the cluster's size is unknown until the first decision"),
        }
        let mut writer = RecordWriter {
            path: self.record_path.clone(),
            written: record::load(&self.record_path),
            warned: false,
            error: None,
        };
        let mut lifecycle_task: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let disk = outlook.borrow_and_update().clone();
            let now_fate = fate.borrow_and_update().clone();
            let (wants, detail) = wants_of(&disk, &now_fate);
            let max_fraction = self.settings.borrow().max_draining_fraction.fraction();
            let inputs = || Inputs {
                now: tokio::time::Instant::now().into_std(),
                wall: SystemTime::now(),
                wants,
                trouble: disk.trouble,
                hold: disk.hold,
                time_to_full: disk.time_to_full,
                detail: &detail,
                max_fraction,
            };
            let next = machine.next(&inputs());
            writer.write(&mut machine);
            // Whoever drained (an operator, a spot notice, disk pressure, termination): once the
            // instance is terminating and DRAINING, the hook is carried to its end, so Auto
            // Scaling never waits out the hook's timeout.
            let status = machine.status();
            let draining = status.draining || status.ecs_status.as_deref() == Some("DRAINING");
            if now_fate.terminating && draining && lifecycle_task.is_none() {
                let (autoscaling, api, settings) = (self.autoscaling.clone(), self.api.clone(), self.lifecycle.clone());
                let identity = identity.clone();
                lifecycle_task = Some(tokio::spawn(async move {
                    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
                    while let Err(error) =
                        termination::complete_after_tasks_stop(&autoscaling, &api, &identity, &settings).await
                    {
                        tracing::warn!(%error, "completing the lifecycle action failed; retrying");
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }));
            }

            match next {
                Next::Call(request) => {
                    if request == Request::DescribeSelf {
                        // An operator's `nodewarden drain`/`undrain` writes the record itself.
                        writer.read_back(&mut machine);
                    }
                    let call = tokio::time::timeout(ecs_api::CALL_TIMEOUT, self.api.execute(&identity, &request));
                    tokio::pin!(call);
                    let result = loop {
                        tokio::select! {
                            result = &mut call => break result,
                            Some(request) = requests.recv() => self.serve(request, &identity),
                        }
                    };
                    let result = result.unwrap_or_else(|_| {
                        Err(crate::drain::ApiError::Failed {
                            context: format!("{request:?}"),
                            detail: format!("no answer within {:?}", ecs_api::CALL_TIMEOUT),
                        })
                    });
                    machine.answer(&inputs(), &request, result);
                    writer.write(&mut machine);
                }
                Next::Idle(until) => {
                    // A record that could not be written is tried again every few seconds.
                    let until = match writer.error {
                        Some(_) => until.min(std::time::Instant::now() + Duration::from_secs(5)),
                        None => until,
                    };
                    tokio::select! {
                        _ = tokio::time::sleep_until(until.into()) => {}
                        _ = outlook.changed() => {}
                        _ = fate.changed() => {}
                        Some(request) = requests.recv() => self.serve(request, &identity),
                        _ = shutdown.changed() => break,
                    }
                }
            }
            let mut status = machine.status().clone();
            status.record_error = writer.error.clone();
            self.status.send_replace(status);
            if *shutdown.borrow() {
                break;
            }
        }
        if let Some(task) = lifecycle_task {
            task.abort();
        }
        poller.abort();
    }

    /// Finds this container instance, retrying with backoff (the agent may not have registered
    /// yet); meanwhile ECS requests are answered "not yet".
    async fn find_identity(
        &self,
        requests: &mut mpsc::Receiver<EcsRequest>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Identity> {
        let http = HttpClient::new();
        let mut backoff = Backoff::new(Duration::from_secs(3), Duration::from_secs(120));
        loop {
            // Requests are answered "not yet" while the lookup runs too (IMDS may take seconds).
            let lookup = resolve_identity(&self.api, &self.cluster, &self.imds, &http, &self.introspection);
            tokio::pin!(lookup);
            let found = loop {
                tokio::select! {
                    found = &mut lookup => break found,
                    Some(request) = requests.recv() => not_yet(request),
                    _ = shutdown.changed() => return None,
                }
            };
            match found {
                Ok(identity) => return Some(identity),
                Err(error) => {
                    let text = error.to_string();
                    if self.status.borrow().last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(error = %text, "drain check failed; retrying");
                    }
                    self.status.send_modify(|s| s.last_error = Some(text));
                }
            }
            let wait = tokio::time::sleep(backoff.next_delay());
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    Some(request) = requests.recv() => not_yet(request),
                    _ = shutdown.changed() => return None,
                }
            }
        }
    }

    /// Answers another loop's request in a task of its own, beside whatever the machine does.
    fn serve(&self, request: EcsRequest, identity: &Identity) {
        let (api, identity) = (self.api.clone(), identity.clone());
        match request {
            EcsRequest::TaskImages(reply) => {
                tokio::spawn(async move {
                    let images = match api.task_images(&identity).await {
                        Ok(images) => TaskImages::Known(
                            images.iter().map(|image| crate::gc::normalize_reference(image)).collect(),
                        ),
                        Err(error) => {
                            tracing::warn!(%error, "cannot ask ECS which images this instance's tasks need; keeping images of unknown use");
                            TaskImages::Unknown
                        }
                    };
                    let _ = reply.send(images);
                });
            }
            EcsRequest::StopTask(stop, reply) => {
                tokio::spawn(async move {
                    let answer = match api.stop_task_placed_here(&identity, &stop.task_arn, &stop.reason).await {
                        Ok(StopOutcome::Stopped) => StopAnswer::Stopped,
                        Ok(StopOutcome::NotPlacedHere) => StopAnswer::NotPlacedHere,
                        Err(error) => StopAnswer::Failed(error.to_string()),
                    };
                    let _ = reply.send(answer);
                });
            }
        }
    }
}

/// Answers a request that needs this instance's identity before it is known.
fn not_yet(request: EcsRequest) {
    match request {
        EcsRequest::TaskImages(reply) => drop(reply.send(TaskImages::Unknown)),
        EcsRequest::StopTask(_, reply) => {
            drop(reply.send(StopAnswer::Failed("this container instance is not known yet".into())))
        }
    }
}

/// IMDS answers within milliseconds on a real instance; a spot notice gives two minutes.
fn fate_imds_config() -> ImdsConfig {
    ImdsConfig { deadline: Duration::from_secs(5), ..ImdsConfig::default() }
}

/// What the machine wants, from the disk's outlook and the instance's fate.
fn wants_of(disk: &DiskOutlook, fate: &Fate) -> (Wants, String) {
    let spot_action = fate.spot.as_ref().map(|(action, _)| action.as_str());
    let wants = Wants {
        disk_pressure: disk.must_drain,
        spot_interruption: spot_action == Some("terminate"),
        spot_stop: matches!(spot_action, Some("stop" | "hibernate")),
        spot_clear: fate.spot_clear,
        termination: fate.terminating,
    };
    let detail = match wants.reason() {
        Some(DrainReason::Termination) => "Auto Scaling lifecycle state Terminated".to_string(),
        Some(DrainReason::SpotInterruption | DrainReason::SpotStop) => {
            fate.spot.as_ref().map(|(_, text)| text.clone()).unwrap_or_default()
        }
        _ => disk.detail.clone(),
    };
    (wants, detail)
}

/// The drain record on disk: written before each call the machine makes (so the drain is
/// written down before ECS hears of it); a write that fails (the state disk is full) is kept in
/// memory and tried again before the next call, and never holds the drain.
struct RecordWriter {
    path: PathBuf,
    written: Option<record::DrainRecord>,
    warned: bool,
    /// Why the record is not written down, while it is not.
    error: Option<String>,
}

impl RecordWriter {
    fn write(&mut self, machine: &mut DrainMachine) {
        let Some(change) = machine.take_record_change() else { return };
        let result = match &change {
            Some(record) => record::save(&self.path, record),
            None => record::clear(&self.path),
        };
        match result {
            Ok(()) => {
                if self.warned {
                    tracing::info!(path = %self.path.display(), "the drain record is written down again");
                }
                self.warned = false;
                self.error = None;
                self.written = change;
            }
            Err(error) => {
                machine.keep_record_change();
                self.error = Some(error.to_string());
                if !self.warned {
                    tracing::error!(
                        %error,
                        "cannot write the drain record (is the root disk full?); draining from memory, and writing it \
                         down once it can be written"
                    );
                    self.warned = true;
                }
            }
        }
    }

    /// An operator's `nodewarden drain`/`undrain` changed the file: the machine adopts it.
    fn read_back(&mut self, machine: &mut DrainMachine) {
        if self.warned {
            return;
        }
        let on_disk = record::load(&self.path);
        if on_disk != self.written {
            machine.adopt_record(on_disk.clone());
            self.written = on_disk;
        }
    }
}
