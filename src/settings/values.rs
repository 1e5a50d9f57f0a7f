//! Validated newtypes for settings values. Each parses strictly from the text an operator
//! wrote and, on failure, says what was expected (the caller adds what was found and where).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// What a settings value should have been, when the text an operator wrote is not one: the
/// words after "expected" (the caller adds what was found and where).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub expected: String,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expected)
    }
}

impl std::error::Error for ValueError {}

impl From<String> for ValueError {
    fn from(expected: String) -> Self {
        ValueError { expected }
    }
}

impl From<&str> for ValueError {
    fn from(expected: &str) -> Self {
        ValueError { expected: expected.to_string() }
    }
}

/// A percentage of a filesystem, from `"85%"` or `"92.5%"`; 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Percent(f64);

impl FromStr for Percent {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        let number = text.strip_suffix('%').ok_or_else(|| ValueError::from(Self::EXPECTED))?;
        let valid = !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit() || c == '.')
            && number.matches('.').count() <= 1
            && !number.starts_with('.')
            && !number.ends_with('.');
        let value: f64 = if valid {
            number.parse().map_err(|_| ValueError::from(Self::EXPECTED))?
        } else {
            return Err(ValueError::from(Self::EXPECTED));
        };
        if value > 100.0 {
            return Err("a percentage from 0% to 100%".into());
        }
        Ok(Percent(value))
    }
}

impl Percent {
    pub const EXPECTED: &'static str = "a percentage such as \"85%\"";

    /// The share as a fraction from 0.0 to 1.0.
    pub fn fraction(self) -> f64 {
        self.0 / 100.0
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// A size in bytes from `"16MiB"`, `"10GiB"`, `"512B"` or SI `"100MB"`; integers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(u64);

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

impl FromStr for ByteSize {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(digits_end);
        let unit = unit.trim_start();
        let Some(&(_, multiplier)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) else {
            // Docker's own shorthand ("16m") is ambiguous between MB and MiB: say so.
            let hint = match unit.to_ascii_lowercase().as_str() {
                "k" | "m" | "g" | "t" if !number.is_empty() => {
                    format!(" (did you mean \"{number}{}iB\"?)", unit.to_ascii_uppercase())
                }
                _ => String::new(),
            };
            return Err(format!("{}{hint}", Self::EXPECTED).into());
        };
        let count: u64 = number.parse().map_err(|_| ValueError::from(Self::EXPECTED))?;
        count.checked_mul(multiplier).map(ByteSize).ok_or_else(|| "a size below 16 EiB".into())
    }
}

impl ByteSize {
    pub const EXPECTED: &'static str = "a size such as \"16MiB\" (units B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)";

    pub fn from_bytes(bytes: u64) -> Self {
        ByteSize(bytes)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly, so the value round-trips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, multiplier) in [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= multiplier && self.0.is_multiple_of(multiplier) {
                return write!(f, "{}{name}", self.0 / multiplier);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Parses a duration such as `"2m"`, `"1h30m"`, `"500ms"` (units ms, s, m, h, d).
pub fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    const EXPECTED: &str = "a duration such as \"2m\", \"1h30m\" or \"500ms\" (units ms, s, m, h, d)";
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(EXPECTED.into());
    }
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(EXPECTED.into());
        }
        let count: u64 = rest[..digits_end].parse().map_err(|_| ValueError::from(EXPECTED))?;
        rest = &rest[digits_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_end] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(EXPECTED.into()),
        };
        rest = &rest[unit_end..];
        let millis = count.checked_mul(millis_per_unit).ok_or("a shorter duration")?;
        total = total.checked_add(Duration::from_millis(millis)).ok_or("a shorter duration")?;
    }
    Ok(total)
}

/// Formats a duration the way settings write it (`"1h30m"`, `"500ms"`).
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// An ECS cluster name (1–255 of letters, digits, `-`, `_`) or a cluster ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterName(String);

impl FromStr for ClusterName {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        const EXPECTED: &str = "an ECS cluster name (1 to 255 letters, digits, hyphens, underscores) or a cluster ARN";
        let name = match text.strip_prefix("arn:") {
            Some(arn) => {
                let parts: Vec<&str> = arn.splitn(5, ':').collect();
                let valid_arn = parts.len() == 5
                    && parts[0].starts_with("aws")
                    && parts[1] == "ecs"
                    && !parts[2].is_empty()
                    && parts[3].len() == 12
                    && parts[3].chars().all(|c| c.is_ascii_digit());
                match parts.get(4).and_then(|r| r.strip_prefix("cluster/")) {
                    Some(name) if valid_arn => name,
                    _ => return Err(EXPECTED.into()),
                }
            }
            None => text,
        };
        let valid =
            (1..=255).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid { Ok(ClusterName(text.to_string())) } else { Err(EXPECTED.into()) }
    }
}

impl ClusterName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Docker image reference that is pinned: a tag other than `latest`, or an `@sha256:` digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// Repository, including any registry host: `amazon/amazon-ecs-agent`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl FromStr for ImageReference {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        const EXPECTED: &str =
            "a pinned image such as \"amazon/amazon-ecs-agent:v1.105.1\" or \"repo@sha256:<64 hex>\"";
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                let hex = digest.strip_prefix("sha256:").ok_or(EXPECTED)?;
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
                    return Err(format!("{EXPECTED}; the digest must be sha256: and 64 lowercase hex digits").into());
                }
                (name, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it is a registry port).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if !valid_repository(repository) {
            return Err(EXPECTED.into());
        }
        if let Some(tag) = tag {
            let valid_tag = (1..=128).contains(&tag.len())
                && !tag.starts_with(['.', '-'])
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid_tag {
                return Err(format!("{EXPECTED}; {tag:?} is not a valid tag").into());
            }
            if tag.eq_ignore_ascii_case("latest") && digest.is_none() {
                return Err(
                    "a pinned image: \"latest\" moves under you; name a version tag or an @sha256 digest".into()
                );
            }
        } else if digest.is_none() {
            return Err(
                "a pinned image: without a tag Docker uses \"latest\"; name a version tag or an @sha256 digest".into(),
            );
        }
        Ok(ImageReference { repository: repository.to_string(), tag: tag.map(str::to_string), digest })
    }
}

impl ImageReference {}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's reference grammar for the repository part: an optional registry host (with a dot,
/// a port, or `localhost`), then lowercase path components separated by `/`.
fn valid_repository(repository: &str) -> bool {
    let mut components: Vec<&str> = repository.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = first.split_once(':').unwrap_or((first, ""));
            let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            let port_ok = port.is_empty() || port.parse::<u16>().is_ok();
            if !host_ok || !port_ok {
                return false;
            }
            components.remove(0);
        }
    }
    !components.is_empty() && components.iter().all(|c| valid_path_component(c))
}

fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // Separators are '.', '_', '__' or any run of '-', always between alphanumerics.
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "." || separator == "_" || separator == "__" || separator.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

/// A `keep-images` entry: an image name where `*` matches any run of characters, e.g.
/// `amazon/amazon-ecs-agent:*`. A pattern without a tag matches every tag of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern(String);

impl FromStr for ImagePattern {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        let valid = !text.is_empty()
            && text.len() <= 512
            && text.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:@*".contains(c));
        if valid {
            Ok(ImagePattern(text.to_string()))
        } else {
            Err("an image name or pattern such as \"amazon/amazon-ecs-agent:*\"".into())
        }
    }
}

impl ImagePattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a `repository:tag` reference (as Docker lists it in RepoTags) matches.
    pub fn matches(&self, reference: &str) -> bool {
        let reference = normalize_reference(reference);
        let pattern = normalize_reference(&self.0);
        let last_slash = pattern.rfind('/').map_or(0, |i| i + 1);
        let has_tag = pattern[last_slash..].contains(':') || pattern.contains('@');
        if glob_match(&pattern, &reference) {
            return true;
        }
        // "repo" (no tag) keeps every tag of "repo".
        !has_tag && glob_match(&format!("{pattern}:*"), &reference)
    }
}

/// Drops Docker Hub's implicit prefixes so `docker.io/library/busybox:1` equals `busybox:1`.
fn normalize_reference(reference: &str) -> String {
    let stripped = reference.strip_prefix("docker.io/").unwrap_or(reference);
    stripped.strip_prefix("library/").unwrap_or(stripped).to_string()
}

/// `*` matches any run of characters (including `/` and `:`); everything else is literal.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut star_ti) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            star_ti = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            star_ti += 1;
            ti = star_ti;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// An EBS volume id, `vol-` and 8 or 17 lowercase hex digits. The NVMe serial form without
/// the hyphen (`vol0123…`, what `nvme id-ctrl` and `/dev/disk/by-id` show) is accepted too and
/// kept as `vol-0123…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeId(String);

impl FromStr for VolumeId {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        let hex = text.strip_prefix("vol-").or_else(|| text.strip_prefix("vol")).unwrap_or("");
        let valid = matches!(hex.len(), 8 | 17) && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if valid {
            Ok(VolumeId(format!("vol-{hex}")))
        } else {
            Err("an EBS volume id such as \"vol-0123456789abcdef0\"".into())
        }
    }
}

impl VolumeId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The NVMe serial EBS reports: the id without its hyphen (`vol0123…`).
    pub fn nvme_serial(&self) -> String {
        self.0.replacen('-', "", 1)
    }
}

/// Which block device holds Docker's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Docker stays on the root disk (warned about).
    None,
    /// A device node path such as `/dev/nvme1n1` or `/dev/loop3`.
    Path(PathBuf),
    /// An EBS volume, found through `/dev/disk/by-id`.
    Volume(VolumeId),
    /// A block-device-mapping name from the launch template, such as `xvdcz` or `sdf`.
    LaunchName(String),
}

impl FromStr for DeviceSpec {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        const EXPECTED: &str = "\"none\", a /dev path, an EBS volume id (vol-...), or a launch name such as \"xvdcz\"";
        if text == "none" {
            return Ok(DeviceSpec::None);
        }
        if text.starts_with("vol") {
            return VolumeId::from_str(text).map(DeviceSpec::Volume);
        }
        if is_launch_name(text) {
            return Ok(DeviceSpec::LaunchName(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix("/dev/") {
            let valid = !rest.is_empty() && rest.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
            return if valid { Ok(DeviceSpec::Path(PathBuf::from(text))) } else { Err(EXPECTED.into()) };
        }
        Err(EXPECTED.into())
    }
}

impl fmt::Display for DeviceSpec {
    /// As the settings write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::None => f.write_str("none"),
            DeviceSpec::Path(path) => write!(f, "{}", path.display()),
            DeviceSpec::Volume(id) => f.write_str(id.as_str()),
            DeviceSpec::LaunchName(name) => f.write_str(name),
        }
    }
}

/// `xvdcz`, `sdf`, `xvdb` — the names a launch template's block device mapping uses.
fn is_launch_name(text: &str) -> bool {
    let letters = text.strip_prefix("xvd").or_else(|| text.strip_prefix("sd"));
    letters.is_some_and(|l| (1..=2).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase()))
}

/// A setting that is one of a few words: the enum, its `FromStr` (the error lists the words)
/// and `as_str`, from one table.
macro_rules! keyword_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl std::str::FromStr for $name {
            type Err = $crate::settings::values::ValueError;

            fn from_str(text: &str) -> Result<Self, $crate::settings::values::ValueError> {
                match text {
                    $($word => Ok($name::$variant),)+
                    _ => Err([$(concat!("\"", $word, "\"")),+].join(" or ").into()),
                }
            }
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word,)+ }
            }
        }
    };
}
pub(crate) use keyword_enum;

keyword_enum! {
    /// The filesystem nodewarden creates on an empty Docker data device.
    pub enum Filesystem {
        Xfs = "xfs",
        Ext4 = "ext4",
    }
}

/// An address to listen on, `host:port` with an IP host.
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, ValueError> {
    text.parse::<SocketAddr>().map_err(|_| "an IP address and port such as \"127.0.0.1:31690\"".into())
}

/// An Auto Scaling lifecycle hook name: 1–255 of letters, digits, `-`, `_`, `/`.
pub fn parse_lifecycle_hook(text: &str) -> Result<String, ValueError> {
    let valid = (1..=255).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/'));
    if valid { Ok(text.to_string()) } else { Err("a lifecycle hook name (letters, digits, -, _, /)".into()) }
}

/// Secrets (registry credentials) are the crate's one `Secret` type.
pub use crate::secret::Secret;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percents() {
        for (text, expected) in [("85%", Some(85.0)), ("92.5%", Some(92.5)), ("0%", Some(0.0)), ("100%", Some(100.0))] {
            assert_eq!(Percent::from_str(text).ok().map(Percent::value), expected, "{text}");
        }
        for bad in ["85", "%", "101%", "-1%", "8 5%", ".5%", "5.%", "1.2.3%", "85 %", "eighty%", ""] {
            assert!(Percent::from_str(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn byte_sizes() {
        let table = [
            ("16MiB", 16 << 20),
            ("10GiB", 10 << 30),
            ("512B", 512),
            ("100MB", 100_000_000),
            ("1 KiB", 1024),
            ("0B", 0),
        ];
        for (text, bytes) in table {
            assert_eq!(ByteSize::from_str(text).map(ByteSize::bytes), Ok(bytes), "{text}");
        }
        for bad in ["sixteen", "16", "MiB", "16mib", "-1MiB", "1.5GiB", "99999999999TiB", ""] {
            assert!(ByteSize::from_str(bad).is_err(), "{bad} accepted");
        }
        assert!(ByteSize::from_str("16m").unwrap_err().expected.contains("did you mean \"16MiB\""));
        assert_eq!(ByteSize::from_str("16MiB").unwrap().to_string(), "16MiB");
        assert_eq!(ByteSize::from_bytes(1500).to_string(), "1500B");
    }

    #[test]
    fn durations() {
        let table =
            [("2m", 120_000), ("1h30m", 5_400_000), ("500ms", 500), ("1s", 1_000), ("1d", 86_400_000), ("0s", 0)];
        for (text, millis) in table {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)), "{text}");
            assert_eq!(
                parse_duration(&format_duration(Duration::from_millis(millis))),
                Ok(Duration::from_millis(millis))
            );
        }
        for bad in ["2", "m", "2 m", "1.5h", "2min", "-1s", "", "1h30", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cluster_names() {
        for ok in ["prod-web", "a", "under_score", "arn:aws:ecs:us-east-1:123456789012:cluster/prod"] {
            assert!(ClusterName::from_str(ok).is_ok(), "{ok}");
        }
        let too_long = "x".repeat(256);
        for bad in
            ["", "has space", "dots.no", too_long.as_str(), "arn:aws:ecs:us-east-1:12:cluster/x", "arn:aws:s3:::bucket"]
        {
            assert!(ClusterName::from_str(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn image_references_must_be_pinned() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let ok = [
            "amazon/amazon-ecs-agent:v1.105.1".to_string(),
            "public.ecr.aws/ecs/amazon-ecs-agent:1.2".into(),
            "localhost:5000/agent:7".into(),
            format!("amazon/amazon-ecs-agent@{digest}"),
            format!("amazon/amazon-ecs-agent:latest@{digest}"),
            "busybox:1.36".into(),
        ];
        for text in &ok {
            let image = ImageReference::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(&image.to_string(), text);
        }
        let refused = [
            "amazon/amazon-ecs-agent:latest",
            "amazon/amazon-ecs-agent:LATEST",
            "amazon/amazon-ecs-agent",
            "localhost:5000/agent",
        ];
        for text in refused {
            let error = ImageReference::from_str(text).unwrap_err();
            assert!(error.expected.contains("pinned"), "{text}: {error}");
        }
        for bad in ["Amazon/Agent:1", "agent:", "agent@sha256:abc", "/agent:1", "a//b:1", "agent:-x", "a b:1"] {
            assert!(ImageReference::from_str(bad).is_err(), "{bad} accepted");
        }
        let port = ImageReference::from_str("localhost:5000/agent:7").unwrap();
        assert_eq!((port.repository.as_str(), port.tag.as_deref()), ("localhost:5000/agent", Some("7")));
    }

    #[test]
    fn image_patterns() {
        let agent = ImagePattern::from_str("amazon/amazon-ecs-agent:*").unwrap();
        assert!(agent.matches("amazon/amazon-ecs-agent:v1.105.1"));
        assert!(agent.matches("docker.io/amazon/amazon-ecs-agent:latest"));
        assert!(!agent.matches("amazon/amazon-ecs-agent-other:1"));
        let repo = ImagePattern::from_str("busybox").unwrap();
        assert!(repo.matches("busybox:1.36") && repo.matches("docker.io/library/busybox:latest"));
        assert!(!repo.matches("busybox-extra:1"));
        let exact = ImagePattern::from_str("app:1.0").unwrap();
        assert!(exact.matches("app:1.0") && !exact.matches("app:1.01"));
        let wide = ImagePattern::from_str("registry.local/team/*").unwrap();
        assert!(wide.matches("registry.local/team/web:3") && !wide.matches("registry.local/other/web:3"));
        assert!(ImagePattern::from_str("has space").is_err() && ImagePattern::from_str("").is_err());
    }

    #[test]
    fn device_specs() {
        assert_eq!(DeviceSpec::from_str("none"), Ok(DeviceSpec::None));
        assert_eq!(DeviceSpec::from_str("xvdcz"), Ok(DeviceSpec::LaunchName("xvdcz".into())));
        assert_eq!(DeviceSpec::from_str("sdf"), Ok(DeviceSpec::LaunchName("sdf".into())));
        assert_eq!(DeviceSpec::from_str("/dev/nvme1n1"), Ok(DeviceSpec::Path("/dev/nvme1n1".into())));
        let volume = DeviceSpec::from_str("vol-0123456789abcdef0").unwrap();
        assert_eq!(volume, DeviceSpec::Volume(VolumeId("vol-0123456789abcdef0".into())));
        assert_eq!(VolumeId::from_str("vol-0123456789abcdef0").unwrap().nvme_serial(), "vol0123456789abcdef0");
        // The NVMe serial form names the same volume.
        assert_eq!(DeviceSpec::from_str("vol0123456789abcdef0"), Ok(volume));
        assert_eq!(VolumeId::from_str("vol01234567").unwrap().as_str(), "vol-01234567");
        for bad in [
            "",
            "xvdabc",
            "sd",
            "vol-xyz",
            "vol-0123",
            "vol0123",
            "volume",
            "vol--0123456789abcdef0",
            "vol-0123456789ABCDEF0",
            "/dev/",
            "/dev/../etc/passwd",
            "/etc/passwd",
            "nvme1n1",
        ] {
            assert!(DeviceSpec::from_str(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn secrets_never_format() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret} {secret:?}"), "<redacted> <redacted>");
        assert_eq!(secret.expose(), "hunter2");
    }
}
