//! Stage three, "validated": merged raw entries become typed [`Settings`], with every value
//! parsed into its newtype and the cross-field rules checked. All problems are collected.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::document::{RawEntry, RawValue, quote};
use super::ecs_keys;
use super::merge::Merged;
use super::schema;
use super::source::{Origin, Problem, Source};
use super::values::{
    self, ByteSize, ClusterName, DeviceSpec, Filesystem, ImagePattern, ImageReference, Percent, Secret,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub ecs: EcsSettings,
    pub docker: DockerSettings,
    pub disk: DiskSettings,
    pub gc: GcSettings,
    pub drain: DrainSettings,
    pub health: HealthSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EcsSettings {
    pub cluster: ClusterName,
    pub agent_image: ImageReference,
    pub agent_tarball: PathBuf,
    pub engine_auth: Option<EngineAuth>,
    /// Extra `ECS_*` keys for `/etc/ecs/ecs.config`, already checked.
    pub config: BTreeMap<String, String>,
    /// No health verdict on the agent before it ran this long.
    pub agent_health_grace: Duration,
    pub agent_health_interval: Duration,
    /// Consecutive failed introspection checks that restart the agent.
    pub agent_health_failures: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineAuth {
    pub kind: EngineAuthType,
    pub data: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineAuthType {
    Docker,
    Dockercfg,
}

impl EngineAuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineAuthType::Docker => "docker",
            EngineAuthType::Dockercfg => "dockercfg",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DockerSettings {
    pub data_device: DeviceSpec,
    pub filesystem: Filesystem,
    pub log_max_size: ByteSize,
    pub log_max_files: u32,
    /// `overlay2.size`; `None` when set to "none".
    pub container_disk_limit: Option<ByteSize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskSettings {
    pub check_interval: Duration,
    pub gc_start: Percent,
    pub gc_stop: Percent,
    pub drain_at: Percent,
    pub drain_if_full_within: Duration,
    pub recover_below: Percent,
    pub recover_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GcSettings {
    pub min_image_age: Duration,
    pub exited_container_min_age: Duration,
    pub keep_images: Vec<ImagePattern>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DrainSettings {
    pub enabled: bool,
    pub max_draining_fraction: Percent,
    pub on_spot_interruption: bool,
    pub on_termination: bool,
    pub lifecycle_hook: String,
    /// Lifecycle action heartbeats while waiting for tasks to stop.
    pub heartbeat_interval: Duration,
    /// Complete the lifecycle action anyway after this long.
    pub termination_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    pub listen: SocketAddr,
    pub allow_remote: bool,
}

/// Shortest and longest disk check interval: faster wastes CPU, slower misses a fast writer.
const CHECK_INTERVAL_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(60));

pub fn validate(merged: &Merged) -> Result<Settings, Vec<Problem>> {
    let mut r = Reader { merged, problems: Vec::new() };

    let ecs = EcsPartial {
        cluster: r.parse("ecs.cluster", ClusterName::parse),
        agent_image: r.parse("ecs.agent-image", ImageReference::parse),
        agent_tarball: r.parse("ecs.agent-tarball", absolute_path),
        engine_auth: r.engine_auth(),
        config: r.ecs_config(),
        agent_health_grace: r.parse("ecs.agent-health-grace", values::parse_duration),
        agent_health_interval: r.parse("ecs.agent-health-interval", |t| {
            let d = values::parse_duration(t)?;
            if d < Duration::from_millis(100) { Err("a duration of at least 100ms".into()) } else { Ok(d) }
        }),
        agent_health_failures: r.integer("ecs.agent-health-failures", 1, 100).map(|n| n as u32),
    };
    let docker = DockerPartial {
        data_device: r.parse("docker.data-device", DeviceSpec::parse),
        filesystem: r.parse("docker.filesystem", Filesystem::parse),
        log_max_size: r.parse("docker.log-max-size", |t| at_least(ByteSize::parse(t)?, ByteSize::from_bytes(1024))),
        log_max_files: r.integer("docker.log-max-files", 1, 100).map(|n| n as u32),
        container_disk_limit: r.parse("docker.container-disk-limit", |t| match t {
            "none" => Ok(None),
            _ => at_least(ByteSize::parse(t)?, ByteSize::from_bytes(1 << 20)).map(Some),
        }),
    };
    let disk = DiskPartial {
        check_interval: r.parse("disk.check-interval", |t| {
            let d = values::parse_duration(t)?;
            let (min, max) = CHECK_INTERVAL_RANGE;
            if d < min || d > max { Err("a duration from 100ms to 60s".into()) } else { Ok(d) }
        }),
        gc_start: r.parse("disk.gc-start", Percent::parse),
        gc_stop: r.parse("disk.gc-stop", Percent::parse),
        drain_at: r.parse("disk.drain-at", Percent::parse),
        drain_if_full_within: r.parse("disk.drain-if-full-within", values::parse_duration),
        recover_below: r.parse("disk.recover-below", Percent::parse),
        recover_after: r.parse("disk.recover-after", values::parse_duration),
    };
    let gc = GcPartial {
        min_image_age: r.parse("gc.min-image-age", values::parse_duration),
        exited_container_min_age: r.parse("gc.exited-container-min-age", values::parse_duration),
        keep_images: r.list("gc.keep-images", ImagePattern::parse),
    };
    let drain = DrainPartial {
        enabled: r.bool("drain.enabled"),
        max_draining_fraction: r.parse("drain.max-draining-fraction", Percent::parse),
        on_spot_interruption: r.bool("drain.on-spot-interruption"),
        on_termination: r.bool("drain.on-termination"),
        lifecycle_hook: r.parse("drain.lifecycle-hook", values::parse_lifecycle_hook),
        heartbeat_interval: r.parse("drain.heartbeat-interval", |t| {
            let d = values::parse_duration(t)?;
            if d.is_zero() { Err("a duration above zero".into()) } else { Ok(d) }
        }),
        termination_timeout: r.parse("drain.termination-timeout", values::parse_duration),
    };
    let health = HealthPartial {
        listen: r.parse("health.listen", values::parse_listen_address),
        allow_remote: r.bool("health.allow-remote"),
    };

    r.check_thresholds(&disk);
    if let (Some(listen), Some(false)) = (health.listen, health.allow_remote)
        && !listen.ip().is_loopback()
    {
        r.problem_at(
            "health.listen",
            format!(
                "expected a loopback address (127.0.0.1 or ::1), found {listen}; the endpoint is \
                 unauthenticated, so set [health] allow-remote = true to expose it on purpose"
            ),
        );
    }

    if !r.problems.is_empty() {
        return Err(r.problems);
    }
    // Every field parsed (no problem was recorded), so each Option is Some.
    let problem_free = "no problems recorded, so every setting was read";
    Ok(Settings {
        ecs: EcsSettings {
            cluster: ecs.cluster.expect(problem_free),
            agent_image: ecs.agent_image.expect(problem_free),
            agent_tarball: ecs.agent_tarball.expect(problem_free),
            engine_auth: ecs.engine_auth.expect(problem_free),
            config: ecs.config,
            agent_health_grace: ecs.agent_health_grace.expect(problem_free),
            agent_health_interval: ecs.agent_health_interval.expect(problem_free),
            agent_health_failures: ecs.agent_health_failures.expect(problem_free),
        },
        docker: DockerSettings {
            data_device: docker.data_device.expect(problem_free),
            filesystem: docker.filesystem.expect(problem_free),
            log_max_size: docker.log_max_size.expect(problem_free),
            log_max_files: docker.log_max_files.expect(problem_free),
            container_disk_limit: docker.container_disk_limit.expect(problem_free),
        },
        disk: DiskSettings {
            check_interval: disk.check_interval.expect(problem_free),
            gc_start: disk.gc_start.expect(problem_free),
            gc_stop: disk.gc_stop.expect(problem_free),
            drain_at: disk.drain_at.expect(problem_free),
            drain_if_full_within: disk.drain_if_full_within.expect(problem_free),
            recover_below: disk.recover_below.expect(problem_free),
            recover_after: disk.recover_after.expect(problem_free),
        },
        gc: GcSettings {
            min_image_age: gc.min_image_age.expect(problem_free),
            exited_container_min_age: gc.exited_container_min_age.expect(problem_free),
            keep_images: gc.keep_images.expect(problem_free),
        },
        drain: DrainSettings {
            enabled: drain.enabled.expect(problem_free),
            max_draining_fraction: drain.max_draining_fraction.expect(problem_free),
            on_spot_interruption: drain.on_spot_interruption.expect(problem_free),
            on_termination: drain.on_termination.expect(problem_free),
            lifecycle_hook: drain.lifecycle_hook.expect(problem_free),
            heartbeat_interval: drain.heartbeat_interval.expect(problem_free),
            termination_timeout: drain.termination_timeout.expect(problem_free),
        },
        health: HealthSettings {
            listen: health.listen.expect(problem_free),
            allow_remote: health.allow_remote.expect(problem_free),
        },
    })
}

/// The settings with every field optional, filled as far as parsing got; they mirror the
/// public structs field for field.
struct EcsPartial {
    cluster: Option<ClusterName>,
    agent_image: Option<ImageReference>,
    agent_tarball: Option<PathBuf>,
    engine_auth: Option<Option<EngineAuth>>,
    config: BTreeMap<String, String>,
    agent_health_grace: Option<Duration>,
    agent_health_interval: Option<Duration>,
    agent_health_failures: Option<u32>,
}
struct DockerPartial {
    data_device: Option<DeviceSpec>,
    filesystem: Option<Filesystem>,
    log_max_size: Option<ByteSize>,
    log_max_files: Option<u32>,
    container_disk_limit: Option<Option<ByteSize>>,
}
struct DiskPartial {
    check_interval: Option<Duration>,
    gc_start: Option<Percent>,
    gc_stop: Option<Percent>,
    drain_at: Option<Percent>,
    drain_if_full_within: Option<Duration>,
    recover_below: Option<Percent>,
    recover_after: Option<Duration>,
}
struct GcPartial {
    min_image_age: Option<Duration>,
    exited_container_min_age: Option<Duration>,
    keep_images: Option<Vec<ImagePattern>>,
}
struct DrainPartial {
    enabled: Option<bool>,
    max_draining_fraction: Option<Percent>,
    on_spot_interruption: Option<bool>,
    on_termination: Option<bool>,
    lifecycle_hook: Option<String>,
    heartbeat_interval: Option<Duration>,
    termination_timeout: Option<Duration>,
}
struct HealthPartial {
    listen: Option<SocketAddr>,
    allow_remote: Option<bool>,
}

fn absolute_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_absolute() { Ok(path) } else { Err("an absolute path".into()) }
}

fn at_least(size: ByteSize, min: ByteSize) -> Result<ByteSize, String> {
    if size >= min { Ok(size) } else { Err(format!("a size of at least {min}")) }
}

struct Reader<'m> {
    merged: &'m Merged,
    problems: Vec<Problem>,
}

impl<'m> Reader<'m> {
    fn is_secret(path: &str) -> bool {
        let (section, key) = path.split_once('.').unwrap_or((path, ""));
        schema::lookup(section, key).is_some_and(|spec| spec.secret)
    }

    /// Where to point when a required key is missing: the highest layer that was given.
    fn missing_origin(&self) -> Origin {
        let source = self.merged.sources.last().cloned().unwrap_or(Source::Default);
        Origin::new(source, None)
    }

    fn entry(&mut self, path: &str) -> Option<&'m RawEntry> {
        let entry = self.merged.get(path);
        if entry.is_none() {
            let (section, key) = path.split_once('.').unwrap_or((path, ""));
            let message = format!("missing; this setting is required: set {key} under [{section}]");
            self.problems.push(Problem::new(self.missing_origin(), Some(path.into()), message));
        }
        entry
    }

    fn problem_at(&mut self, path: &str, message: String) {
        let origin = self.merged.get(path).map(|e| e.origin.clone()).unwrap_or_else(|| self.missing_origin());
        self.problems.push(Problem::new(origin, Some(path.into()), message));
    }

    fn found(path: &str, text: &str) -> String {
        if Self::is_secret(path) { Secret::REDACTED.to_string() } else { quote(text) }
    }

    /// Reads a string key through `parse`; records a problem and returns `None` on failure.
    fn parse<T>(&mut self, path: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let entry = self.entry(path)?;
        let RawValue::String(text) = &entry.value else {
            return None;
        };
        match parse(text) {
            Ok(value) => Some(value),
            Err(expected) => {
                let message = format!("expected {expected}, found {}", Self::found(path, text));
                self.problems.push(Problem::new(entry.origin.clone(), Some(path.into()), message));
                None
            }
        }
    }

    fn integer(&mut self, path: &str, min: i64, max: i64) -> Option<i64> {
        let entry = self.entry(path)?;
        match entry.value {
            RawValue::Integer(n) if (min..=max).contains(&n) => Some(n),
            RawValue::Integer(n) => {
                let message = format!("expected an integer from {min} to {max}, found {n}");
                self.problems.push(Problem::new(entry.origin.clone(), Some(path.into()), message));
                None
            }
            _ => None,
        }
    }

    fn bool(&mut self, path: &str) -> Option<bool> {
        match self.entry(path)?.value {
            RawValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn list<T>(&mut self, path: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<Vec<T>> {
        let entry = self.entry(path)?;
        let RawValue::StringList(items) = &entry.value else {
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            match parse(item) {
                Ok(value) => out.push(value),
                Err(expected) => {
                    ok = false;
                    let message = format!("item {}: expected {expected}, found {}", index + 1, quote(item));
                    self.problems.push(Problem::new(entry.origin.clone(), Some(path.into()), message));
                }
            }
        }
        ok.then_some(out)
    }

    fn engine_auth(&mut self) -> Option<Option<EngineAuth>> {
        let kind = self.merged.get("ecs.engine-auth-type");
        let data = self.merged.get("ecs.engine-auth-data");
        match (kind, data) {
            (None, None) => Some(None),
            (Some(_), None) | (None, Some(_)) => {
                let present = if kind.is_some() { "ecs.engine-auth-type" } else { "ecs.engine-auth-data" };
                self.problem_at(
                    present,
                    "expected engine-auth-type and engine-auth-data together, found only one".into(),
                );
                None
            }
            (Some(_), Some(_)) => {
                let kind = self.parse("ecs.engine-auth-type", |t| match t {
                    "docker" => Ok(EngineAuthType::Docker),
                    "dockercfg" => Ok(EngineAuthType::Dockercfg),
                    _ => Err("\"docker\" or \"dockercfg\"".into()),
                })?;
                // Both formats are JSON objects; never echo the text, it holds credentials.
                let data = self.parse("ecs.engine-auth-data", |t| {
                    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t) {
                        Ok(_) => Ok(Secret::new(t.to_string())),
                        Err(_) => Err("a JSON object of registry credentials".into()),
                    }
                })?;
                Some(Some(EngineAuth { kind, data }))
            }
        }
    }

    fn ecs_config(&mut self) -> BTreeMap<String, String> {
        let mut config = BTreeMap::new();
        for (key, entry) in self.merged.ecs_config() {
            let RawValue::String(value) = &entry.value else {
                continue;
            };
            match ecs_keys::check(key, value) {
                Ok(()) => {
                    config.insert(key.to_string(), value.clone());
                }
                Err(expected) => {
                    let message = format!("expected {expected}, found {}", quote(value));
                    let path = format!("ecs.config.{key}");
                    self.problems.push(Problem::new(entry.origin.clone(), Some(path), message));
                }
            }
        }
        config
    }

    /// gc-stop < gc-start < drain-at, and recover-below < gc-stop. A violation is reported
    /// on whichever of the two keys came from the higher layer: that is the one just changed.
    fn check_thresholds(&mut self, disk: &DiskPartial) {
        let pairs = [
            ("disk.gc-stop", disk.gc_stop, "disk.gc-start", disk.gc_start),
            ("disk.gc-start", disk.gc_start, "disk.drain-at", disk.drain_at),
            ("disk.recover-below", disk.recover_below, "disk.gc-stop", disk.gc_stop),
        ];
        for (lower_key, lower, upper_key, upper) in pairs {
            let (Some(lower), Some(upper)) = (lower, upper) else {
                continue;
            };
            if lower < upper {
                continue;
            }
            let rank = |path: &str| {
                let source = self.merged.get(path).map(|e| &e.origin.source);
                self.merged.sources.iter().rposition(|s| Some(s) == source).unwrap_or(0)
            };
            let (blamed, other) =
                if rank(upper_key) > rank(lower_key) { (upper_key, lower_key) } else { (lower_key, upper_key) };
            let other_origin = self.merged.get(other).map(|e| e.origin.to_string()).unwrap_or_default();
            let message = format!(
                "expected {lower_key} ({lower}) to be below {upper_key} ({upper}); {other} is set at {other_origin}",
            );
            self.problem_at(blamed, message);
        }
    }
}
