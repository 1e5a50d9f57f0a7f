//! `nodewarden run`: the daemon.

use super::{Context, exit, inputs};
use crate::environment::Environment;

pub fn run(context: &Context) -> u8 {
    let loaded = match inputs::load_settings(context) {
        Ok(loaded) => loaded,
        Err(message) => return super::fail(&message),
    };
    let environment = match Environment::from_process() {
        Ok(environment) => environment,
        Err(error) => return super::fail(&error.to_string()),
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
