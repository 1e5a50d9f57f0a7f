//! GC on a real dockerd with a small loop disk: LRU removal down to gc-stop with every
//! protected image kept; reaction to a container filling its writable layer (no Docker event);
//! last use surviving restarts; `gc --dry-run` printing the plan a real run executes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use nodewarden::disk;

use crate::harness::daemon::{Nodewarden, fill};
use crate::harness::docker::TestDocker;
use crate::harness::events::Recorder;
use crate::harness::images;

const MIB: u64 = 1 << 20;

fn settings(extra: &str) -> String {
    format!("[ecs]\ncluster = \"test\"\n[docker]\ndata-device = \"none\"\n{extra}")
}

fn docker_env(docker: &TestDocker) -> Vec<(String, String)> {
    vec![("DOCKER_HOST".into(), docker.host())]
}

/// Creates, runs and removes a container on `image`: create/start/die/destroy events.
async fn use_image(docker: &Docker, image: &str) {
    let id = images::run_to_completion(docker, image, &["true"]).await;
    let remove = RemoveContainerOptionsBuilder::default().build();
    docker.remove_container(&id, Some(remove)).await.expect("removing a finished container");
}

async fn image_exists(docker: &Docker, reference: &str) -> bool {
    docker.inspect_image(reference).await.is_ok()
}

/// Fills Docker's filesystem with a plain file until `fraction` of it is used.
fn fill_to(data_root: &Path, fraction: f64) {
    let sample = disk::probe(data_root).expect("measuring the data root");
    let wanted = (sample.total_bytes as f64 * fraction) as u64;
    let bytes = wanted.saturating_sub(sample.used_bytes());
    fill(&data_root.join("filler"), bytes);
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_unused_images_least_recently_used_first_and_keeps_protected_ones() {
    let docker = TestDocker::start().await;
    let client = docker.client.clone();
    let size = 25 * MIB;
    for name in ["lru/a1", "lru/a2", "lru/a3", "lru/a4", "lru/a5", "lru/a6", "keep/me", "run/img", "stop/img"] {
        images::make_image(&client, &format!("{name}:1"), size).await;
    }
    let made = Instant::now();
    images::start_sleeper(&client, "run/img:1", "running-task").await;
    images::run_to_completion(&client, "stop/img:1", &["true"]).await; // stays as an exited container

    let mut nodewarden = Nodewarden::new(
        &settings(
            "[disk]\ncheck-interval = \"1s\"\ngc-start = \"70%\"\ngc-stop = \"60%\"\ndrain-at = \"95%\"\nrecover-below = \"50%\"\n\
             [gc]\nmin-image-age = \"20s\"\nexited-container-min-age = \"10m\"\nkeep-images = [\"keep/me:*\"]\n",
        ),
        docker_env(&docker),
    );
    nodewarden.start();
    nodewarden.wait_for_state_file("image-usage.json", Duration::from_secs(30)).await;
    // Used in a known order while the daemon listens: a3, then a1, then a5.
    for name in ["lru/a3:1", "lru/a1:1", "lru/a5:1"] {
        use_image(&client, name).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The first images pass min-image-age; the next one is made just before the disk fills.
    tokio::time::sleep(Duration::from_secs(21).saturating_sub(made.elapsed())).await;
    // Small: committing briefly holds the layer twice, and a big one would itself cross gc-start.
    images::make_image(&client, "young/img:1", MIB).await;
    let ids: BTreeMap<String, String> = {
        let mut ids = BTreeMap::new();
        for name in ["lru/a1", "lru/a2", "lru/a3", "lru/a4", "lru/a5", "lru/a6"] {
            let id = client.inspect_image(&format!("{name}:1")).await.expect("inspecting").id.expect("an id");
            ids.insert(id, name.to_string());
        }
        ids
    };

    let recorder = Recorder::start(&client).await;
    fill_to(&docker.data_root, 0.73);
    wait_until("usage below gc-stop", Duration::from_secs(60), async || {
        nodewarden.assert_running();
        disk::probe(&docker.data_root).unwrap().used_fraction() < 0.60
    })
    .await;

    let removed: Vec<String> =
        recorder.deleted_images().into_iter().filter_map(|(_, id)| ids.get(&id).cloned()).collect();
    let lru = ["lru/a2", "lru/a4", "lru/a6", "lru/a3", "lru/a1", "lru/a5"];
    assert!(removed.len() >= 2, "GC should have needed several images: {removed:?}\n{}", nodewarden.log());
    // Removals the plan knows are all needed run together, so compare as sets.
    let mut removed_sorted = removed.clone();
    removed_sorted.sort();
    let mut prefix: Vec<String> = lru[..removed.len()].iter().map(|s| s.to_string()).collect();
    prefix.sort();
    assert_eq!(removed_sorted, prefix, "not the least recently used images\n{}", nodewarden.log());
    for kept in ["keep/me:1", "run/img:1", "stop/img:1", "young/img:1", images::BASE_IMAGE] {
        assert!(image_exists(&client, kept).await, "{kept} was removed\n{}", nodewarden.log());
    }
    for name in &lru[removed.len()..] {
        assert!(image_exists(&client, &format!("{name}:1")).await, "{name} went although usage was met");
    }
    // The run is reported once the daemon collects it, at its next check.
    nodewarden.wait_log(&["gc done"], Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_starts_within_two_check_intervals_when_a_container_fills_its_writable_layer() {
    let docker = TestDocker::start().await;
    let client = docker.client.clone();
    for name in ["old/x1", "old/x2", "old/x3"] {
        images::make_image(&client, &format!("{name}:1"), 20 * MIB).await;
    }
    let mut nodewarden = Nodewarden::new(
        &settings(
            "[disk]\ncheck-interval = \"1s\"\ngc-start = \"50%\"\ngc-stop = \"45%\"\ndrain-at = \"95%\"\nrecover-below = \"40%\"\n\
             [gc]\nmin-image-age = \"0s\"\n",
        ),
        docker_env(&docker),
    );
    nodewarden.start();
    nodewarden.wait_for_state_file("image-usage.json", Duration::from_secs(30)).await;
    let recorder = Recorder::start(&client).await;

    // A container writes into its own writable layer: Docker emits no event for that.
    let sample = disk::probe(&docker.data_root).unwrap();
    let to_write = ((sample.total_bytes as f64 * 0.55) as u64).saturating_sub(sample.used_bytes()) / MIB + 1;
    let script = format!("dd if=/dev/zero of=/fill bs=1M count={to_write} && sleep 3600");
    images::start_sleeper(&client, images::base_image(&client).await, "writer").await;
    let writer = images::create_container(&client, images::BASE_IMAGE, Some("filler"), &["sh", "-c", &script]).await;
    client.start_container(&writer, None).await.expect("starting the writer");

    // The test watches the same filesystem to know when gc-start was crossed.
    let crossed = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if disk::probe(&docker.data_root).unwrap().used_fraction() >= 0.50 {
                break SystemTime::now();
            }
            assert!(Instant::now() < deadline, "the writer never crossed gc-start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_until("the first image removal", Duration::from_secs(30), async || {
        nodewarden.assert_running();
        !recorder.deleted_images().is_empty()
    })
    .await;
    let (first_removal, _) = recorder.deleted_images()[0].clone();
    let reaction = first_removal.duration_since(crossed).unwrap_or_default();
    assert!(
        reaction <= Duration::from_secs(2),
        "GC started {reaction:?} after gc-start was crossed (2 check intervals allowed)\n{}",
        nodewarden.log()
    );
}

fn last_used(state_dir: &Path, image_id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(state_dir.join("image-usage.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["images"][image_id]["last_used"].as_f64()
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn last_use_survives_a_nodewarden_restart_and_a_docker_restart() {
    let mut docker = TestDocker::start().await;
    let client = docker.client.clone();
    let u1 = images::make_image(&client, "use/u1:1", MIB).await;
    let u2 = images::make_image(&client, "use/u2:1", MIB).await;
    let mut nodewarden = Nodewarden::new(&settings(""), docker_env(&docker));
    nodewarden.start();
    let state = nodewarden.state_dir();
    nodewarden.wait_for_state_file("image-usage.json", Duration::from_secs(30)).await;

    let before_u1 = unix_now();
    use_image(&client, "use/u1:1").await;
    wait_until("u1's use to be saved", Duration::from_secs(20), async || {
        last_used(&state, &u1).is_some_and(|t| t >= before_u1 - 1.0)
    })
    .await;
    assert_eq!(nodewarden.stop(), Some(0), "SIGTERM is a clean stop");
    let stopped_at = unix_now();
    // As saved on the clean stop. The use's later events (die, destroy) may land after the
    // first save, or be replayed on the next start: the last use may move up to the stop,
    // never back and never past it.
    let u1_used = last_used(&state, &u1).expect("u1's use saved on stop");

    // Used while nodewarden is down: replayed from Docker's events on the next start.
    let before_u2 = unix_now();
    use_image(&client, "use/u2:1").await;
    nodewarden.start();
    wait_until("u2's use to be replayed", Duration::from_secs(20), async || {
        last_used(&state, &u2).is_some_and(|t| t >= before_u2 - 1.0)
    })
    .await;
    let u1_restarted = last_used(&state, &u1).expect("u1's last use after the restart");
    assert!(
        (u1_used..=stopped_at).contains(&u1_restarted),
        "u1's last use survives the nodewarden restart: {u1_used} saved, {u1_restarted} after, stopped at {stopped_at}"
    );
    nodewarden.stop();
    // Docker's event history goes with its restart: nothing is replayed, nothing may change.
    let u1_used = last_used(&state, &u1);

    docker.restart().await;
    nodewarden.start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    nodewarden.assert_running();
    assert_eq!(last_used(&state, &u1), u1_used, "u1's last use survives the Docker restart");
    assert!(last_used(&state, &u2).is_some_and(|t| t >= before_u2 - 1.0), "u2 too");
}

/// The action part of the numbered plan lines `  N. <action>  (<reason>; ~<bytes>)`.
fn plan_actions(stdout: &str) -> Vec<String> {
    let plan = stdout.split("\nplan (").nth(1).unwrap_or_default();
    let plan = plan.split("\n\n").next().unwrap_or_default();
    plan.lines()
        .filter_map(|line| line.trim_start().split_once(". ").map(|(_, rest)| rest))
        .map(|rest| rest.split("  (").next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_dry_run_removes_nothing_and_prints_the_plan_a_real_run_executes() {
    let docker = TestDocker::start().await;
    let client = docker.client.clone();
    for name in ["dry/d1", "dry/d2", "dry/d3", "dry/d4"] {
        images::make_image(&client, &format!("{name}:1"), 20 * MIB).await;
    }
    images::start_sleeper(&client, "dry/d4:1", "busy").await;
    let nodewarden = Nodewarden::new(
        &settings(
            "[disk]\ngc-start = \"70%\"\ngc-stop = \"60%\"\nrecover-below = \"50%\"\n[gc]\nmin-image-age = \"0s\"\n",
        ),
        docker_env(&docker),
    );
    fill_to(&docker.data_root, 0.66);
    let images_before = client.list_images(None::<bollard::query_parameters::ListImagesOptions>).await.unwrap().len();

    let dry = nodewarden.command(&["gc", "--dry-run"]).output().expect("running gc --dry-run");
    let dry_out = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert_eq!(dry.status.code(), Some(0), "{dry_out}{}", String::from_utf8_lossy(&dry.stderr));
    let planned = plan_actions(&dry_out);
    assert!(!planned.is_empty(), "a plan was expected:\n{dry_out}");
    assert!(dry_out.contains("dry run: nothing was removed"), "{dry_out}");
    assert!(dry_out.contains("dry/d4:1: in use by busy"), "{dry_out}");
    let images_after = client.list_images(None::<bollard::query_parameters::ListImagesOptions>).await.unwrap().len();
    assert_eq!(images_before, images_after, "the dry run removed something");

    let real = nodewarden.command(&["gc"]).output().expect("running gc");
    let real_out = String::from_utf8_lossy(&real.stdout).into_owned();
    assert_eq!(real.status.code(), Some(0), "{real_out}{}", String::from_utf8_lossy(&real.stderr));
    assert_eq!(plan_actions(&real_out), planned, "the real run planned something else:\n{dry_out}\n---\n{real_out}");
    let done: Vec<&str> = real_out.lines().filter(|l| l.ends_with(": done")).collect();
    assert!(!done.is_empty(), "{real_out}");
    for (line, action) in done.iter().zip(&planned) {
        assert!(line.contains(action.as_str()), "executed out of plan order: {line} vs {action}");
    }
    assert!(disk::probe(&docker.data_root).unwrap().used_fraction() < 0.60, "{real_out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_moved_to_a_newer_image_after_planning_is_not_stripped_from_it() {
    use bollard::query_parameters::TagImageOptionsBuilder;
    use nodewarden::gc::{Action, Plan, Step, execute};
    let docker = TestDocker::start().await;
    let client = &docker.client;
    let old = images::import_tiny(client, "app/web:1").await;
    let latest = TagImageOptionsBuilder::default().repo("app/web").tag("latest").build();
    client.tag_image(&old, Some(latest)).await.unwrap();
    // Planned while both tags named the old image…
    let plan = Plan {
        target_bytes: u64::MAX,
        steps: vec![Step {
            action: Action::RemoveImage { id: old.clone(), tags: vec!["app/web:1".into(), "app/web:latest".into()] },
            reason: "unused".into(),
            expected_bytes: 1,
        }],
        kept: vec![],
    };
    // …then the agent pulled a newer app/web:latest, about to start a task on it.
    let newer = images::import_tiny(client, "app/web:latest").await;
    assert_ne!(newer, old);
    let report = execute(client, &plan, 1.0, || None).await;
    let latest_now = client.inspect_image("app/web:latest").await.ok().and_then(|i| i.id);
    assert_eq!(latest_now.as_deref(), Some(newer.as_str()), "the newer image lost its tag; report: {report:?}");
    assert!(!image_exists(client, &old).await, "the old image should be gone: {report:?}");
    assert_eq!(report.images_removed, 1, "{report:?}");
}
