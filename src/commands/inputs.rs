//! What the daemon-side commands (run, gc, drain, undrain, status) start from: the settings in
//! force (defaults < settings file < the userdata settings setup saved).

use crate::environment::Environment;
use crate::settings::{self, Loaded, UserdataSource};

/// Assembles the settings in force; problems come back as one printable message.
pub fn load_settings(context: &super::Context) -> Result<Loaded, String> {
    let assembly =
        super::runtime().block_on(settings::assemble(&context.paths, &context.settings, &UserdataSource::Saved))?;
    assembly.result.map_err(|invalid| invalid.to_string())
}

/// The settings in force and the standard environment.
pub fn settings_and_environment(context: &super::Context) -> Result<(Loaded, Environment), String> {
    let loaded = load_settings(context)?;
    let environment = Environment::from_process().map_err(|e| e.to_string())?;
    Ok((loaded, environment))
}
