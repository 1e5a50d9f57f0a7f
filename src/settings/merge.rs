//! Stage two, "merged": layers applied lowest first (defaults < file < userdata), each key's
//! value and origin taken from the last layer that sets it. `ecs.config.*` entries merge one
//! ECS key at a time; lists are replaced whole.

use std::collections::BTreeMap;

use super::document::{RawDocument, RawEntry};
use super::source::Source;

#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub entries: BTreeMap<String, RawEntry>,
    /// The layers that were applied, lowest precedence first.
    pub sources: Vec<Source>,
}

impl Merged {
    pub fn new() -> Self {
        Merged::default()
    }

    /// Applies `document` from `source` over what is already merged.
    pub fn apply(&mut self, source: Source, document: RawDocument) {
        self.entries.extend(document.entries);
        self.sources.push(source);
    }

    pub fn get(&self, path: &str) -> Option<&RawEntry> {
        self.entries.get(path)
    }

    /// The `ecs.config` entries, keyed by ECS key.
    pub fn ecs_config(&self) -> impl Iterator<Item = (&str, &RawEntry)> {
        self.entries.iter().filter_map(|(path, entry)| path.strip_prefix("ecs.config.").map(|key| (key, entry)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::document::{self, RawValue};

    #[test]
    fn later_layers_win_per_key_and_ecs_config_merges_per_ecs_key() {
        let file = Source::File("/etc/nodewarden/settings.toml".into());
        let mut merged = Merged::new();
        for (source, text) in [
            (Source::Default, "[disk]\ngc-start = \"85%\"\ngc-stop = \"80%\"\n[gc]\nkeep-images = [\"a\", \"b\"]\n"),
            (
                file.clone(),
                "[disk]\ngc-start = \"90%\"\n[ecs.config]\nECS_LOGLEVEL = \"info\"\nECS_RESERVED_MEMORY = \"1\"\n",
            ),
            (Source::Userdata, "[ecs.config]\nECS_LOGLEVEL = \"debug\"\n[gc]\nkeep-images = [\"c\"]\n"),
        ] {
            let (doc, problems) = document::parse(text, &source);
            assert!(problems.is_empty());
            merged.apply(source, doc);
        }
        assert_eq!(merged.get("disk.gc-start").unwrap().origin.source, file);
        assert_eq!(merged.get("disk.gc-stop").unwrap().origin.source, Source::Default);
        assert_eq!(merged.get("gc.keep-images").unwrap().value, RawValue::StringList(vec!["c".into()]));
        let config: Vec<(&str, &Source)> = merged.ecs_config().map(|(k, e)| (k, &e.origin.source)).collect();
        assert_eq!(config, vec![("ECS_LOGLEVEL", &Source::Userdata), ("ECS_RESERVED_MEMORY", &file)]);
    }
}
