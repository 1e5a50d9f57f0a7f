//! `/etc/ecs/ecs.config` from settings: `KEY=VALUE` lines the ECS agent reads through ecs-init
//! (which splits on the first `=` and strips neither quotes nor comments, so values are written
//! bare and the header holds no `=`). ecs-init's defaults first, then the settings' extras.

use std::collections::BTreeMap;

use crate::settings::Settings;

/// What ecs-init sets unless ecs.config says otherwise (amazon-ecs-init `docker.go`).
pub const ECS_INIT_DEFAULTS: &[(&str, &str)] = &[
    ("ECS_AVAILABLE_LOGGING_DRIVERS", r#"["json-file","syslog","awslogs","fluentd","none"]"#),
    ("ECS_ENABLE_TASK_IAM_ROLE", "true"),
    ("ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST", "true"),
];

/// The keys and values for ecs.config (and the agent's environment), secrets included.
pub fn entries(settings: &Settings) -> BTreeMap<String, String> {
    let mut entries: BTreeMap<String, String> =
        ECS_INIT_DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    entries.insert("ECS_CLUSTER".into(), settings.ecs.cluster.as_str().to_string());
    if let Some(auth) = &settings.ecs.engine_auth {
        entries.insert("ECS_ENGINE_AUTH_TYPE".into(), auth.kind.as_str().to_string());
        // JSON on one line: the file is line-based.
        let data = serde_json::from_str::<serde_json::Value>(auth.data.expose())
            .map(|v| v.to_string())
            .unwrap_or_else(|_| auth.data.expose().to_string());
        entries.insert("ECS_ENGINE_AUTH_DATA".into(), data);
    }
    entries.extend(settings.ecs.config.iter().map(|(k, v)| (k.clone(), v.clone())));
    entries.insert("ECS_RESERVED_PORTS".into(), reserved_ports(settings));
    entries
}

/// The agent's own reserved ports (its default, which setting the key replaces), the
/// operator's, and the health endpoint's, so no task is ever given it as a host port.
pub const AGENT_RESERVED_PORTS: &[u16] = &[22, 2375, 2376, 51678, 51679];

fn reserved_ports(settings: &Settings) -> String {
    let operators: Vec<u16> = settings
        .ecs
        .config
        .get("ECS_RESERVED_PORTS")
        .and_then(|value| serde_json::from_str(value).ok())
        .unwrap_or_default();
    let mut ports: Vec<u16> = AGENT_RESERVED_PORTS.iter().copied().chain(operators).collect();
    ports.push(settings.health.listen.port());
    ports.sort_unstable();
    ports.dedup();
    serde_json::to_string(&ports).expect("a list of numbers always serializes")
}

/// The file's text.
pub fn render(settings: &Settings) -> String {
    let mut text = String::from(
        "# Written by nodewarden from its settings (defaults, /etc/nodewarden/settings.toml, userdata).\n\
         # Edits here are replaced: change the settings instead.\n",
    );
    for (key, value) in entries(settings) {
        text.push_str(&format!("{key}={value}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Layers, Source, load};

    fn settings(text: &str) -> Settings {
        load(&Layers { file: Some((Source::File("/s.toml".into()), text)), userdata: None }).unwrap().settings
    }

    #[test]
    fn cluster_ecs_init_defaults_and_extras() {
        let text = render(&settings(
            "[ecs]\ncluster = \"prod-web\"\n[ecs.config]\nECS_ENABLE_TASK_IAM_ROLE = \"false\"\nECS_LOGLEVEL = \"debug\"\n",
        ));
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
        ));
        assert!(text.contains("ECS_RESERVED_PORTS=[22,2375,2376,8080,9100,51678,51679]\n"), "{text}");
    }

    #[test]
    fn engine_auth_is_written_on_one_line() {
        let text = render(&settings(
            "[ecs]\ncluster = \"c\"\nengine-auth-type = \"docker\"\nengine-auth-data = '''{\n \"r\": {\"username\": \"u\"}\n}'''\n",
        ));
        assert!(text.contains("ECS_ENGINE_AUTH_TYPE=docker\n"));
        assert!(text.contains("ECS_ENGINE_AUTH_DATA={\"r\":{\"username\":\"u\"}}\n"), "{text}");
    }
}
