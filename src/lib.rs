//! nodewarden: a per-instance daemon for Amazon ECS container instances. It bootstraps the ECS
//! agent from userdata, keeps Docker's data on a filesystem of its own, garbage-collects before
//! the disk fills, and drains the instance before the disk is exhausted.
//!
//! Decisions are pure functions over plain data (`settings`, `userdata`); I/O lives at the
//! edges (`imds`, `http`, Docker, AWS, systemd).

/// The ECS agent: ecs.config, its container, host network, supervision.
pub mod agent;
/// AWS SDK clients with endpoint overrides from the environment.
pub mod aws;
/// Exponential backoff with jitter for every retry loop.
pub mod backoff;
pub mod cli;
/// One module per command.
pub mod commands;
/// The daemon behind `nodewarden run`.
pub mod daemon;
/// Docker's filesystem: statvfs samples and the fill rate.
pub mod disk;
/// Connecting to the Docker Engine API.
pub mod docker;
/// Draining the container instance: pressure state machine, policy, ECS/EC2 edge.
pub mod drain;
/// The standard environment variables, parsed in one place.
pub mod environment;
/// The one printer for an error's cause chain.
pub mod error;
/// Atomic file writes.
pub mod fsutil;
/// Garbage collection: inventory, planner, last-use tracking, executor.
pub mod gc;
/// The health endpoint: /healthz, /readyz, /status, /metrics, serving the node model.
pub mod health;
/// Host paths under `--root`.
pub mod host_paths;
/// A small HTTP/1.1 client for IMDS, introspection and our health endpoint.
pub mod http;
/// The IMDSv2 client.
pub mod imds;
/// The ECS agent's introspection API.
pub mod introspection;
/// journald or stderr.
pub mod logging;
/// The node model: what the daemon knows (NodeState), the conditions it derives, and the
/// /status document that the health endpoint serves and `nodewarden status` reads.
pub mod node;
/// Which container fills Docker's disk (sampled under pressure), and stopping its ECS task.
pub mod offender;
/// A value never printed or logged.
pub mod secret;
/// Settings: raw → merged → validated.
pub mod settings;
/// Docker's data on a filesystem of its own: device, format, mount, units, daemon.json.
pub mod storage;
/// sd_notify: READY, STATUS, WATCHDOG, STOPPING.
pub mod systemd;
/// The one time codec: RFC 3339 where people read times, Unix seconds in state files.
pub mod time;
/// EC2 userdata decoding (plain, gzip, multipart MIME).
pub mod userdata;
