//! `nodewarden check [FILE|-] [--userdata FILE]`: validate, then print the merged settings with
//! each value's source. Exit 0 when valid, 1 when not, with every problem on stderr.

use std::path::Path;

use super::{Context, exit, fail_on};
use crate::settings::{self, SettingsInput, UserdataSource};

pub fn run(context: &Context, file: Option<&str>, userdata: Option<&Path>) -> u8 {
    let input = match file {
        Some("-") => SettingsInput::Stdin,
        Some(path) => SettingsInput::Required(path.into()),
        None => context.settings.clone(),
    };
    let userdata = userdata.map_or(UserdataSource::None, |path| UserdataSource::File(path.into()));
    let assembly = match super::runtime().block_on(settings::assemble(&context.paths, &input, &userdata)) {
        Ok(assembly) => assembly,
        Err(error) => return fail_on(&error),
    };
    if let Some(note) = &assembly.userdata_note {
        eprintln!("note: {note}");
    }
    for warning in &assembly.warnings {
        eprintln!("warning: {warning}");
    }
    match assembly.result {
        Ok(loaded) => {
            print!("{}", loaded.render());
            exit::OK
        }
        Err(invalid) => {
            invalid.print(&invalid.count());
            exit::FAILED
        }
    }
}
