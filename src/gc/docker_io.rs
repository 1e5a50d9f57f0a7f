//! The Docker edge of GC: gathering the inventory, and executing a plan one step at a time.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use serde::Serialize;

use super::inventory::{Container, ContainerState, Image, Inventory};
use super::plan::{Action, Plan};
use crate::disk::DiskSample;

fn unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

/// Docker's RFC 3339 times; its "zero" time (0001-01-01) means "never".
pub fn parse_docker_time(text: &str) -> Option<SystemTime> {
    if text.starts_with("0001-") {
        return None;
    }
    humantime::parse_rfc3339_weak(text).ok()
}

/// Lists every image (intermediate ones too, for parent links) and every container; asks
/// for the finish time of stopped containers, which the listing does not carry.
pub async fn gather_inventory(docker: &Docker) -> Result<Inventory, DockerError> {
    let images = docker.list_images(Some(ListImagesOptionsBuilder::default().all(true).build())).await?;
    let containers = docker.list_containers(Some(ListContainersOptionsBuilder::default().all(true).build())).await?;
    let mut inventory = Inventory::default();
    for summary in images {
        inventory.images.push(Image {
            parent_id: Some(summary.parent_id).filter(|p| !p.is_empty()),
            repo_tags: summary.repo_tags.into_iter().filter(|t| t != "<none>:<none>").collect(),
            repo_digests: summary.repo_digests.into_iter().filter(|d| !d.starts_with("<none>@")).collect(),
            size: summary.size.max(0) as u64,
            shared_size: (summary.shared_size >= 0).then_some(summary.shared_size as u64),
            created: unix(summary.created),
            labels: summary.labels.into_iter().collect(),
            id: summary.id,
        });
    }
    for summary in containers {
        let (Some(id), Some(image_id)) = (summary.id, summary.image_id) else { continue };
        let state = ContainerState::parse(summary.state.as_ref().map(|s| s.as_ref()).unwrap_or(""));
        let finished_at = if state.is_finished() {
            match docker.inspect_container(&id, None).await {
                Ok(inspect) => inspect.state.and_then(|s| s.finished_at).as_deref().and_then(parse_docker_time),
                // Removed meanwhile: leave it out.
                Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => continue,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let name = summary.names.and_then(|n| n.into_iter().next()).unwrap_or_default();
        inventory.containers.push(Container {
            id,
            name: name.trim_start_matches('/').to_string(),
            image_id,
            state,
            created: unix(summary.created.unwrap_or(0)),
            finished_at,
            size_rw: summary.size_rw.filter(|s| *s >= 0).map(|s| s as u64),
            labels: summary.labels.unwrap_or_default().into_iter().collect(),
        });
    }
    Ok(inventory)
}

/// What became of one planned step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "detail")]
pub enum Outcome {
    Done,
    /// Removed meanwhile by someone else.
    Vanished,
    /// Started being used, or Docker refused (a conflict); never forced.
    Skipped(String),
    Failed(String),
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StepResult {
    pub action: String,
    pub expected_bytes: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// One GC run, kept for the health endpoint and metrics.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct GcReport {
    #[serde(with = "crate::time::rfc3339")]
    pub started: SystemTime,
    pub duration_seconds: f64,
    pub used_before: f64,
    pub used_after: f64,
    /// Measured with statvfs before and after (other writers make it approximate).
    pub bytes_freed: i64,
    pub containers_removed: u32,
    pub images_removed: u32,
    pub reached_target: bool,
    pub steps: Vec<StepResult>,
    /// Images GC could not touch and why ("what blocked reclaim").
    pub kept: Vec<(String, String)>,
}

/// XFS (and ext4 under load) return freed blocks asynchronously after an unlink: about 85%
/// at once, the rest within a second. Where the plan says the target should be met, wait this
/// long for the figures to settle before removing more or giving up.
const SETTLE_FOR: Duration = Duration::from_secs(1);
const SETTLE_POLL: Duration = Duration::from_millis(50);

/// Runs `plan` in order, re-measuring after each step (or batch of image removals that cannot
/// overshoot), and stops once usage is below `stop_below` (a fraction, bytes and inodes).
/// `measure` reads statvfs.
pub async fn execute(
    docker: &Docker,
    plan: &Plan,
    stop_below: f64,
    mut measure: impl FnMut() -> Option<DiskSample>,
) -> GcReport {
    let started = SystemTime::now();
    let clock = Instant::now();
    let before = measure();
    let mut current = before;
    let mut steps = Vec::new();
    let below = |s: &DiskSample| !super::above(s, stop_below);
    let mut reached_target = current.as_ref().is_some_and(below);
    let mut expected = 0u64;
    let mut index = 0;
    while index < plan.steps.len() && !reached_target {
        let batch = batch_from(plan, index, expected);
        let mut outcomes =
            futures_util::future::join_all(batch.iter().map(|&i| run_step(docker, &plan.steps[i].action))).await;
        // In a batch a parent may have gone before its child: retry those conflicts in order.
        if batch.len() > 1 {
            for (slot, &i) in batch.iter().enumerate() {
                if matches!(outcomes[slot], Outcome::Skipped(_)) {
                    outcomes[slot] = run_step(docker, &plan.steps[i].action).await;
                }
            }
        }
        for (&i, outcome) in batch.iter().zip(outcomes) {
            let step = &plan.steps[i];
            tracing::info!(action = %step.action, reason = %step.reason, outcome = ?outcome, "gc step");
            if outcome == Outcome::Done {
                expected = expected.saturating_add(step.expected_bytes);
            }
            steps.push(StepResult { action: step.action.to_string(), expected_bytes: step.expected_bytes, outcome });
        }
        index += batch.len();
        current = measure().or(current);
        reached_target = current.as_ref().is_some_and(below);
        if !reached_target && expected >= plan.target_bytes {
            current = settle(&mut measure, current, below).await;
            reached_target = current.as_ref().is_some_and(below);
        }
    }
    let count = |kind: fn(&Action) -> bool| {
        plan.steps
            .iter()
            .zip(&steps)
            .filter(|(step, result)| kind(&step.action) && result.outcome == Outcome::Done)
            .count() as u32
    };
    GcReport {
        started,
        duration_seconds: clock.elapsed().as_secs_f64(),
        used_before: before.map_or(0.0, |s| s.used_fraction()),
        used_after: current.map_or(0.0, |s| s.used_fraction()),
        bytes_freed: match (before, current) {
            (Some(b), Some(a)) => b.used_bytes() as i64 - a.used_bytes() as i64,
            _ => 0,
        },
        containers_removed: count(|a| matches!(a, Action::RemoveContainer { .. })),
        images_removed: count(|a| matches!(a, Action::RemoveImage { .. })),
        reached_target,
        steps,
        kept: plan.kept.iter().map(|(name, why)| (name.clone(), why.to_string())).collect(),
    }
}

/// Image removals in flight at once, where they cannot overshoot the target.
const MAX_PARALLEL: usize = 8;

/// The steps to run next from `start`: image removals together while, by the plan's own
/// figures, all of them are still needed; anything else (and the last needed one) alone.
fn batch_from(plan: &Plan, start: usize, expected: u64) -> Vec<usize> {
    let is_image = |i: usize| matches!(plan.steps[i].action, Action::RemoveImage { .. });
    let mut batch = vec![start];
    if !is_image(start) {
        return batch;
    }
    let mut sum = expected.saturating_add(plan.steps[start].expected_bytes);
    let mut next = start + 1;
    while batch.len() < MAX_PARALLEL && next < plan.steps.len() && is_image(next) {
        let with_next = sum.saturating_add(plan.steps[next].expected_bytes);
        if with_next >= plan.target_bytes {
            break;
        }
        sum = with_next;
        batch.push(next);
        next += 1;
    }
    batch
}

/// Polls until the target is met or the figures stop moving, at most [`SETTLE_FOR`].
async fn settle(
    measure: &mut impl FnMut() -> Option<DiskSample>,
    mut current: Option<DiskSample>,
    below: impl Fn(&DiskSample) -> bool,
) -> Option<DiskSample> {
    let deadline = Instant::now() + SETTLE_FOR;
    let mut unchanged_polls = 0;
    while Instant::now() < deadline && !current.as_ref().is_some_and(&below) && unchanged_polls < 6 {
        tokio::time::sleep(SETTLE_POLL).await;
        let next = measure().or(current);
        let same = next.map(|s| s.available_bytes) == current.map(|s| s.available_bytes);
        unchanged_polls = if same { unchanged_polls + 1 } else { 0 };
        current = next;
    }
    current
}

fn classify(error: DockerError) -> Outcome {
    match error {
        DockerError::DockerResponseServerError { status_code: 404, .. } => Outcome::Vanished,
        DockerError::DockerResponseServerError { status_code: 409, message } => Outcome::Skipped(message),
        other => Outcome::Failed(other.to_string()),
    }
}

async fn run_step(docker: &Docker, action: &Action) -> Outcome {
    match action {
        Action::RemoveContainer { id, volumes, .. } => {
            // Never forced: a container that was restarted meanwhile is refused by Docker.
            // `v` removes the container's anonymous volumes only; named volumes are never
            // removed with a container.
            let options = RemoveContainerOptionsBuilder::default().v(*volumes).force(false).build();
            docker.remove_container(id, Some(options)).await.map_or_else(classify, |_| Outcome::Done)
        }
        Action::RemoveImage { id, tags } => remove_image(docker, id, tags).await,
        Action::PruneBuildCache => match docker.prune_build(None::<bollard::query_parameters::PruneBuildOptions>).await
        {
            Ok(_) => Outcome::Done,
            Err(e) => classify(e),
        },
    }
}

/// Removes an image without force. With several tags, untagging would succeed even while a
/// container uses the image, so first check that no container (any state) was created on it
/// since the plan was made. Each tag goes only while it still names this image (the agent may
/// have pulled a newer image under it since the plan); if one cannot go, the tags already
/// removed are put back: the image is removed whole or left as it was.
async fn remove_image(docker: &Docker, id: &str, tags: &[String]) -> Outcome {
    let options = RemoveImageOptionsBuilder::default().force(false).noprune(false).build();
    if tags.len() <= 1 {
        return docker.remove_image(id, Some(options), None).await.map_or_else(classify, |_| Outcome::Done);
    }
    let filters: HashMap<String, Vec<String>> = HashMap::from([("ancestor".to_string(), vec![id.to_string()])]);
    let listing = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    match docker.list_containers(Some(listing)).await {
        Ok(users) if !users.is_empty() => return Outcome::Skipped("a container started using it".into()),
        Ok(_) => {}
        Err(e) => return classify(e),
    }
    let mut removed: Vec<&str> = Vec::new();
    for tag in tags {
        match docker.inspect_image(tag).await {
            Ok(image) if image.id.as_deref() == Some(id) => {}
            // Moved to another image, or gone (an earlier, interrupted run): not ours to remove.
            Ok(_) | Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => continue,
            Err(e) => return restore_tags(docker, id, &removed, classify(e)).await,
        }
        match docker.remove_image(tag, Some(options.clone()), None).await {
            Ok(_) => removed.push(tag),
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return restore_tags(docker, id, &removed, classify(e)).await,
        }
    }
    if removed.is_empty() { Outcome::Vanished } else { Outcome::Done }
}

/// Tags `id` again with what `remove_image` took off, and passes on why it stopped.
async fn restore_tags(docker: &Docker, id: &str, tags: &[&str], why: Outcome) -> Outcome {
    for tag in tags {
        let Some((repo, name)) = tag.rsplit_once(':').filter(|(repo, _)| !repo.is_empty()) else { continue };
        let options = bollard::query_parameters::TagImageOptionsBuilder::default().repo(repo).tag(name).build();
        if let Err(error) = docker.tag_image(id, Some(options)).await {
            tracing::error!(%error, image = id, tag, "could not put back a tag after a partial removal");
        }
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::plan::Step;

    fn image_step(expected_bytes: u64) -> Step {
        Step {
            action: Action::RemoveImage { id: "sha256:x".into(), tags: vec![] },
            reason: String::new(),
            expected_bytes,
        }
    }

    #[test]
    fn batches_only_what_is_certainly_needed() {
        let mut plan = Plan { target_bytes: 35, ..Plan::default() };
        plan.steps = (0..5).map(|_| image_step(10)).collect();
        assert_eq!(batch_from(&plan, 0, 0), [0, 1, 2], "the fourth would reach the target: it goes alone");
        assert_eq!(batch_from(&plan, 3, 30), [3]);
        plan.steps.insert(1, Step { action: Action::PruneBuildCache, reason: String::new(), expected_bytes: 0 });
        assert_eq!(batch_from(&plan, 0, 0), [0], "only image removals run together");
        plan.target_bytes = u64::MAX;
        plan.steps = (0..20).map(|_| image_step(1)).collect();
        assert_eq!(batch_from(&plan, 0, 0).len(), MAX_PARALLEL);
    }
}
