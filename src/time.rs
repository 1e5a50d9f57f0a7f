//! The crate's one time codec. What people and tools read (`/status`, the drain tags) carries
//! RFC 3339 in UTC; nodewarden's own state files (`drain.json`, `image-usage.json`) keep Unix
//! seconds, so files written by earlier versions still read. Readers of `/status` accept both,
//! so `nodewarden status` reads an older daemon's document too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 before it): for state files and `/metrics` timestamps.
pub fn to_unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// A time from Unix seconds; before 1970 counts as 1970. `None` for a number no clock can hold
/// (a damaged state file): never a panic.
pub fn from_unix_seconds(secs: f64) -> Option<SystemTime> {
    let since_epoch = Duration::try_from_secs_f64(secs.max(0.0)).ok()?;
    UNIX_EPOCH.checked_add(since_epoch)
}

/// `2026-12-04T19:50:01Z`, as operators and `jq` read times.
pub fn format_rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Reads RFC 3339 (UTC, with or without fractions).
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

/// Unix seconds as a JSON number: nodewarden's state files.
pub mod unix_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(super::to_unix_seconds(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let secs = f64::deserialize(d)?;
        super::from_unix_seconds(secs)
            .ok_or_else(|| serde::de::Error::custom(format!("{secs} is not a usable unix time")))
    }

    /// The same for an optional time (`null` when absent).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use std::time::SystemTime;

        pub fn serialize<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match time {
                Some(t) => s.serialize_some(&super::super::to_unix_seconds(*t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
            match Option::<f64>::deserialize(d)? {
                None => Ok(None),
                Some(secs) => super::super::from_unix_seconds(secs)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom(format!("{secs} is not a usable unix time"))),
            }
        }
    }
}

/// RFC 3339 strings: `/status`. Reads Unix seconds too (documents of schema 2 and earlier).
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(super) enum Written {
        Text(String),
        Seconds(f64),
    }

    pub(super) fn read<E: serde::de::Error>(written: Written) -> Result<SystemTime, E> {
        match written {
            Written::Text(text) => {
                super::parse_rfc3339(&text).ok_or_else(|| E::custom(format!("{text:?} is not an RFC 3339 time")))
            }
            Written::Seconds(secs) => {
                super::from_unix_seconds(secs).ok_or_else(|| E::custom(format!("{secs} is not a usable unix time")))
            }
        }
    }

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        read(Written::deserialize(d)?)
    }

    /// The same for an optional time (`null` when absent).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};
        use std::time::SystemTime;

        pub fn serialize<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            time.map(super::super::format_rfc3339).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
            Option::<super::Written>::deserialize(d)?.map(super::read).transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Doc {
        #[serde(with = "rfc3339")]
        at: SystemTime,
        #[serde(with = "rfc3339::option")]
        maybe: Option<SystemTime>,
        #[serde(with = "unix_seconds")]
        saved: SystemTime,
    }

    #[test]
    fn status_times_are_rfc3339_state_files_unix_seconds_and_old_documents_still_read() {
        let at = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let doc = Doc { at, maybe: Some(at), saved: at };
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(text, r#"{"at":"2025-11-24T16:00:00Z","maybe":"2025-11-24T16:00:00Z","saved":1764000000.0}"#);
        assert_eq!(serde_json::from_str::<Doc>(&text).unwrap(), doc);
        let old = r#"{"at":1764000000.0,"maybe":null,"saved":1764000000}"#;
        assert_eq!(serde_json::from_str::<Doc>(old).unwrap(), Doc { maybe: None, ..doc });
        assert!(serde_json::from_str::<Doc>(r#"{"at":"yesterday","maybe":null,"saved":1}"#).is_err());
        assert!(serde_json::from_str::<Doc>(r#"{"at":1e400,"maybe":null,"saved":1}"#).is_err());
    }
}
