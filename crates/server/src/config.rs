//! The server's settings: defaults, then a TOML file, then `SWITCHYARD_*` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Values are written in human units (`50ms`, `7d`, `1 MiB`) or as plain numbers (bytes for
//! sizes, milliseconds for durations) and checked once, at start; a bad value stops the
//! server with the key, where it came from, and what is allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use switchyard_broker::TopicConfig;
use switchyard_log::FsyncPolicy;

use crate::units::{parse_duration_or_ms, parse_size};

/// Every configuration key, as written in the file; the environment variable is the key in
/// upper case with the `SWITCHYARD_` prefix.
pub const KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "max_frame_bytes",
    "max_connections",
    "log_format",
    "log_level",
    "default_partitions",
    "default_retention",
    "default_retention_bytes",
    "default_segment_bytes",
    "default_fsync",
    "fsync_interval",
    "max_record_bytes",
    "retention_check_interval",
    "max_payload_bytes",
];

/// Room a produce request needs around its largest record (request header, topic name,
/// batch header): `max_frame_bytes` must exceed `max_record_bytes` by at least this.
pub const FRAME_OVERHEAD_BYTES: u64 = 4096;

/// Keys whose values are plain numbers rather than text.
const NUMERIC_KEYS: &[&str] = &["max_connections", "default_partitions"];

/// Settings as written by a person: text in human units. A text key also takes a plain number
/// (`max_frame_bytes = 17825792`, `SWITCHYARD_FSYNC_INTERVAL=50`), which the environment
/// provider hands over as a number, not as text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(deserialize_with = "text_or_number")]
    pub data_dir: String,
    #[serde(deserialize_with = "text_or_number")]
    pub listen: String,
    #[serde(deserialize_with = "text_or_number")]
    pub max_frame_bytes: String,
    pub max_connections: u32,
    #[serde(deserialize_with = "text_or_number")]
    pub log_format: String,
    #[serde(deserialize_with = "text_or_number")]
    pub log_level: String,
    pub default_partitions: u32,
    #[serde(deserialize_with = "text_or_number")]
    pub default_retention: String,
    #[serde(deserialize_with = "text_or_number")]
    pub default_retention_bytes: String,
    #[serde(deserialize_with = "text_or_number")]
    pub default_segment_bytes: String,
    #[serde(deserialize_with = "text_or_number")]
    pub default_fsync: String,
    #[serde(deserialize_with = "text_or_number")]
    pub fsync_interval: String,
    #[serde(deserialize_with = "text_or_number")]
    pub max_record_bytes: String,
    #[serde(deserialize_with = "text_or_number")]
    pub retention_check_interval: String,
    /// Largest claim-check payload (blob) accepted.
    #[serde(deserialize_with = "text_or_number")]
    pub max_payload_bytes: String,
}

/// Reads a text value, or a number as its decimal text, for the parsers of [`ServerConfig`].
fn text_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Visitor;

    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a number")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<String, E> {
            Ok(text.to_string())
        }

        fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<String, E> {
            Ok(number.to_string())
        }

        fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<String, E> {
            Ok(number.to_string())
        }

        fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<String, E> {
            Ok(number.to_string())
        }
    }

    deserializer.deserialize_any(Visitor)
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            data_dir: "./switchyard-data".into(),
            listen: "127.0.0.1:7411".into(),
            max_frame_bytes: "17 MiB".into(),
            max_connections: 10_000,
            log_format: "human".into(),
            log_level: "info".into(),
            default_partitions: 1,
            default_retention: "7d".into(),
            default_retention_bytes: "none".into(),
            default_segment_bytes: "1 GiB".into(),
            default_fsync: "interval".into(),
            fsync_interval: "50ms".into(),
            max_record_bytes: "1 MiB".into(),
            retention_check_interval: "5m".into(),
            max_payload_bytes: "64 MiB".into(),
        }
    }
}

/// How the server writes its own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Checked settings, ready to use.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub max_frame_bytes: u32,
    pub max_connections: u32,
    pub log_format: LogFormat,
    pub log_level: String,
    pub topic_defaults: TopicConfig,
    pub retention_check_interval: Duration,
    /// Largest claim-check blob accepted.
    pub max_payload_bytes: u64,
}

/// A configuration that could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// A value of the wrong type, or an unknown key, where it was read.
    #[error("invalid value for `{key}` {origin}: {reason}")]
    Source {
        key: String,
        origin: String,
        reason: String,
    },
}

impl ConfigError {
    /// The first problem figment found, named by the key as written (figment's own message
    /// says `default.max_frame_bytes`, after its profile) and by where the value came from.
    fn from_figment(err: figment::Error) -> Self {
        let origin = match &err.metadata {
            Some(metadata) => match &metadata.source {
                Some(source) => format!("in {source}"),
                None if metadata.name.contains("environment") => format!(
                    "in environment variable SWITCHYARD_{}",
                    err.path.join("_").to_ascii_uppercase()
                ),
                None => format!("in {}", metadata.name),
            },
            None => String::new(),
        };
        match &err.kind {
            figment::error::Kind::UnknownField(field, _) => ConfigError::Load(format!(
                "unknown key `{field}` {origin}; the keys are {}",
                KEYS.join(", ")
            )),
            kind => ConfigError::Source {
                key: err.path.join("."),
                origin,
                reason: kind.to_string(),
            },
        }
    }
}

impl ServerConfig {
    /// Loads defaults, then `file` (if given), then the environment, then `overrides`
    /// (flag values by key).
    pub fn load(file: Option<&Path>, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("SWITCHYARD_").lowercase(true).only(KEYS));
        for (key, value) in overrides {
            figment = match value.parse::<u32>() {
                Ok(number) if NUMERIC_KEYS.contains(key) => {
                    figment.merge(Serialized::default(key, number))
                }
                _ => figment.merge(Serialized::default(key, value)),
            };
        }
        let raw: RawConfig = figment.extract().map_err(ConfigError::from_figment)?;
        Self::from_raw(&raw)
    }

    /// Checks every value of `raw`, naming the first bad key.
    pub fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let invalid =
            |key: &'static str| move |reason: String| ConfigError::Invalid { key, reason };
        let listen = raw.listen.parse().map_err(|_| ConfigError::Invalid {
            key: "listen",
            reason: format!(
                "`{}` is not an address; write e.g. 127.0.0.1:7411",
                raw.listen
            ),
        })?;
        let max_frame = parse_size(&raw.max_frame_bytes).map_err(invalid("max_frame_bytes"))?;
        if !(1024..=(1 << 30)).contains(&max_frame) {
            return Err(ConfigError::Invalid {
                key: "max_frame_bytes",
                reason: format!("{max_frame} is out of range; use 1 KiB to 1 GiB"),
            });
        }
        let log_format = match raw.log_format.as_str() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid {
                    key: "log_format",
                    reason: format!("`{other}` is not a log format; use human or json"),
                })
            }
        };
        check_log_level(&raw.log_level).map_err(invalid("log_level"))?;
        let retention = match raw.default_retention.as_str() {
            "none" | "forever" => None,
            text => Some(parse_duration_or_ms(text).map_err(invalid("default_retention"))?),
        };
        if retention.is_some_and(|retention| retention.is_zero()) {
            return Err(ConfigError::Invalid {
                key: "default_retention",
                reason: "0 would delete every record; write \"forever\" to keep them forever"
                    .into(),
            });
        }
        let retention_bytes = match raw.default_retention_bytes.as_str() {
            "none" | "unlimited" => None,
            text => Some(parse_size(text).map_err(invalid("default_retention_bytes"))?),
        };
        let fsync: FsyncPolicy = raw
            .default_fsync
            .parse()
            .map_err(invalid("default_fsync"))?;
        let fsync_interval =
            parse_duration_or_ms(&raw.fsync_interval).map_err(invalid("fsync_interval"))?;
        if fsync_interval.as_millis() == 0 {
            return Err(ConfigError::Invalid {
                key: "fsync_interval",
                reason: format!("`{}` is under 1 ms; use at least 1ms", raw.fsync_interval),
            });
        }
        let max_record = parse_size(&raw.max_record_bytes).map_err(invalid("max_record_bytes"))?;
        let topic_defaults = TopicConfig {
            partitions: raw.default_partitions,
            retention_ms: retention.map(|d| d.as_millis() as u64),
            retention_bytes,
            segment_bytes: parse_size(&raw.default_segment_bytes)
                .map_err(invalid("default_segment_bytes"))?,
            fsync,
            fsync_interval_ms: fsync_interval.as_millis() as u64,
            max_record_bytes: u32::try_from(max_record).map_err(|_| ConfigError::Invalid {
                key: "max_record_bytes",
                reason: format!("{max_record} is over 4 GiB"),
            })?,
            ..TopicConfig::default()
        };
        check_topic_defaults(&topic_defaults)?;
        if u64::from(topic_defaults.max_record_bytes) + FRAME_OVERHEAD_BYTES > max_frame {
            return Err(ConfigError::Invalid {
                key: "max_frame_bytes",
                reason: format!(
                    "{max_frame} cannot carry a record of max_record_bytes = {}; raise it",
                    topic_defaults.max_record_bytes
                ),
            });
        }
        if raw.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "max_connections",
                reason: "must be at least 1".into(),
            });
        }
        Ok(ServerConfig {
            data_dir: PathBuf::from(&raw.data_dir),
            listen,
            max_frame_bytes: max_frame as u32,
            max_connections: raw.max_connections,
            log_format,
            log_level: raw.log_level.clone(),
            topic_defaults,
            retention_check_interval: parse_duration_or_ms(&raw.retention_check_interval)
                .map_err(invalid("retention_check_interval"))?,
            max_payload_bytes: parse_size(&raw.max_payload_bytes)
                .map_err(invalid("max_payload_bytes"))?,
        })
    }
}

/// A `log_level` must name a level, alone (`info`) or per target (`switchyard_server=debug`):
/// a bare word such as `loud` is a valid filter that selects the target `loud` and so,
/// silently, hides every line the server writes.
fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let names_a_level = |directive: &str| {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        LEVELS.contains(&level.trim().to_ascii_lowercase().as_str())
    };
    let directives: Vec<&str> = filter.split(',').map(str::trim).collect();
    match directives
        .iter()
        .find(|directive| !names_a_level(directive))
    {
        None => Ok(()),
        Some(directive) => Err(format!(
            "`{directive}` names no level; write a level ({}) or target=level, e.g. \
             info,switchyard_server=debug",
            LEVELS.join(", ")
        )),
    }
}

/// Checks the settings of topics created without them, naming each by its server key (the
/// topic's own validation names the per-topic fields).
fn check_topic_defaults(defaults: &TopicConfig) -> Result<(), ConfigError> {
    let max_partitions = switchyard_broker::topic_config::MAX_PARTITIONS;
    if !(1..=max_partitions).contains(&defaults.partitions) {
        return Err(ConfigError::Invalid {
            key: "default_partitions",
            reason: format!(
                "{} is out of range; use 1 to {max_partitions}",
                defaults.partitions
            ),
        });
    }
    let segment = defaults.log_config();
    if segment.segment_bytes < 1024
        || segment.segment_bytes > switchyard_log::config::MAX_SEGMENT_BYTES
    {
        return Err(ConfigError::Invalid {
            key: "default_segment_bytes",
            reason: format!(
                "{} is out of range; use 1 KiB to 2 GiB",
                segment.segment_bytes
            ),
        });
    }
    if defaults.max_record_bytes == 0 {
        return Err(ConfigError::Invalid {
            key: "max_record_bytes",
            reason: "must be at least 1".into(),
        });
    }
    if u64::from(defaults.max_record_bytes) > defaults.segment_bytes {
        return Err(ConfigError::Invalid {
            key: "max_record_bytes",
            reason: format!(
                "{} is larger than default_segment_bytes = {}",
                defaults.max_record_bytes, defaults.segment_bytes
            ),
        });
    }
    // Anything left is a field without a server key of its own.
    defaults.validate().map_err(|reason| ConfigError::Invalid {
        key: "default topic settings",
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let config = ServerConfig::from_raw(&RawConfig::default()).expect("defaults");
        assert_eq!(config.listen.to_string(), "127.0.0.1:7411");
        assert_eq!(config.data_dir, PathBuf::from("./switchyard-data"));
        assert_eq!(config.topic_defaults.fsync, FsyncPolicy::Interval);
    }

    #[test]
    fn bad_values_name_their_key() {
        let raw = RawConfig {
            default_fsync: "sometimes".into(),
            ..RawConfig::default()
        };
        let err = ServerConfig::from_raw(&raw).expect_err("bad fsync");
        assert!(
            err.to_string()
                .starts_with("invalid value for `default_fsync`"),
            "{err}"
        );
        let raw = RawConfig {
            listen: "localhost".into(),
            ..RawConfig::default()
        };
        assert!(ServerConfig::from_raw(&raw)
            .expect_err("bad")
            .to_string()
            .contains("`listen`"));
    }

    #[test]
    fn file_and_overrides_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndefault_partitions = 4\n",
        )
        .expect("w");
        let overrides = [
            ("listen", "127.0.0.1:9001".into()),
            ("data_dir", "123".into()),
        ];
        let config = ServerConfig::load(Some(&path), &overrides).expect("load");
        assert_eq!(config.data_dir, PathBuf::from("123"));
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.topic_defaults.partitions, 4);
        let config = ServerConfig::load(None, &[("default_partitions", "6".into())]).expect("n");
        assert_eq!(config.topic_defaults.partitions, 6);
        std::fs::write(&path, "listen = 5\n").expect("w");
        let err = ServerConfig::load(Some(&path), &[]).expect_err("wrong type");
        assert!(err.to_string().contains("listen"), "{err}");
        std::fs::write(&path, "colour = \"blue\"\n").expect("w");
        let err = ServerConfig::load(Some(&path), &[]).expect_err("unknown key");
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn plain_numbers_are_bytes_and_milliseconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(
            &path,
            "max_frame_bytes = 17825792\nmax_record_bytes = 1048576\nfsync_interval = 20\n\
             default_retention = 604800000\nretention_check_interval = 60000\n",
        )
        .expect("w");
        let config = ServerConfig::load(Some(&path), &[]).expect("plain numbers load");
        assert_eq!(config.max_frame_bytes, 17 << 20);
        assert_eq!(config.topic_defaults.max_record_bytes, 1 << 20);
        assert_eq!(config.topic_defaults.fsync_interval_ms, 20);
        assert_eq!(config.topic_defaults.retention_ms, Some(7 * 86_400_000));
        assert_eq!(config.retention_check_interval, Duration::from_secs(60));
    }

    #[test]
    fn errors_name_the_key_as_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchyard.toml");
        let error_of = |text: &str| {
            std::fs::write(&path, text).expect("w");
            ServerConfig::load(Some(&path), &[])
                .expect_err(text)
                .to_string()
        };
        let err = error_of("max_connections = \"many\"\n");
        assert!(
            err.starts_with("invalid value for `max_connections` in "),
            "{err}"
        );
        assert!(err.contains("switchyard.toml"), "{err}");
        assert!(!err.contains("default."), "{err}");
        let err = error_of("fsync_interval = 0\n");
        assert!(
            err.starts_with("invalid value for `fsync_interval`:"),
            "{err}"
        );
        assert!(!err.contains("fsync_interval_ms"), "{err}");
        let err = error_of("default_partitions = 0\n");
        assert!(
            err.starts_with("invalid value for `default_partitions`:"),
            "{err}"
        );
        let err = error_of("default_retention = 0\n");
        assert!(
            err.contains("`default_retention`") && err.contains("forever"),
            "{err}"
        );
        let err = error_of("max_record_bytes = \"2 GiB\"\nmax_frame_bytes = \"1 GiB\"\n");
        assert!(
            err.starts_with("invalid value for `max_record_bytes`:"),
            "{err}"
        );
        assert!(err.contains("default_segment_bytes"), "{err}");
    }

    #[test]
    fn a_log_level_must_name_a_level() {
        for good in ["info", "WARN", "info,switchyard_server=debug", "off"] {
            let raw = RawConfig {
                log_level: good.into(),
                ..RawConfig::default()
            };
            ServerConfig::from_raw(&raw).unwrap_or_else(|err| panic!("{good}: {err}"));
        }
        for bad in [
            "loud",
            "switchyard_server",
            "info,loud",
            "switchyard=verbose",
        ] {
            let raw = RawConfig {
                log_level: bad.into(),
                ..RawConfig::default()
            };
            let err = ServerConfig::from_raw(&raw).expect_err(bad).to_string();
            assert!(err.starts_with("invalid value for `log_level`"), "{err}");
            assert!(err.contains("names no level"), "{err}");
        }
    }
}
