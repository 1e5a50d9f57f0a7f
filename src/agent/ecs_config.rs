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
    entries
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
            ]
        );
        assert!(text.lines().filter(|l| l.starts_with('#')).all(|l| !l.contains('=')), "ecs-init would read a key");
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
