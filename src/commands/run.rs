//! `nodewarden run`: the daemon.

use super::{Context, exit, inputs};

pub fn run(context: &Context) -> u8 {
    let (loaded, environment) = match inputs::settings_and_environment(context) {
        Ok(both) => both,
        Err(message) => return super::fail(&message),
    };
    let reload_context = context.clone();
    let reload: crate::daemon::Reload =
        Box::new(move || inputs::load_settings(&reload_context).map(|loaded| loaded.settings));
    let result =
        super::runtime().block_on(crate::daemon::run(context.paths.clone(), loaded.settings, environment, reload));
    match result {
        Ok(()) => exit::OK,
        Err(message) => super::fail(&message),
    }
}
