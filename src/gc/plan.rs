//! The GC planner, a pure function: inventory, usage, policy, time and the bytes to free → an
//! ordered plan, each step with its reason and expected bytes. Order: finished containers past
//! the minimum age, then unused images least recently used first (children before parents),
//! then the build cache.
//!
//! Containers: only those the ECS agent created for a task (its `com.amazonaws.ecs.task-arn`
//! label) go, with their anonymous volumes, as the agent's own task cleanup removes them; a
//! container of another origin goes only with `[gc] remove-other-containers`, and its
//! anonymous volumes only with `[gc] remove-other-volumes` too. Never: the ECS agent's
//! container, a container labelled `nodewarden.keep`. Named volumes are never removed.
//!
//! Images never planned: one any remaining container references (running or stopped), a
//! protected one (keep list, agent, pause, the `nodewarden.keep` label), one younger than the
//! minimum age, one a task ECS wants here names, a parent of any of those; and, while ECS
//! cannot say which images its tasks want and the disk is below drain-at, one of unknown use
//! (see [`Kept::UnknownUse`]).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use super::inventory::{Container, Image, Inventory, KEEP_LABEL, UsageMap, has_keep_label, short_id};
use crate::settings::values::{ImagePattern, ImageReference};
use crate::settings::{GcSettings, Settings};

/// The ECS agent's container, as ecs-init and nodewarden name it.
pub const AGENT_CONTAINER: &str = "ecs-agent";

/// Images the ECS agent needs besides its own: the task pause image and Service Connect.
const BUILT_IN_KEEP: &[&str] = &["amazon/amazon-ecs-pause:*", "*amazon-ecs-pause*", "*ecs-service-connect-agent*"];

#[derive(Debug, Clone, PartialEq)]
pub struct GcPolicy {
    pub min_image_age: Duration,
    pub exited_container_min_age: Duration,
    /// Settings' keep-images, the configured agent image, and the pause images.
    pub keep: Vec<ImagePattern>,
    /// Stopped containers the ECS agent did not create may go (`[gc] remove-other-containers`).
    pub remove_other_containers: bool,
    /// And their anonymous volumes with them (`[gc] remove-other-volumes`).
    pub remove_other_volumes: bool,
    /// Finished containers removed whatever their age: those of the tasks nodewarden stopped
    /// for filling the disk (their writable layers are what must go).
    pub remove_now: BTreeSet<String>,
    /// What ECS said of the images its tasks on this instance want.
    pub task_images: TaskImages,
    /// The disk is at or above drain-at: images of unknown use go too, since a drain moves
    /// every task while such an image costs at most a pull (set by [`crate::gc::plan_below`]).
    pub past_drain_at: bool,
}

/// The images the tasks ECS wants on this instance name, or that ECS could not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskImages {
    /// Normalized (see [`normalize_reference`]): a PENDING task's image is kept though no
    /// container uses it yet.
    Known(BTreeSet<String>),
    /// ECS was not asked (no identity yet, no AWS client) or did not answer: any image may be
    /// a pending task's.
    Unknown,
}

/// An image reference as Docker lists it: Docker Hub's `docker.io/` and `library/` dropped,
/// `:latest` added when there is neither tag nor digest. `nginx` and
/// `docker.io/library/nginx:latest` are both `nginx:latest`.
pub fn normalize_reference(reference: &str) -> String {
    let mut name = reference.trim();
    for prefix in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        name = name.strip_prefix(prefix).unwrap_or(name);
    }
    let name = name.strip_prefix("library/").unwrap_or(name);
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last.contains(':') { name.to_string() } else { format!("{name}:latest") }
}

impl GcPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        GcPolicy::new(&settings.gc, &settings.ecs.agent_image)
    }

    /// The policy for `gc`, protecting `agent`'s repository at its tag besides the keep list.
    pub fn new(gc: &GcSettings, agent: &ImageReference) -> Self {
        let mut keep = gc.keep_images.clone();
        keep.extend(ImagePattern::from_str(&format!("{}:{}", agent.repository, agent.tag.as_deref().unwrap_or("*"))));
        keep.extend(BUILT_IN_KEEP.iter().filter_map(|p| ImagePattern::from_str(p).ok()));
        GcPolicy {
            min_image_age: gc.min_image_age,
            exited_container_min_age: gc.exited_container_min_age,
            keep,
            remove_other_containers: gc.remove_other_containers,
            remove_other_volumes: gc.remove_other_volumes,
            remove_now: BTreeSet::new(),
            task_images: TaskImages::Unknown,
            past_drain_at: false,
        }
    }

    fn wanting_task(&self, image: &Image) -> Option<&str> {
        let TaskImages::Known(wanted) = &self.task_images else { return None };
        let names = image.repo_tags.iter().chain(&image.repo_digests).map(|n| normalize_reference(n));
        names.into_iter().find_map(|name| wanted.get(&name).map(String::as_str))
    }

    /// Why a finished container may not go whatever its age, if it may not.
    fn keeping_container(&self, container: &Container) -> Option<Kept> {
        if container.has_keep_label() {
            Some(Kept::KeepLabel)
        } else if !container.is_ecs_task() && !self.remove_other_containers {
            Some(Kept::NotFromEcs)
        } else {
            None
        }
    }

    /// Whether a removed container's anonymous volumes go with it: an ECS task's do (the
    /// agent removes them so), another's only when the operator said so.
    fn with_volumes(&self, container: &Container) -> bool {
        container.is_ecs_task() || self.remove_other_volumes
    }

    fn protecting_pattern(&self, image: &Image) -> Option<&ImagePattern> {
        self.keep.iter().find(|p| {
            image.repo_tags.iter().chain(&image.repo_digests).any(|name| p.matches(name)) || p.as_str() == image.id
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `volumes`: its anonymous volumes too (`docker rm -v`).
    RemoveContainer {
        id: String,
        name: String,
        volumes: bool,
    },
    RemoveImage {
        id: String,
        tags: Vec<String>,
    },
    PruneBuildCache,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub reason: String,
    pub expected_bytes: u64,
}

/// Why an unused-looking image was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    InUse {
        containers: Vec<String>,
    },
    /// A task ECS wants on this instance names it (it may not have started yet).
    WantedByTask {
        reference: String,
    },
    Protected {
        pattern: String,
    },
    /// The `nodewarden.keep` label is on it (a container, or an image).
    KeepLabel,
    TooYoung {
        age: Duration,
    },
    /// ECS could not say which images its tasks want, the disk is below drain-at, and no
    /// container has used the image since it arrived (was pulled, loaded, imported, tagged or
    /// first seen): it may be a PENDING task's, pulled for a container not yet created. An
    /// image a container used after it arrived was there for that container, which is gone.
    UnknownUse,
    ParentOfKept,
    /// A stopped container the ECS agent did not create (`[gc] remove-other-containers` is off).
    NotFromEcs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub target_bytes: u64,
    pub steps: Vec<Step>,
    /// Images not planned, and stopped containers old enough to go but kept, and why, for
    /// operators ("what blocked reclaim"). Containers are named `container NAME`.
    pub kept: Vec<(String, Kept)>,
}

impl Plan {
    pub fn expected_bytes(&self) -> u64 {
        self.steps.iter().map(|s| s.expected_bytes).sum()
    }

    pub fn removes_images(&self) -> bool {
        self.steps.iter().any(|step| matches!(step.action, Action::RemoveImage { .. }))
    }
}

struct Candidate<'a> {
    image: &'a Image,
    /// The LRU key: last use, else first sighting, else now (unknown to the store).
    last_used: SystemTime,
    expected_bytes: u64,
}

pub fn plan(inventory: &Inventory, usage: &UsageMap, policy: &GcPolicy, now: SystemTime, bytes_to_free: u64) -> Plan {
    let mut plan = Plan { target_bytes: bytes_to_free, ..Plan::default() };
    if bytes_to_free == 0 {
        return plan;
    }
    let age = |time: SystemTime| now.duration_since(time).unwrap_or_default();

    // 1. Finished containers past the minimum age, oldest first: an ECS task's, or (opted
    // in) another's; never one with the keep label.
    let mut kept_containers = Vec::new();
    let mut finished: Vec<&Container> = inventory
        .containers
        .iter()
        .filter(|c| c.state.is_finished() && c.name != AGENT_CONTAINER)
        .filter(|c| {
            age(c.finished_at.unwrap_or(c.created)) >= policy.exited_container_min_age
                || policy.remove_now.contains(&c.id)
        })
        .filter(|c| match policy.keeping_container(c) {
            Some(why) => {
                kept_containers.push((format!("container {}", c.name), why));
                false
            }
            None => true,
        })
        .collect();
    finished.sort_by_key(|c| (c.finished_at.unwrap_or(c.created), c.id.clone()));
    let mut removed_containers = BTreeSet::new();
    for container in finished {
        if plan.expected_bytes() >= bytes_to_free {
            break;
        }
        let finished_ago = age(container.finished_at.unwrap_or(container.created));
        plan.steps.push(Step {
            action: Action::RemoveContainer {
                id: container.id.clone(),
                name: container.name.clone(),
                volumes: policy.with_volumes(container),
            },
            reason: if policy.remove_now.contains(&container.id) {
                "its task was stopped by nodewarden for filling the disk".to_string()
            } else {
                format!("stopped {} ago", crate::settings::values::format_duration(round_secs(finished_ago)))
            },
            expected_bytes: container.size_rw.unwrap_or(0),
        });
        removed_containers.insert(container.id.as_str());
    }

    // 2. Unused images, least recently used first, children before parents.
    let by_id: BTreeMap<&str, &Image> = inventory.images.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for image in &inventory.images {
        if let Some(parent) = image.parent_id.as_deref().filter(|p| by_id.contains_key(p)) {
            children.entry(parent).or_default().push(&image.id);
        }
    }
    let mut users: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for container in inventory.containers.iter().filter(|c| !removed_containers.contains(c.id.as_str())) {
        users.entry(container.image_id.as_str()).or_default().push(container.name.clone());
    }
    let mut kept: BTreeMap<&str, Kept> = BTreeMap::new();
    let unknown_use_kept = policy.task_images == TaskImages::Unknown && !policy.past_drain_at;
    for image in &inventory.images {
        let seen = usage.get(&image.id);
        // Unknown to the store (pulled since the last reconcile): first seen now, never aged
        // by its build date, which is usually weeks before the agent pulled it.
        let appeared = seen.map_or(now, |u| u.first_seen.max(image.created));
        let reason = if let Some(containers) = users.get(image.id.as_str()) {
            Some(Kept::InUse { containers: containers.clone() })
        } else if let Some(reference) = policy.wanting_task(image) {
            Some(Kept::WantedByTask { reference: reference.to_string() })
        } else if let Some(pattern) = policy.protecting_pattern(image) {
            Some(Kept::Protected { pattern: pattern.as_str().to_string() })
        } else if has_keep_label(&image.labels) {
            Some(Kept::KeepLabel)
        } else if age(appeared) < policy.min_image_age {
            Some(Kept::TooYoung { age: round_secs(age(appeared)) })
        } else if unknown_use_kept && !seen.is_some_and(|u| u.used_by_a_container_since_it_arrived()) {
            Some(Kept::UnknownUse)
        } else {
            None
        };
        if let Some(reason) = reason {
            kept.insert(image.id.as_str(), reason);
        }
    }
    // A parent cannot go while any descendant stays.
    let mut stack: Vec<&str> = kept.keys().copied().collect();
    while let Some(id) = stack.pop() {
        if let Some(parent) = by_id.get(id).and_then(|i| i.parent_id.as_deref()).filter(|p| by_id.contains_key(p))
            && !kept.contains_key(parent)
        {
            kept.insert(parent, Kept::ParentOfKept);
            stack.push(parent);
        }
    }
    let mut candidates: BTreeMap<&str, Candidate<'_>> = inventory
        .images
        .iter()
        .filter(|image| !kept.contains_key(image.id.as_str()))
        .map(|image| {
            let seen = usage.get(&image.id);
            let last_used = seen.map_or(now, |u| u.last_used.unwrap_or(u.first_seen));
            let parent_size = image.parent_id.as_deref().and_then(|p| by_id.get(p)).map(|p| p.size);
            let expected_bytes = match (parent_size, image.shared_size) {
                (Some(parent), _) => image.size.saturating_sub(parent),
                (None, Some(shared)) => image.size.saturating_sub(shared),
                (None, None) => image.size,
            };
            (image.id.as_str(), Candidate { image, last_used, expected_bytes })
        })
        .collect();
    // Greedy over the "ready" set: an image is ready once all its children are planned.
    while plan.expected_bytes() < bytes_to_free {
        let ready = candidates
            .values()
            .filter(|c| {
                children.get(c.image.id.as_str()).is_none_or(|kids| kids.iter().all(|k| !candidates.contains_key(k)))
            })
            .min_by_key(|c| (c.last_used, c.image.created, c.image.id.clone()));
        let Some(next) = ready else { break };
        let id = next.image.id.clone();
        let unused_for = round_secs(age(next.last_used));
        let mut reason = format!("unused for {}", crate::settings::values::format_duration(unused_for));
        if policy.task_images == TaskImages::Unknown
            && !usage.get(&id).is_some_and(|u| u.used_by_a_container_since_it_arrived())
        {
            reason.push_str("; ECS cannot say whether a task waits for it, and the disk is past drain-at");
        }
        plan.steps.push(Step {
            action: Action::RemoveImage { id: id.clone(), tags: next.image.repo_tags.clone() },
            reason,
            expected_bytes: next.expected_bytes,
        });
        candidates.remove(id.as_str());
    }

    // 3. The build cache, when images were not enough (its size is unknown until pruned).
    if plan.expected_bytes() < bytes_to_free {
        plan.steps.push(Step {
            action: Action::PruneBuildCache,
            reason: "images and containers were not enough".into(),
            expected_bytes: 0,
        });
    }
    plan.kept = inventory
        .images
        .iter()
        .filter_map(|image| kept.get(image.id.as_str()).map(|k| (image.display_name(), k.clone())))
        .chain(kept_containers)
        .collect();
    plan
}

fn round_secs(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::InUse { containers } => write!(f, "in use by {}", containers.join(", ")),
            Kept::WantedByTask { reference } => write!(f, "wanted by a task ECS placed here ({reference})"),
            Kept::Protected { pattern } => write!(f, "protected by {pattern:?}"),
            Kept::TooYoung { age } => {
                write!(f, "younger than the minimum age ({})", crate::settings::values::format_duration(*age))
            }
            Kept::KeepLabel => write!(f, "labelled {KEEP_LABEL}"),
            Kept::UnknownUse => f.write_str(
                "no container has used it since it arrived, and ECS cannot say whether a task waits for it \
                 (kept below drain-at)",
            ),
            Kept::ParentOfKept => f.write_str("parent of a kept image"),
            Kept::NotFromEcs => f.write_str("not an ECS task's container ([gc] remove-other-containers is off)"),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::RemoveContainer { id, name, volumes: false } => {
                write!(f, "remove container {name} ({})", short_id(id))
            }
            Action::RemoveContainer { id, name, volumes: true } => {
                write!(f, "remove container {name} ({}) with its anonymous volumes", short_id(id))
            }
            Action::RemoveImage { id, tags } if tags.is_empty() => write!(f, "remove image {}", short_id(id)),
            Action::RemoveImage { id, tags } => write!(f, "remove image {} ({})", tags.join(", "), short_id(id)),
            Action::PruneBuildCache => f.write_str("prune the build cache"),
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
