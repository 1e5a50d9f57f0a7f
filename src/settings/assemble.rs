//! The one way settings are assembled from the host: read the file layer and the userdata
//! layer from wherever this command takes them, then `load` (pure). Every command and the
//! daemon's SIGHUP reload go through [`assemble`]; every refusal prints through [`Invalid`].

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::Uri;

use super::{Layers, Loaded, Problem, Source};
use crate::host_paths::HostPaths;
use crate::imds::{ImdsClient, ImdsConfig};
use crate::userdata::{self, Userdata};

/// Where the settings file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsInput {
    /// Given with `--settings` or as `check FILE`: it must exist.
    Required(PathBuf),
    /// The default path: a missing file means "no file layer".
    Optional(PathBuf),
    /// `check -`.
    Stdin,
}

/// Where the userdata layer comes from.
#[derive(Debug, Clone)]
pub enum UserdataSource {
    /// The instance's userdata from IMDS (`setup`): absent userdata means no layer.
    Imds { endpoint: Uri, deadline: Duration },
    /// A userdata blob in a file (`check --userdata`, `setup --userdata`).
    File(PathBuf),
    /// The decoded TOML `setup` saved (`run`, `gc`, `drain`, `status`, SIGHUP), so every
    /// command sees the settings setup applied without asking IMDS again.
    Saved,
    /// No userdata layer (`check` without `--userdata`, `setup --no-userdata`).
    None,
}

/// A settings source that could not be read at all, naming it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading settings from standard input: {source}")]
    Stdin { source: std::io::Error },
    #[error("reading settings file {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("settings file {} is not UTF-8 text (byte {valid_up_to})", path.display())]
    NotUtf8 { path: PathBuf, valid_up_to: usize },
    #[error("reading userdata file {}: {source}", path.display())]
    ReadUserdata { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    DecodeUserdata { path: PathBuf, source: userdata::UserdataError },
    #[error("reading saved userdata settings {}: {source}", path.display())]
    ReadSaved { path: PathBuf, source: std::io::Error },
    #[error("userdata from IMDS: {source}")]
    DecodeImds { source: userdata::UserdataError },
    #[error("reading userdata: {source}; is this an EC2 instance with IMDSv2 enabled?")]
    Imds { source: Box<crate::imds::ImdsError> },
}

/// Settings assembled from their sources.
#[derive(Debug)]
pub struct Assembly {
    /// The userdata settings TOML, when userdata had any (setup saves it).
    pub userdata_toml: Option<String>,
    /// Why userdata gave no settings, when it was asked for and gave none.
    pub userdata_note: Option<String>,
    /// Valid, but worth saying: a secret in a file others can read.
    pub warnings: Vec<String>,
    /// The validated settings, or every problem found.
    pub result: Result<Loaded, Invalid>,
}

/// Reads the layers (the host's among them: `super::host`) and loads them. `Err` when a source
/// could not be read at all (a missing required file, unreadable userdata, IMDS down): a
/// message naming the source.
pub async fn assemble(
    paths: &HostPaths,
    file: &SettingsInput,
    userdata: &UserdataSource,
) -> Result<Assembly, SettingsError> {
    assemble_with(paths, file, userdata, false).await
}

/// [`assemble`] for `setup`: with ecs-init running the agent, a cluster nobody gave yet may
/// come later in the boot ([`super::ClusterSource::Later`]).
pub async fn assemble_for_setup(
    paths: &HostPaths,
    file: &SettingsInput,
    userdata: &UserdataSource,
) -> Result<Assembly, SettingsError> {
    assemble_with(paths, file, userdata, true).await
}

async fn assemble_with(
    paths: &HostPaths,
    file: &SettingsInput,
    userdata: &UserdataSource,
    cluster_may_come_later: bool,
) -> Result<Assembly, SettingsError> {
    let file_layer = read_settings_file(file)?;
    let mut fallback = None;
    let read = match read_userdata(paths, userdata).await {
        // A later boot with IMDS away for a moment must not keep Docker down: the userdata
        // settings of the last good setup stand in, said loudly.
        Err(error) if matches!(userdata, UserdataSource::Imds { .. }) => {
            match read_userdata(paths, &UserdataSource::Saved).await? {
                Some(saved) => {
                    fallback = Some(format!(
                        "{error}; using the userdata settings saved by the last good setup ({}) instead",
                        paths.saved_userdata().display()
                    ));
                    Some(saved)
                }
                None => return Err(error),
            }
        }
        other => other?,
    };
    let (userdata_toml, userdata_note) = match read {
        Some(Userdata::Toml(text)) => (Some(text), None),
        Some(Userdata::NoSettings(reason)) => (None, Some(format!("{reason}; no settings taken from userdata"))),
        None => (None, None),
    };
    let host = super::host::HostFacts::read(paths);
    let layers = Layers {
        host: Some(&host),
        cluster_may_come_later,
        file: file_layer.as_ref().map(|(source, text)| (source.clone(), text.as_str())),
        userdata: userdata_toml.as_deref(),
    };
    let result = super::load(&layers).map_err(Invalid);
    let mut warnings: Vec<String> = fallback.into_iter().collect();
    if let Ok(loaded) = &result {
        warnings.extend(secret_readable_by_others(loaded));
        warnings.extend(worth_saying(&loaded.settings));
    }
    Ok(Assembly { userdata_toml, userdata_note, warnings, result })
}

/// Valid settings that may not do what the operator expects.
fn worth_saying(settings: &super::Settings) -> Vec<String> {
    let mut warnings = Vec::new();
    for key in &settings.ecs.config_unchecked {
        if settings.ecs.config.contains_key(key) && super::ecs_keys::lookup(key).is_none() {
            warnings.push(format!(
                "[ecs.config] {key} is passed to the ECS agent unchecked ([ecs] config-unchecked): the agent may \
                 ignore or refuse its value"
            ));
        }
    }
    // Without ECS_DYNAMIC_HOST_PORT_RANGE the agent takes the kernel's ephemeral range (32768-60999
    // by default) or, without one, 49153-65535: the reservation keeps tasks off the port, but
    // other programs' outgoing connections may still take it while nodewarden is down.
    let port = settings.health.listen.port();
    if !settings.ecs.config.contains_key("ECS_DYNAMIC_HOST_PORT_RANGE") && port >= 32768 {
        warnings.push(format!(
            "[health] listen uses port {port}, inside the ephemeral port range tasks and outgoing connections \
             draw from; a port below 32768 (the default is 31690) never collides"
        ));
    }
    warnings
}

/// A secret that came from a settings file group or others can read.
fn secret_readable_by_others(loaded: &Loaded) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut warnings = Vec::new();
    for (path, entry) in &loaded.merged.entries {
        let (section, key) = path.split_once('.').unwrap_or((path, ""));
        let secret = super::schema::lookup(section, key).is_some_and(|spec| spec.secret);
        let Source::File(file) = &entry.origin.source else { continue };
        let Ok(metadata) = std::fs::metadata(file) else { continue };
        let mode = metadata.permissions().mode() & 0o777;
        if secret && mode & 0o077 != 0 {
            warnings.push(format!(
                "{} holds {path} and is readable by others (mode {mode:04o}): chmod 600 {}",
                file.display(),
                file.display()
            ));
        }
    }
    warnings
}

/// Settings refused: every problem, in source order. `Display` is the one-message form (for
/// the journal, `/status` and a command's error line); [`Invalid::print`] one line each.
#[derive(Debug, Clone)]
pub struct Invalid(pub Vec<Problem>);

impl Invalid {
    /// Prints each problem on stderr, then what the refusal means for this command.
    pub fn print(&self, consequence: &str) {
        for problem in &self.0 {
            eprintln!("error: {problem}");
        }
        eprintln!("settings are invalid: {consequence}");
    }

    /// "1 problem", "4 problems".
    pub fn count(&self) -> String {
        let count = self.0.len();
        format!("{count} problem{}", if count == 1 { "" } else { "s" })
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "settings are invalid ({}):", self.count())?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Reads the file layer. `Ok(None)` when an optional file is absent.
fn read_settings_file(input: &SettingsInput) -> Result<Option<(Source, String)>, SettingsError> {
    match input {
        SettingsInput::Stdin => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|source| SettingsError::Stdin { source })?;
            Ok(Some((Source::File("-".into()), text)))
        }
        SettingsInput::Required(path) => read_text(path).map(|text| Some((Source::File(path.clone()), text))),
        SettingsInput::Optional(path) => match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => read_text(path).map(|text| Some((Source::File(path.clone()), text))),
        },
    }
}

fn read_text(path: &Path) -> Result<String, SettingsError> {
    let bytes = std::fs::read(path).map_err(|source| SettingsError::ReadFile { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes)
        .map_err(|e| SettingsError::NotUtf8 { path: path.to_path_buf(), valid_up_to: e.utf8_error().valid_up_to() })
}

async fn read_userdata(paths: &HostPaths, source: &UserdataSource) -> Result<Option<Userdata>, SettingsError> {
    match source {
        UserdataSource::None => Ok(None),
        UserdataSource::File(path) => {
            let bytes =
                std::fs::read(path).map_err(|source| SettingsError::ReadUserdata { path: path.clone(), source })?;
            userdata::decode(&bytes)
                .map(Some)
                .map_err(|source| SettingsError::DecodeUserdata { path: path.clone(), source })
        }
        UserdataSource::Saved => {
            let saved = paths.saved_userdata();
            match std::fs::read_to_string(&saved) {
                Ok(text) => Ok(Some(Userdata::Toml(text))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(SettingsError::ReadSaved { path: saved, source }),
            }
        }
        UserdataSource::Imds { endpoint, deadline } => {
            let imds = ImdsClient::new(endpoint.clone(), ImdsConfig { deadline: *deadline, ..ImdsConfig::default() });
            match imds.user_data().await {
                Ok(None) => Ok(Some(Userdata::NoSettings("the instance has no userdata"))),
                Ok(Some(bytes)) => {
                    userdata::decode(&bytes).map(Some).map_err(|source| SettingsError::DecodeImds { source })
                }
                Err(source) => Err(SettingsError::Imds { source: Box::new(source) }),
            }
        }
    }
}
