//! Reading the settings layers from their sources: the settings file (or stdin) and userdata.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::settings::Source;
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

/// Reads the file layer. `Ok(None)` when an optional file is absent.
pub fn read_settings_file(input: &SettingsInput) -> Result<Option<(Source, String)>, String> {
    match input {
        SettingsInput::Stdin => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("reading settings from standard input: {e}"))?;
            Ok(Some((Source::File("-".into()), text)))
        }
        SettingsInput::Required(path) => read_text(path).map(|text| Some((Source::File(path.clone()), text))),
        SettingsInput::Optional(path) => match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => read_text(path).map(|text| Some((Source::File(path.clone()), text))),
        },
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading settings file {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        format!("settings file {} is not UTF-8 text (byte {})", path.display(), e.utf8_error().valid_up_to())
    })
}

/// Reads and decodes a userdata blob from a file (`check --userdata`, `setup --userdata`).
pub fn read_userdata_file(path: &Path) -> Result<Userdata, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading userdata file {}: {e}", path.display()))?;
    userdata::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Loads the settings every command but `check` and `setup` uses: defaults < settings file <
/// the userdata settings `setup` saved. Problems come back as one printable message.
pub fn load_settings(context: &super::Context) -> Result<crate::settings::Loaded, String> {
    let file = read_settings_file(&context.settings)?;
    // The decoded TOML setup saved, so every command sees the same settings without IMDS.
    let saved = context.paths.saved_userdata();
    let userdata = match std::fs::read_to_string(&saved) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("reading saved userdata settings {}: {e}", saved.display())),
    };
    let layers = crate::settings::Layers {
        file: file.as_ref().map(|(source, text)| (source.clone(), text.as_str())),
        userdata: userdata.as_deref(),
    };
    crate::settings::load(&layers).map_err(|problems| {
        let mut message = String::from("settings are invalid:");
        for problem in problems {
            message.push_str(&format!("\n  {problem}"));
        }
        message
    })
}

/// What the daemon-side commands (run, gc, drain, undrain) start from: the settings in force
/// and the standard environment.
pub fn settings_and_environment(
    context: &super::Context,
) -> Result<(crate::settings::Loaded, crate::environment::Environment), String> {
    let loaded = load_settings(context)?;
    let environment = crate::environment::Environment::from_process().map_err(|e| e.to_string())?;
    Ok((loaded, environment))
}
