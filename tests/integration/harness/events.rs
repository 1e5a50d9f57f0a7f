//! Records Docker's event stream in the background, for asserting what happened and when.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct Event {
    pub at: SystemTime,
    pub kind: String,
    pub action: String,
    pub id: String,
}

pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    pub async fn start(docker: &Docker) -> Recorder {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let docker = docker.clone();
        let task = tokio::spawn(async move {
            let mut stream = docker.events(None::<bollard::query_parameters::EventsOptions>);
            while let Some(Ok(event)) = stream.next().await {
                let at = UNIX_EPOCH + Duration::from_nanos(event.time_nano.unwrap_or(0).max(0) as u64);
                let record = Event {
                    at,
                    kind: event.typ.map(|t| t.to_string()).unwrap_or_default(),
                    action: event.action.unwrap_or_default(),
                    id: event.actor.and_then(|a| a.id).unwrap_or_default(),
                };
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(record);
            }
        });
        // Let the subscription reach dockerd before the caller acts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Recorder { events, task }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Image ids deleted, in order.
    pub fn deleted_images(&self) -> Vec<(SystemTime, String)> {
        self.events().into_iter().filter(|e| e.kind == "image" && e.action == "delete").map(|e| (e.at, e.id)).collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
