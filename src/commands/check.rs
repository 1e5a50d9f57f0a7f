//! `nodewarden check [FILE|-] [--userdata FILE]`: validate, then print the merged settings with
//! each value's source. Exit 0 when valid, 1 when not, with every problem on stderr.

use std::path::Path;

use super::inputs::{SettingsInput, read_settings_file, read_userdata_file};
use super::{Context, exit, fail};
use crate::settings::{self, Layers};
use crate::userdata::Userdata;

pub fn run(context: &Context, file: Option<&str>, userdata: Option<&Path>) -> u8 {
    let input = match file {
        Some("-") => SettingsInput::Stdin,
        Some(path) => SettingsInput::Required(path.into()),
        None => context.settings.clone(),
    };
    let file_layer = match read_settings_file(&input) {
        Ok(layer) => layer,
        Err(message) => return fail(&message),
    };
    let userdata_text = match userdata.map(read_userdata_file).transpose() {
        Ok(Some(Userdata::Toml(text))) => Some(text),
        Ok(Some(Userdata::NoSettings(reason))) => {
            eprintln!("note: {reason}; no settings taken from userdata");
            None
        }
        Ok(None) => None,
        Err(message) => return fail(&message),
    };
    let layers = Layers {
        file: file_layer.as_ref().map(|(source, text)| (source.clone(), text.as_str())),
        userdata: userdata_text.as_deref(),
    };
    match settings::load(&layers) {
        Ok(loaded) => {
            print!("{}", loaded.render());
            exit::OK
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("error: {problem}");
            }
            let count = problems.len();
            eprintln!("settings are invalid: {count} problem{}", if count == 1 { "" } else { "s" });
            exit::FAILED
        }
    }
}
