use super::*;
use crate::gc::inventory::{ContainerState, Usage};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::time::UNIX_EPOCH;

const MIB: u64 = 1 << 20;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

fn image(id: &str, tag: Option<&str>, parent: Option<&str>, size_mib: u64, created: u64) -> Image {
    Image {
        id: format!("sha256:{id}"),
        parent_id: parent.map(|p| format!("sha256:{p}")),
        repo_tags: tag.map(|t| vec![t.to_string()]).unwrap_or_default(),
        repo_digests: vec![],
        size: size_mib * MIB,
        shared_size: None,
        created: t(created),
        labels: BTreeMap::new(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A container the ECS agent created for a task (it carries the agent's task label).
fn container(name: &str, image: &str, state: ContainerState, finished: Option<u64>) -> Container {
    let arn = format!("arn:aws:ecs:us-east-1:123456789012:task/c/{name}");
    Container {
        labels: labels(&[(crate::offender::LABEL_TASK_ARN, &arn)]),
        ..other_container(name, image, state, finished)
    }
}

/// A container of another origin: started by hand, by compose, by another tool.
fn other_container(name: &str, image: &str, state: ContainerState, finished: Option<u64>) -> Container {
    Container {
        id: format!("c-{name}"),
        name: name.into(),
        image_id: format!("sha256:{image}"),
        state,
        created: t(0),
        finished_at: finished.map(t),
        size_rw: None,
        labels: BTreeMap::new(),
    }
}

fn policy() -> GcPolicy {
    GcPolicy {
        min_image_age: Duration::from_secs(120),
        exited_container_min_age: Duration::from_secs(600),
        keep: ["amazon/amazon-ecs-agent:*", "keep/me:*"].iter().map(|p| ImagePattern::from_str(p).unwrap()).collect(),
        remove_other_containers: false,
        remove_other_volumes: false,
        remove_now: BTreeSet::new(),
        task_images: TaskImages::Known(BTreeSet::new()),
        past_drain_at: false,
    }
}

/// Used by a container at `last_used` (if ever), first seen at `first_seen`.
fn used(map: &mut UsageMap, id: &str, first_seen: u64, last_used: Option<u64>) {
    let last_used = last_used.map(t);
    map.insert(format!("sha256:{id}"), Usage { first_seen: t(first_seen), last_used, last_container_use: last_used });
}

/// Every image in the store since it was built, as after a reconcile long ago.
fn known_since_built(inventory: &Inventory) -> UsageMap {
    let never_used = |i: &Image| Usage { first_seen: i.created, last_used: None, last_container_use: None };
    inventory.images.iter().map(|i| (i.id.clone(), never_used(i))).collect()
}

fn removed_images(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::RemoveImage { id, .. } => Some(id.trim_start_matches("sha256:").to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_image_the_store_does_not_know_is_first_seen_now_not_aged_by_its_build_date() {
    // Built weeks ago, pulled by the agent a moment ago, no container yet: the store has not
    // heard of it (the event stream lagged); min-image-age must still protect it.
    let inventory = Inventory {
        images: vec![
            image("pulled", Some("app/pulled:7"), None, 10, 0),
            image("known", Some("app/known:1"), None, 10, 0),
        ],
        containers: vec![],
    };
    let mut usage = UsageMap::new();
    used(&mut usage, "known", 0, Some(100));
    let plan = plan(&inventory, &usage, &policy(), t(1_000_000), u64::MAX);
    assert_eq!(removed_images(&plan), ["known"]);
    assert!(
        plan.kept.iter().any(|(n, k)| n == "app/pulled:7" && matches!(k, Kept::TooYoung { .. })),
        "{:?}",
        plan.kept
    );
}

#[test]
fn nothing_to_free_means_an_empty_plan() {
    let inventory = Inventory { images: vec![image("a", Some("a:1"), None, 10, 0)], containers: vec![] };
    assert!(plan(&inventory, &UsageMap::new(), &policy(), t(10_000), 0).steps.is_empty());
}

#[test]
fn lru_order_protections_and_reasons() {
    let inventory = Inventory {
        images: vec![
            image("old", Some("app/old:1"), None, 10, 0),
            image("mid", Some("app/mid:1"), None, 10, 0),
            image("new", Some("app/new:1"), None, 10, 0),
            image("running", Some("app/running:1"), None, 10, 0),
            image("stopped", Some("app/stopped:1"), None, 10, 0),
            image("agent", Some("amazon/amazon-ecs-agent:v1"), None, 10, 0),
            image("kept", Some("keep/me:2"), None, 10, 0),
            image("young", Some("app/young:1"), None, 10, 9_950),
        ],
        containers: vec![
            container("web", "running", ContainerState::Running, None),
            container("job", "stopped", ContainerState::Exited, Some(9_900)),
        ],
    };
    let mut usage = UsageMap::new();
    used(&mut usage, "old", 0, Some(100));
    used(&mut usage, "mid", 0, Some(200));
    used(&mut usage, "new", 0, Some(300));
    let plan = plan(&inventory, &usage, &policy(), t(10_000), u64::MAX);
    assert_eq!(removed_images(&plan), ["old", "mid", "new"]);
    assert_eq!(plan.steps.last().map(|s| &s.action), Some(&Action::PruneBuildCache));
    let kept: BTreeMap<String, String> = plan.kept.iter().map(|(n, k)| (n.clone(), k.to_string())).collect();
    assert_eq!(kept["app/running:1"], "in use by web");
    assert_eq!(kept["app/stopped:1"], "in use by job", "a recently stopped container still protects its image");
    assert_eq!(kept["amazon/amazon-ecs-agent:v1"], "protected by \"amazon/amazon-ecs-agent:*\"");
    assert_eq!(kept["keep/me:2"], "protected by \"keep/me:*\"");
    assert!(kept["app/young:1"].starts_with("younger than the minimum age"));
    assert_eq!(plan.steps[0].reason, "unused for 2h45m");
}

#[test]
fn old_exited_containers_go_first_and_free_their_images() {
    let mut agent = container("ecs-agent", "agent", ContainerState::Exited, Some(0));
    agent.id = "c-agent".into();
    let inventory = Inventory {
        images: vec![
            image("img", Some("app/img:1"), None, 10, 0),
            image("agent", Some("registry/agent:1"), None, 10, 0),
        ],
        containers: vec![container("old-job", "img", ContainerState::Exited, Some(1_000)), agent],
    };
    let plan = plan(&inventory, &known_since_built(&inventory), &policy(), t(10_000), u64::MAX);
    let actions: Vec<String> = plan.steps.iter().map(|s| s.action.to_string()).collect();
    assert_eq!(actions[0], "remove container old-job (c-old-job) with its anonymous volumes");
    assert!(actions[1].starts_with("remove image app/img:1"), "{actions:?}");
    assert!(!actions.iter().any(|a| a.contains("ecs-agent")), "the agent's container is never removed: {actions:?}");
    assert!(!actions.iter().any(|a| a.contains("registry/agent")), "its image stays referenced: {actions:?}");
}

#[test]
fn the_container_of_a_task_nodewarden_stopped_goes_at_once_others_wait_their_age() {
    let inventory = Inventory {
        images: vec![image("img", Some("app/img:1"), None, 10, 0)],
        containers: vec![
            container("runaway", "img", ContainerState::Exited, Some(9_990)),
            container("young", "img", ContainerState::Exited, Some(9_990)),
        ],
    };
    let mut policy = policy();
    policy.remove_now.insert("c-runaway".into());
    let plan = plan(&inventory, &UsageMap::new(), &policy, t(10_000), u64::MAX);
    let actions: Vec<String> = plan.steps.iter().map(|s| s.action.to_string()).collect();
    assert_eq!(actions[0], "remove container runaway (c-runaway) with its anonymous volumes");
    assert!(!actions.iter().any(|a| a.contains("young")), "{actions:?}");
    assert_eq!(plan.steps[0].reason, "its task was stopped by nodewarden for filling the disk");
}

#[test]
fn a_digest_pinned_keep_pattern_keeps_the_image_it_names() {
    let digest = "registry.local/app@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";
    let mut pinned = image("pinned", Some("registry.local/app:3"), None, 10, 0);
    pinned.repo_digests = vec![digest.to_string()];
    let inventory = Inventory {
        images: vec![pinned, image("other", Some("registry.local/app:2"), None, 10, 0)],
        containers: vec![],
    };
    let mut policy = policy();
    policy.keep.push(ImagePattern::from_str(digest).unwrap());
    let plan = plan(&inventory, &known_since_built(&inventory), &policy, t(10_000), u64::MAX);
    let actions: Vec<String> = plan.steps.iter().map(|s| s.action.to_string()).collect();
    assert!(
        !actions.iter().any(|a| a.contains("registry.local/app:3")),
        "the digest-pinned image was planned: {actions:?}"
    );
    assert!(actions.iter().any(|a| a.contains("registry.local/app:2")), "{actions:?}");
}

#[test]
fn children_go_before_parents_and_a_kept_child_keeps_its_parent() {
    let inventory = Inventory {
        images: vec![
            image("base", Some("base:1"), None, 10, 0),
            image("child", Some("app/child:1"), Some("base"), 30, 0),
            image("lib", Some("lib:1"), None, 10, 0),
            image("svc", Some("keep/me:svc"), Some("lib"), 20, 0),
        ],
        containers: vec![],
    };
    let mut usage = known_since_built(&inventory);
    used(&mut usage, "base", 0, Some(10));
    used(&mut usage, "child", 0, Some(500));
    let plan = plan(&inventory, &usage, &policy(), t(10_000), u64::MAX);
    assert_eq!(removed_images(&plan), ["child", "base"], "base was used earlier but must wait for its child");
    assert_eq!(plan.steps[0].expected_bytes, 20 * MIB, "a child frees only its own layers");
    assert!(plan.kept.iter().any(|(n, k)| n == "lib:1" && *k == Kept::ParentOfKept));
}

#[test]
fn the_plan_stops_once_the_target_is_met() {
    let images = (0..5).map(|i| image(&format!("i{i}"), Some(&format!("app/i{i}:1")), None, 10, 0)).collect();
    let inventory = Inventory { images, containers: vec![] };
    let plan = plan(&inventory, &known_since_built(&inventory), &policy(), t(10_000), 25 * MIB);
    assert_eq!(plan.steps.len(), 3);
    assert_eq!(plan.expected_bytes(), 30 * MIB);
}

// --- Properties over random inventories ---

#[derive(Debug, Clone)]
struct World {
    inventory: Inventory,
    usage: UsageMap,
    target: u64,
    policy: GcPolicy,
}

/// The policy's knobs: other containers, their volumes, ECS known (naming `app/a:1`) or not,
/// past drain-at.
fn policy_of((others, volumes, ecs_known, past_drain_at): (bool, bool, bool, bool)) -> GcPolicy {
    let wanted = ecs_known.then(|| ["app/a:1".to_string()].into_iter().collect());
    GcPolicy {
        remove_other_containers: others,
        remove_other_volumes: others && volumes,
        task_images: wanted.map_or(TaskImages::Unknown, TaskImages::Known),
        past_drain_at,
        ..policy()
    }
}

fn world() -> impl Strategy<Value = World> {
    // (parent, tag, size, created, last use, keep label, last use by a container or an arrival)
    let images = proptest::collection::vec(
        (
            0usize..8,
            0u8..6,
            1u64..50,
            0u64..10_000,
            proptest::option::of(0u64..10_000),
            proptest::bool::weighted(0.1),
            any::<bool>(),
        ),
        1..14,
    );
    // (image, state, finished, from ECS, keep label)
    let containers = proptest::collection::vec(
        (0usize..14, 0u8..4, 0u64..10_000, proptest::bool::weighted(0.6), proptest::bool::weighted(0.15)),
        0..8,
    );
    let knobs = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    (images, containers, 0u64..400, knobs).prop_map(|(images, containers, target_mib, knobs)| {
        let tags = ["app/a:1", "app/b:2", "keep/me:3", "amazon/amazon-ecs-agent:v9", "x/y:z", "", "", "app/c:1"];
        let mut inventory = Inventory::default();
        let mut usage = UsageMap::new();
        for (index, (parent_pick, tag_pick, size, created, last, keep, by_container)) in images.into_iter().enumerate()
        {
            // Parents always come earlier, so the graph has no cycles.
            let parent = (index > 0 && parent_pick < index).then(|| format!("i{parent_pick}"));
            let tag = tags[tag_pick as usize];
            let mut img =
                image(&format!("i{index}"), (!tag.is_empty()).then_some(tag), parent.as_deref(), size, created);
            if let Some(parent) = &parent {
                let parent_size = inventory.images.iter().find(|p| p.id == format!("sha256:{parent}")).map(|p| p.size);
                img.size += parent_size.unwrap_or(0);
            }
            if keep {
                img.labels = labels(&[(KEEP_LABEL, "true")]);
            }
            inventory.images.push(img);
            used(&mut usage, &format!("i{index}"), created, last);
            if !by_container {
                // Its last event was an arrival (a pull, a tag) after any container's use.
                let entry = usage.get_mut(&format!("sha256:i{index}")).expect("just inserted");
                entry.last_container_use = entry.last_used.and_then(|l| l.checked_sub(Duration::from_secs(1)));
            }
        }
        let count = inventory.images.len();
        for (index, (image_pick, state, finished, ecs, keep)) in containers.into_iter().enumerate() {
            let state =
                [ContainerState::Running, ContainerState::Exited, ContainerState::Created, ContainerState::Dead]
                    [state as usize];
            let name = if index == 0 { AGENT_CONTAINER.to_string() } else { format!("c{index}") };
            let make = if ecs { container } else { other_container };
            let mut c =
                make(&name, &format!("i{}", image_pick % count), state, state.is_finished().then_some(finished));
            c.id = format!("c-{index}");
            if keep {
                c.labels.insert(KEEP_LABEL.into(), String::new());
            }
            inventory.containers.push(c);
        }
        World { inventory, usage, target: target_mib * MIB, policy: policy_of(knobs) }
    })
}

proptest! {
    #[test]
    fn plans_keep_every_invariant(world in world()) {
        let now = t(10_000);
        let policy = world.policy.clone();
        let plan = plan(&world.inventory, &world.usage, &policy, now, world.target);
        let by_id: BTreeMap<&str, &Image> = world.inventory.images.iter().map(|i| (i.id.as_str(), i)).collect();
        let removed_containers: BTreeSet<&str> = plan.steps.iter().filter_map(|s| match &s.action {
            Action::RemoveContainer { id, .. } => Some(id.as_str()),
            _ => None,
        }).collect();
        let image_steps: Vec<&str> = plan.steps.iter().filter_map(|s| match &s.action {
            Action::RemoveImage { id, .. } => Some(id.as_str()),
            _ => None,
        }).collect();
        let position: BTreeMap<&str, usize> = image_steps.iter().enumerate().map(|(i, id)| (*id, i)).collect();

        for c in &world.inventory.containers {
            if removed_containers.contains(c.id.as_str()) {
                prop_assert!(c.state.is_finished() && c.name != AGENT_CONTAINER);
                prop_assert!(!c.has_keep_label(), "{} carries the keep label", c.name);
                prop_assert!(c.is_ecs_task() || policy.remove_other_containers, "{} is not an ECS task's", c.name);
                let volumes = plan.steps.iter().find_map(|s| match &s.action {
                    Action::RemoveContainer { id, volumes, .. } if *id == c.id => Some(*volumes),
                    _ => None,
                });
                prop_assert_eq!(volumes, Some(c.is_ecs_task() || policy.remove_other_volumes), "{}'s volumes", &c.name);
                let finished = c.finished_at.unwrap_or(c.created);
                prop_assert!(now.duration_since(finished).unwrap_or_default() >= policy.exited_container_min_age);
            } else {
                // No image a remaining container references, running or stopped, is removed.
                prop_assert!(!position.contains_key(c.image_id.as_str()), "{} is used by {}", c.image_id, c.name);
            }
        }
        for id in &image_steps {
            let image = by_id[id];
            prop_assert!(policy.protecting_pattern(image).is_none(), "{id} is protected");
            prop_assert!(!has_keep_label(&image.labels), "{id} carries the keep label");
            if let TaskImages::Known(wanted) = &policy.task_images {
                prop_assert!(image.repo_tags.iter().all(|t| !wanted.contains(t)), "{id} is a task's");
            } else if !policy.past_drain_at {
                prop_assert!(world.usage[*id].used_by_a_container_since_it_arrived(), "{id} is of unknown use");
            }
            let first_seen = world.usage[*id].first_seen.max(image.created);
            prop_assert!(now.duration_since(first_seen).unwrap_or_default() >= policy.min_image_age, "{id} is too young");
            // Children before parents, and no parent while a child stays.
            for child in world.inventory.images.iter().filter(|i| i.parent_id.as_deref() == Some(*id)) {
                let child_position = position.get(child.id.as_str());
                prop_assert!(child_position.is_some_and(|p| *p < position[id]), "{id} planned before or without its child {}", child.id);
            }
        }
        // LRU: an image planned after a less recently used one was waiting for a child.
        let key = |id: &str| {
            let u = &world.usage[id];
            (u.last_used.unwrap_or(u.first_seen), by_id[id].created, id.to_string())
        };
        for (i, a) in image_steps.iter().enumerate() {
            for b in &image_steps[i + 1..] {
                if key(b) < key(a) {
                    let waited = world.inventory.images.iter().any(|c| c.parent_id.as_deref() == Some(*b) && position.get(c.id.as_str()).is_some_and(|p| *p >= i));
                    prop_assert!(waited, "{b} is less recently used than {a} but came later without waiting for a child");
                }
            }
        }
        // It stops once the target is met: every step but the last was still needed.
        let mut freed = 0;
        for (index, step) in plan.steps.iter().enumerate() {
            prop_assert!(freed < world.target, "step {index} came after the target was met");
            freed += step.expected_bytes;
        }
    }
}

#[test]
fn references_normalize_as_docker_lists_them() {
    let table = [
        ("nginx", "nginx:latest"),
        ("nginx:1.25", "nginx:1.25"),
        ("library/nginx:1.25", "nginx:1.25"),
        ("docker.io/library/nginx", "nginx:latest"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("localhost:5000/app:7", "localhost:5000/app:7"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:42", "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:42"),
        ("public.ecr.aws/x/y@sha256:abc", "public.ecr.aws/x/y@sha256:abc"),
    ];
    for (reference, normalized) in table {
        assert_eq!(normalize_reference(reference), normalized, "{reference}");
    }
}

#[test]
fn an_image_a_task_on_this_instance_names_is_kept_though_no_container_uses_it_yet() {
    let inventory = Inventory {
        images: vec![image("pending", Some("shop/web:42"), None, 10, 0), image("old", Some("old/job:1"), None, 10, 0)],
        containers: vec![],
    };
    let mut policy = policy();
    policy.task_images = TaskImages::Known(["docker.io/shop/web:42"].iter().map(|r| normalize_reference(r)).collect());
    let plan = plan(&inventory, &known_since_built(&inventory), &policy, t(10_000), u64::MAX);
    assert_eq!(removed_images(&plan), ["old"]);
    let kept: BTreeMap<String, String> = plan.kept.iter().map(|(n, k)| (n.clone(), k.to_string())).collect();
    assert_eq!(kept["shop/web:42"], "wanted by a task ECS placed here (shop/web:42)");
}

#[test]
fn only_an_ecs_tasks_stopped_container_goes_unless_the_operator_opted_in_and_a_keep_label_always_holds() {
    let keep = |mut c: Container, value: &str| {
        c.labels.insert(KEEP_LABEL.into(), value.into());
        c
    };
    let inventory = Inventory {
        images: vec![image("img", Some("app/img:1"), None, 10, 0)],
        containers: vec![
            container("task", "img", ContainerState::Exited, Some(0)),
            other_container("by-hand", "img", ContainerState::Exited, Some(0)),
            keep(container("kept-task", "img", ContainerState::Exited, Some(0)), "true"),
            keep(other_container("kept-empty", "img", ContainerState::Dead, Some(0)), ""),
            keep(other_container("keep-false", "img", ContainerState::Exited, Some(0)), "false"),
        ],
    };
    // (remove-other-containers, remove-other-volumes) → the containers' removal lines, and kept.
    type Case<'a> = ((bool, bool), &'a [&'a str], &'a [&'a str]);
    let table: &[Case] = &[
        (
            (false, false),
            &["remove container task (c-task) with its anonymous volumes"],
            &["container by-hand", "container kept-task", "container kept-empty", "container keep-false"],
        ),
        (
            (true, false),
            &[
                "remove container by-hand (c-by-hand)",
                "remove container keep-false (c-keep-false)",
                "remove container task (c-task) with its anonymous volumes",
            ],
            &["container kept-task", "container kept-empty"],
        ),
        (
            (true, true),
            &[
                "remove container by-hand (c-by-hand) with its anonymous volumes",
                "remove container keep-false (c-keep-false) with its anonymous volumes",
                "remove container task (c-task) with its anonymous volumes",
            ],
            &["container kept-task", "container kept-empty"],
        ),
    ];
    for ((others, volumes), removed, kept) in table {
        let policy = GcPolicy { remove_other_containers: *others, remove_other_volumes: *volumes, ..policy() };
        let plan = plan(&inventory, &known_since_built(&inventory), &policy, t(10_000), u64::MAX);
        let actions: Vec<String> = plan.steps.iter().map(|s| s.action.to_string()).collect();
        let containers: Vec<&str> =
            actions.iter().map(String::as_str).filter(|a| a.starts_with("remove container")).collect();
        assert_eq!(containers, *removed, "others {others}, volumes {volumes}");
        let kept_names: Vec<&str> =
            plan.kept.iter().map(|(n, _)| n.as_str()).filter(|n| n.starts_with("container ")).collect();
        assert_eq!(kept_names, *kept, "others {others}, volumes {volumes}");
        assert!(!actions.iter().any(|a| a.contains("app/img")), "kept containers keep their image: {actions:?}");
    }
    let plan = plan(&inventory, &known_since_built(&inventory), &policy(), t(10_000), u64::MAX);
    let kept: BTreeMap<String, String> = plan.kept.iter().map(|(n, k)| (n.clone(), k.to_string())).collect();
    assert_eq!(kept["container by-hand"], "not an ECS task's container ([gc] remove-other-containers is off)");
    assert_eq!(kept["container kept-task"], "labelled nodewarden.keep");
}

#[test]
fn the_keep_label_protects_an_image_no_container_uses() {
    let mut labelled = image("labelled", Some("app/labelled:1"), None, 10, 0);
    labelled.labels = labels(&[(KEEP_LABEL, "TRUE")]);
    let mut unlabelled = image("unlabelled", Some("app/unlabelled:1"), None, 10, 0);
    unlabelled.labels = labels(&[(KEEP_LABEL, "no")]);
    let inventory = Inventory { images: vec![labelled, unlabelled], containers: vec![] };
    let plan = plan(&inventory, &known_since_built(&inventory), &policy(), t(10_000), u64::MAX);
    assert_eq!(removed_images(&plan), ["unlabelled"]);
    assert!(plan.kept.iter().any(|(n, k)| n == "app/labelled:1" && *k == Kept::KeepLabel), "{:?}", plan.kept);
}

#[test]
fn with_ecs_unknown_an_image_no_container_used_since_it_arrived_stays_below_drain_at() {
    let inventory = Inventory {
        images: vec![
            image("ran", Some("app/ran:1"), None, 10, 0),
            image("pulled", Some("app/pulled:1"), None, 10, 0),
            image("repulled", Some("app/repulled:1"), None, 10, 0),
            image("listed", Some("app/listed:1"), None, 10, 0),
        ],
        containers: vec![],
    };
    let mut usage = UsageMap::new();
    // A container ran on it, and nothing put it here since.
    used(&mut usage, "ran", 0, Some(500));
    // Pulled (an arrival), never run: a PENDING task's image looks like this.
    usage.insert(
        "sha256:pulled".into(),
        Usage { first_seen: t(100), last_used: Some(t(600)), last_container_use: None },
    );
    // Run once, then pulled again: the new pull may be for a task about to start.
    usage.insert(
        "sha256:repulled".into(),
        Usage { first_seen: t(0), last_used: Some(t(700)), last_container_use: Some(t(400)) },
    );
    // First seen by a listing, no event ever.
    usage.insert("sha256:listed".into(), Usage { first_seen: t(0), last_used: None, last_container_use: None });
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let cases: &[(TaskImages, bool, &[&str])] = &[
        (TaskImages::Unknown, false, &["ran"]),
        (TaskImages::Unknown, true, &["listed", "pulled", "ran", "repulled"]),
        (TaskImages::Known(BTreeSet::new()), false, &["listed", "pulled", "ran", "repulled"]),
        (TaskImages::Known(["app/pulled:1".to_string()].into()), false, &["listed", "ran", "repulled"]),
    ];
    for (task_images, past_drain_at, removed) in cases {
        let policy = GcPolicy { task_images: task_images.clone(), past_drain_at: *past_drain_at, ..policy() };
        let plan = plan(&inventory, &usage, &policy, t(10_000), u64::MAX);
        assert_eq!(sorted(removed_images(&plan)), *removed, "{task_images:?}, past drain-at {past_drain_at}");
        let unknown: Vec<&str> =
            plan.kept.iter().filter(|(_, k)| *k == Kept::UnknownUse).map(|(n, _)| n.as_str()).collect();
        if *task_images == TaskImages::Unknown && !past_drain_at {
            assert_eq!(unknown, ["app/pulled:1", "app/repulled:1", "app/listed:1"]);
        } else {
            assert!(unknown.is_empty(), "{unknown:?}");
        }
    }
    let policy = GcPolicy { task_images: TaskImages::Unknown, past_drain_at: true, ..policy() };
    let plan = plan(&inventory, &usage, &policy, t(10_000), u64::MAX);
    let reasons: BTreeMap<String, String> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::RemoveImage { tags, .. } => Some((tags[0].clone(), s.reason.clone())),
            _ => None,
        })
        .collect();
    assert!(
        reasons["app/pulled:1"].ends_with("ECS cannot say whether a task waits for it, and the disk is past drain-at")
    );
    assert!(!reasons["app/ran:1"].contains("ECS"), "{}", reasons["app/ran:1"]);
}
