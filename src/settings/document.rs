//! Stage one, "raw": one TOML text (defaults, the settings file, or userdata) turned into flat
//! `section.key` entries with their origin. Every key is optional here; unknown keys and wrong
//! TOML types are problems, and all of them are collected rather than stopping at the first.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};

use super::schema::{self, Kind};
use super::source::{Origin, Position, Problem, Source};

/// A value as written, after its TOML type was checked against the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    String(String),
    Integer(i64),
    Bool(bool),
    StringList(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub value: RawValue,
    pub origin: Origin,
}

/// One parsed layer. Keys are dotted paths: `disk.gc-start`, and `ecs.config.ECS_FOO` for each
/// entry of the `[ecs] config` table so that layers merge per ECS key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawDocument {
    pub entries: BTreeMap<String, RawEntry>,
}

/// Parses `text` from `source`. Returns what could be read plus every problem found.
pub fn parse(text: &str, source: &Source) -> (RawDocument, Vec<Problem>) {
    let mut parser = Parser { text, source, document: RawDocument::default(), problems: Vec::new() };
    let (table, syntax_errors) = DeTable::parse_recoverable(text);
    for error in syntax_errors {
        let position = error.span().map(|span| Position::at(text, span.start));
        let message = format!("invalid TOML: {}", error.message().trim_end());
        parser.problems.push(Problem::new(Origin::new(source.clone(), position), None, message));
    }
    parser.walk_root(table.get_ref());
    (parser.document, parser.problems)
}

struct Parser<'t> {
    text: &'t str,
    source: &'t Source,
    document: RawDocument,
    problems: Vec<Problem>,
}

impl Parser<'_> {
    fn origin(&self, offset: usize) -> Origin {
        Origin::new(self.source.clone(), Some(Position::at(self.text, offset)))
    }

    fn problem(&mut self, offset: usize, key: String, message: String) {
        let origin = self.origin(offset);
        self.problems.push(Problem::new(origin, Some(key), message));
    }

    fn walk_root(&mut self, root: &DeTable<'_>) {
        for (name, value) in root.iter() {
            let section = name.get_ref().as_ref();
            if !schema::SECTIONS.contains(&section) {
                self.problem(
                    name.span().start,
                    section.to_string(),
                    format!("unknown section; expected one of: {}", schema::SECTIONS.join(", ")),
                );
                continue;
            }
            match value.get_ref() {
                DeValue::Table(table) => self.walk_section(section, table),
                other => self.problem(
                    value.span().start,
                    section.to_string(),
                    format!("expected a table [{section}], found {}", other.type_str()),
                ),
            }
        }
    }

    fn walk_section(&mut self, section: &str, table: &DeTable<'_>) {
        for (name, value) in table.iter() {
            let key = name.get_ref().as_ref();
            let path = format!("{section}.{key}");
            let Some(spec) = schema::lookup(section, key) else {
                let known: Vec<&str> = schema::keys_of(section).map(|k| k.key).collect();
                self.problem(name.span().start, path, format!("unknown key; expected one of: {}", known.join(", ")));
                continue;
            };
            let offset = value.span().start;
            if spec.kind == Kind::StringMap {
                self.walk_string_map(&path, value.get_ref(), offset);
                continue;
            }
            match convert(value.get_ref(), spec.kind) {
                Ok(raw) => {
                    let origin = self.origin(offset);
                    self.document.entries.insert(path, RawEntry { value: raw, origin });
                }
                Err(found) => {
                    let message = format!("expected {}, found {found}", spec.kind.describe());
                    self.problem(offset, path, message);
                }
            }
        }
    }

    /// `[ecs] config`: each `KEY = value` becomes its own entry. Booleans and integers are
    /// accepted and kept as the text the ECS agent will read.
    fn walk_string_map(&mut self, path: &str, value: &DeValue<'_>, offset: usize) {
        let DeValue::Table(table) = value else {
            let message = format!("expected {}, found {}", Kind::StringMap.describe(), value.type_str());
            return self.problem(offset, path.to_string(), message);
        };
        for (name, item) in table.iter() {
            let item_path = format!("{path}.{}", name.get_ref());
            let text = match item.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Boolean(b) => b.to_string(),
                DeValue::Integer(i) => match integer(i) {
                    Some(n) => n.to_string(),
                    None => {
                        self.problem(item.span().start, item_path, "integer out of range".into());
                        continue;
                    }
                },
                other => {
                    let message = format!(
                        "expected a string (write JSON values as a string, e.g. '[22, 2375]'), found {}",
                        other.type_str()
                    );
                    self.problem(item.span().start, item_path, message);
                    continue;
                }
            };
            let origin = self.origin(item.span().start);
            self.document.entries.insert(item_path, RawEntry { value: RawValue::String(text), origin });
        }
    }
}

fn integer(value: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(value.as_str(), value.radix()).ok()
}

/// Checks a value's TOML type against the schema; on mismatch returns what was found.
fn convert(value: &DeValue<'_>, kind: Kind) -> Result<RawValue, String> {
    match (kind, value) {
        (Kind::String, DeValue::String(s)) => Ok(RawValue::String(s.to_string())),
        (Kind::Integer, DeValue::Integer(i)) => {
            integer(i).map(RawValue::Integer).ok_or_else(|| format!("{} (out of range)", i.as_str()))
        }
        (Kind::Bool, DeValue::Boolean(b)) => Ok(RawValue::Bool(*b)),
        (Kind::StringList, DeValue::Array(items)) => {
            let mut strings = Vec::with_capacity(items.len());
            for item in items {
                match item.get_ref() {
                    DeValue::String(s) => strings.push(s.to_string()),
                    other => return Err(format!("an array holding {}", other.type_str())),
                }
            }
            Ok(RawValue::StringList(strings))
        }
        (_, DeValue::String(s)) => Err(format!("the string {}", quote(s))),
        (_, DeValue::Integer(i)) => Err(format!("the integer {}", i.as_str())),
        (_, other) => Err(other.type_str().to_string()),
    }
}

/// Quotes a found value for a message, shortened so a huge value cannot flood the terminal.
pub fn quote(value: &str) -> String {
    const LIMIT: usize = 80;
    if value.chars().count() <= LIMIT {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(LIMIT).collect();
        format!("{head:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_file(text: &str) -> (RawDocument, Vec<Problem>) {
        parse(text, &Source::File("/etc/nodewarden/settings.toml".into()))
    }

    #[test]
    fn defaults_parse_cleanly() {
        let (doc, problems) = parse(&schema::defaults_toml(), &Source::Default);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(doc.entries.contains_key("disk.gc-start"));
    }

    #[test]
    fn every_unknown_key_and_wrong_type_is_reported_with_its_line() {
        let text = "[ecs]\ncolour = \"red\"\n[docker]\nlog-max-files = \"4\"\nfilesystem = 3\n[nope]\nx = 1\n";
        let (_, problems) = parse_file(text);
        let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{rendered:#?}");
        assert!(
            rendered.iter().any(|p| p.starts_with("/etc/nodewarden/settings.toml:2:1: ecs.colour: unknown key")),
            "{rendered:#?}"
        );
        assert!(
            rendered
                .iter()
                .any(|p| { p.contains(":4:17: docker.log-max-files: expected an integer, found the string \"4\"") })
        );
        assert!(
            rendered.iter().any(|p| { p.contains(":5:14: docker.filesystem: expected a string, found the integer 3") })
        );
        assert!(rendered.iter().any(|p| p.contains(":6:2: nope: unknown section")));
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let (_, problems) = parse("[disk]\ngc-start = 85%\n", &Source::Userdata);
        assert!(!problems.is_empty());
        let first = problems[0].to_string();
        assert!(first.starts_with("userdata:2:"), "{first}");
        assert!(first.contains("invalid TOML"), "{first}");
    }

    #[test]
    fn ecs_config_entries_are_flattened_and_scalars_become_text() {
        let text = "[ecs.config]\nECS_ENABLE_TASK_IAM_ROLE = true\nECS_RESERVED_MEMORY = 256\nECS_LOGLEVEL = \"info\"\nECS_RESERVED_PORTS = [22]\n";
        let (doc, problems) = parse_file(text);
        assert_eq!(doc.entries["ecs.config.ECS_ENABLE_TASK_IAM_ROLE"].value, RawValue::String("true".into()));
        assert_eq!(doc.entries["ecs.config.ECS_RESERVED_MEMORY"].value, RawValue::String("256".into()));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key.as_deref(), Some("ecs.config.ECS_RESERVED_PORTS"));
    }

    #[test]
    fn inline_tables_and_dotted_keys_are_the_same_as_sections() {
        let (a, pa) = parse_file("ecs = { cluster = \"a\", config = { ECS_LOGLEVEL = \"info\" } }\n");
        let (b, pb) = parse_file("ecs.cluster = \"a\"\necs.config.ECS_LOGLEVEL = \"info\"\n");
        assert!(pa.is_empty() && pb.is_empty());
        let values = |d: &RawDocument| d.entries.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect::<Vec<_>>();
        assert_eq!(values(&a), values(&b));
    }
}
