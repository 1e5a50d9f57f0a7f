//! `nodewarden gc [--dry-run]`: plan a garbage collection of Docker's disk down to `gc-stop`
//! and print it for a person (what, why, bytes); without `--dry-run`, then run it once. Like
//! the daemon, it asks ECS which images this instance's tasks want when the plan would remove
//! an image; when ECS cannot say, images of unknown use are kept below drain-at.

use std::path::PathBuf;
use std::time::Duration;

use super::{Context, exit, inputs};
use crate::disk::{DiskSample, human_bytes};
use crate::environment::Environment;
use crate::gc::{self, GcPolicy, GcReport, LastUseStore, Outcome, Plan, TaskImages};
use crate::settings::Settings;

/// How long `gc` waits for ECS (IMDS, the agent, ECS itself) to name this instance's task
/// images before it plans as if ECS could not say; IMDS alone gets half of it.
const ECS_WAIT: Duration = Duration::from_secs(10);

pub fn run(context: &Context, dry_run: bool) -> u8 {
    let (loaded, environment) = match inputs::settings_and_environment(context) {
        Ok(both) => both,
        Err(error) => return super::fail_on(&error),
    };
    let settings = loaded.settings;
    super::runtime().block_on(async {
        let docker = match crate::docker::connect(&environment).await {
            Ok(docker) => docker,
            Err(error) => return super::fail(&error.to_string()),
        };
        let data_root = match docker.info().await {
            Ok(info) => info.docker_root_dir.map(PathBuf::from).unwrap_or_else(|| context.paths.docker_data_root()),
            Err(error) => return super::fail(&format!("asking Docker for its root dir: {error}")),
        };
        // Read-only: the daemon owns the file and keeps it current.
        let store = LastUseStore::load(&context.paths.image_usage());
        let policy = GcPolicy::from_settings(&settings);
        let (stop, drain_at) = (settings.disk.gc_stop.fraction(), settings.disk.drain_at.fraction());
        let (sample, inventory) = match gc::survey(&docker, &data_root).await {
            Ok(surveyed) => surveyed,
            Err(error) => return super::fail(&error.to_string()),
        };
        // Images the store does not know yet count as first seen now (see `gc::plan`).
        let ask = || task_images(&settings, &environment);
        let plan = gc::plan_asking(&sample, &inventory, store.usage(), &policy, stop, drain_at, ask).await;
        print_plan(&data_root, &sample, &plan, &settings.disk.gc_stop.to_string());
        if dry_run {
            println!("\ndry run: nothing was removed");
            return exit::OK;
        }
        let report = gc::execute(&docker, &plan, stop, || crate::disk::probe(&data_root).ok()).await;
        print_report(&report);
        exit::OK
    })
}

/// What ECS says this instance's tasks want, or Unknown (said on stderr) when it cannot say.
async fn task_images(settings: &Settings, environment: &Environment) -> TaskImages {
    let ask = async {
        let (api, identity) =
            inputs::ecs_identity(settings, environment, ECS_WAIT / 2).await.map_err(|e| crate::error::chain(&e))?;
        api.task_images(&identity).await.map_err(|e| e.to_string())
    };
    let why = match tokio::time::timeout(ECS_WAIT, ask).await {
        Ok(Ok(images)) => return TaskImages::Known(images.iter().map(|i| gc::normalize_reference(i)).collect()),
        Ok(Err(why)) => why,
        Err(_) => format!("no answer within {ECS_WAIT:?}"),
    };
    eprintln!(
        "warning: cannot ask ECS which images this instance's tasks want ({why}); images no container has used \
         since they arrived are kept below drain-at"
    );
    TaskImages::Unknown
}

fn print_plan(data_root: &std::path::Path, sample: &DiskSample, plan: &Plan, gc_stop: &str) {
    println!(
        "Docker's disk at {}: {:.1}% used ({} of {}), inodes {:.1}%; gc-stop is {gc_stop}",
        data_root.display(),
        sample.used_fraction() * 100.0,
        human_bytes(sample.used_bytes()),
        human_bytes(sample.total_bytes),
        sample.used_inode_fraction() * 100.0,
    );
    if plan.target_bytes == 0 {
        println!("below gc-stop: nothing to collect");
    } else if plan.target_bytes == u64::MAX {
        println!("inodes are above gc-stop: everything eligible is planned, least recently used first");
    } else {
        println!("to free: {}", human_bytes(plan.target_bytes));
    }
    if !plan.steps.is_empty() {
        println!("\nplan ({} steps, about {} expected):", plan.steps.len(), human_bytes(plan.expected_bytes()));
        for (index, step) in plan.steps.iter().enumerate() {
            println!("  {}. {}  ({}; ~{})", index + 1, step.action, step.reason, human_bytes(step.expected_bytes));
        }
    }
    if !plan.kept.is_empty() {
        println!("\nkept:");
        for (name, why) in &plan.kept {
            println!("  {name}: {why}");
        }
    }
}

fn print_report(report: &GcReport) {
    println!("\nresult:");
    for (index, step) in report.steps.iter().enumerate() {
        let outcome = match &step.outcome {
            Outcome::Done => "done".to_string(),
            Outcome::Vanished => "already gone".to_string(),
            Outcome::Skipped(why) => format!("skipped: {why}"),
            Outcome::Failed(why) => format!("failed: {why}"),
        };
        println!("  {}. {}: {outcome}", index + 1, step.action);
    }
    println!(
        "freed {} in {:.2}s: {:.1}% → {:.1}% used{}",
        human_bytes(report.bytes_freed.max(0) as u64),
        report.duration_seconds,
        report.used_before * 100.0,
        report.used_after * 100.0,
        if report.reached_target { "" } else { " (gc-stop not reached)" }
    );
}
