//! Settings, staged like zincati's: raw documents (every key optional, unknown keys refused)
//! → merged (defaults < `/etc/nodewarden/settings.toml` < userdata) → validated [`Settings`].
//! Every problem names its source, line, column and key; all of them are reported at once.

mod assemble;
mod document;
mod ecs_keys;
pub mod host;
mod merge;
mod model;
pub mod reference;
mod render;
mod schema;
mod source;
mod validate;
pub mod values;

pub use assemble::{Assembly, Invalid, SettingsError, SettingsInput, UserdataSource, assemble, assemble_for_setup};
pub use document::{RawEntry, RawValue};
pub use ecs_keys::{go_parse_bool, may_show_value as ecs_key_may_show_value};
pub use merge::Merged;
pub use model::{
    AgentOwner, ClusterSource, DiskSettings, DockerSettings, DrainSettings, EcsSettings, EngineAuth, EngineAuthType,
    GcSettings, HealthSettings, OffenderAction, OffenderSettings, Reloadable, Settings,
};
pub use schema::defaults_toml;
pub use source::{Origin, Position, Problem, Source};

/// The layers above the built-in defaults. Any may be absent.
#[derive(Debug, Default)]
pub struct Layers<'a> {
    /// What the host shows (`host::layer`), below the file.
    pub host: Option<&'a host::HostFacts>,
    /// `setup` only: with ecs-init running the agent, a cluster nobody gave yet may come later
    /// ([`ClusterSource::Later`]) instead of being an error.
    pub cluster_may_come_later: bool,
    /// The settings file: its source (path) and text.
    pub file: Option<(Source, &'a str)>,
    /// Decoded userdata TOML.
    pub userdata: Option<&'a str>,
}

/// Settings that passed validation, with the merged view kept for `check` and `/status`.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub merged: Merged,
}

impl Loaded {
    /// The merged settings as annotated TOML, secrets redacted.
    pub fn render(&self) -> String {
        render::render(&self.merged)
    }
}

/// Parses, merges and validates. On failure returns every problem, in source order.
pub fn load(layers: &Layers<'_>) -> Result<Loaded, Vec<Problem>> {
    let defaults = defaults_toml();
    let mut merged = Merged::new();
    let mut problems = Vec::new();
    let mut syntax_broken = false;
    let file = layers.file.as_ref().map(|(source, text)| (source.clone(), *text));
    let userdata = layers.userdata.map(|text| (Source::Userdata, text));
    let (doc, _) = document::parse(&defaults, &Source::Default);
    merged.apply(Source::Default, doc);
    if let Some(facts) = layers.host {
        let doc = host::layer(facts);
        // One layer in precedence, each entry naming its own source.
        for entry in doc.entries.values() {
            if !merged.sources.contains(&entry.origin.source) {
                merged.sources.push(entry.origin.source.clone());
            }
        }
        merged.entries.extend(doc.entries);
    }
    for (source, text) in [file, userdata].into_iter().flatten() {
        let (doc, found) = document::parse(text, &source);
        syntax_broken |= found.iter().any(|p| p.key.is_none());
        problems.extend(found);
        merged.apply(source, doc);
    }
    // After a TOML syntax error the document is partial; "missing key" noise would mislead.
    if !syntax_broken {
        match validate::validate(&merged, layers.cluster_may_come_later) {
            Ok(settings) if problems.is_empty() => return Ok(Loaded { settings, merged }),
            Ok(_) => {}
            Err(found) => problems.extend(found),
        }
    }
    Err(problems)
}

#[cfg(test)]
mod tests;
