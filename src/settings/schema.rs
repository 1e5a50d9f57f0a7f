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
    /// The built-in default as the operator would write it: a string's text unquoted, any
    /// other kind as a TOML value. `None`: the key has no default.
    pub default: Option<&'static str>,
}

const fn key(section: &'static str, key: &'static str, kind: Kind, default: &'static str) -> KeySpec {
    KeySpec { section, key, kind, secret: false, default: Some(default) }
}

/// A key without a default: required, or optional with no value meaning "off".
const fn no_default(section: &'static str, key: &'static str, kind: Kind) -> KeySpec {
    KeySpec { section, key, kind, secret: false, default: None }
}

/// Sections in the order `check` prints them.
pub const SECTIONS: &[&str] = &["ecs", "docker", "disk", "gc", "drain", "offender", "health"];

/// Every accepted key with its default, in the order `check` prints them. Adding a key: a line
/// here, a field in `model.rs`, a line in `validate::validate`.
///
/// `ecs.cluster` has no default on purpose: joining the wrong cluster is worse than failing.
/// `data-device` defaults to the ECS AMI's historical Docker volume name, so a missing volume
/// is a loud error rather than Docker quietly sharing the root disk.
pub const KEYS: &[KeySpec] = &[
    no_default("ecs", "cluster", Kind::String),
    key("ecs", "agent", Kind::String, "nodewarden"),
    key("ecs", "agent-image", Kind::String, "amazon/amazon-ecs-agent:v1.105.1"),
    key("ecs", "agent-tarball", Kind::String, "/var/cache/ecs/ecs-agent.tar"),
    no_default("ecs", "engine-auth-type", Kind::String),
    KeySpec { secret: true, ..no_default("ecs", "engine-auth-data", Kind::String) },
    no_default("ecs", "config", Kind::StringMap),
    key("ecs", "config-unchecked", Kind::StringList, "[]"),
    key("ecs", "agent-health-grace", Kind::String, "2m"),
    key("ecs", "agent-health-interval", Kind::String, "15s"),
    key("ecs", "agent-health-failures", Kind::Integer, "4"),
    key("docker", "data-device", Kind::String, "xvdcz"),
    key("docker", "filesystem", Kind::String, "xfs"),
    key("docker", "log-max-size", Kind::String, "16MiB"),
    key("docker", "log-max-files", Kind::Integer, "4"),
    key("docker", "container-disk-limit", Kind::String, "10GiB"),
    key("disk", "check-interval", Kind::String, "1s"),
    key("disk", "gc-start", Kind::String, "85%"),
    key("disk", "gc-stop", Kind::String, "80%"),
    key("disk", "drain-at", Kind::String, "92%"),
    key("disk", "drain-if-full-within", Kind::String, "10m"),
    key("disk", "recover-below", Kind::String, "75%"),
    key("disk", "recover-after", Kind::String, "5m"),
    key("gc", "min-image-age", Kind::String, "2m"),
    key("gc", "exited-container-min-age", Kind::String, "10m"),
    key("gc", "keep-images", Kind::StringList, r#"["amazon/amazon-ecs-agent:*"]"#),
    key("gc", "run-timeout", Kind::String, "3m"),
    key("gc", "remove-other-containers", Kind::Bool, "false"),
    key("gc", "remove-other-volumes", Kind::Bool, "false"),
    key("drain", "enabled", Kind::Bool, "true"),
    key("drain", "max-draining-fraction", Kind::String, "20%"),
    key("drain", "on-spot-interruption", Kind::Bool, "true"),
    key("drain", "on-termination", Kind::Bool, "true"),
    key("drain", "lifecycle-hook", Kind::String, "nodewarden-drain"),
    key("drain", "heartbeat-interval", Kind::String, "2m"),
    key("drain", "termination-timeout", Kind::String, "15m"),
    key("offender", "action", Kind::String, "none"),
    key("health", "listen", Kind::String, "127.0.0.1:31690"),
    key("health", "allow-remote", Kind::Bool, "false"),
];

pub fn lookup(section: &str, name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.section == section && k.key == name)
}

pub fn keys_of(section: &str) -> impl Iterator<Item = &'static KeySpec> {
    KEYS.iter().filter(move |k| k.section == section)
}

/// The built-in defaults as a TOML document, so they go through the same parser as every
/// other layer.
pub fn defaults_toml() -> String {
    let mut out = String::new();
    for section in SECTIONS {
        out.push_str(&format!("[{section}]\n"));
        for spec in keys_of(section) {
            let Some(default) = spec.default else { continue };
            let value = match spec.kind {
                Kind::String => toml::Value::String(default.to_string()).to_string(),
                _ => default.to_string(),
            };
            out.push_str(&format!("{} = {value}\n", spec.key));
        }
    }
    out
}

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

    #[test]
    fn every_default_has_its_key_kind() {
        let defaults: toml::Table = defaults_toml().parse().expect("the defaults are TOML");
        for spec in KEYS {
            let value = defaults.get(spec.section).and_then(|s| s.get(spec.key));
            let kind_matches = match (spec.kind, value) {
                (_, None) => spec.default.is_none(),
                (Kind::String, Some(v)) => v.is_str(),
                (Kind::Integer, Some(v)) => v.is_integer(),
                (Kind::Bool, Some(v)) => v.is_bool(),
                (Kind::StringList, Some(v)) => v.as_array().is_some_and(|a| a.iter().all(toml::Value::is_str)),
                (Kind::StringMap, Some(_)) => false,
            };
            assert!(kind_matches, "default of {}.{}: {value:?}", spec.section, spec.key);
        }
    }
}
