//! `/etc/ecs/ecs.config` from settings: `KEY=VALUE` lines the ECS agent reads through ecs-init
//! (which splits on the first `=` and strips neither quotes nor comments, so values are written
//! bare and the header holds no `=`). ecs-init's defaults first, then the settings' extras.

use std::collections::BTreeMap;

use crate::settings::{AgentOwner, ClusterSource, Settings};

/// What ecs-init sets unless ecs.config says otherwise (amazon-ecs-init `docker.go`).
pub const ECS_INIT_DEFAULTS: &[(&str, &str)] = &[
    ("ECS_AVAILABLE_LOGGING_DRIVERS", r#"["json-file","syslog","awslogs","fluentd","none"]"#),
    ("ECS_ENABLE_TASK_IAM_ROLE", "true"),
    ("ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST", "true"),
];

/// The keys and values for ecs.config (and the agent's environment), secrets included. With
/// ecs-init in charge, its defaults are its own to add.
pub fn entries(settings: &Settings) -> BTreeMap<String, String> {
    let mut entries: BTreeMap<String, String> = match settings.ecs.agent {
        AgentOwner::Nodewarden => ECS_INIT_DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        AgentOwner::EcsInit => BTreeMap::new(),
    };
    if settings.ecs.cluster_source != ClusterSource::Later {
        entries.insert("ECS_CLUSTER".into(), settings.ecs.cluster.as_str().to_string());
    }
    if let Some(auth) = &settings.ecs.engine_auth {
        entries.insert("ECS_ENGINE_AUTH_TYPE".into(), auth.kind.as_str().to_string());
        // JSON on one line: the file is line-based.
        let data = serde_json::from_str::<serde_json::Value>(auth.data.expose())
            .map(|v| v.to_string())
            .unwrap_or_else(|_| auth.data.expose().to_string());
        entries.insert("ECS_ENGINE_AUTH_DATA".into(), data);
    }
    entries.extend(settings.ecs.config.iter().map(|(k, v)| (k.clone(), v.clone())));
    entries.insert("ECS_RESERVED_PORTS".into(), reserved_ports(settings, None));
    entries
}

/// The agent's own reserved ports (its default, which setting the key replaces), the
/// operator's, and the health endpoint's, so no task is ever given it as a host port.
pub const AGENT_RESERVED_PORTS: &[u16] = &[22, 2375, 2376, 51678, 51679];

/// `also` is another writer's ECS_RESERVED_PORTS (ecs-init mode keeps its ports too).
fn reserved_ports(settings: &Settings, also: Option<&str>) -> String {
    let parse = |value: Option<&String>| -> Vec<u16> {
        value.and_then(|value| serde_json::from_str(value).ok()).unwrap_or_default()
    };
    let mut ports: Vec<u16> = AGENT_RESERVED_PORTS.to_vec();
    ports.extend(parse(settings.ecs.config.get("ECS_RESERVED_PORTS")));
    ports.extend(parse(also.map(str::to_string).as_ref()));
    ports.push(settings.health.listen.port());
    ports.sort_unstable();
    ports.dedup();
    serde_json::to_string(&ports).expect("a list of numbers always serializes")
}

const HEADER: &str = "# Written by nodewarden from its settings (defaults, /etc/nodewarden/settings.toml, userdata).\n";
/// Names the keys nodewarden wrote, so the next setup tells them from another writer's. No
/// `=` on comment lines: ecs-init would read one as a key.
const OURS_PREFIX: &str = "# nodewarden's keys: ";

/// `KEY=VALUE` lines as ecs-init reads them (split at the first `=`), comments and blanks skipped.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.to_string()))
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

/// The keys nodewarden wrote last time, from the file's header.
fn ours_in(text: &str) -> Vec<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(OURS_PREFIX))
        .map(|keys| keys.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The value another writer gave `key` (the last line setting it, as ecs-init's environment
/// file reads) and its 1-based line; `None` when absent or when nodewarden wrote it.
pub fn foreign_value(text: &str, key: &str) -> Option<(usize, String)> {
    if ours_in(text).iter().any(|k| k == key) {
        return None;
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with('#'))
        .filter_map(|(index, line)| line.split_once('=').map(|(k, v)| (index + 1, k.trim(), v)))
        .filter(|(_, k, _)| *k == key)
        .last()
        .map(|(line, _, value)| (line, value.to_string()))
}

/// The file to write, and what to tell the operator about keys another writer put there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub notes: Vec<String>,
}

/// The file's text, given what the file holds now. With nodewarden owning the agent, the file
/// is nodewarden's: another writer's keys are replaced, and each is named once (a userdata
/// habit such as `echo ECS_CLUSTER=… >> /etc/ecs/ecs.config` must not vanish silently). With
/// ecs-init owning it, the file is shared: another writer's keys are kept, nodewarden's win
/// where both set one (said), and ECS_RESERVED_PORTS keeps both lists.
pub fn render(settings: &Settings, existing: Option<&str>) -> Rendered {
    let previous_ours: Vec<String> = existing.map(ours_in).unwrap_or_default();
    let foreign: Vec<(String, String)> =
        existing.map(parse).unwrap_or_default().into_iter().filter(|(k, _)| !previous_ours.contains(k)).collect();
    let mut ours = entries(settings);
    // Another writer's ECS_CLUSTER line gave the cluster: it stays theirs, as it is.
    let cluster_theirs = settings.ecs.cluster_source == ClusterSource::EcsConfig;
    if cluster_theirs {
        ours.remove("ECS_CLUSTER");
    }
    // Shared with ecs-init, reserved ports only ever add up: another writer's stay, even once
    // the list is written by nodewarden (a port it no longer needs stays reserved, harmlessly).
    let existing_reserved =
        existing.map(parse).unwrap_or_default().into_iter().find(|(k, _)| k == "ECS_RESERVED_PORTS");
    if let (AgentOwner::EcsInit, Some((key, value))) = (settings.ecs.agent, existing_reserved) {
        ours.insert(key, reserved_ports(settings, Some(&value)));
    }
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    let shown = |key: &str, value: &str| {
        if crate::settings::ecs_key_may_show_value(key) {
            format!("{key}={value}")
        } else {
            format!("{key} (value not shown)")
        }
    };
    for (key, value) in foreign {
        match (settings.ecs.agent, ours.get(&key)) {
            (_, Some(mine)) if *mine == value => {}
            (_, None) if cluster_theirs && key == "ECS_CLUSTER" => kept.push((key, value)),
            (AgentOwner::EcsInit, None) => kept.push((key, value)),
            (AgentOwner::EcsInit, Some(_)) if key == "ECS_RESERVED_PORTS" => {}
            (AgentOwner::EcsInit, Some(_)) => notes.push(format!(
                "ecs.config: {} was set by another writer; nodewarden's settings set {key} too and win",
                shown(&key, &value)
            )),
            (AgentOwner::Nodewarden, _) => notes.push(format!(
                "ecs.config: {} was written by something other than nodewarden and is replaced (nodewarden writes \
                 this file from its settings): set it in [ecs.config] instead, or set [ecs] agent = \"ecs-init\" \
                 if ecs-init runs the agent here",
                shown(&key, &value)
            )),
        }
    }
    let mut text = String::from(HEADER);
    match settings.ecs.agent {
        AgentOwner::Nodewarden => text.push_str("# Edits here are replaced: change the settings instead.\n"),
        AgentOwner::EcsInit => {
            text.push_str("# Shared with ecs-init: other keys are kept; nodewarden's own are replaced.\n")
        }
    }
    text.push_str(OURS_PREFIX);
    text.push_str(&ours.keys().cloned().collect::<Vec<_>>().join(" "));
    text.push('\n');
    for (key, value) in kept.iter().map(|(k, v)| (k, v)).chain(ours.iter()) {
        text.push_str(&format!("{key}={value}\n"));
    }
    Rendered { text, notes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Layers, Source, load};

    fn settings(text: &str) -> Settings {
        load(&Layers { file: Some((Source::File("/s.toml".into()), text)), userdata: None, ..Layers::default() })
            .unwrap()
            .settings
    }

    #[test]
    fn cluster_ecs_init_defaults_and_extras() {
        let text = render(
            &settings(
                "[ecs]\ncluster = \"prod-web\"\n[ecs.config]\nECS_ENABLE_TASK_IAM_ROLE = \"false\"\nECS_LOGLEVEL = \"debug\"\n",
            ),
            None,
        )
        .text;
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                r#"ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","syslog","awslogs","fluentd","none"]"#,
                "ECS_CLUSTER=prod-web",
                "ECS_ENABLE_TASK_IAM_ROLE=false",
                "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST=true",
                "ECS_LOGLEVEL=debug",
                "ECS_RESERVED_PORTS=[22,2375,2376,31690,51678,51679]",
            ]
        );
        assert!(text.lines().filter(|l| l.starts_with('#')).all(|l| !l.contains('=')), "ecs-init would read a key");
    }

    #[test]
    fn the_health_port_is_reserved_beside_the_agents_and_the_operators() {
        let text = render(&settings(
            "[ecs]\ncluster = \"c\"\n[ecs.config]\nECS_RESERVED_PORTS = \"[8080, 22]\"\n[health]\nlisten = \"127.0.0.1:9100\"\n",
        ), None)
        .text;
        assert!(text.contains("ECS_RESERVED_PORTS=[22,2375,2376,8080,9100,51678,51679]\n"), "{text}");
    }

    #[test]
    fn with_ecs_init_another_writers_keys_stay_and_ours_win() {
        let existing = "ECS_CLUSTER=from-userdata-echo\nECS_ENABLE_TASK_IAM_ROLE=true\nECS_RESERVED_PORTS=[9000]\nECS_LOGLEVEL=warn\n";
        let ecs_init = settings("[ecs]\ncluster = \"prod\"\nagent = \"ecs-init\"\n");
        let rendered = render(&ecs_init, Some(existing));
        let keys = parse(&rendered.text);
        let get = |k: &str| keys.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ECS_CLUSTER"), Some("prod"));
        assert_eq!(get("ECS_LOGLEVEL"), Some("warn"), "another writer's key is kept");
        assert_eq!(get("ECS_ENABLE_TASK_IAM_ROLE"), Some("true"));
        assert_eq!(get("ECS_RESERVED_PORTS"), Some("[22,2375,2376,9000,31690,51678,51679]"));
        assert!(get("ECS_AVAILABLE_LOGGING_DRIVERS").is_none(), "ecs-init adds its own defaults");
        assert_eq!(keys.iter().filter(|(k, _)| k == "ECS_CLUSTER").count(), 1);
        assert_eq!(rendered.notes.len(), 1, "{:?}", rendered.notes);
        assert!(rendered.notes[0].contains("ECS_CLUSTER (value not shown)"), "{:?}", rendered.notes);
        // The next setup knows its own keys from the header: nothing to say, nothing lost.
        let again = render(&ecs_init, Some(&rendered.text));
        assert_eq!(again, Rendered { text: rendered.text.clone(), notes: vec![] });
    }

    #[test]
    fn with_nodewarden_another_writers_keys_are_named_once_and_replaced() {
        let mine = settings("[ecs]\ncluster = \"prod\"\n");
        let existing = "ECS_CLUSTER=prod\nECS_LOGLEVEL=debug\nECS_ENGINE_AUTH_DATA={\"pw\":\"hunter2\"}\n";
        let rendered = render(&mine, Some(existing));
        assert!(!rendered.text.contains("ECS_LOGLEVEL"), "{}", rendered.text);
        assert_eq!(rendered.notes.len(), 2, "{:?}", rendered.notes);
        assert!(rendered.notes[0].contains("ECS_LOGLEVEL=debug") && rendered.notes[0].contains("[ecs.config]"));
        assert!(!rendered.notes.join(" ").contains("hunter2"), "a secret was shown: {:?}", rendered.notes);
        assert!(render(&mine, Some(&rendered.text)).notes.is_empty(), "said once");
    }

    #[test]
    fn a_cluster_from_another_writers_line_stays_theirs_and_one_not_given_is_not_written() {
        use crate::settings::host::{EcsService, HostFacts};
        let host = |enabled: bool, text: &str| HostFacts {
            ecs_service: EcsService { installed: true, enabled },
            ecs_config: Some(("/etc/ecs/ecs.config".into(), text.to_string())),
        };
        let load_with = |facts: &HostFacts, later: bool| {
            let layers = Layers { host: Some(facts), cluster_may_come_later: later, ..Layers::default() };
            load(&layers).map(|loaded| loaded.settings)
        };
        // Either owner: the echoed line is kept as it is and never listed as nodewarden's.
        for enabled in [true, false] {
            let echoed = host(enabled, "ECS_CLUSTER=classic\n");
            let settings = load_with(&echoed, false).unwrap();
            assert_eq!(settings.ecs.cluster_source, ClusterSource::EcsConfig);
            assert_eq!(entries(&settings).get("ECS_CLUSTER").map(String::as_str), Some("classic"), "the agent's env");
            let rendered = render(&settings, Some("ECS_CLUSTER=classic\n"));
            assert!(rendered.notes.is_empty(), "{:?}", rendered.notes);
            assert_eq!(rendered.text.matches("ECS_CLUSTER=classic\n").count(), 1, "{}", rendered.text);
            let ours = rendered.text.lines().find(|l| l.starts_with(OURS_PREFIX)).unwrap();
            assert!(!ours.contains("ECS_CLUSTER"), "{}", rendered.text);
            assert_eq!(foreign_value(&rendered.text, "ECS_CLUSTER").map(|(_, v)| v).as_deref(), Some("classic"));
        }
        // ecs-init, no cluster yet: only setup may go on, and it writes no ECS_CLUSTER.
        let empty = host(true, "");
        assert!(load_with(&empty, false).is_err(), "the daemon needs a cluster");
        let settings = load_with(&empty, true).unwrap();
        assert_eq!(settings.ecs.cluster_source, ClusterSource::Later);
        assert!(!render(&settings, Some("")).text.contains("ECS_CLUSTER"));
        // nodewarden runs the agent: it needs the cluster now.
        assert!(load_with(&host(false, ""), true).is_err());
    }

    #[test]
    fn engine_auth_is_written_on_one_line() {
        let text = render(&settings(
            "[ecs]\ncluster = \"c\"\nengine-auth-type = \"docker\"\nengine-auth-data = '''{\n \"r\": {\"username\": \"u\"}\n}'''\n",
        ), None)
        .text;
        assert!(text.contains("ECS_ENGINE_AUTH_TYPE=docker\n"));
        assert!(text.contains("ECS_ENGINE_AUTH_DATA={\"r\":{\"username\":\"u\"}}\n"), "{text}");
    }
}
