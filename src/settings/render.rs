//! Prints merged settings as TOML, each value followed by a comment naming its source, with
//! secrets replaced by `<redacted>`. The output is itself valid settings.

use std::fmt::Write;

use super::document::{RawEntry, RawValue};
use super::ecs_keys;
use super::merge::Merged;
use super::schema::{self, Kind};
use super::source::Origin;
use super::values::Secret;

pub fn render(merged: &Merged) -> String {
    let mut out = String::from("# nodewarden settings after merging defaults < host < file < userdata.\n");
    out.push_str("# The comment after each value names where it came from.\n");
    for section in schema::SECTIONS {
        let _ = write!(out, "\n[{section}]\n");
        for spec in schema::keys_of(section) {
            if spec.kind == Kind::StringMap {
                continue;
            }
            let path = format!("{section}.{}", spec.key);
            if let Some(entry) = merged.get(&path) {
                let value = if spec.secret { toml_string(Secret::REDACTED) } else { toml_value(&entry.value) };
                line(&mut out, spec.key, &value, entry);
            }
        }
        if *section == "ecs" {
            let config: Vec<(&str, &RawEntry)> = merged.ecs_config().collect();
            if !config.is_empty() {
                out.push_str("\n[ecs.config]\n");
                for (key, entry) in config {
                    let value = match &entry.value {
                        // An unchecked key (`config-unchecked`) may be anything: a registry token too.
                        _ if ecs_keys::name_looks_secret(key) => toml_string(Secret::REDACTED),
                        RawValue::String(proxy) if key.ends_with("_PROXY") => toml_string(&without_credentials(proxy)),
                        other => toml_value(other),
                    };
                    line(&mut out, key, &value, entry);
                }
            }
        }
    }
    out
}

/// A proxy URL with its `user:password@` replaced: the proxy's credentials are secrets.
pub fn without_credentials(proxy: &str) -> String {
    let (scheme, rest) = proxy.split_once("://").map_or(("", proxy), |(scheme, rest)| (scheme, rest));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let prefix = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
            format!("{prefix}{}@{}", Secret::REDACTED, &rest[at + 1..])
        }
        None => proxy.to_string(),
    }
}

fn line(out: &mut String, key: &str, value: &str, entry: &RawEntry) {
    let _ = writeln!(out, "{key} = {value}  # {}", describe(&entry.origin));
}

fn describe(origin: &Origin) -> String {
    match &origin.source {
        super::Source::Default => "default".into(),
        super::Source::Host(why) => format!("host: {why}"),
        super::Source::EcsConfig(_) => format!("ecs.config {origin}"),
        super::Source::File(_) => format!("file {origin}"),
        super::Source::Userdata => origin.to_string(),
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn toml_value(value: &RawValue) -> String {
    match value {
        RawValue::String(s) => toml_string(s),
        RawValue::Integer(n) => n.to_string(),
        RawValue::Bool(b) => b.to_string(),
        RawValue::StringList(items) => {
            let items: Vec<String> = items.iter().map(|i| toml_string(i)).collect();
            format!("[{}]", items.join(", "))
        }
    }
}
