//! The settings contract: every section and key nodewarden accepts, its TOML type, and the
//! built-in defaults (written as TOML so they go through the same parser as every other layer).

/// The TOML shape a key must have. Values are then checked by type in `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Bool,
    StringList,
    /// A table of `KEY = value` pairs (only `[ecs] config`); each pair is merged on its own.
    StringMap,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Bool => "true or false",
            Kind::StringList => "an array of strings",
            Kind::StringMap => "a table of KEY = \"value\" pairs",
        }
    }
}

pub struct KeySpec {
    pub section: &'static str,
    pub key: &'static str,
    pub kind: Kind,
    /// Never printed or logged: shown as `<redacted>`.
    pub secret: bool,
}

const fn key(section: &'static str, key: &'static str, kind: Kind) -> KeySpec {
    KeySpec { section, key, kind, secret: false }
}

/// Sections in the order `check` prints them.
pub const SECTIONS: &[&str] = &["ecs", "docker", "disk", "gc", "drain", "health"];

/// Every accepted key, in the order `check` prints them.
pub const KEYS: &[KeySpec] = &[
    key("ecs", "cluster", Kind::String),
    key("ecs", "agent-image", Kind::String),
    key("ecs", "agent-tarball", Kind::String),
    key("ecs", "engine-auth-type", Kind::String),
    KeySpec { section: "ecs", key: "engine-auth-data", kind: Kind::String, secret: true },
    key("ecs", "config", Kind::StringMap),
    key("ecs", "agent-health-grace", Kind::String),
    key("ecs", "agent-health-interval", Kind::String),
    key("ecs", "agent-health-failures", Kind::Integer),
    key("docker", "data-device", Kind::String),
    key("docker", "filesystem", Kind::String),
    key("docker", "log-max-size", Kind::String),
    key("docker", "log-max-files", Kind::Integer),
    key("docker", "container-disk-limit", Kind::String),
    key("disk", "check-interval", Kind::String),
    key("disk", "gc-start", Kind::String),
    key("disk", "gc-stop", Kind::String),
    key("disk", "drain-at", Kind::String),
    key("disk", "drain-if-full-within", Kind::String),
    key("disk", "recover-below", Kind::String),
    key("disk", "recover-after", Kind::String),
    key("gc", "min-image-age", Kind::String),
    key("gc", "exited-container-min-age", Kind::String),
    key("gc", "keep-images", Kind::StringList),
    key("drain", "enabled", Kind::Bool),
    key("drain", "max-draining-fraction", Kind::String),
    key("drain", "on-spot-interruption", Kind::Bool),
    key("drain", "on-termination", Kind::Bool),
    key("drain", "lifecycle-hook", Kind::String),
    key("drain", "heartbeat-interval", Kind::String),
    key("drain", "termination-timeout", Kind::String),
    key("health", "listen", Kind::String),
    key("health", "allow-remote", Kind::Bool),
];

pub fn lookup(section: &str, name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.section == section && k.key == name)
}

pub fn keys_of(section: &str) -> impl Iterator<Item = &'static KeySpec> {
    KEYS.iter().filter(move |k| k.section == section)
}

/// Built-in defaults. `ecs.cluster` has none on purpose: joining the wrong cluster is worse
/// than failing. `data-device` defaults to the ECS AMI's historical Docker volume name, so a
/// missing volume is a loud error rather than Docker quietly sharing the root disk.
pub const DEFAULTS_TOML: &str = r#"
[ecs]
agent-image = "amazon/amazon-ecs-agent:v1.105.1"
agent-tarball = "/var/cache/ecs/ecs-agent.tar"
agent-health-grace = "2m"
agent-health-interval = "15s"
agent-health-failures = 4

[docker]
data-device = "xvdcz"
filesystem = "xfs"
log-max-size = "16MiB"
log-max-files = 4
container-disk-limit = "10GiB"

[disk]
check-interval = "1s"
gc-start = "85%"
gc-stop = "80%"
drain-at = "92%"
drain-if-full-within = "10m"
recover-below = "75%"
recover-after = "5m"

[gc]
min-image-age = "2m"
exited-container-min-age = "10m"
keep-images = ["amazon/amazon-ecs-agent:*"]

[drain]
enabled = true
max-draining-fraction = "20%"
on-spot-interruption = true
on-termination = true
lifecycle-hook = "nodewarden-drain"
heartbeat-interval = "2m"
termination-timeout = "15m"

[health]
listen = "127.0.0.1:51690"
allow-remote = false
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_belongs_to_a_known_section_once() {
        for spec in KEYS {
            assert!(SECTIONS.contains(&spec.section), "{}", spec.section);
            let same = KEYS.iter().filter(|k| k.section == spec.section && k.key == spec.key).count();
            assert_eq!(same, 1, "{}.{} listed twice", spec.section, spec.key);
        }
    }
}
