//! The `ECS_*` keys `[ecs] config` accepts for `/etc/ecs/ecs.config`, and how the ECS agent
//! reads each value. A value the agent would reject makes it exit 1 and restart forever, so we
//! reject it at `check` time instead. Sources: amazon-ecs-agent `agent/config` (see
//! shared/reference/ecs-agent.md §2).

/// How the agent parses a key's value.
#[derive(Debug, Clone, Copy)]
pub enum ValueKind {
    /// Go `strconv.ParseBool`.
    Bool,
    /// Go `time.ParseDuration`, from `min` (the agent's own minimum: it clamps or replaces
    /// anything smaller, 0 included, since 0 means "unset") up to `max` when the agent has one.
    Duration { min: &'static str, max: Option<&'static str> },
    /// Go `strconv.Atoi` (a sign is allowed) within bounds.
    Integer { min: i64, max: i64 },
    /// Go `strconv.ParseUint`: digits only, no sign.
    Unsigned { max: u64 },
    /// `rate,burst`: two positive integers (the task metadata endpoint's throttle).
    RateBurst,
    /// `start-end`: a port range, start below end.
    PortRange,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
    /// A non-empty JSON array of strings, each from a fixed set (logging drivers).
    JsonStringsOf(&'static [&'static str]),
    /// A JSON array of port numbers.
    JsonPorts,
    /// A JSON object of string values (tags, attributes).
    JsonObject,
    /// Free text (one line).
    Text,
    /// Owned by another nodewarden setting or by the agent container's layout.
    Reserved(&'static str),
}

pub const LOGGING_DRIVERS: &[&str] = &[
    "json-file",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "logentries",
    "sumologic",
    "none",
    "awsfirelens",
];

/// The smallest Go duration above 0: where 0 means "the agent's default", not "none".
const POSITIVE: &str = "1ns";

const fn at_least(min: &'static str) -> ValueKind {
    ValueKind::Duration { min, max: None }
}

const LAYOUT: &str = "it is fixed by the agent container's layout (ecs-init's defaults)";

/// Known keys, sorted by name: the agent's `ECS_*` keys, and the proxy variables the ECS
/// documentation sets in ecs.config (ecs-init passes every key to the agent's environment).
pub const KEYS: &[(&str, ValueKind)] = &[
    ("ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS", ValueKind::Bool),
    ("ECS_APPARMOR_CAPABLE", ValueKind::Bool),
    ("ECS_AVAILABLE_LOGGING_DRIVERS", ValueKind::JsonStringsOf(LOGGING_DRIVERS)),
    ("ECS_AWSVPC_BLOCK_IMDS", ValueKind::Bool),
    ("ECS_CGROUP_PATH", ValueKind::Text),
    ("ECS_CHECKPOINT", ValueKind::Bool),
    ("ECS_CLUSTER", ValueKind::Reserved("set [ecs] cluster instead")),
    ("ECS_CONTAINER_CREATE_TIMEOUT", at_least("1m")),
    ("ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM", ValueKind::OneOf(&["none", "ec2_instance"])),
    ("ECS_CONTAINER_INSTANCE_TAGS", ValueKind::JsonObject),
    ("ECS_CONTAINER_START_TIMEOUT", at_least("45s")),
    ("ECS_CONTAINER_STOP_TIMEOUT", at_least("1s")),
    ("ECS_DATADIR", ValueKind::Reserved(LAYOUT)),
    ("ECS_DISABLE_IMAGE_CLEANUP", ValueKind::Bool),
    ("ECS_DISABLE_METRICS", ValueKind::Bool),
    ("ECS_DISABLE_PRIVILEGED", ValueKind::Bool),
    ("ECS_DYNAMIC_HOST_PORT_RANGE", ValueKind::PortRange),
    ("ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE", ValueKind::Bool),
    ("ECS_ENABLE_CONTAINER_METADATA", ValueKind::Bool),
    ("ECS_ENABLE_GPU_SUPPORT", ValueKind::Bool),
    ("ECS_ENABLE_HIGH_DENSITY_ENI", ValueKind::Bool),
    ("ECS_ENABLE_RUNTIME_STATS", ValueKind::Bool),
    ("ECS_ENABLE_SPOT_INSTANCE_DRAINING", ValueKind::Bool),
    ("ECS_ENABLE_TASK_CPU_MEM_LIMIT", ValueKind::Bool),
    ("ECS_ENABLE_TASK_ENI", ValueKind::Bool),
    ("ECS_ENABLE_TASK_IAM_ROLE", ValueKind::Bool),
    ("ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST", ValueKind::Bool),
    ("ECS_ENABLE_UNTRACKED_IMAGE_CLEANUP", ValueKind::Bool),
    ("ECS_ENGINE_AUTH_DATA", ValueKind::Reserved("set [ecs] engine-auth-data instead (it is kept secret)")),
    ("ECS_ENGINE_AUTH_TYPE", ValueKind::Reserved("set [ecs] engine-auth-type instead")),
    ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", at_least("1s")),
    ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER", at_least("0s")),
    ("ECS_EXCLUDE_IPV6_PORTBINDING", ValueKind::Bool),
    ("ECS_EXCLUDE_UNTRACKED_IMAGE", ValueKind::Text),
    ("ECS_EXTERNAL", ValueKind::Bool),
    ("ECS_IMAGE_CLEANUP_INTERVAL", at_least("10m")),
    ("ECS_IMAGE_MINIMUM_CLEANUP_AGE", at_least(POSITIVE)),
    ("ECS_IMAGE_PULL_BEHAVIOR", ValueKind::OneOf(&["default", "always", "once", "prefer-cached"])),
    ("ECS_IMAGE_PULL_INACTIVITY_TIMEOUT", at_least("1m")),
    ("ECS_IMAGE_PULL_TIMEOUT", at_least(POSITIVE)),
    ("ECS_INSTANCE_ATTRIBUTES", ValueKind::JsonObject),
    ("ECS_LOGFILE", ValueKind::Reserved(LAYOUT)),
    ("ECS_LOGLEVEL", ValueKind::OneOf(&["debug", "info", "warn", "error", "crit"])),
    ("ECS_LOGLEVEL_ON_INSTANCE", ValueKind::OneOf(&["debug", "info", "warn", "error", "crit", "none"])),
    ("ECS_LOG_MAX_FILE_SIZE_MB", ValueKind::Integer { min: 1, max: 1024 }),
    ("ECS_LOG_MAX_ROLL_COUNT", ValueKind::Integer { min: 1, max: 1000 }),
    ("ECS_LOG_OUTPUT_FORMAT", ValueKind::OneOf(&["logfmt", "json"])),
    ("ECS_LOG_ROLLOVER_TYPE", ValueKind::OneOf(&["hourly", "size"])),
    ("ECS_MANIFEST_PULL_TIMEOUT", at_least("30s")),
    ("ECS_NUM_IMAGES_DELETE_PER_CYCLE", ValueKind::Integer { min: 1, max: 1000 }),
    ("ECS_POLLING_METRICS_WAIT_DURATION", ValueKind::Duration { min: "5s", max: Some("20s") }),
    ("ECS_POLL_METRICS", ValueKind::Bool),
    ("ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT", ValueKind::Bool),
    ("ECS_RESERVED_MEMORY", ValueKind::Unsigned { max: 65535 }),
    ("ECS_RESERVED_PORTS", ValueKind::JsonPorts),
    ("ECS_RESERVED_PORTS_UDP", ValueKind::JsonPorts),
    ("ECS_SELINUX_CAPABLE", ValueKind::Bool),
    ("ECS_SHARED_VOLUME_MATCH_FULL_CONFIG", ValueKind::Bool),
    ("ECS_SKIP_LOCALHOST_TRAFFIC_FILTER", ValueKind::Bool),
    ("ECS_TASK_METADATA_RPS_LIMIT", ValueKind::RateBurst),
    ("ECS_TASK_PIDS_LIMIT", ValueKind::Integer { min: 1, max: 4_194_304 }),
    ("ECS_UPDATES_ENABLED", ValueKind::Bool),
    ("ECS_WARM_POOLS_CHECK", ValueKind::Bool),
    ("HTTPS_PROXY", ValueKind::Text),
    ("HTTP_PROXY", ValueKind::Text),
    ("NO_PROXY", ValueKind::Text),
];

pub fn lookup(key: &str) -> Option<ValueKind> {
    KEYS.binary_search_by(|(name, _)| name.cmp(&key)).ok().map(|i| KEYS[i].1)
}

/// Whether an error about `key` may show its value: only for a known key that is not reserved
/// and whose name does not look like it holds a secret. An unknown or reserved key is where a
/// misplaced secret lands (`ECS_ENGINE_AUTH_DATA` in `[ecs.config]`, ecs-init users' habit),
/// and errors go to the journal and, after a reload, to `/status` and `/metrics`.
pub fn may_show_value(key: &str) -> bool {
    let known = matches!(lookup(key), Some(kind) if !matches!(kind, ValueKind::Reserved(_)));
    // PROXY: a proxy URL may carry `user:password@`.
    known && !name_looks_secret(key) && !key.contains("PROXY")
}

/// Whether a variable's name says it holds a secret (`*_TOKEN`, `*_PASSWORD`, `*_SECRET`,
/// `*AUTH*`, `*_KEY`, `*CREDENTIAL*`): its value is never printed, whether nodewarden knows
/// the key or passes it unchecked.
pub fn name_looks_secret(key: &str) -> bool {
    const SECRET_WORDS: &[&str] = &["AUTH", "PASSWORD", "PASSWD", "TOKEN", "SECRET", "KEY", "CREDENTIAL"];
    let upper = key.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|word| upper.contains(word))
}

/// `start-end` as the agent reads ECS_DYNAMIC_HOST_PORT_RANGE.
pub fn port_range(value: &str) -> Option<(u16, u16)> {
    let (start, end) = value.split_once('-')?;
    let (start, end) = (start.trim().parse::<u16>().ok()?, end.trim().parse::<u16>().ok()?);
    (start > 0 && start < end).then_some((start, end))
}

/// Whether `key` may be passed through unchecked (`[ecs] config-unchecked`): an environment
/// variable name, since ecs-init hands every key to the agent's environment.
pub fn is_variable_name(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_uppercase())
        && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Checks `value` for `key` the way the agent would read it. `Err` says what was expected.
/// `unchecked` holds the keys the operator listed in `[ecs] config-unchecked`: a key nodewarden
/// does not know is then passed through (reserved keys never are).
pub fn check(key: &str, value: &str, unchecked: &[String]) -> Result<(), String> {
    // ecs.config is KEY=VALUE per line: a newline would inject another key.
    if value.contains(['\n', '\r', '\0']) {
        return Err("a single-line value".into());
    }
    let Some(kind) = lookup(key) else {
        if unchecked.iter().any(|k| k == key) && is_variable_name(key) {
            return Ok(());
        }
        return Err(if key.starts_with("ECS_") {
            "a known ECS agent setting (this one is unknown to nodewarden; check its spelling, or list it in \
             [ecs] config-unchecked to pass it to the agent unchecked)"
                .into()
        } else {
            "an ECS agent setting (ECS_*, or HTTP_PROXY, HTTPS_PROXY, NO_PROXY; list others in [ecs] config-unchecked)"
                .into()
        });
    };
    match kind {
        ValueKind::Bool => go_parse_bool(value).map(drop).ok_or_else(|| "a boolean (true or false)".into()),
        ValueKind::Duration { min, max } => {
            let bound = |text: &str| go_parse_duration(text).expect("the key table's bounds are Go durations");
            let expected = match (min, max) {
                (POSITIVE, None) => "a Go duration above 0 such as \"30m\" (0 means the agent's default)".to_string(),
                ("0s", None) => "a Go duration such as \"30m\" or \"1h30m\", not negative".to_string(),
                (min, None) => format!("a Go duration of at least {min} (the agent ignores or clamps smaller ones)"),
                (min, Some(max)) => format!("a Go duration from {min} to {max} (the agent ignores others)"),
            };
            match go_parse_duration(value) {
                // In nanoseconds whatever the unit, as the agent's int64 holds them.
                Ok(nanos) if nanos >= bound(min) && max.is_none_or(|max| nanos <= bound(max)) => Ok(()),
                _ => Err(expected),
            }
        }
        ValueKind::Integer { min, max } => match value.strip_prefix('+').unwrap_or(value).parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) && !value.starts_with("+-") => Ok(()),
            _ => Err(format!("an integer from {min} to {max}")),
        },
        ValueKind::Unsigned { max } => match value.parse::<u64>() {
            Ok(n) if n <= max && value.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            _ => Err(format!("a whole number from 0 to {max}, digits only")),
        },
        ValueKind::PortRange => match port_range(value) {
            Some(_) => Ok(()),
            None => Err("a port range such as \"49153-65535\" (start below end, both 1 to 65535)".into()),
        },
        ValueKind::RateBurst => {
            let positive = |part: &str| part.trim().parse::<u32>().is_ok_and(|n| n > 0);
            match value.split(',').collect::<Vec<_>>()[..] {
                [rate, burst] if positive(rate) && positive(burst) => Ok(()),
                _ => Err("rate,burst: two positive integers such as \"40,60\"".into()),
            }
        }
        ValueKind::OneOf(words) => {
            if words.contains(&value) {
                Ok(())
            } else {
                Err(format!("one of: {}", words.join(", ")))
            }
        }
        ValueKind::JsonStringsOf(allowed) => {
            let expected = || format!("a non-empty JSON array of: {}", allowed.join(", "));
            let items: Vec<String> = serde_json::from_str(value).map_err(|_| expected())?;
            // An empty list would leave the agent no driver at all for its tasks.
            if !items.is_empty() && items.iter().all(|i| allowed.contains(&i.as_str())) {
                Ok(())
            } else {
                Err(expected())
            }
        }
        ValueKind::JsonPorts => serde_json::from_str::<Vec<u16>>(value)
            .map(drop)
            .map_err(|_| "a JSON array of port numbers such as [22, 2375]".into()),
        ValueKind::JsonObject => serde_json::from_str::<std::collections::BTreeMap<String, String>>(value)
            .map(drop)
            .map_err(|_| "a JSON object of strings such as {\"team\": \"web\"}".into()),
        ValueKind::Text => Ok(()),
        ValueKind::Reserved(why) => Err(format!("no value here: {why}")),
    }
}

/// Go's `strconv.ParseBool`.
pub fn go_parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration`, step for step: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`, in
/// nanoseconds as Go's `time.Duration` (an int64) holds them. Integer arithmetic as Go does it,
/// so the edge is exact in every unit: `9223372036854775807ns` is the longest duration,
/// `9223372036854775808ns`, `9223372036854775.808us` or `2562047h47m16.854775808s` are refused
/// (an f64 total cannot tell them apart: both round to 2^63).
pub fn go_parse_duration(value: &str) -> Result<i64, ()> {
    const LIMIT: u64 = 1 << 63;
    let (negative, mut rest) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(());
        }
        // The whole part: Go's leadingInt, which refuses anything past 2^63.
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let mut whole: u64 = 0;
        for digit in rest[..digits].bytes() {
            if whole > LIMIT / 10 {
                return Err(());
            }
            whole = whole * 10 + u64::from(digit - b'0');
            if whole > LIMIT {
                return Err(());
            }
        }
        let had_whole = digits > 0;
        rest = &rest[digits..];
        // The fraction: Go's leadingFraction, which stops taking digits (without failing)
        // once another would overflow.
        let (mut fraction, mut scale, mut had_fraction) = (0u64, 1f64, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let digits = after_dot.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_dot.len());
            let mut overflow = false;
            for digit in after_dot[..digits].bytes() {
                if overflow {
                    continue;
                }
                if fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(digit - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            had_fraction = digits > 0;
            rest = &after_dot[digits..];
        }
        if !had_whole && !had_fraction {
            return Err(());
        }
        let unit_end = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        let unit: u64 = match &rest[..unit_end] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(()),
        };
        rest = &rest[unit_end..];
        if whole > LIMIT / unit {
            return Err(());
        }
        let mut amount = whole * unit;
        if fraction > 0 {
            // As Go: float64 for the fraction, nanosecond-accurate for fractions of an hour.
            amount += (fraction as f64 * (unit as f64 / scale)) as u64;
            if amount > LIMIT {
                return Err(());
            }
        }
        total = total.checked_add(amount).filter(|t| *t <= LIMIT).ok_or(())?;
    }
    match (negative, total) {
        (true, LIMIT) => Ok(i64::MIN),
        (true, t) => Ok(-(t as i64)),
        (false, t) => i64::try_from(t).map_err(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_for_lookup() {
        assert!(KEYS.windows(2).all(|w| w[0].0 < w[1].0), "KEYS must stay sorted");
        assert!(lookup("ECS_ENABLE_TASK_IAM_ROLE").is_some());
        assert!(lookup("ECS_NOPE").is_none());
    }

    #[test]
    fn an_unknown_key_passes_only_when_listed_as_unchecked_and_reserved_ones_never() {
        let listed = vec!["ECS_FUTURE_FEATURE".to_string(), "ECS_CLUSTER".to_string(), "bad-name".to_string()];
        assert!(check("ECS_FUTURE_FEATURE", "on", &[]).is_err());
        assert!(check("ECS_FUTURE_FEATURE", "on", &listed).is_ok());
        assert!(check("ECS_FUTURE_FEATURE", "on\nECS_CLUSTER=x", &listed).is_err());
        assert!(check("ECS_CLUSTER", "prod", &listed).is_err(), "reserved keys stay reserved");
        assert!(check("bad-name", "x", &listed).is_err());
    }

    #[test]
    fn values_are_checked_like_the_agent() {
        let table: &[(&str, &str, bool)] = &[
            ("ECS_ENABLE_TASK_IAM_ROLE", "true", true),
            ("ECS_ENABLE_TASK_IAM_ROLE", "T", true),
            ("ECS_ENABLE_TASK_IAM_ROLE", "0", true),
            ("ECS_ENABLE_TASK_IAM_ROLE", "maybe", false),
            ("ECS_ENABLE_TASK_IAM_ROLE", "yes", false),
            ("ECS_IMAGE_CLEANUP_INTERVAL", "30m", true),
            ("ECS_IMAGE_CLEANUP_INTERVAL", "1h30m", true),
            ("ECS_IMAGE_CLEANUP_INTERVAL", "1.5h", true),
            ("ECS_IMAGE_CLEANUP_INTERVAL", "0", false),
            ("ECS_IMAGE_CLEANUP_INTERVAL", "10m", true),
            ("ECS_IMAGE_CLEANUP_INTERVAL", "9m59s", false),
            ("ECS_IMAGE_CLEANUP_INTERVAL", "30", false),
            ("ECS_IMAGE_CLEANUP_INTERVAL", "30 m", false),
            ("ECS_IMAGE_CLEANUP_INTERVAL", "1d", false),
            ("ECS_AVAILABLE_LOGGING_DRIVERS", "[\"json-file\",\"awslogs\"]", true),
            ("ECS_AVAILABLE_LOGGING_DRIVERS", "[\"json-file\",\"loki\"]", false),
            ("ECS_AVAILABLE_LOGGING_DRIVERS", "json-file", false),
            ("ECS_RESERVED_PORTS", "[22, 2375]", true),
            ("ECS_RESERVED_PORTS", "[70000]", false),
            ("ECS_CONTAINER_INSTANCE_TAGS", "{\"team\":\"web\"}", true),
            ("ECS_CONTAINER_INSTANCE_TAGS", "[1]", false),
            ("ECS_RESERVED_MEMORY", "256", true),
            ("ECS_RESERVED_MEMORY", "0", true),
            ("ECS_RESERVED_MEMORY", "65535", true),
            ("ECS_RESERVED_MEMORY", "65536", false),
            ("ECS_RESERVED_MEMORY", "70000", false),
            ("ECS_RESERVED_MEMORY", "+256", false),
            ("ECS_RESERVED_MEMORY", "-1", false),
            // The agent's own minimums, at the edge and just under it.
            ("ECS_CONTAINER_STOP_TIMEOUT", "1s", true),
            ("ECS_CONTAINER_STOP_TIMEOUT", "999ms", false),
            ("ECS_CONTAINER_STOP_TIMEOUT", "-30s", false),
            ("ECS_CONTAINER_START_TIMEOUT", "45s", true),
            ("ECS_CONTAINER_START_TIMEOUT", "44s", false),
            ("ECS_CONTAINER_CREATE_TIMEOUT", "1m", true),
            ("ECS_CONTAINER_CREATE_TIMEOUT", "59s", false),
            ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", "1s", true),
            ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", "500ms", false),
            ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER", "0", true),
            ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER", "-1m", false),
            ("ECS_IMAGE_PULL_INACTIVITY_TIMEOUT", "59s", false),
            ("ECS_MANIFEST_PULL_TIMEOUT", "30s", true),
            ("ECS_MANIFEST_PULL_TIMEOUT", "29s", false),
            ("ECS_IMAGE_MINIMUM_CLEANUP_AGE", "1ns", true),
            ("ECS_IMAGE_MINIMUM_CLEANUP_AGE", "0", false),
            ("ECS_POLLING_METRICS_WAIT_DURATION", "5s", true),
            ("ECS_POLLING_METRICS_WAIT_DURATION", "20s", true),
            ("ECS_POLLING_METRICS_WAIT_DURATION", "21s", false),
            ("ECS_POLLING_METRICS_WAIT_DURATION", "4s", false),
            // Go's int64 nanoseconds end at 2562047h47m16.854775807s.
            ("ECS_IMAGE_PULL_TIMEOUT", "2562047h", true),
            ("ECS_IMAGE_PULL_TIMEOUT", "2562048h", false),
            ("ECS_NUM_IMAGES_DELETE_PER_CYCLE", "+5", true),
            ("ECS_NUM_IMAGES_DELETE_PER_CYCLE", "0", false),
            ("ECS_AVAILABLE_LOGGING_DRIVERS", "[]", false),
            ("ECS_TASK_METADATA_RPS_LIMIT", "40,60", true),
            ("ECS_TASK_METADATA_RPS_LIMIT", " 40 , 60 ", true),
            ("ECS_TASK_METADATA_RPS_LIMIT", "40", false),
            ("ECS_TASK_METADATA_RPS_LIMIT", "40,60,80", false),
            ("ECS_TASK_METADATA_RPS_LIMIT", "fast,60", false),
            ("ECS_IMAGE_PULL_BEHAVIOR", "prefer-cached", true),
            ("ECS_IMAGE_PULL_BEHAVIOR", "sometimes", false),
            ("ECS_LOGLEVEL", "info\nECS_CLUSTER=evil", false),
            ("ECS_CLUSTER", "prod", false),
            ("ECS_ENGINE_AUTH_DATA", "{}", false),
            ("ECS_TYPO_KEY", "1", false),
            ("PATH", "/bin", false),
            ("HTTP_PROXY", "10.0.0.131:3128", true),
            ("NO_PROXY", "169.254.169.254,169.254.170.2,/var/run/docker.sock", true),
            ("ECS_DYNAMIC_HOST_PORT_RANGE", "40000-60000", true),
            ("ECS_DYNAMIC_HOST_PORT_RANGE", "60000-40000", false),
            ("ECS_DYNAMIC_HOST_PORT_RANGE", "40000", false),
            ("ECS_TASK_PIDS_LIMIT", "100", true),
            ("ECS_TASK_PIDS_LIMIT", "0", false),
            ("ECS_EXCLUDE_IPV6_PORTBINDING", "true", true),
        ];
        for (key, value, ok) in table {
            assert_eq!(check(key, value, &[]).is_ok(), *ok, "{key}={value:?}: {:?}", check(key, value, &[]));
        }
    }

    /// The longest Go duration is 9223372036854775807ns; one nanosecond more is refused by
    /// `time.ParseDuration`, and the agent then discards the value. The bound is on
    /// nanoseconds, whatever unit (or mix of units) the value is written in.
    #[test]
    fn the_int64_nanosecond_edge_holds_in_every_unit() {
        let edges: &[(&str, &str)] = &[
            ("9223372036854775807ns", "9223372036854775808ns"),
            ("9223372036854775.807us", "9223372036854775.808us"),
            ("9223372036854775.807\u{b5}s", "9223372036854775.808\u{b5}s"),
            ("9223372036854775.807\u{3bc}s", "9223372036854775.808\u{3bc}s"),
            ("9223372036854.775807ms", "9223372036854.775808ms"),
            ("9223372036.854775807s", "9223372036.854775808s"),
            ("153722867m16.854775807s", "153722867m16.854775808s"),
            ("2562047h47m16.854775807s", "2562047h47m16.854775808s"),
            ("2562047h47m16s854ms775us807ns", "2562047h47m16s854ms775us808ns"),
            ("9223372036s854775807ns", "9223372036s854775808ns"),
            ("+9223372036854775807ns", "+9223372036854775808ns"),
            ("2562047h", "2562048h"),
            ("153722867m", "153722868m"),
            ("9223372036s", "9223372037s"),
            ("9223372036854ms", "9223372036855ms"),
            ("9223372036854775us", "9223372036854776us"),
            ("1h", "99999999999999999999ns"),
        ];
        for key in ["ECS_CONTAINER_STOP_TIMEOUT", "ECS_IMAGE_CLEANUP_INTERVAL", "ECS_IMAGE_PULL_TIMEOUT"] {
            for (longest, one_past) in edges {
                assert!(check(key, longest, &[]).is_ok(), "{key}={longest}: {:?}", check(key, longest, &[]));
                assert!(check(key, one_past, &[]).is_err(), "{key}={one_past} is past Go's int64 nanoseconds");
            }
        }
    }

    #[test]
    fn durations_parse_to_the_nanoseconds_go_gives() {
        let table: &[(&str, Result<i64, ()>)] = &[
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("1ns", Ok(1)),
            ("1.5h", Ok(5_400_000_000_000)),
            ("1h30m", Ok(5_400_000_000_000)),
            (".5s", Ok(500_000_000)),
            ("5.s", Ok(5_000_000_000)),
            ("1\u{b5}s", Ok(1_000)),
            ("300ms", Ok(300_000_000)),
            ("-1.5m", Ok(-90_000_000_000)),
            ("2562047h47m16.854775807s", Ok(i64::MAX)),
            ("9223372036854775807ns", Ok(i64::MAX)),
            ("-9223372036854775808ns", Ok(i64::MIN)),
            ("-9223372036854775809ns", Err(())),
            ("9223372036854775808ns", Err(())),
            // Extra fraction digits past what fits are dropped, as Go does.
            ("1.00000000000000000000000001s", Ok(1_000_000_000)),
            ("", Err(())),
            ("+", Err(())),
            (".", Err(())),
            (".s", Err(())),
            ("1", Err(())),
            ("1d", Err(())),
            ("1.2.3s", Err(())),
            ("1e3s", Err(())),
            ("1 s", Err(())),
            ("s", Err(())),
        ];
        for (text, nanos) in table {
            assert_eq!(go_parse_duration(text), *nanos, "{text:?}");
        }
    }

    #[test]
    fn names_that_look_secret() {
        let table: &[(&str, bool)] = &[
            ("ECS_REGISTRY_TOKEN", true),
            ("MY_DB_PASSWORD", true),
            ("ECS_MY_PASSWD", true),
            ("CLIENT_SECRET", true),
            ("ECS_ENGINE_AUTH_DATA", true),
            ("ECS_AUTHORIZATION", true),
            ("OAUTH_THING", true),
            ("AWS_SECRET_ACCESS_KEY", true),
            ("API_KEY", true),
            ("ECS_CREDENTIALS_FILE", true),
            ("ECS_FUTURE_FEATURE", false),
            ("ECS_LOGLEVEL", false),
            ("ECS_IMAGE_PULL_BEHAVIOR", false),
            ("HTTP_PROXY", false),
        ];
        for (key, secret) in table {
            assert_eq!(name_looks_secret(key), *secret, "{key}");
            if *secret {
                assert!(!may_show_value(key), "{key}");
            }
        }
    }
}
