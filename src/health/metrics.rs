//! `/metrics`: the status figures as Prometheus gauges, counters (totals since start, so a
//! scrape gap loses nothing) and a histogram, built fresh from each snapshot (the daemon keeps
//! the truth; the registry is only its encoding).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::drain::DrainReason;
use crate::node::status::StatusDocument;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    condition: String,
    /// True, False or Unknown: one series each, 1 for the current one (kube-state-metrics' way).
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// The top writer's identity, so a dashboard can say which task fills the disk.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OffenderLabels {
    container: String,
    image: String,
    task_family: String,
    task_arn: String,
}

/// GC run durations: from a quick prune to a run that removes hundreds of images.
const GC_DURATION_BUCKETS: [f64; 9] = [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// The reasons nodewarden drains for, each exported from 0 so `increase()` sees the first one.
const DRAIN_REASONS: [DrainReason; 4] =
    [DrainReason::DiskPressure, DrainReason::SpotInterruption, DrainReason::SpotStop, DrainReason::Termination];

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let metric = Gauge::<f64, AtomicU64>::default();
    metric.set(value);
    registry.register(name, help, metric);
}

fn flag(registry: &mut Registry, name: &str, help: &str, value: bool) {
    gauge(registry, name, help, f64::from(u8::from(value)));
}

/// A counter; OpenMetrics names it `<name>_total`.
fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric: Counter = Counter::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

pub fn encode(doc: &StatusDocument) -> String {
    let mut registry = Registry::with_prefix("nodewarden");
    let build = Family::<VersionLabels, Gauge>::default();
    build.get_or_create(&VersionLabels { version: doc.version.clone() }).set(1);
    registry.register("build_info", "nodewarden's version (always 1)", build);
    flag(&mut registry, "ready", "1 once setup finished and the first disk check ran", doc.ready);
    flag(&mut registry, "alive", "1 while the main loop ticks", doc.alive);
    if let Some(disk) = &doc.disk {
        gauge(&mut registry, "disk_total_bytes", "Size of Docker's filesystem", disk.total_bytes as f64);
        gauge(&mut registry, "disk_used_bytes", "Bytes used on Docker's filesystem", disk.used_bytes as f64);
        gauge(
            &mut registry,
            "disk_available_bytes",
            "Bytes available on Docker's filesystem",
            disk.available_bytes as f64,
        );
        gauge(&mut registry, "disk_used_ratio", "Share of Docker's filesystem in use", disk.used_percent / 100.0);
        gauge(&mut registry, "disk_inodes_used_ratio", "Share of inodes in use", disk.inodes_used_percent / 100.0);
        // Absent until there are samples enough to tell, never a made-up 0.
        if let Some(rate) = disk.fill_rate_bytes_per_second {
            gauge(
                &mut registry,
                "disk_fill_rate_bytes_per_second",
                "Bytes written per second over the last seconds (negative while freeing)",
                rate,
            );
        }
    }
    let gc = &doc.gc;
    counter(&mut registry, "gc_runs", "Garbage collection runs since start", gc.runs);
    flag(&mut registry, "gc_running", "1 while a garbage collection runs", gc.running);
    counter(&mut registry, "gc_freed_bytes", "Bytes GC freed since start (measured)", gc.totals.freed_bytes_total);
    counter(&mut registry, "gc_images_removed", "Images GC removed since start", gc.totals.images_removed_total);
    counter(
        &mut registry,
        "gc_containers_removed",
        "Exited containers GC removed since start",
        gc.totals.containers_removed_total,
    );
    let durations = Histogram::new(GC_DURATION_BUCKETS);
    for duration in &gc.totals.durations_seconds {
        durations.observe(*duration);
    }
    registry.register("gc_duration_seconds", "How long GC runs took", durations);
    if let Some(at) = gc.totals.last_run_at {
        gauge(
            &mut registry,
            "gc_last_run_timestamp_seconds",
            "When the last GC run ended",
            crate::time::to_unix_seconds(at),
        );
    }
    flag(&mut registry, "draining", "1 while this container instance is DRAINING", doc.drain.draining);
    flag(
        &mut registry,
        "drain_withheld",
        "1 while disk pressure wants a drain the cluster's budget does not allow",
        doc.drain.withheld.is_some(),
    );
    let drains = Family::<ReasonLabels, Counter>::default();
    for reason in DRAIN_REASONS {
        let made = doc.drain.drains_total.get(reason.as_str()).copied().unwrap_or(0);
        drains.get_or_create(&ReasonLabels { reason: reason.as_str().to_string() }).inc_by(made);
    }
    registry.register("drains", "Drains nodewarden made since start, by reason", drains);
    flag(&mut registry, "agent_running", "1 while the ECS agent's container runs", doc.agent.running);
    flag(&mut registry, "agent_healthy", "1 when the agent answers /v1/metadata", doc.agent.healthy == Some(true));
    counter(&mut registry, "agent_restarts", "Restarts of the ECS agent's container by nodewarden", doc.agent.restarts);
    let conditions = Family::<ConditionLabels, Gauge>::default();
    for condition in &doc.conditions {
        for status in ["True", "False", "Unknown"] {
            conditions
                .get_or_create(&ConditionLabels { condition: condition.kind.clone(), status: status.to_string() })
                .set(i64::from(condition.status == status));
        }
    }
    registry.register("condition", "1 for the node condition's current status", conditions);
    let rate = Family::<OffenderLabels, Gauge<f64, AtomicU64>>::default();
    let size = Family::<OffenderLabels, Gauge<f64, AtomicU64>>::default();
    if let Some(top) = &doc.offender.top {
        let f = &top.footprint;
        let labels = OffenderLabels {
            container: f.name.clone(),
            image: f.image.clone(),
            task_family: f.task_family.clone().unwrap_or_default(),
            task_arn: f.task_arn.clone().unwrap_or_default(),
        };
        rate.get_or_create(&labels).set(top.rate_bytes_per_second);
        size.get_or_create(&labels).set(top.bytes as f64);
    }
    registry.register(
        "offender_write_rate_bytes_per_second",
        "Growth of the container filling Docker's disk fastest (sampled while past gc-start)",
        rate,
    );
    registry.register("offender_bytes", "Writable layer, volumes and log of that container", size);
    counter(
        &mut registry,
        "offender_tasks_stopped",
        "ECS tasks nodewarden stopped for filling the disk (since start)",
        doc.offender.stops,
    );
    if let Some(cost) = &doc.offender.last_sample {
        gauge(
            &mut registry,
            "footprint_sample_seconds",
            "Wall time of the last footprint sample (flat in the files where layers are read from project quotas)",
            cost.wall_seconds,
        );
        gauge(&mut registry, "footprint_sample_cpu_seconds", "CPU time of the last footprint sample", cost.cpu_seconds);
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoding to a String cannot fail");
    text
}
