//! Whether the instance is going away, as IMDS says: a spot notice (polled every 2 s: AWS gives
//! two minutes) and Auto Scaling's lifecycle state (every 5 s). A loop of its own, so an AWS
//! call elsewhere never delays noticing; it publishes changes on a watch.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::drain::termination;
use crate::imds::ImdsClient;

pub const SPOT_POLL: Duration = Duration::from_secs(2);
const LIFECYCLE_POLL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fate {
    /// The spot notice's action (terminate, stop, hibernate) and "spot interruption: stop at
    /// …", once noticed (a notice is never withdrawn before its action).
    pub spot: Option<(String, String)>,
    /// IMDS answered "no spot notice" in this boot.
    pub spot_clear: bool,
    /// Auto Scaling's lifecycle state is Terminated.
    pub terminating: bool,
}

pub async fn poll(
    imds: ImdsClient,
    on_spot: bool,
    on_termination: bool,
    fate: watch::Sender<Fate>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_spot = Instant::now();
    let mut next_lifecycle = Instant::now();
    loop {
        let now = Instant::now();
        if on_spot && fate.borrow().spot.is_none() && now >= next_spot {
            next_spot = now + SPOT_POLL;
            match termination::spot_notice(&imds).await {
                Ok(Some(notice)) => {
                    let when = notice.time.as_deref().unwrap_or("soon");
                    tracing::warn!(action = %notice.action, time = when, "spot interruption notice");
                    let text = format!("spot interruption: {} at {when}", notice.action);
                    fate.send_modify(|f| f.spot = Some((notice.action.clone(), text)));
                }
                Ok(None) => {
                    fate.send_if_modified(|f| !std::mem::replace(&mut f.spot_clear, true));
                }
                Err(error) => tracing::debug!(%error, "spot notice poll failed"),
            }
        }
        if on_termination && !fate.borrow().terminating && now >= next_lifecycle {
            next_lifecycle = now + LIFECYCLE_POLL;
            match termination::termination_requested(&imds).await {
                Ok(true) => {
                    tracing::warn!("Auto Scaling is terminating this instance");
                    fate.send_modify(|f| f.terminating = true);
                }
                Ok(false) => {}
                Err(error) => tracing::debug!(%error, "lifecycle state poll failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
