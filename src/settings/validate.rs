//! Stage three, "validated": merged raw entries become the typed [`Settings`] of `model.rs`,
//! every value parsed by its newtype's `FromStr` and the cross-field rules checked. Every
//! problem is collected. A key is read once, straight into its field: when it fails, the
//! reader records the problem and puts a stand-in there ([`Standin`]) so the rest can still
//! be read; a result with any problem is thrown away, so a stand-in never leaves this file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::document::{RawEntry, RawValue, quote};
use super::ecs_keys;
use super::merge::Merged;
use super::model::{
    AgentOwner, ClusterSource, DiskSettings, DockerSettings, DrainSettings, EcsSettings, EngineAuth, EngineAuthType,
    GcSettings, HealthSettings, OffenderAction, OffenderSettings, Settings,
};
use super::schema;
use super::source::{Origin, Problem, Source};
use super::values::{
    self, ByteSize, ClusterName, DeviceSpec, Filesystem, ImagePattern, ImageReference, Percent, Secret, ValueError,
};

/// Shortest and longest disk check interval: faster wastes CPU, slower misses a fast writer.
const CHECK_INTERVAL_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(60));

/// Adding a key: its line in `schema::KEYS` (with its default), its field in `model.rs`, and
/// its line here.
pub fn validate(merged: &Merged, cluster_may_come_later: bool) -> Result<Settings, Vec<Problem>> {
    let mut r = Reader::new(merged);
    let agent = r.string("ecs.agent", AgentOwner::from_str);
    let (cluster, cluster_source) = r.cluster(agent, cluster_may_come_later);
    let config_unchecked = r.list("ecs.config-unchecked", |key| {
        if ecs_keys::is_variable_name(key) {
            Ok(key.to_string())
        } else {
            Err("a variable name such as ECS_NEW_KEY".into())
        }
    });
    let settings = Settings {
        ecs: EcsSettings {
            cluster,
            cluster_source,
            agent,
            agent_image: r.string("ecs.agent-image", ImageReference::from_str),
            agent_tarball: r.string("ecs.agent-tarball", absolute_path),
            engine_auth: r.engine_auth(),
            config: r.ecs_config(&config_unchecked),
            config_unchecked,
            agent_health_grace: r.string("ecs.agent-health-grace", values::parse_duration),
            agent_health_interval: r.string("ecs.agent-health-interval", |t| {
                let d = values::parse_duration(t)?;
                if d < Duration::from_millis(100) { Err("a duration of at least 100ms".into()) } else { Ok(d) }
            }),
            agent_health_failures: r.integer("ecs.agent-health-failures", 1, 100),
        },
        docker: DockerSettings {
            data_device: r.string("docker.data-device", DeviceSpec::from_str),
            filesystem: r.string("docker.filesystem", Filesystem::from_str),
            log_max_size: r.string("docker.log-max-size", |t| at_least(t.parse()?, ByteSize::from_bytes(1024))),
            log_max_files: r.integer("docker.log-max-files", 1, 100),
            container_disk_limit: r.string("docker.container-disk-limit", |t| match t {
                "none" => Ok(None),
                _ => at_least(t.parse()?, ByteSize::from_bytes(1 << 20)).map(Some),
            }),
        },
        disk: DiskSettings {
            check_interval: r.string("disk.check-interval", |t| {
                let d = values::parse_duration(t)?;
                let (min, max) = CHECK_INTERVAL_RANGE;
                if d < min || d > max { Err("a duration from 100ms to 60s".into()) } else { Ok(d) }
            }),
            gc_start: r.string("disk.gc-start", Percent::from_str),
            gc_stop: r.string("disk.gc-stop", Percent::from_str),
            drain_at: r.string("disk.drain-at", Percent::from_str),
            drain_if_full_within: r.string("disk.drain-if-full-within", values::parse_duration),
            recover_below: r.string("disk.recover-below", Percent::from_str),
            recover_after: r.string("disk.recover-after", values::parse_duration),
        },
        gc: GcSettings {
            min_image_age: r.string("gc.min-image-age", values::parse_duration),
            exited_container_min_age: r.string("gc.exited-container-min-age", values::parse_duration),
            keep_images: r.list("gc.keep-images", ImagePattern::from_str),
            run_timeout: r.string("gc.run-timeout", |t| match values::parse_duration(t)? {
                d if d >= Duration::from_secs(1) => Ok(d),
                _ => Err("a duration of at least 1s".into()),
            }),
            remove_other_containers: r.bool("gc.remove-other-containers"),
            remove_other_volumes: r.bool("gc.remove-other-volumes"),
        },
        drain: DrainSettings {
            enabled: r.bool("drain.enabled"),
            max_draining_fraction: r.string("drain.max-draining-fraction", Percent::from_str),
            on_spot_interruption: r.bool("drain.on-spot-interruption"),
            on_termination: r.bool("drain.on-termination"),
            lifecycle_hook: r.string("drain.lifecycle-hook", values::parse_lifecycle_hook),
            heartbeat_interval: r.string("drain.heartbeat-interval", |t| {
                let d = values::parse_duration(t)?;
                if d.is_zero() { Err("a duration above zero".into()) } else { Ok(d) }
            }),
            termination_timeout: r.string("drain.termination-timeout", values::parse_duration),
        },
        offender: OffenderSettings { action: r.string("offender.action", OffenderAction::from_str) },
        health: HealthSettings {
            listen: r.string("health.listen", values::parse_listen_address),
            allow_remote: r.bool("health.allow-remote"),
        },
    };

    r.check_thresholds(&settings.disk);
    let gc = &settings.gc;
    if gc.remove_other_volumes
        && !gc.remove_other_containers
        && r.is_clean("gc.remove-other-volumes")
        && r.is_clean("gc.remove-other-containers")
    {
        r.problem_at(
            "gc.remove-other-volumes",
            "expected false while [gc] remove-other-containers is false: the volumes go only with the containers \
             they belong to, so set remove-other-containers = true too, or leave both off"
                .to_string(),
        );
    }
    // The agent's self-update needs ecs-init: the agent downloads the new image and exits 42 for
    // ecs-init to load it. nodewarden pins the image it runs, so with nodewarden running the
    // agent self-update is off; a new agent comes through [ecs] agent-image.
    let updates = settings.ecs.config.get("ECS_UPDATES_ENABLED").and_then(|v| ecs_keys::go_parse_bool(v));
    if settings.ecs.agent == AgentOwner::Nodewarden && updates == Some(true) {
        r.problem_at(
            "ecs.config.ECS_UPDATES_ENABLED",
            "expected false or unset with [ecs] agent = \"nodewarden\": the agent's self-update needs ecs-init, and \
             nodewarden runs the image it pins; change [ecs] agent-image (and its tarball) to update the agent"
                .into(),
        );
    }
    let health = &settings.health;
    if !health.allow_remote
        && !health.listen.ip().is_loopback()
        && r.is_clean("health.listen")
        && r.is_clean("health.allow-remote")
    {
        r.problem_at(
            "health.listen",
            format!(
                "expected a loopback address (127.0.0.1 or ::1), found {}; the endpoint is \
                 unauthenticated, so set [health] allow-remote = true to expose it on purpose",
                health.listen
            ),
        );
    }

    // The endpoint's port must not be one the agent hands to tasks' dynamic host ports.
    let range = settings.ecs.config.get("ECS_DYNAMIC_HOST_PORT_RANGE").and_then(|v| ecs_keys::port_range(v));
    if let Some((start, end)) = range
        && (start..=end).contains(&health.listen.port())
        && r.is_clean("health.listen")
    {
        r.problem_at(
            "health.listen",
            format!(
                "expected a port outside ECS_DYNAMIC_HOST_PORT_RANGE ({start}-{end}), found {}: a task's dynamic \
                 host port could take it",
                health.listen.port()
            ),
        );
    }

    if r.problems.is_empty() { Ok(settings) } else { Err(r.problems) }
}

/// What a field holds after its key failed: any value of the type, never seen outside
/// `validate` (a result with problems is discarded).
trait Standin {
    fn standin() -> Self;
}

/// `standin!(Type => value, …)`: each type's stand-in.
macro_rules! standin {
    ($($t:ty => $value:expr),* $(,)?) => { $(impl Standin for $t { fn standin() -> Self { $value } })* };
}
standin!(
    bool => false,
    u32 => 0,
    String => String::new(),
    PathBuf => PathBuf::new(),
    Duration => Duration::ZERO,
    SocketAddr => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    ByteSize => ByteSize::from_bytes(0),
    Secret => Secret::new(String::new()),
    EngineAuthType => EngineAuthType::Docker,
    OffenderAction => OffenderAction::None,
    AgentOwner => AgentOwner::Nodewarden,
    DeviceSpec => DeviceSpec::None,
    Filesystem => Filesystem::Xfs,
    Percent => "0%".parse().expect("a literal valid percentage"),
    ClusterName => "standin".parse().expect("a literal valid cluster name"),
    ImageReference => "standin:1".parse().expect("a literal valid pinned image reference"),
);

impl<T> Standin for Option<T> {
    fn standin() -> Self {
        None
    }
}
impl<T> Standin for Vec<T> {
    fn standin() -> Self {
        Vec::new()
    }
}

fn absolute_path(text: &str) -> Result<PathBuf, ValueError> {
    let path = PathBuf::from(text);
    if path.is_absolute() { Ok(path) } else { Err("an absolute path".into()) }
}

fn at_least(size: ByteSize, min: ByteSize) -> Result<ByteSize, ValueError> {
    if size >= min { Ok(size) } else { Err(format!("a size of at least {min}").into()) }
}

struct Reader<'m> {
    merged: &'m Merged,
    problems: Vec<Problem>,
    /// Keys whose field holds a stand-in: missing, of the wrong TOML type, or refused.
    failed: BTreeSet<String>,
}

impl<'m> Reader<'m> {
    fn new(merged: &'m Merged) -> Self {
        Reader { merged, problems: Vec::new(), failed: BTreeSet::new() }
    }

    fn is_secret(path: &str) -> bool {
        let (section, key) = path.split_once('.').unwrap_or((path, ""));
        schema::lookup(section, key).is_some_and(|spec| spec.secret)
    }

    /// Where to point when a required key is missing: the highest layer that was given.
    fn missing_origin(&self) -> Origin {
        // The host's layer holds only what it found; a missing key is the operator's to give.
        let given = self.merged.sources.iter().rev().find(|s| matches!(s, Source::File(_) | Source::Userdata));
        let source = given.cloned().unwrap_or(Source::Default);
        Origin::new(source, None)
    }

    /// True when `path` was read into its field (its value is real, not a stand-in).
    fn is_clean(&self, path: &str) -> bool {
        !self.failed.contains(path)
    }

    /// Records that `path` holds a stand-in and returns one. The problem itself was recorded
    /// by the caller, or by the document stage for a wrong TOML type.
    fn standin<T: Standin>(&mut self, path: &str) -> T {
        self.failed.insert(path.to_string());
        T::standin()
    }

    /// `[ecs] cluster`, and where it came from. Missing, it is an error, except for setup with
    /// ecs-init running the agent (`may_come_later`): userdata's script may add ECS_CLUSTER to
    /// ecs.config after setup ran, and ecs-init reads it then.
    fn cluster(&mut self, agent: AgentOwner, may_come_later: bool) -> (ClusterName, ClusterSource) {
        const PATH: &str = "ecs.cluster";
        match self.merged.get(PATH) {
            None if may_come_later && agent == AgentOwner::EcsInit => {
                ("default".parse().expect("a literal valid cluster name"), ClusterSource::Later)
            }
            entry => {
                let source = match entry.map(|e| &e.origin.source) {
                    Some(Source::EcsConfig(_)) => ClusterSource::EcsConfig,
                    _ => ClusterSource::Settings,
                };
                (self.string(PATH, ClusterName::from_str), source)
            }
        }
    }

    fn entry(&mut self, path: &str) -> Option<&'m RawEntry> {
        let entry = self.merged.get(path);
        if entry.is_none() {
            let (section, key) = path.split_once('.').unwrap_or((path, ""));
            let mut message = format!("missing; this setting is required: set {key} under [{section}]");
            if path == "ecs.cluster" {
                message.push_str(" (or ECS_CLUSTER=NAME in /etc/ecs/ecs.config, as classic ECS userdata does)");
            }
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

    /// Reads a string key through `parse` (a newtype's `from_str`, or a bounded parse).
    fn string<T: Standin>(&mut self, path: &str, parse: impl FnOnce(&str) -> Result<T, ValueError>) -> T {
        let Some(RawEntry { value: RawValue::String(text), origin }) = self.entry(path) else {
            return self.standin(path);
        };
        match parse(text) {
            Ok(value) => value,
            Err(expected) => {
                let message = format!("expected {expected}, found {}", Self::found(path, text));
                self.problems.push(Problem::new(origin.clone(), Some(path.into()), message));
                self.standin(path)
            }
        }
    }

    fn integer(&mut self, path: &str, min: u32, max: u32) -> u32 {
        let Some(RawEntry { value: RawValue::Integer(n), origin }) = self.entry(path) else {
            return self.standin(path);
        };
        match u32::try_from(*n) {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                let message = format!("expected an integer from {min} to {max}, found {n}");
                self.problems.push(Problem::new(origin.clone(), Some(path.into()), message));
                self.standin(path)
            }
        }
    }

    fn bool(&mut self, path: &str) -> bool {
        match self.entry(path) {
            Some(RawEntry { value: RawValue::Bool(b), .. }) => *b,
            _ => self.standin(path),
        }
    }

    fn list<T>(&mut self, path: &str, parse: impl Fn(&str) -> Result<T, ValueError>) -> Vec<T> {
        let Some(RawEntry { value: RawValue::StringList(items), origin }) = self.entry(path) else {
            return self.standin(path);
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            match parse(item) {
                Ok(value) => out.push(value),
                Err(expected) => {
                    ok = false;
                    let message = format!("item {}: expected {expected}, found {}", index + 1, quote(item));
                    self.problems.push(Problem::new(origin.clone(), Some(path.into()), message));
                }
            }
        }
        if ok { out } else { self.standin(path) }
    }

    fn engine_auth(&mut self) -> Option<EngineAuth> {
        let kind = self.merged.get("ecs.engine-auth-type");
        let data = self.merged.get("ecs.engine-auth-data");
        match (kind, data) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                let present = if kind.is_some() { "ecs.engine-auth-type" } else { "ecs.engine-auth-data" };
                self.problem_at(
                    present,
                    "expected engine-auth-type and engine-auth-data together, found only one".into(),
                );
                None
            }
            (Some(_), Some(_)) => {
                let kind = self.string("ecs.engine-auth-type", EngineAuthType::from_str);
                // Both formats are JSON objects; never echo the text, it holds credentials.
                let data = self.string("ecs.engine-auth-data", |t| {
                    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t) {
                        Ok(_) => Ok(Secret::new(t.to_string())),
                        Err(_) => Err("a JSON object of registry credentials".into()),
                    }
                });
                Some(EngineAuth { kind, data })
            }
        }
    }

    fn ecs_config(&mut self, unchecked: &[String]) -> BTreeMap<String, String> {
        let mut config = BTreeMap::new();
        for (key, entry) in self.merged.ecs_config() {
            let RawValue::String(value) = &entry.value else {
                continue;
            };
            match ecs_keys::check(key, value, unchecked) {
                Ok(()) => {
                    config.insert(key.to_string(), value.clone());
                }
                Err(expected) => {
                    let found = if ecs_keys::may_show_value(key) {
                        quote(value)
                    } else {
                        format!("a value of {} characters (not shown: it may be a secret)", value.chars().count())
                    };
                    let message = format!("expected {expected}, found {found}");
                    let path = format!("ecs.config.{key}");
                    self.problems.push(Problem::new(entry.origin.clone(), Some(path), message));
                }
            }
        }
        config
    }

    /// gc-stop < gc-start < drain-at, and recover-below < gc-stop. A violation is reported
    /// on whichever of the two keys came from the higher layer: that is the one just changed.
    fn check_thresholds(&mut self, disk: &DiskSettings) {
        let pairs = [
            ("disk.gc-stop", disk.gc_stop, "disk.gc-start", disk.gc_start),
            ("disk.gc-start", disk.gc_start, "disk.drain-at", disk.drain_at),
            ("disk.recover-below", disk.recover_below, "disk.gc-stop", disk.gc_stop),
        ];
        for (lower_key, lower, upper_key, upper) in pairs {
            if lower < upper || !self.is_clean(lower_key) || !self.is_clean(upper_key) {
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
