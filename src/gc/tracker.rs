//! Follows Docker's event stream and turns it into image usage. The stream ends when dockerd
//! restarts; the tracker reconnects with `since` (the last event applied) so nothing is lost
//! while Docker keeps the events, and reconciles with a full listing after every reconnect and
//! every few minutes, which covers whatever the stream could not.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::docker_io::gather_inventory;
use super::inventory::{Inventory, UsageMap};
use super::last_use::{LastUseStore, UsageEvent};
use crate::backoff::Backoff;

const RECONCILE_EVERY: Duration = Duration::from_secs(300);
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// What an event says about an image, before the name is resolved to an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A container or image event naming an image (by name or id), used at `at`.
    Used {
        container: Option<String>,
        image: String,
        at: SystemTime,
    },
    Deleted {
        image_id: String,
    },
}

/// Pure mapping of one Docker event.
pub fn observe(event: &EventMessage) -> Option<Observed> {
    let at = event
        .time_nano
        .map(|n| UNIX_EPOCH + Duration::from_nanos(n.max(0) as u64))
        .or_else(|| event.time.map(|s| UNIX_EPOCH + Duration::from_secs(s.max(0) as u64)))?;
    let action = event.action.as_deref()?;
    let actor = event.actor.as_ref()?;
    let id = actor.id.clone()?;
    match event.typ? {
        EventMessageTypeEnum::CONTAINER => {
            if !matches!(action, "create" | "start" | "die" | "destroy") {
                return None;
            }
            let image = actor.attributes.as_ref()?.get("image")?.clone();
            Some(Observed::Used { container: Some(id), image, at })
        }
        EventMessageTypeEnum::IMAGE => match action {
            "delete" => Some(Observed::Deleted { image_id: id }),
            "pull" | "tag" | "load" | "import" => Some(Observed::Used { container: None, image: id, at }),
            _ => None,
        },
        _ => None,
    }
}

/// Asks the tracker, which owns the last-use store, for the usage of the images a GC run is
/// about to plan over (reconciled with that listing first).
pub struct UsageRequest {
    pub inventory: Inventory,
    pub reply: oneshot::Sender<UsageMap>,
}

/// How a GC run reaches the store.
#[derive(Debug, Clone)]
pub struct UsageHandle(mpsc::Sender<UsageRequest>);

impl UsageHandle {
    /// A handle and the requests it sends, for `Tracker::new`.
    pub fn channel() -> (UsageHandle, mpsc::Receiver<UsageRequest>) {
        let (tx, rx) = mpsc::channel(4);
        (UsageHandle(tx), rx)
    }

    /// The usage of the listed images, as the tracker knows it; `None` once the tracker is gone.
    pub async fn usage(&self, inventory: &Inventory) -> Option<UsageMap> {
        let (reply, answer) = oneshot::channel();
        self.0.send(UsageRequest { inventory: inventory.clone(), reply }).await.ok()?;
        answer.await.ok()
    }
}

/// The loop that owns the last-use store: it follows Docker's events into it, reconciles it
/// with full listings, saves it, and answers GC's requests for usage.
pub struct Tracker {
    docker: Docker,
    store: LastUseStore,
    requests: mpsc::Receiver<UsageRequest>,
    /// Container id → image id, so a `destroy` still resolves after the image lost its tag.
    container_images: HashMap<String, String>,
}

type Events = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<EventMessage, bollard::errors::Error>> + Send>>;

impl Tracker {
    pub fn new(docker: Docker, store: LastUseStore, requests: mpsc::Receiver<UsageRequest>) -> Self {
        Tracker { docker, store, requests, container_images: HashMap::new() }
    }

    /// Reconciles with a full listing and saves.
    async fn reconcile(&mut self) -> Result<(), bollard::errors::Error> {
        let inventory = gather_inventory(&self.docker).await?;
        self.container_images = inventory.containers.iter().map(|c| (c.id.clone(), c.image_id.clone())).collect();
        self.store.reconcile(&inventory, SystemTime::now());
        self.save();
        Ok(())
    }

    fn subscribe(&self) -> Events {
        let since = self.store.events_seen_until().unwrap_or_else(SystemTime::now);
        let since_secs = since.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("type".to_string(), vec!["container".to_string(), "image".to_string()])]);
        let options = EventsOptionsBuilder::default().since(&since_secs.to_string()).filters(&filters).build();
        Box::pin(self.docker.events(Some(options)))
    }

    async fn resolve(&mut self, observed: Observed) -> Option<UsageEvent> {
        match observed {
            Observed::Deleted { image_id } => Some(UsageEvent::Deleted { image_id }),
            Observed::Used { container, image, at } => {
                let known = container.as_ref().and_then(|c| self.container_images.get(c)).cloned();
                let image_id = match known {
                    Some(id) => id,
                    None if image.starts_with("sha256:") => image,
                    None => self.docker.inspect_image(&image).await.ok()?.id?,
                };
                match container {
                    Some(container) => {
                        self.container_images.insert(container, image_id.clone());
                        Some(UsageEvent::Used { image_id, at })
                    }
                    None => Some(UsageEvent::Arrived { image_id, at }),
                }
            }
        }
    }

    /// Runs until `shutdown` flips to true: follow events, reconnect (with `since`, so nothing
    /// is lost while Docker keeps the events), reconcile, save, answer usage requests.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        let mut events: Option<Events> = None;
        let mut connect_at = Some(tokio::time::Instant::now());
        let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
        let mut save = tokio::time::interval(SAVE_EVERY);
        while !*shutdown.borrow() {
            if events.is_none() && connect_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                match self.reconcile().await {
                    Ok(()) => {
                        backoff.reset();
                        events = Some(self.subscribe());
                        connect_at = None;
                        reconcile.reset();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot list Docker images; retrying");
                        connect_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                    }
                }
            }
            let reconnect = async {
                match connect_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                next = next_event(&mut events) => match next {
                    Some(Ok(event)) => self.apply(&event).await,
                    ended => {
                        match ended {
                            Some(Err(error)) => tracing::warn!(%error, "Docker event stream failed; reconnecting"),
                            _ => tracing::info!("Docker event stream ended (dockerd restarted?); reconnecting"),
                        }
                        events = None;
                        self.save();
                        connect_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                    }
                },
                Some(request) = self.requests.recv() => {
                    self.store.reconcile(&request.inventory, SystemTime::now());
                    let _ = request.reply.send(self.store.usage().clone());
                }
                _ = reconnect => {}
                _ = reconcile.tick(), if events.is_some() => {
                    if let Err(error) = self.reconcile().await {
                        tracing::warn!(%error, "periodic reconcile failed");
                    }
                }
                _ = save.tick() => self.save(),
                _ = shutdown.changed() => {}
            }
        }
        self.save();
    }

    async fn apply(&mut self, event: &EventMessage) {
        let Some(observed) = observe(event) else { return };
        let at = match &observed {
            Observed::Used { at, .. } => Some(*at),
            Observed::Deleted { .. } => None,
        };
        if let Some(usage) = self.resolve(observed).await {
            tracing::debug!(?usage, "image usage");
            self.store.apply(&usage);
        }
        if let Some(at) = at {
            self.store.seen_until(at);
        }
    }

    fn save(&mut self) {
        if let Err(error) = self.store.save() {
            tracing::warn!(%error, "cannot save image usage");
        }
    }
}

/// The next event, or never while there is no stream.
async fn next_event(events: &mut Option<Events>) -> Option<Result<EventMessage, bollard::errors::Error>> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn event(typ: EventMessageTypeEnum, action: &str, id: &str, image: Option<&str>) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some(id.into()),
                attributes: image.map(|i| HashMap::from([("image".to_string(), i.to_string())])),
            }),
            time: Some(1_700_000_000),
            time_nano: Some(1_700_000_000_500_000_000),
            ..Default::default()
        }
    }

    #[test]
    fn container_lifecycle_and_image_events_map_to_usage() {
        let at = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_500_000_000);
        for action in ["create", "start", "die", "destroy"] {
            assert_eq!(
                observe(&event(EventMessageTypeEnum::CONTAINER, action, "c1", Some("app:1"))),
                Some(Observed::Used { container: Some("c1".into()), image: "app:1".into(), at })
            );
        }
        assert_eq!(observe(&event(EventMessageTypeEnum::CONTAINER, "exec_start: sh", "c1", Some("app:1"))), None);
        assert_eq!(
            observe(&event(EventMessageTypeEnum::IMAGE, "pull", "busybox:1", None)),
            Some(Observed::Used { container: None, image: "busybox:1".into(), at })
        );
        assert_eq!(
            observe(&event(EventMessageTypeEnum::IMAGE, "delete", "sha256:ab", None)),
            Some(Observed::Deleted { image_id: "sha256:ab".into() })
        );
        assert_eq!(observe(&event(EventMessageTypeEnum::NETWORK, "connect", "n", None)), None);
    }
}
