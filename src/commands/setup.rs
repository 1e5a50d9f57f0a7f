//! `nodewarden setup`: the oneshot before Docker starts. Userdata (IMDSv2, or a file, or none)
//! → merged and validated settings → Docker's own disk and daemon.json → `/etc/ecs/ecs.config`
//! (atomic, 0600, only when changed) → the agent's host directories → the host network as
//! ecs-init prepares it. Invalid new settings change nothing: the last good ecs.config and
//! saved userdata stay as they were.

use std::path::PathBuf;
use std::time::Duration;

use super::{CommandError, Context, exit};
use crate::agent::{ecs_config, host_network, spec};
use crate::environment::Environment;
use crate::fsutil::{Written, remove_if_present, write_atomic};
use crate::settings::values::DeviceSpec;
use crate::settings::{self, AgentOwner, ClusterSource, Source, UserdataSource};
use crate::storage;

pub struct SetupArgs {
    pub undo: bool,
    pub userdata: Option<PathBuf>,
    pub no_userdata: bool,
    pub host_network: bool,
    pub device_wait: Duration,
    pub imds_deadline: Duration,
}

pub fn run(context: &Context, args: SetupArgs) -> u8 {
    let touches_host_network = args.host_network || context.paths.root() == std::path::Path::new("/");
    if args.undo {
        if !touches_host_network {
            return super::fail("--undo under a --root other than / needs --host-network to touch this host's network");
        }
        return match host_network::undo() {
            Ok(removed) => {
                println!("removed {removed} iptables rules and restored route_localnet");
                exit::OK
            }
            Err(error) => super::fail_on(&error),
        };
    }
    let userdata = match userdata_source(&args) {
        Ok(source) => source,
        Err(error) => return super::fail_on(&error),
    };
    let assembly =
        match super::runtime().block_on(settings::assemble_for_setup(&context.paths, &context.settings, &userdata)) {
            Ok(assembly) => assembly,
            Err(error) => return super::fail_on(&error),
        };
    if let Some(note) = &assembly.userdata_note {
        tracing::info!("{note}");
    }
    for warning in &assembly.warnings {
        tracing::warn!("{warning}");
    }
    let loaded = match assembly.result {
        Ok(loaded) => loaded,
        Err(invalid) => {
            invalid.print("nothing was changed (the last good /etc/ecs/ecs.config stays)");
            return exit::FAILED;
        }
    };
    let userdata_text = assembly.userdata_toml.as_deref();
    let agent_source = loaded.merged.get("ecs.agent").map_or(Source::Default, |e| e.origin.source.clone());
    println!("{}", agent_line(loaded.settings.ecs.agent, &agent_source));
    match apply(context, &loaded.settings, userdata_text, touches_host_network, args.device_wait) {
        Ok(()) => exit::OK,
        Err(error) => super::fail_on(&error),
    }
}

fn userdata_source(args: &SetupArgs) -> Result<UserdataSource, CommandError> {
    if args.no_userdata {
        return Ok(UserdataSource::None);
    }
    if let Some(path) = &args.userdata {
        return Ok(UserdataSource::File(path.clone()));
    }
    let environment = Environment::from_process()?;
    Ok(UserdataSource::Imds { endpoint: environment.imds_endpoint, deadline: args.imds_deadline })
}

fn apply(
    context: &Context,
    settings: &settings::Settings,
    userdata: Option<&str>,
    host_net: bool,
    device_wait: Duration,
) -> Result<(), CommandError> {
    let paths = &context.paths;
    // The last good userdata settings, for `run` and the other commands: saved first, since
    // they are valid whatever happens to the disk, and the daemon should run (and say why
    // Docker is off) even when the disk is refused.
    let saved = paths.saved_userdata();
    match userdata {
        Some(text) => {
            let written = write_atomic(&saved, text.as_bytes(), 0o600);
            warn_unless_written(written, "the daemon and the other commands read the userdata saved before")?
        }
        None => remove_if_present(&saved)?,
    }
    // Docker may start in this boot once its disk and daemon.json are ready: the package's
    // drop-in asserts the marker. Never removed here: a marker of this boot means Docker's disk
    // was ready (or, written by the package on a running host, that Docker's place predates
    // nodewarden), and a setup that fails later in the same boot must not keep Docker from a
    // restart. /run starts empty at every boot.
    let ready_marker = paths.docker_ready_marker();
    let agent_notes = check_agent_owner(paths, settings.ecs.agent)?;
    // Docker's data already on the root disk (a running instance, an AMI with images baked in):
    // kept where it is, loudly, rather than hidden under a new mount or refused.
    let kept_on_root = storage::found_on_root_disk(paths, settings)?;
    let (stopped_docker, prepared) = match &kept_on_root {
        Some(holds) => {
            let found = storage::shared_disk::SharedDisk {
                data_root: "/var/lib/docker".into(),
                holds: holds.clone(),
                device: settings.docker.data_device.to_string(),
                since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            };
            storage::shared_disk::write_marker(paths, &found)?;
            let note = storage::shared_disk::shared_disk_note(Some(&serde_json::to_string(&found).unwrap_or_default()))
                .unwrap_or_default();
            tracing::warn!("{note}");
            eprintln!("WARNING: {note}");
            let data_root = paths.docker_data_root();
            let holding = storage::mountinfo::current().ok().and_then(|m| storage::mountinfo::holding(&m, &data_root));
            let remedy = "on an xfs root disk, boot with rootflags=allocsize=4m";
            if let Some(note) = holding.and_then(|m| storage::preallocation_note(&m, remedy)) {
                tracing::warn!("{note}");
                eprintln!("warning: {note}");
            }
            (false, None)
        }
        None => {
            storage::shared_disk::remove_marker(paths)?;
            let stopped = stop_docker_on_root_disk(context, settings)?;
            (stopped, storage::prepare(paths, settings, device_wait)?)
        }
    };
    for warning in prepared.iter().flat_map(|p| &p.warnings) {
        tracing::warn!("{warning}");
        eprintln!("warning: {warning}");
    }
    if let Some(p) = &prepared {
        println!(
            "docker disk: {} ({}, UUID {}) {} at {}{}",
            p.device.display(),
            p.fs_type,
            p.uuid,
            if p.formatted { "formatted and mounted" } else { "mounted" },
            p.mount_point.display(),
            if p.grown_bytes > 0 {
                format!(", grown by {}", crate::disk::human_bytes(p.grown_bytes))
            } else {
                String::new()
            }
        );
    }
    for note in storage::write_daemon_json(paths, settings, prepared.as_ref())? {
        match note {
            storage::Note::Warning(note) => {
                tracing::warn!("{note}");
                eprintln!("warning: {note}");
            }
            storage::Note::Info(note) => println!("{note}"),
        }
    }
    let stamp = format!("{}\n", humantime::format_rfc3339_seconds(std::time::SystemTime::now()));
    write_atomic(&ready_marker, stamp.as_bytes(), 0o644)?;
    if stopped_docker {
        // --no-block: under nodewarden-setup.service, Docker's start waits for this very unit.
        systemctl(&["start", "--no-block", "docker.service"])?;
        println!("asked systemd to start Docker again, on its own disk");
    }
    let ecs_config = paths.ecs_config();
    let existing = match std::fs::read_to_string(&ecs_config) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(CommandError::Io { doing: "reading", path: ecs_config, source }),
    };
    let rendered = ecs_config::render(settings, existing.as_deref());
    let written = write_atomic(&ecs_config, rendered.text.as_bytes(), 0o600)?;
    println!("{}: {}", ecs_config.display(), if written == Written::Changed { "written" } else { "unchanged" });
    for note in rendered.notes.iter().chain(&agent_notes) {
        tracing::warn!("{note}");
        eprintln!("warning: {note}");
    }
    write_owner_drop_in(paths, settings.ecs.agent)?;
    let marker = paths.setup_marker();
    if settings.ecs.agent == AgentOwner::Nodewarden {
        for dir in spec::host_dirs(paths) {
            std::fs::create_dir_all(&dir).map_err(|source| CommandError::Io {
                doing: "creating",
                path: dir.clone(),
                source,
            })?;
        }
    }
    if settings.ecs.cluster_source == ClusterSource::Later {
        let note = format!(
            "[ecs] cluster: not given yet; ecs-init reads ECS_CLUSTER from {} when it starts (userdata's script may \
             add it later in this boot), and nodewarden.service, ordered after ecs.service, reads it then",
            paths.ecs_config().display()
        );
        tracing::info!("{note}");
        println!("{note}");
    }
    if settings.ecs.agent == AgentOwner::EcsInit {
        // ecs-init's own pre-start prepares the agent's directories and the host network.
    } else if host_net {
        let added = host_network::apply()?;
        println!("host network: route_localnet=1, {added} iptables rules added");
    } else {
        println!(
            "host network: left alone under --root {} (pass --host-network to prepare it)",
            paths.root().display()
        );
    }
    // For /readyz: setup finished.
    let written = write_atomic(&marker, stamp.as_bytes(), 0o644);
    warn_unless_written(written, "/readyz goes by the marker of an earlier setup, if any")?;
    Ok(())
}

/// A write on the root disk that setup can do without: when that disk is full it is a loud
/// warning, since failing would keep Docker off (docker.service requires setup).
fn warn_unless_written(
    result: Result<Written, crate::fsutil::WriteError>,
    consequence: &str,
) -> Result<(), CommandError> {
    if let Some(warning) = crate::fsutil::unless_out_of_space(result, consequence)? {
        tracing::warn!("{warning}");
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// Who runs the ECS agent and why, as setup says it.
fn agent_line(owner: AgentOwner, source: &Source) -> String {
    match (owner, source) {
        (AgentOwner::EcsInit, Source::Host(_)) => "ECS agent: run by ecs.service (ecs-init), since it is enabled on \
            this host; nodewarden watches it ([ecs] agent = \"nodewarden\", with ecs.service disabled, runs it from \
            nodewarden instead)"
            .into(),
        (AgentOwner::EcsInit, source) => {
            format!("ECS agent: run by ecs.service (ecs-init), as [ecs] agent says ({source}); nodewarden watches it")
        }
        (AgentOwner::Nodewarden, Source::Default) => {
            "ECS agent: run by nodewarden (this host has no ecs.service)".into()
        }
        (AgentOwner::Nodewarden, Source::Host(why)) => format!("ECS agent: run by nodewarden ({why})"),
        (AgentOwner::Nodewarden, source) => format!("ECS agent: run by nodewarden, as [ecs] agent says ({source})"),
    }
}

/// Refuses a host where two programs would run the ECS agent, or none: which one owns it is
/// `[ecs] agent`. Returns what is worth saying.
fn check_agent_owner(paths: &crate::host_paths::HostPaths, owner: AgentOwner) -> Result<Vec<String>, CommandError> {
    let service = settings::host::EcsService::read(paths);
    match owner {
        AgentOwner::Nodewarden if service.enabled => Err(CommandError::Refused(
            "ecs.service (ecs-init) is enabled on this host and would run a second ECS agent beside nodewarden's: \
                 disable it (systemctl disable --now ecs.service), or set [ecs] agent = \"ecs-init\" to leave the \
                 agent to ecs-init (the ECS-optimized AMI's way)"
                .into(),
        )),
        AgentOwner::EcsInit if !service.installed => Err(CommandError::Refused(
            "[ecs] agent = \"ecs-init\", but this host has no ecs.service: install ecs-init (the ECS-optimized AMI \
             has it), or set [ecs] agent = \"nodewarden\" to let nodewarden run the agent"
                .into(),
        )),
        AgentOwner::EcsInit if !service.enabled => Ok(vec![
            "[ecs] agent = \"ecs-init\", but ecs.service is not enabled: nothing will start the ECS agent at boot \
             (systemctl enable ecs.service)"
                .into(),
        ]),
        _ => Ok(Vec::new()),
    }
}

/// The relation between nodewarden.service and ecs.service, as a drop-in (from the next boot
/// on; in this one, `check_agent_owner` guards): they conflict when nodewarden runs the agent,
/// and nodewarden comes after ecs-init when ecs-init does.
fn write_owner_drop_in(paths: &crate::host_paths::HostPaths, owner: AgentOwner) -> Result<(), CommandError> {
    let text = match owner {
        AgentOwner::Nodewarden => {
            "# Written by nodewarden setup: [ecs] agent = \"nodewarden\" runs the ECS agent; never ecs-init too.\n\
             [Unit]\nConflicts=ecs.service\n"
        }
        AgentOwner::EcsInit => {
            "# Written by nodewarden setup: [ecs] agent = \"ecs-init\"; ecs.service runs the ECS agent.\n\
             [Unit]\nAfter=ecs.service\n"
        }
    };
    let path = paths.systemd_dir().join("nodewarden.service.d").join(OWNER_DROP_IN);
    let written = write_atomic(&path, text.as_bytes(), 0o644);
    warn_unless_written(
        written,
        "nodewarden.service keeps the relation to ecs.service it had (setup checks it each boot)",
    )
}

pub const OWNER_DROP_IN: &str = "20-agent-owner.conf";

fn systemctl(args: &[&str]) -> Result<(), CommandError> {
    let status = std::process::Command::new("systemctl")
        .args(args)
        .status()
        .map_err(|source| CommandError::SystemctlSpawn { args: args.join(" "), source })?;
    if status.success() { Ok(()) } else { Err(CommandError::Systemctl { args: args.join(" "), status }) }
}

/// Userdata that ran late finds Docker already running on the root disk. With no running
/// containers, stop it (and containerd) so its data root can move to the dedicated disk, and
/// start it again afterwards; with running containers, refuse rather than pull the disk from
/// under them. Returns whether Docker was stopped.
fn stop_docker_on_root_disk(context: &Context, settings: &settings::Settings) -> Result<bool, CommandError> {
    if settings.docker.data_device == DeviceSpec::None {
        return Ok(false);
    }
    let data_root = context.paths.docker_data_root();
    let Ok(environment) = Environment::from_process() else { return Ok(false) };
    // Not running: nothing to move, and knocking on its socket would start it.
    if crate::docker::not_yet(&environment).is_some() {
        return Ok(false);
    }
    let probe = async {
        let docker = crate::docker::connect(&environment).await.ok()?;
        let info = docker.info().await.ok()?;
        Some((info.docker_root_dir.unwrap_or_default(), info.containers_running.unwrap_or(0)))
    };
    let answer =
        super::runtime().block_on(async { tokio::time::timeout(Duration::from_secs(5), probe).await.ok().flatten() });
    let Some((root_dir, running)) = answer else { return Ok(false) };
    let on_root_disk = std::path::Path::new(&root_dir) == data_root
        && storage::mountinfo::holding(&storage::mountinfo::current()?, &data_root)
            .is_some_and(|m| m.mount_point != data_root);
    if !on_root_disk {
        return Ok(false);
    }
    if running > 0 {
        return Err(CommandError::Refused(format!(
            "Docker is already running on the root disk with {running} running containers; moving its data root now \
             would pull the disk from under them. Drain and stop them (or reboot with this userdata) first"
        )));
    }
    if context.paths.root() != std::path::Path::new("/") {
        return Err(CommandError::Refused(
            "Docker is running on the data root under --root; stop it before setup".into(),
        ));
    }
    tracing::warn!("Docker is running on the root disk with no running containers; stopping it to move its data");
    systemctl(&["stop", "docker.socket", "docker.service", "containerd.service"])?;
    Ok(true)
}
