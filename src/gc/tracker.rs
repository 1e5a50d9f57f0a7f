//! Follows Docker's event stream and turns it into image usage. The stream ends when dockerd
//! restarts; the tracker reconnects with `since` (the last event applied) so nothing is lost
//! while Docker keeps the events, and reconciles with a full listing after every reconnect and
//! every few minutes, which covers whatever the stream could not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use tokio::sync::{Mutex, watch};

use super::docker_io::gather_inventory;
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

pub struct Tracker {
    docker: Docker,
    store: Arc<Mutex<LastUseStore>>,
    /// Container id → image id, so a `destroy` still resolves after the image lost its tag.
    container_images: HashMap<String, String>,
}

impl Tracker {
    pub fn new(docker: Docker, store: Arc<Mutex<LastUseStore>>) -> Self {
        Tracker { docker, store, container_images: HashMap::new() }
    }

    /// Reconciles with a full listing and saves.
    pub async fn reconcile(&mut self) -> Result<(), bollard::errors::Error> {
        let inventory = gather_inventory(&self.docker).await?;
        self.container_images = inventory.containers.iter().map(|c| (c.id.clone(), c.image_id.clone())).collect();
        let mut store = self.store.lock().await;
        store.reconcile(&inventory, SystemTime::now());
        if let Err(error) = store.save() {
            tracing::warn!(%error, "cannot save image usage");
        }
        Ok(())
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

    /// Runs until `shutdown` flips to true: follow events, reconnect, reconcile, save.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        while !*shutdown.borrow() {
            if let Err(error) = self.reconcile().await {
                tracing::warn!(%error, "cannot list Docker images; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => continue,
                    _ = shutdown.changed() => break,
                }
            }
            backoff.reset();
            let since = self.store.lock().await.events_seen_until().unwrap_or_else(SystemTime::now);
            let since_secs = since.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let filters: HashMap<String, Vec<String>> =
                HashMap::from([("type".to_string(), vec!["container".to_string(), "image".to_string()])]);
            let options = EventsOptionsBuilder::default().since(&since_secs.to_string()).filters(&filters).build();
            let mut events = self.docker.events(Some(options));
            let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
            reconcile.tick().await;
            let mut save = tokio::time::interval(SAVE_EVERY);
            loop {
                tokio::select! {
                    next = events.next() => match next {
                        Some(Ok(event)) => self.apply(&event).await,
                        Some(Err(error)) => {
                            tracing::warn!(%error, "Docker event stream failed; reconnecting");
                            break;
                        }
                        None => {
                            tracing::info!("Docker event stream ended (dockerd restarted?); reconnecting");
                            break;
                        }
                    },
                    _ = reconcile.tick() => {
                        if let Err(error) = self.reconcile().await {
                            tracing::warn!(%error, "periodic reconcile failed");
                        }
                    }
                    _ = save.tick() => self.save().await,
                    _ = shutdown.changed() => break,
                }
            }
            self.save().await;
            if !*shutdown.borrow() {
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        self.save().await;
    }

    async fn apply(&mut self, event: &EventMessage) {
        let Some(observed) = observe(event) else { return };
        let at = match &observed {
            Observed::Used { at, .. } => Some(*at),
            Observed::Deleted { .. } => None,
        };
        let resolved = self.resolve(observed).await;
        let mut store = self.store.lock().await;
        if let Some(usage) = resolved {
            tracing::debug!(?usage, "image usage");
            store.apply(&usage);
        }
        if let Some(at) = at {
            store.seen_until(at);
        }
    }

    async fn save(&self) {
        if let Err(error) = self.store.lock().await.save() {
            tracing::warn!(%error, "cannot save image usage");
        }
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
