//! The server's settings: defaults, then a TOML file, then `SWITCHYARD_*` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Values are written in human units (`50ms`, `7d`, `1 MiB`) and checked once, at start; a bad
//! value stops the server with the key, where it came from, and what is allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use switchyard_broker::TopicConfig;
use switchyard_log::FsyncPolicy;

use crate::units::{parse_duration, parse_size};

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
];

/// Keys whose values are plain numbers rather than text.
const NUMERIC_KEYS: &[&str] = &["max_connections", "default_partitions"];

/// Settings as written by a person: strings in human units.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: String,
    pub listen: String,
    pub max_frame_bytes: String,
    pub max_connections: u32,
    pub log_format: String,
    pub log_level: String,
    pub default_partitions: u32,
    pub default_retention: String,
    pub default_retention_bytes: String,
    pub default_segment_bytes: String,
    pub default_fsync: String,
    pub fsync_interval: String,
    pub max_record_bytes: String,
    pub retention_check_interval: String,
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
}

/// A configuration that could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
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
        let raw: RawConfig = figment
            .extract()
            .map_err(|err| ConfigError::Load(err.to_string()))?;
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
        let retention = match raw.default_retention.as_str() {
            "none" | "forever" => None,
            text => Some(parse_duration(text).map_err(invalid("default_retention"))?),
        };
        let retention_bytes = match raw.default_retention_bytes.as_str() {
            "none" | "unlimited" => None,
            text => Some(parse_size(text).map_err(invalid("default_retention_bytes"))?),
        };
        let fsync: FsyncPolicy = raw
            .default_fsync
            .parse()
            .map_err(invalid("default_fsync"))?;
        let fsync_interval =
            parse_duration(&raw.fsync_interval).map_err(invalid("fsync_interval"))?;
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
        topic_defaults
            .validate()
            .map_err(|reason| ConfigError::Invalid {
                key: "default topic settings",
                reason,
            })?;
        if u64::from(topic_defaults.max_record_bytes) + 4096 > max_frame {
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
            retention_check_interval: parse_duration(&raw.retention_check_interval)
                .map_err(invalid("retention_check_interval"))?,
        })
    }
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
}
