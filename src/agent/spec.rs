//! The `ecs-agent` container nodewarden wants, as ecs-init creates it (shared/reference
//! ecs-agent.md §1.3): host network and user namespace, NET_ADMIN and SYS_ADMIN, an init
//! process, json-file logs capped at 16m × 4, ecs-init's environment and bind mounts, and no
//! restart policy (nodewarden supervises). A fingerprint label tells whether an existing
//! container matches, so restarting nodewarden keeps a running agent.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};

use super::ecs_config;
use crate::host_paths::HostPaths;
use crate::settings::Settings;

pub const CONTAINER_NAME: &str = "ecs-agent";
pub const FINGERPRINT_LABEL: &str = "io.nodewarden.spec";

/// ecs-init's environment for the agent (before ecs.config's entries, which win).
const ENV_DEFAULTS: &[(&str, &str)] = &[
    ("ECS_LOGFILE", "/log/ecs-agent.log"),
    ("ECS_DATADIR", "/data"),
    ("ECS_AGENT_CONFIG_FILE_PATH", "/etc/ecs/ecs.config.json"),
    ("ECS_UPDATE_DOWNLOAD_DIR", "/var/cache/ecs"),
    ("ECS_UPDATES_ENABLED", "true"),
    ("ECS_EBSTA_SUPPORTED", "true"),
    ("ECS_AGENT_LABELS", ""),
    ("ECS_VOLUME_PLUGIN_CAPABILITIES", r#"["efsAuth"]"#),
    ("ECS_ENABLE_TASK_ENI", "true"),
    ("ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE", "true"),
];

/// Host paths the agent reads through, mounted read-only when they exist (ecs-init mounts them
/// so the agent can run host iptables, lsblk and the Docker plugins).
const READ_ONLY_HOST_PATHS: &[(&str, &str)] = &[
    ("/proc", "/host/proc"),
    ("/run/docker/plugins", "/run/docker/plugins"),
    ("/etc/docker/plugins", "/etc/docker/plugins"),
    ("/usr/lib/docker/plugins", "/usr/lib/docker/plugins"),
    ("/usr/lib", "/usr/lib"),
    ("/lib", "/lib"),
    ("/usr/lib64", "/usr/lib64"),
    ("/lib64", "/lib64"),
    ("/sbin", "/host/sbin"),
    ("/usr/sbin", "/usr/sbin"),
    ("/etc/alternatives", "/etc/alternatives"),
    ("/etc/pki", "/etc/pki"),
];

/// The agent container, ready to create.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub binds: Vec<String>,
    pub fingerprint: String,
}

/// Directories on the host (under `--root`) the agent's bind mounts need.
pub fn host_dirs(paths: &HostPaths) -> Vec<std::path::PathBuf> {
    ["/var/log/ecs", "/var/log/ecs/exec", "/var/lib/ecs/data", "/etc/ecs", "/var/cache/ecs"]
        .iter()
        .map(|p| paths.host(p))
        .collect()
}

pub fn build(settings: &Settings, paths: &HostPaths, docker_socket: Option<&str>) -> AgentSpec {
    let mut env: BTreeMap<String, String> = ENV_DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.extend(ecs_config::entries(settings));
    let own = |host: &str, container: &str| format!("{}:{container}", paths.host(host).display());
    let mut binds = vec![
        match docker_socket {
            Some("/var/run/docker.sock") | None => "/var/run:/var/run".to_string(),
            Some(socket) => format!("{socket}:/var/run/docker.sock"),
        },
        own("/var/log/ecs", "/log"),
        own("/var/lib/ecs/data", "/data"),
        own("/etc/ecs", "/etc/ecs"),
        own("/var/cache/ecs", "/var/cache/ecs"),
        own("/var/lib/ecs", "/var/lib/ecs"),
        own("/var/log/ecs/exec", "/log/exec"),
        "/sys/fs/cgroup:/sys/fs/cgroup".to_string(),
    ];
    binds.extend(
        READ_ONLY_HOST_PATHS
            .iter()
            .filter(|(host, _)| Path::new(host).exists())
            .map(|(host, container)| format!("{host}:{container}:ro")),
    );
    let image = settings.ecs.agent_image.to_string();
    let fingerprint = fingerprint(&image, &env, &binds);
    AgentSpec { image, env, binds, fingerprint }
}

impl AgentSpec {
    pub fn create_body(&self) -> ContainerCreateBody {
        let log_config = HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([("max-size".into(), "16m".into()), ("max-file".into(), "4".into())])),
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(HashMap::from([(FINGERPRINT_LABEL.to_string(), self.fingerprint.clone())])),
            host_config: Some(HostConfig {
                network_mode: Some("host".into()),
                userns_mode: Some("host".into()),
                cap_add: Some(vec!["NET_ADMIN".into(), "SYS_ADMIN".into()]),
                init: Some(true),
                binds: Some(self.binds.clone()),
                log_config: Some(log_config),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// FNV-1a over the spec: stable across nodewarden versions and Rust releases (std's hasher is
/// not), so an upgrade alone never replaces a running agent.
fn fingerprint(image: &str, env: &BTreeMap<String, String>, binds: &[String]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |text: &str| {
        for byte in text.bytes().chain([0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed("v1");
    feed(image);
    for (key, value) in env {
        feed(key);
        feed(value);
    }
    for bind in binds {
        feed(bind);
    }
    format!("{hash:016x}")
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
    fn matches_ecs_init() {
        let spec = build(&settings("[ecs]\ncluster = \"prod\"\n"), &HostPaths::new("/"), None);
        assert_eq!(spec.image, "amazon/amazon-ecs-agent:v1.105.1");
        assert_eq!(spec.env["ECS_CLUSTER"], "prod");
        assert_eq!(spec.env["ECS_DATADIR"], "/data");
        assert_eq!(spec.env["ECS_ENABLE_TASK_IAM_ROLE"], "true");
        for bind in [
            "/var/run:/var/run",
            "/var/log/ecs:/log",
            "/var/lib/ecs/data:/data",
            "/etc/ecs:/etc/ecs",
            "/var/cache/ecs:/var/cache/ecs",
            "/sys/fs/cgroup:/sys/fs/cgroup",
            "/var/lib/ecs:/var/lib/ecs",
            "/proc:/host/proc:ro",
        ] {
            assert!(spec.binds.contains(&bind.to_string()), "{bind} missing from {:?}", spec.binds);
        }
        let body = spec.create_body();
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".to_string(), "SYS_ADMIN".to_string()]));
        assert_eq!(host.init, Some(true));
        assert!(host.restart_policy.is_none(), "nodewarden supervises; Docker must not restart it too");
    }

    #[test]
    fn paths_follow_the_root_and_the_socket() {
        let spec = build(&settings("[ecs]\ncluster = \"c\"\n"), &HostPaths::new("/tmp/r"), Some("/tmp/d/docker.sock"));
        assert!(spec.binds.contains(&"/tmp/d/docker.sock:/var/run/docker.sock".to_string()));
        assert!(spec.binds.contains(&"/tmp/r/etc/ecs:/etc/ecs".to_string()));
    }

    #[test]
    fn the_fingerprint_changes_with_the_spec_only() {
        let a = build(&settings("[ecs]\ncluster = \"c\"\n"), &HostPaths::new("/"), None);
        let b = build(&settings("[ecs]\ncluster = \"c\"\n"), &HostPaths::new("/"), None);
        let c = build(&settings("[ecs]\ncluster = \"d\"\n"), &HostPaths::new("/"), None);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }
}
