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

/// Docker, and no AWS: IMDS and the agent on a loopback port nothing listens on (ECS then
/// cannot be asked which images the tasks want: GC plans with that unknown).
fn docker_env(docker: &TestDocker) -> Vec<(String, String)> {
    vec![
        ("DOCKER_HOST".into(), docker.host()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), "http://127.0.0.1:9".into()),
        ("NODEWARDEN_AGENT_INTROSPECTION".into(), "http://127.0.0.1:9".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
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
    // Used in a known order while the daemon listens: a2, a4, a6, then a3, a1, a5. (ECS
    // cannot be asked here, so an image no container used is kept as maybe a pending task's.)
    for name in ["lru/a2:1", "lru/a4:1", "lru/a6:1", "lru/a3:1", "lru/a1:1", "lru/a5:1"] {
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
    // Used by a container: GC may take them though ECS cannot be asked here.
    for name in ["old/x1:1", "old/x2:1", "old/x3:1"] {
        use_image(&client, name).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
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
    // Past drain-at: ECS cannot be asked here, and images no container used go only there.
    let nodewarden = Nodewarden::new(
        &settings(
            "[disk]\ngc-start = \"62%\"\ngc-stop = \"60%\"\ndrain-at = \"65%\"\nrecover-below = \"50%\"\n\
             [gc]\nmin-image-age = \"0s\"\n",
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
    assert!(dry_out.contains("ECS cannot say whether a task waits for it, and the disk is past drain-at"), "{dry_out}");
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

/// Runs `script` to exit 0 in a new container named `name` on the base image, with `labels`,
/// anonymous volumes at `anonymous` and `binds` (a `name:/path` bind makes a named volume).
async fn run_with_volumes(
    client: &Docker,
    name: &str,
    labels: &[(&str, &str)],
    anonymous: &[&str],
    binds: &[&str],
    script: &str,
) -> String {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use futures_util::StreamExt;
    let base = images::base_image(client).await;
    let body = ContainerCreateBody {
        image: Some(base.to_string()),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        volumes: Some(anonymous.iter().map(|v| v.to_string()).collect()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            binds: Some(binds.iter().map(|b| b.to_string()).collect()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default().name(name).build();
    let id = client.create_container(Some(options), body).await.unwrap_or_else(|e| panic!("creating {name}: {e}")).id;
    client.start_container(&id, None).await.unwrap_or_else(|e| panic!("starting {name}: {e}"));
    let mut wait = client.wait_container(&id, None);
    while let Some(result) = wait.next().await {
        assert_eq!(result.unwrap_or_else(|e| panic!("{name} failed: {e}")).status_code, 0, "{name} failed");
    }
    id
}

/// The volume mounted at `destination` in container `id`.
async fn volume_at(client: &Docker, id: &str, destination: &str) -> String {
    let inspect = client.inspect_container(id, None).await.expect("inspecting a container");
    let mounts = inspect.mounts.unwrap_or_default();
    let mount = mounts.iter().find(|m| m.destination.as_deref() == Some(destination)).expect("the volume's mount");
    mount.name.clone().expect("a volume's name")
}

/// The content of `file` in volume `name`, if the volume and the file are there.
async fn volume_file(client: &Docker, name: &str, file: &str) -> Option<String> {
    let volume = client.inspect_volume(name).await.ok()?;
    std::fs::read_to_string(Path::new(&volume.mountpoint).join(file)).ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_container_not_from_ecs_and_its_volume_survive_gc_under_pressure_an_ecs_tasks_go() {
    let docker = TestDocker::start().await;
    let client = docker.client.clone();
    let task = |name: &'static str| [("com.amazonaws.ecs.task-arn", name), ("com.amazonaws.ecs.container-name", "app")];
    // Started by hand: a stopped database, say. Its data in an anonymous volume, and a writable
    // layer big enough that GC would take it if it could.
    let by_hand = run_with_volumes(
        &client,
        "by-hand-db",
        &[],
        &["/data"],
        &[],
        "echo precious > /data/file && head -c 30000000 /dev/urandom > /layer",
    )
    .await;
    let by_hand_volume = volume_at(&client, &by_hand, "/data").await;
    // An ECS task's finished container, with an anonymous volume: goes, volume too, as the agent's cleanup.
    let arn_done = "arn:aws:ecs:us-east-1:123456789012:task/test/done";
    let ecs_done =
        run_with_volumes(&client, "ecs-done", &task(arn_done), &["/scratch"], &[], "echo x > /scratch/f").await;
    let ecs_done_volume = volume_at(&client, &ecs_done, "/scratch").await;
    // An ECS task's, with a named volume: the container goes, the named volume never does.
    let arn_named = "arn:aws:ecs:us-east-1:123456789012:task/test/named";
    run_with_volumes(&client, "ecs-named", &task(arn_named), &[], &["shared-data:/shared"], "echo kept > /shared/f")
        .await;
    // An ECS task's with the keep label: stays.
    let arn_kept = "arn:aws:ecs:us-east-1:123456789012:task/test/kept";
    let mut kept_labels = task(arn_kept).to_vec();
    kept_labels.push(("nodewarden.keep", "true"));
    run_with_volumes(&client, "ecs-kept", &kept_labels, &[], &[], "true").await;
    // Images a container used (so GC may take them though ECS cannot be asked here).
    for name in ["old/o1:1", "old/o2:1"] {
        images::make_image(&client, name, 20 * MIB).await;
    }

    let settings_text = settings(
        "[disk]\ncheck-interval = \"1s\"\ngc-start = \"60%\"\ngc-stop = \"20%\"\ndrain-at = \"95%\"\nrecover-below = \"10%\"\n\
         [gc]\nmin-image-age = \"0s\"\nexited-container-min-age = \"0s\"\n",
    );
    let mut nodewarden = Nodewarden::new(&settings_text, docker_env(&docker));
    nodewarden.start();
    nodewarden.wait_for_state_file("image-usage.json", Duration::from_secs(30)).await;
    for name in ["old/o1:1", "old/o2:1"] {
        use_image(&client, name).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recorder = Recorder::start(&client).await;
    fill_to(&docker.data_root, 0.63);
    // gc-stop is out of reach: GC takes everything it may, then says what blocked it.
    nodewarden.wait_log(&["gc could not reach gc-stop"], Duration::from_secs(60)).await;
    let log = nodewarden.log();

    assert!(client.inspect_container("ecs-done", None).await.is_err(), "the ECS task's container stays:\n{log}");
    assert!(client.inspect_volume(&ecs_done_volume).await.is_err(), "its anonymous volume stays:\n{log}");
    assert!(client.inspect_container("ecs-named", None).await.is_err(), "the ECS task's container stays:\n{log}");
    assert_eq!(
        volume_file(&client, "shared-data", "f").await.as_deref(),
        Some("kept\n"),
        "a named volume went:\n{log}"
    );
    assert!(!recorder.deleted_images().is_empty(), "GC removed no image:\n{log}");

    assert!(client.inspect_container("ecs-kept", None).await.is_ok(), "the keep label did not hold:\n{log}");
    assert!(client.inspect_container("by-hand-db", None).await.is_ok(), "a container not from ECS was removed:\n{log}");
    assert_eq!(
        volume_file(&client, &by_hand_volume, "file").await.as_deref(),
        Some("precious\n"),
        "its volume's file is gone:\n{log}"
    );
    assert!(log.contains("container by-hand-db: not an ECS task's container"), "not said what blocked:\n{log}");
    nodewarden.stop();

    // Opted in to other containers but not their volumes: the container goes, the file stays.
    std::fs::write(&nodewarden.settings, settings_text.replace("[gc]\n", "[gc]\nremove-other-containers = true\n"))
        .expect("rewriting the settings");
    let run = nodewarden.command(&["gc"]).output().expect("running gc");
    let out = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "{out}");
    let line = out.lines().find(|l| l.contains("remove container by-hand-db (")).unwrap_or_else(|| panic!("{out}"));
    assert!(!line.contains("with its anonymous volumes"), "{line}");
    assert!(client.inspect_container("by-hand-db", None).await.is_err(), "opted in, yet kept:\n{out}");
    assert_eq!(
        volume_file(&client, &by_hand_volume, "file").await.as_deref(),
        Some("precious\n"),
        "its anonymous volume went without remove-other-volumes:\n{out}"
    );
    assert!(client.inspect_container("ecs-kept", None).await.is_ok(), "the keep label did not hold:\n{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_asks_ecs_keeps_a_pending_tasks_image_and_when_ecs_cannot_answer_keeps_images_no_container_used() {
    use crate::harness::imds::ImdsServer;
    use crate::harness::moto::Moto;
    let docker = TestDocker::start().await;
    let client = docker.client.clone();
    // Pulled for a task ECS placed here that has no container yet, and an old job's.
    images::make_image(&client, "shop/web:42", 20 * MIB).await;
    images::make_image(&client, "old/job:1", 20 * MIB).await;
    let gc_settings = settings(
        "[disk]\ngc-start = \"70%\"\ngc-stop = \"60%\"\ndrain-at = \"92%\"\nrecover-below = \"50%\"\n\
         [gc]\nmin-image-age = \"0s\"\n",
    );
    fill_to(&docker.data_root, 0.68);
    let output = |command: &mut std::process::Command| {
        let output = command.output().expect("running gc --dry-run");
        let all = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.status.code(), Some(0), "{all}");
        all
    };

    // ECS cannot be asked (IMDS does not answer): below drain-at, neither image goes.
    let unreachable = Nodewarden::new(&gc_settings, docker_env(&docker));
    let out = output(&mut unreachable.command(&["gc", "--dry-run"]));
    assert!(out.contains("warning: cannot ask ECS which images this instance's tasks want"), "{out}");
    assert!(!out.contains("remove image"), "{out}");
    for image in ["shop/web:42", "old/job:1"] {
        assert!(out.contains(&format!("{image}: no container has used it since it arrived")), "{image}:\n{out}");
    }

    // ECS answers: the old job's image goes, the task's stays.
    let moto = Moto::start().await;
    let imds = ImdsServer::start().await;
    let (instance_id, arn) = moto.register_cluster("test", 1).await.remove(0);
    imds.state().instance_id = instance_id;
    let ecs = moto.ecs().await;
    let definition =
        aws_sdk_ecs::types::ContainerDefinition::builder().name("web").image("shop/web:42").memory(64).build();
    ecs.register_task_definition().family("web").container_definitions(definition).send().await.unwrap();
    ecs.start_task().cluster("test").task_definition("web").container_instances(&arn).send().await.unwrap();
    let asking = Nodewarden::new(&gc_settings, moto.node_env(docker.host(), imds.endpoint(), "gc"));
    let out = output(&mut asking.command(&["gc", "--dry-run"]));
    assert!(!out.contains("warning: cannot ask ECS"), "{out}");
    assert!(out.contains("remove image old/job:1"), "{out}");
    assert!(out.contains("shop/web:42: wanted by a task ECS placed here (shop/web:42)"), "{out}");
}
