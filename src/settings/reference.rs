//! The operator's reference for every setting: what it means, what it accepts, and when a change
//! takes effect. `docs/reference.md`'s settings table is generated from this and the schema
//! ([`settings_table`]); a test fails when a key has no entry here or the page is stale.

use super::schema::{self, KeySpec};

/// When a changed value takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// `systemctl reload nodewarden` (SIGHUP) applies it to the running daemon.
    Reload,
    /// At the daemon's next start (`systemctl restart nodewarden`).
    Restart,
    /// When `nodewarden setup` runs (every boot, before Docker; or by hand), then the daemon's
    /// next start: it shapes Docker's disk, daemon.json or ecs.config.
    Setup,
}

impl Applies {
    pub fn describe(self) -> &'static str {
        match self {
            Applies::Reload => "reload (SIGHUP)",
            Applies::Restart => "restart",
            Applies::Setup => "setup (next boot)",
        }
    }
}

pub struct KeyDoc {
    pub path: &'static str,
    pub meaning: &'static str,
    /// What values are accepted.
    pub accepts: &'static str,
    pub applies: Applies,
}

const fn doc(path: &'static str, meaning: &'static str, accepts: &'static str, applies: Applies) -> KeyDoc {
    KeyDoc { path, meaning, accepts, applies }
}

use Applies::{Reload, Restart, Setup};

/// One entry per key of `schema::KEYS`, in its order.
pub const DOCS: &[KeyDoc] = &[
    doc(
        "ecs.cluster",
        "The ECS cluster the instance joins. Without it, ECS_CLUSTER from /etc/ecs/ecs.config (classic userdata); where ecs-init runs the agent, setup may go on before that line is written.",
        "a cluster name (1–255 letters, digits, `-`, `_`) or a cluster ARN",
        Setup,
    ),
    doc(
        "ecs.agent",
        "Who runs the ECS agent: nodewarden, or ecs-init's ecs.service. Unset: ecs-init where ecs.service is enabled (the ECS-optimized AMI), nodewarden elsewhere.",
        "`nodewarden`, `ecs-init`",
        Setup,
    ),
    doc(
        "ecs.agent-image",
        "The agent image nodewarden runs (agent = \"nodewarden\").",
        "a pinned tag or `@sha256:` digest; `latest` is refused",
        Restart,
    ),
    doc(
        "ecs.agent-tarball",
        "`docker load`ed when Docker lacks agent-image; the loaded image must carry that reference.",
        "an absolute path",
        Restart,
    ),
    doc(
        "ecs.engine-auth-type",
        "ECS_ENGINE_AUTH_TYPE for private registries; with engine-auth-data.",
        "`docker`, `dockercfg`",
        Setup,
    ),
    doc(
        "ecs.engine-auth-data",
        "ECS_ENGINE_AUTH_DATA: registry credentials. Secret: never printed or logged.",
        "a JSON object",
        Setup,
    ),
    doc(
        "ecs.config",
        "Extra ecs.config keys, each merged on its own across layers (`[ecs.config]`).",
        "known `ECS_*` keys (and HTTP_PROXY, HTTPS_PROXY, NO_PROXY) with values the agent accepts",
        Setup,
    ),
    doc(
        "ecs.config-unchecked",
        "Keys of [ecs.config] nodewarden does not know, passed to the agent unchecked on purpose.",
        "variable names",
        Setup,
    ),
    doc("ecs.agent-health-grace", "No health verdict on the agent before it ran this long.", "a duration", Restart),
    doc(
        "ecs.agent-health-interval",
        "How often the agent's introspection API (/v1/metadata) is asked.",
        "a duration of at least 100ms",
        Restart,
    ),
    doc(
        "ecs.agent-health-failures",
        "Consecutive failed checks that restart nodewarden's agent (ecs-init's is only reported).",
        "1 to 100",
        Restart,
    ),
    doc(
        "docker.data-device",
        "The block device for Docker's own filesystem; formatted only when it holds nothing. Docker does not start without it.",
        "`none`, a `/dev/` path, an EBS volume id (`vol-…`), or a launch name (`xvdcz`, `sdf`)",
        Setup,
    ),
    doc("docker.filesystem", "The filesystem made on an empty data-device.", "`xfs`, `ext4`", Setup),
    doc(
        "docker.log-max-size",
        "daemon.json's json-file max-size for containers' logs.",
        "a size of at least 1KiB (`16MiB`)",
        Setup,
    ),
    doc("docker.log-max-files", "daemon.json's json-file max-file.", "1 to 100", Setup),
    doc(
        "docker.container-disk-limit",
        "Each container's writable layer cap (overlay2.size), where xfs project quota and dockerd allow it; warned about otherwise.",
        "a size of at least 1MiB, or `none`",
        Setup,
    ),
    doc("disk.check-interval", "How often Docker's disk is sampled (statvfs).", "100ms to 60s", Reload),
    doc("disk.gc-start", "GC starts above this use (bytes or inodes).", "a percentage above gc-stop", Reload),
    doc("disk.gc-stop", "GC stops below this use.", "a percentage below gc-start, above recover-below", Reload),
    doc("disk.drain-at", "Drain when GC cannot bring use under this.", "a percentage above gc-start", Reload),
    doc(
        "disk.drain-if-full-within",
        "Drain when the fill rate says the disk is full within this.",
        "a duration",
        Reload,
    ),
    doc(
        "disk.recover-below",
        "A disk-pressure drain of nodewarden's ends below this use…",
        "a percentage below gc-stop",
        Reload,
    ),
    doc("disk.recover-after", "…held for this long.", "a duration", Reload),
    doc("gc.min-image-age", "Images younger than this are never removed.", "a duration", Reload),
    doc(
        "gc.exited-container-min-age",
        "Exited containers are removed only once exited this long.",
        "a duration",
        Reload,
    ),
    doc(
        "gc.keep-images",
        "Images never removed (besides those in use, the agent's and the pause image).",
        "image names or patterns with `*`",
        Reload,
    ),
    doc(
        "gc.remove-other-containers",
        "Remove exited containers ECS did not start (started by hand, by another tool) after \
         exited-container-min-age, as ECS tasks' are; their volumes stay unless remove-other-volumes. \
         A container labelled nodewarden.keep is never removed.",
        "true or false",
        Reload,
    ),
    doc(
        "gc.remove-other-volumes",
        "With remove-other-containers: remove those containers' anonymous volumes too. Named volumes \
         are never removed.",
        "true or false; true only with remove-other-containers = true",
        Reload,
    ),
    doc(
        "gc.run-timeout",
        "A GC run that takes longer is abandoned (a wedged Docker call), so a drain is not held.",
        "a duration of at least 1s",
        Reload,
    ),
    doc("drain.enabled", "Drain for disk pressure at all.", "`true`, `false`", Restart),
    doc(
        "drain.max-draining-fraction",
        "The cluster-wide budget: at most this share of instances draining for disk pressure at once.",
        "a percentage",
        Reload,
    ),
    doc("drain.on-spot-interruption", "Drain on a spot interruption notice.", "`true`, `false`", Restart),
    doc("drain.on-termination", "Drain on an Auto Scaling termination.", "`true`, `false`", Restart),
    doc(
        "drain.lifecycle-hook",
        "The termination lifecycle hook nodewarden completes.",
        "a hook name (letters, digits, `-`, `_`, `/`)",
        Restart,
    ),
    doc(
        "drain.heartbeat-interval",
        "Lifecycle action heartbeats while tasks stop; keep it below the hook's heartbeat timeout.",
        "a duration above zero",
        Restart,
    ),
    doc(
        "drain.termination-timeout",
        "The lifecycle action is completed after this even if tasks still run.",
        "a duration",
        Restart,
    ),
    doc(
        "offender.action",
        "What to do about the container filling the disk (always named): nothing more, or StopTask it when its growth alone would fill the disk within drain-if-full-within.",
        "`none`, `stop-task`",
        Restart,
    ),
    doc(
        "health.listen",
        "The health endpoint's address (/healthz, /readyz, /status, /metrics); its port is reserved from tasks.",
        "an address:port; loopback unless allow-remote",
        Restart,
    ),
    doc(
        "health.allow-remote",
        "Allow a non-loopback listen address (the endpoint is unauthenticated).",
        "`true`, `false`",
        Restart,
    ),
];

pub fn lookup(path: &str) -> Option<&'static KeyDoc> {
    DOCS.iter().find(|d| d.path == path)
}

fn path_of(spec: &KeySpec) -> String {
    format!("{}.{}", spec.section, spec.key)
}

/// The settings table of `docs/reference.md`: one row per key, in `check`'s order.
pub fn settings_table() -> String {
    let mut out =
        String::from("| setting | meaning | accepts | default | applies on |\n| --- | --- | --- | --- | --- |\n");
    for spec in schema::KEYS {
        let path = path_of(spec);
        let Some(doc) = lookup(&path) else {
            out.push_str(&format!("| `[{}] {}` | UNDOCUMENTED | | | |\n", spec.section, spec.key));
            continue;
        };
        let default = match (spec.default, path.as_str()) {
            (_, "ecs.agent") => "by host (see meaning)".to_string(),
            (Some(value), _) => format!("`{}`", value.replace('|', "\\|")),
            (None, _) => "none".to_string(),
        };
        out.push_str(&format!(
            "| `[{}] {}` | {} | {} | {} | {} |\n",
            spec.section,
            spec.key,
            doc.meaning,
            doc.accepts,
            default,
            doc.applies.describe()
        ));
    }
    out
}

/// `docs/reference.md`'s markers around the generated settings table.
pub const TABLE_START: &str = "<!-- settings table: generated from src/settings/reference.rs and schema.rs (NODEWARDEN_REGENERATE=1 cargo test --lib reference_page); do not edit -->";
pub const TABLE_END: &str = "<!-- end of settings table -->";

/// The page with its settings table replaced by the current one; `None` without the markers.
pub fn with_current_table(page: &str) -> Option<String> {
    let start = page.find(TABLE_START)? + TABLE_START.len();
    let end = start + page[start..].find(TABLE_END)?;
    Some(format!("{}\n\n{}\n{}", &page[..start], settings_table(), &page[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md");

    #[test]
    fn the_reference_page_lists_every_setting_and_is_current() {
        let page = std::fs::read_to_string(PAGE).expect("reading docs/reference.md");
        let current = with_current_table(&page).expect("docs/reference.md has the settings table's markers");
        if std::env::var_os("NODEWARDEN_REGENERATE").is_some() {
            std::fs::write(PAGE, &current).expect("writing docs/reference.md");
            return;
        }
        assert!(!settings_table().contains("UNDOCUMENTED"), "a key has no entry in src/settings/reference.rs");
        assert!(
            page == current,
            "docs/reference.md's settings table is stale: NODEWARDEN_REGENERATE=1 cargo test --lib reference_page"
        );
    }

    #[test]
    fn the_reference_page_names_every_command_and_flag() {
        use clap::CommandFactory;
        let page = std::fs::read_to_string(PAGE).expect("reading docs/reference.md");
        let cli = crate::cli::Cli::command();
        for command in cli.get_subcommands() {
            assert!(
                page.contains(&format!("`nodewarden {}", command.get_name())),
                "{} is not on the page",
                command.get_name()
            );
            for arg in command.get_arguments() {
                if let Some(long) = arg.get_long().filter(|l| !["help", "version"].contains(l)) {
                    assert!(page.contains(&format!("--{long}")), "{} --{long} is not on the page", command.get_name());
                }
            }
        }
        for variable in [
            "NODEWARDEN_LOG",
            "DOCKER_HOST",
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            "NODEWARDEN_AGENT_INTROSPECTION",
        ] {
            assert!(page.contains(&format!("`{variable}`")), "{variable} is not on the page");
        }
    }

    #[test]
    fn every_key_has_one_entry_and_every_entry_a_key() {
        for spec in schema::KEYS {
            let path = path_of(spec);
            assert_eq!(DOCS.iter().filter(|d| d.path == path).count(), 1, "{path}: no reference entry (or two)");
        }
        for doc in DOCS {
            let (section, key) = doc.path.split_once('.').unwrap_or_default();
            assert!(schema::lookup(section, key).is_some(), "{}: documented, but not a setting", doc.path);
        }
    }

    #[test]
    fn what_reload_applies_is_what_the_daemon_reloads() {
        // Settings::reloadable(): [disk], [gc] and [drain] max-draining-fraction.
        for doc in DOCS {
            let reloadable = doc.path.starts_with("disk.")
                || doc.path.starts_with("gc.")
                || doc.path == "drain.max-draining-fraction";
            assert_eq!(doc.applies == Applies::Reload, reloadable, "{}", doc.path);
        }
    }
}
