//! Units in configuration: sizes like `"256KiB"` and durations like `"30s"`, `"5m"`, `"30d"`
//! (or plain numbers of bytes and seconds).

use serde::{Deserialize, Deserializer};

pub(super) fn de_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a size like \"256KiB\" or a whole number of bytes")]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(text) => text
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|size| size.as_u64())
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a size like \"256KiB\": {e}"))),
    }
}

pub(super) fn ser_size<S: serde::Serializer>(size: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(*size)
}

/// Durations written as `"30s"`, `"5m"`, `"30d"` (humantime), or as a number of seconds.
pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a duration like \"30s\" or \"5m\", or a whole number of seconds")]
    enum Raw {
        Seconds(u64),
        Text(String),
    }

    fn parse(raw: Raw) -> Result<Duration, String> {
        match raw {
            Raw::Seconds(secs) => Ok(Duration::from_secs(secs)),
            Raw::Text(text) => humantime::parse_duration(text.trim())
                .map_err(|e| format!("`{text}` is not a duration like \"30s\" or \"5m\": {e}")),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        parse(Raw::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*duration).to_string())
    }

    /// The same, for lists of durations.
    pub mod list {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
            Vec::<Raw>::deserialize(deserializer)?
                .into_iter()
                .map(|raw| parse(raw).map_err(serde::de::Error::custom))
                .collect()
        }

        pub fn serialize<S: Serializer>(delays: &[Duration], serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(delays.iter().map(|d| humantime::format_duration(*d).to_string()))
        }
    }
}
