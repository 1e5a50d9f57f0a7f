//! Where a settings value came from, so every message can point at it.

use std::fmt;
use std::path::PathBuf;

/// One layer of settings, lowest precedence first: defaults < host < file < userdata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// nodewarden's built-in defaults.
    Default,
    /// What this host shows (`settings::host`): ecs-init's unit, and why it decides the value.
    Host(String),
    /// An `ECS_CLUSTER` line another writer put in `/etc/ecs/ecs.config` (classic ECS userdata).
    EcsConfig(PathBuf),
    /// A settings file on the host (normally `/etc/nodewarden/settings.toml`), or `-` for stdin.
    File(PathBuf),
    /// EC2 userdata fetched from IMDS (or given to `check --userdata`).
    Userdata,
}

impl Source {
    /// The short word `check` prints beside each value.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Host(_) => "host",
            Source::EcsConfig(_) => "ecs.config",
            Source::File(_) => "file",
            Source::Userdata => "userdata",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Host(why) => write!(f, "this host ({why})"),
            Source::EcsConfig(path) | Source::File(path) => write!(f, "{}", path.display()),
            Source::Userdata => f.write_str("userdata"),
        }
    }
}

/// A 1-based line and column in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// Converts a byte offset into `text` to a line and a column counted in characters.
    pub fn at(text: &str, offset: usize) -> Position {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// A source plus, where known, the position of the value in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: Source,
    pub position: Option<Position>,
}

impl Origin {
    pub fn new(source: Source, position: Option<Position>) -> Self {
        Origin { source, position }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(Position { line, column }) => write!(f, "{}:{line}:{column}", self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

/// One thing wrong with the settings: where, which key, and what was expected versus found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    /// Dotted key path such as `disk.gc-start`; `None` for syntax errors outside any key.
    pub key: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(origin: Origin, key: Option<String>, message: impl Into<String>) -> Self {
        Problem { origin, key, message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: {key}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\n[disk]\ngc-start = \"é85\"\n";
        assert_eq!(Position::at(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::at(text, 6), Position { line: 2, column: 1 });
        let value = text.find('"').unwrap();
        assert_eq!(Position::at(text, value), Position { line: 3, column: 12 });
        // After a multi-byte character the column counts characters, not bytes.
        assert_eq!(Position::at(text, value + 3), Position { line: 3, column: 14 });
        // Offsets inside a character or past the end do not panic.
        assert_eq!(Position::at(text, value + 2).line, 3);
        assert_eq!(Position::at(text, 10_000).line, 4);
    }

    #[test]
    fn problems_name_source_line_and_key() {
        let p = Problem::new(
            Origin::new(Source::File("/etc/x.toml".into()), Some(Position { line: 4, column: 11 })),
            Some("disk.gc-start".into()),
            "expected a percentage such as \"85%\", found \"85\"",
        );
        assert_eq!(
            p.to_string(),
            "/etc/x.toml:4:11: disk.gc-start: expected a percentage such as \"85%\", found \"85\""
        );
    }
}
