//! `/metrics`: the status figures as Prometheus gauges and counters, built fresh from each
//! snapshot (the daemon keeps the truth; the registry is only its encoding).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::node::status::StatusDocument;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    condition: String,
}

/// The top writer's identity, so a dashboard can say which task fills the disk.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OffenderLabels {
    container: String,
    image: String,
    task_family: String,
    task_arn: String,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let metric = Gauge::<f64, AtomicU64>::default();
    metric.set(value);
    registry.register(name, help, metric);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric: Counter = Counter::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

pub fn encode(doc: &StatusDocument) -> String {
    let mut registry = Registry::with_prefix("nodewarden");
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
        gauge(
            &mut registry,
            "disk_fill_rate_bytes_per_second",
            "Bytes written per second over the last seconds (negative while freeing)",
            disk.fill_rate_bytes_per_second.unwrap_or(0.0),
        );
    }
    let last = doc.gc.last.as_ref();
    counter(&mut registry, "gc_runs", "Garbage collection runs", doc.gc.runs);
    gauge(&mut registry, "gc_running", "1 while a garbage collection runs", f64::from(u8::from(doc.gc.running)));
    gauge(&mut registry, "gc_last_freed_bytes", "Bytes the last run freed", last.map_or(0.0, |r| r.bytes_freed as f64));
    gauge(
        &mut registry,
        "gc_last_images_removed",
        "Images the last run removed",
        last.map_or(0.0, |r| f64::from(r.images_removed)),
    );
    gauge(
        &mut registry,
        "gc_last_duration_seconds",
        "Duration of the last run",
        last.map_or(0.0, |r| r.duration_seconds),
    );
    gauge(
        &mut registry,
        "draining",
        "1 while this container instance is DRAINING",
        f64::from(u8::from(doc.drain.draining)),
    );
    gauge(
        &mut registry,
        "agent_running",
        "1 while the ECS agent's container runs",
        f64::from(u8::from(doc.agent.running)),
    );
    gauge(
        &mut registry,
        "agent_healthy",
        "1 when the agent answers /v1/metadata",
        f64::from(u8::from(doc.agent.healthy == Some(true))),
    );
    counter(&mut registry, "agent_restarts", "Restarts of the ECS agent's container by nodewarden", doc.agent.restarts);
    gauge(&mut registry, "host_cpu_percent", "Host CPU utilisation", doc.host.cpu_percent);
    gauge(&mut registry, "host_memory_used_bytes", "Host memory in use", doc.host.memory_used_bytes as f64);
    let conditions = Family::<ConditionLabels, Gauge>::default();
    for condition in &doc.conditions {
        conditions
            .get_or_create(&ConditionLabels { condition: condition.kind.clone() })
            .set(i64::from(condition.status == "True"));
    }
    registry.register("condition", "1 while the node condition is True", conditions);
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
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoding to a String cannot fail");
    text
}
