//! `nodewarden run`: the daemon.

use super::{Context, exit, inputs};

pub fn run(context: &Context) -> u8 {
    let (loaded, environment) = match inputs::settings_and_environment(context) {
        Ok(both) => both,
        Err(error) => return super::fail_on(&error),
    };
    let daemon = crate::daemon::run(context.paths.clone(), context.settings.clone(), loaded.settings, environment);
    match super::runtime().block_on(daemon) {
        Ok(()) => exit::OK,
        Err(error) => super::fail_on(&error),
    }
}
