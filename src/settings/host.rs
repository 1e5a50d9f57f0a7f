//! The host layer, between the built-in defaults and the settings file: what this host already
//! says, so the stock ECS-optimized AMI needs no settings at all. Where `ecs.service` (ecs-init)
//! is enabled and the operator did not choose, ecs-init keeps the agent (`[ecs] agent =
//! "ecs-init"`); an `ECS_CLUSTER` line another writer put in `/etc/ecs/ecs.config` (classic ECS
//! userdata: `echo ECS_CLUSTER=… >> /etc/ecs/ecs.config`) gives `[ecs] cluster`. Reading the
//! host is [`HostFacts::read`]; turning the facts into entries is pure ([`layer`]).

use std::path::{Path, PathBuf};

use super::document::{RawDocument, RawEntry, RawValue};
use super::source::{Origin, Position, Source};
use crate::host_paths::HostPaths;

/// ecs-init's unit on this host, as its files show it (so it reads the same under `--root`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EcsService {
    pub installed: bool,
    /// Linked into some target's `.wants` (a link to `/dev/null` is a mask, not a unit).
    pub enabled: bool,
}

/// What the host layer is made of: plain data, read once per assembly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub ecs_service: EcsService,
    /// `/etc/ecs/ecs.config` (its path and text), when it exists.
    pub ecs_config: Option<(PathBuf, String)>,
}

const UNIT: &str = "ecs.service";
const UNIT_DIRS: &[&str] = &["/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/system"];

impl EcsService {
    pub fn read(paths: &HostPaths) -> EcsService {
        let installed = UNIT_DIRS.iter().any(|dir| {
            let unit = paths.host(dir).join(UNIT);
            unit.exists() && std::fs::read_link(&unit).map_or(true, |to| to != Path::new("/dev/null"))
        });
        let enabled = std::fs::read_dir(paths.systemd_dir())
            .map(|entries| {
                entries.flatten().any(|entry| {
                    entry.file_name().to_string_lossy().ends_with(".wants")
                        && std::fs::read_link(entry.path().join(UNIT)).is_ok_and(|to| to != Path::new("/dev/null"))
                })
            })
            .unwrap_or(false);
        EcsService { installed, enabled: installed && enabled }
    }
}

impl HostFacts {
    /// Reads the host. An unreadable ecs.config is left out (setup reports it when it writes).
    pub fn read(paths: &HostPaths) -> HostFacts {
        let path = paths.ecs_config();
        let ecs_config = std::fs::read_to_string(&path).ok().map(|text| (path, text));
        HostFacts { ecs_service: EcsService::read(paths), ecs_config }
    }
}

/// Why `[ecs] agent` is what the host layer says, for `check`'s source column.
pub const ECS_INIT_ENABLED: &str = "ecs.service (ecs-init) is enabled, so it runs the ECS agent";
pub const ECS_INIT_DISABLED: &str = "ecs.service (ecs-init) is installed but not enabled, so nodewarden runs the agent";

/// The host layer's entries: `ecs.agent` when ecs-init is installed, `ecs.cluster` from an
/// `ECS_CLUSTER` line nodewarden did not write.
pub fn layer(facts: &HostFacts) -> RawDocument {
    let mut document = RawDocument::default();
    let service = facts.ecs_service;
    if service.installed {
        let (owner, why) =
            if service.enabled { ("ecs-init", ECS_INIT_ENABLED) } else { ("nodewarden", ECS_INIT_DISABLED) };
        document.entries.insert(
            "ecs.agent".into(),
            RawEntry { value: RawValue::String(owner.into()), origin: Origin::new(Source::Host(why.into()), None) },
        );
    }
    if let Some((path, text)) = &facts.ecs_config
        && let Some((line, value)) = crate::agent::ecs_config::foreign_value(text, "ECS_CLUSTER")
    {
        let position = Position { line, column: "ECS_CLUSTER=".len() + 1 };
        document.entries.insert(
            "ecs.cluster".into(),
            RawEntry {
                value: RawValue::String(value.trim().to_string()),
                origin: Origin::new(Source::EcsConfig(path.clone()), Some(position)),
            },
        );
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(installed: bool, enabled: bool, ecs_config: Option<&str>) -> HostFacts {
        HostFacts {
            ecs_service: EcsService { installed, enabled },
            ecs_config: ecs_config.map(|text| (PathBuf::from("/etc/ecs/ecs.config"), text.to_string())),
        }
    }

    fn value(document: &RawDocument, path: &str) -> Option<String> {
        document.entries.get(path).map(|entry| match &entry.value {
            RawValue::String(text) => text.clone(),
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn the_agent_follows_ecs_init_only_where_its_unit_is_there() {
        let table = [((false, false), None), ((true, true), Some("ecs-init")), ((true, false), Some("nodewarden"))];
        for ((installed, enabled), expected) in table {
            let document = layer(&facts(installed, enabled, None));
            assert_eq!(value(&document, "ecs.agent").as_deref(), expected, "installed {installed}, enabled {enabled}");
            if let Some(entry) = document.entries.get("ecs.agent") {
                assert!(matches!(&entry.origin.source, Source::Host(why) if why.contains("ecs.service")));
            }
        }
    }

    #[test]
    fn the_cluster_comes_from_another_writers_ecs_cluster_line() {
        let echoed = "ECS_LOGLEVEL=info\nECS_CLUSTER=prod-web\n";
        let document = layer(&facts(true, true, Some(echoed)));
        assert_eq!(value(&document, "ecs.cluster").as_deref(), Some("prod-web"));
        let origin = &document.entries["ecs.cluster"].origin;
        assert_eq!(origin.to_string(), "/etc/ecs/ecs.config:2:13");
        // The last line wins, as in a shell's environment file.
        let twice = "ECS_CLUSTER=old\nECS_CLUSTER=new\n";
        assert_eq!(value(&layer(&facts(false, false, Some(twice))), "ecs.cluster").as_deref(), Some("new"));
        // nodewarden's own ECS_CLUSTER (named in its header) came from its settings: not an input.
        let ours = "# nodewarden's keys: ECS_CLUSTER ECS_RESERVED_PORTS\nECS_CLUSTER=prod-web\n";
        assert_eq!(value(&layer(&facts(true, true, Some(ours))), "ecs.cluster"), None);
        assert_eq!(value(&layer(&facts(true, true, Some("ECS_LOGLEVEL=info\n"))), "ecs.cluster"), None);
    }
}
