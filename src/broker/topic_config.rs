//! Topic-level settings: the names Kafka knows, their types, broker-level synonyms, defaults,
//! validation, and the resolved values the data plane acts on.

use std::collections::BTreeMap;

use crate::config::Config;

/// Kafka's config types, as DescribeConfigs v3+ numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Where a described value comes from (DescribeConfigs `config_source`).
pub mod source {
    pub const TOPIC_CONFIG: i8 = 1;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
}

/// One topic setting Kafka knows.
#[derive(Debug)]
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    /// The broker setting that gives the default.
    pub broker_key: &'static str,
    /// Kafka's built-in default, as text.
    pub default: &'static str,
    pub doc: &'static str,
}

const LMAX: &str = "9223372036854775807";

/// Every topic setting Kafka 4.x accepts. Names outside this list get INVALID_CONFIG.
pub const DEFS: &[Def] = &[
    Def {
        name: "cleanup.policy",
        kind: Kind::List,
        broker_key: "log.cleanup.policy",
        default: "delete",
        doc: "delete: drop old segments by time or size; compact: keep the newest record per key.",
    },
    Def {
        name: "compression.type",
        kind: Kind::String,
        broker_key: "compression.type",
        default: "producer",
        doc: "Compression of stored batches; corral keeps batches as the producer compressed them.",
    },
    Def {
        name: "delete.retention.ms",
        kind: Kind::Long,
        broker_key: "log.cleaner.delete.retention.ms",
        default: "86400000",
        doc: "How long tombstones survive compaction.",
    },
    Def {
        name: "file.delete.delay.ms",
        kind: Kind::Long,
        broker_key: "log.segment.delete.delay.ms",
        default: "60000",
        doc: "Delay before a deleted segment file is removed.",
    },
    Def {
        name: "flush.messages",
        kind: Kind::Long,
        broker_key: "log.flush.interval.messages",
        default: LMAX,
        doc: "Fsync the partition after this many messages.",
    },
    Def {
        name: "flush.ms",
        kind: Kind::Long,
        broker_key: "log.flush.interval.ms",
        default: LMAX,
        doc: "Fsync the partition when unflushed data is this old.",
    },
    Def {
        name: "follower.replication.throttled.replicas",
        kind: Kind::List,
        broker_key: "",
        default: "",
        doc: "Replication throttling; no effect on a single node.",
    },
    Def {
        name: "index.interval.bytes",
        kind: Kind::Int,
        broker_key: "log.index.interval.bytes",
        default: "4096",
        doc: "Bytes between offset index entries.",
    },
    Def {
        name: "leader.replication.throttled.replicas",
        kind: Kind::List,
        broker_key: "",
        default: "",
        doc: "Replication throttling; no effect on a single node.",
    },
    Def {
        name: "local.retention.bytes",
        kind: Kind::Long,
        broker_key: "log.local.retention.bytes",
        default: "-2",
        doc: "Tiered storage; no effect in corral.",
    },
    Def {
        name: "local.retention.ms",
        kind: Kind::Long,
        broker_key: "log.local.retention.ms",
        default: "-2",
        doc: "Tiered storage; no effect in corral.",
    },
    Def {
        name: "max.compaction.lag.ms",
        kind: Kind::Long,
        broker_key: "log.cleaner.max.compaction.lag.ms",
        default: LMAX,
        doc: "Longest time a record stays uncompacted.",
    },
    Def {
        name: "max.message.bytes",
        kind: Kind::Int,
        broker_key: "message.max.bytes",
        default: "1048588",
        doc: "Largest record batch the topic accepts.",
    },
    Def {
        name: "message.timestamp.after.max.ms",
        kind: Kind::Long,
        broker_key: "log.message.timestamp.after.max.ms",
        default: LMAX,
        doc: "How far in the future a CreateTime timestamp may be.",
    },
    Def {
        name: "message.timestamp.before.max.ms",
        kind: Kind::Long,
        broker_key: "log.message.timestamp.before.max.ms",
        default: LMAX,
        doc: "How far in the past a CreateTime timestamp may be.",
    },
    Def {
        name: "message.timestamp.type",
        kind: Kind::String,
        broker_key: "log.message.timestamp.type",
        default: "CreateTime",
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches on append.",
    },
    Def {
        name: "min.cleanable.dirty.ratio",
        kind: Kind::Double,
        broker_key: "log.cleaner.min.cleanable.ratio",
        default: "0.5",
        doc: "Dirty fraction that triggers compaction.",
    },
    Def {
        name: "min.compaction.lag.ms",
        kind: Kind::Long,
        broker_key: "log.cleaner.min.compaction.lag.ms",
        default: "0",
        doc: "Shortest time a record stays uncompacted.",
    },
    Def {
        name: "min.insync.replicas",
        kind: Kind::Int,
        broker_key: "min.insync.replicas",
        default: "1",
        doc: "Always satisfied on a single node.",
    },
    Def { name: "preallocate", kind: Kind::Boolean, broker_key: "log.preallocate", default: "false", doc: "Preallocate segment files." },
    Def {
        name: "remote.storage.enable",
        kind: Kind::Boolean,
        broker_key: "",
        default: "false",
        doc: "Tiered storage; not supported by corral.",
    },
    Def {
        name: "retention.bytes",
        kind: Kind::Long,
        broker_key: "log.retention.bytes",
        default: "-1",
        doc: "Largest size of a partition before old segments are dropped; -1 = no limit.",
    },
    Def {
        name: "retention.ms",
        kind: Kind::Long,
        broker_key: "log.retention.ms",
        default: "604800000",
        doc: "Age after which old segments are dropped; -1 = forever.",
    },
    Def {
        name: "segment.bytes",
        kind: Kind::Int,
        broker_key: "log.segment.bytes",
        default: "1073741824",
        doc: "Size at which a new segment is started.",
    },
    Def {
        name: "segment.index.bytes",
        kind: Kind::Int,
        broker_key: "log.index.size.max.bytes",
        default: "10485760",
        doc: "Largest offset index per segment.",
    },
    Def {
        name: "segment.jitter.ms",
        kind: Kind::Long,
        broker_key: "log.roll.jitter.ms",
        default: "0",
        doc: "Random jitter on time-based rolling.",
    },
    Def {
        name: "segment.ms",
        kind: Kind::Long,
        broker_key: "log.roll.ms",
        default: "604800000",
        doc: "Age at which a new segment is started.",
    },
    Def {
        name: "unclean.leader.election.enable",
        kind: Kind::Boolean,
        broker_key: "unclean.leader.election.enable",
        default: "false",
        doc: "No effect on a single node.",
    },
];

/// Finds a setting by name.
pub fn def(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name == name)
}

/// The broker-level value of a topic setting's default, and whether the config file set it.
pub fn broker_default(config: &Config, d: &Def) -> (String, bool) {
    let set = |v: String| (v, config.explicit.contains(d.broker_key));
    match d.name {
        "cleanup.policy" => set(config.log_cleanup_policy.clone()),
        "delete.retention.ms" => set(config.log_cleaner_delete_retention_ms.to_string()),
        "flush.messages" => set(config.log_flush_interval_messages.to_string()),
        "flush.ms" => set(config.log_flush_interval_ms.unwrap_or(i64::MAX).to_string()),
        "max.message.bytes" => set(config.message_max_bytes.to_string()),
        "message.timestamp.type" => set(config.log_message_timestamp_type.clone()),
        "retention.bytes" => set(config.log_retention_bytes.to_string()),
        "retention.ms" => (
            config.log_retention_ms.to_string(),
            ["log.retention.ms", "log.retention.minutes", "log.retention.hours"].iter().any(|k| config.explicit.contains(*k)),
        ),
        "segment.bytes" => set(config.log_segment_bytes.to_string()),
        _ => (d.default.to_string(), false),
    }
}

/// Checks the value of `cleanup.policy` (a comma-separated list of delete and compact).
pub fn validate_cleanup_policy(v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        return Ok(());
    }
    for p in v.split(',') {
        match p.trim() {
            "delete" | "compact" => {}
            other => return Err(format!("Invalid value {other} for configuration cleanup.policy: String must be one of: compact, delete")),
        }
    }
    Ok(())
}

/// Checks one topic setting. The message follows Kafka's wording where it has one.
pub fn validate(name: &str, value: Option<&str>) -> Result<(), String> {
    let Some(d) = def(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let Some(v) = value else {
        return Err(format!("Null value not supported for topic configs: {name}"));
    };
    let bad = || format!("Invalid value {v} for configuration {name}");
    match d.kind {
        Kind::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(format!("{}: Expected value to be either true or false", bad()));
            }
        }
        Kind::Int => {
            let n: i32 = v.trim().parse().map_err(|_| format!("{}: Not a number of type INT", bad()))?;
            let min = match name {
                "segment.bytes" => 14,
                "max.message.bytes" | "index.interval.bytes" => 0,
                "segment.index.bytes" => 4,
                "min.insync.replicas" => 1,
                _ => i32::MIN,
            };
            if n < min {
                return Err(format!("{}: Value must be at least {min}", bad()));
            }
        }
        Kind::Long => {
            let n: i64 = v.trim().parse().map_err(|_| format!("{}: Not a number of type LONG", bad()))?;
            let min = match name {
                "retention.ms" | "retention.bytes" => -1,
                "local.retention.ms" | "local.retention.bytes" => -2,
                "flush.messages" | "flush.ms" | "segment.ms" => 1,
                _ => 0,
            };
            if n < min {
                return Err(format!("{}: Value must be at least {min}", bad()));
            }
        }
        Kind::Double => {
            let x: f64 = v.trim().parse().map_err(|_| format!("{}: Not a number of type DOUBLE", bad()))?;
            if !(0.0..=1.0).contains(&x) {
                return Err(format!("{}: Value must be between 0 and 1", bad()));
            }
        }
        Kind::String | Kind::List => {}
    }
    match name {
        "cleanup.policy" => validate_cleanup_policy(v)?,
        "message.timestamp.type" if v != "CreateTime" && v != "LogAppendTime" => {
            return Err(format!("{}: String must be one of: CreateTime, LogAppendTime", bad()));
        }
        "compression.type" if !["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"].contains(&v) => {
            return Err(format!("{}: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer", bad()));
        }
        "remote.storage.enable" if v.eq_ignore_ascii_case("true") => {
            return Err("Tiered storage is not supported by corral".to_string());
        }
        _ => {}
    }
    Ok(())
}

/// A topic's settings: the overrides it was given, and the resolved values corral acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// Settings given at creation or by AlterConfigs, as given.
    pub overrides: BTreeMap<String, String>,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: i64,
    pub compact: bool,
    pub delete: bool,
    pub max_message_bytes: i32,
    pub log_append_time: bool,
    pub delete_retention_ms: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `compression.type` is zstd: Fetch below v10 cannot carry this topic (KIP-110).
    pub zstd: bool,
}

impl TopicConfig {
    /// Resolves `overrides` (already validated) over the broker's defaults.
    pub fn resolve(config: &Config, overrides: BTreeMap<String, String>) -> Self {
        let get = |name: &str| -> String {
            overrides.get(name).cloned().unwrap_or_else(|| broker_default(config, def(name).expect("known topic config")).0)
        };
        let long = |name: &str| get(name).trim().parse::<i64>().unwrap_or(i64::MAX);
        let policy = get("cleanup.policy");
        TopicConfig {
            retention_ms: long("retention.ms"),
            retention_bytes: long("retention.bytes"),
            segment_bytes: long("segment.bytes"),
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            delete: policy.split(',').any(|p| p.trim() == "delete"),
            max_message_bytes: long("max.message.bytes").clamp(0, i32::MAX as i64) as i32,
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            delete_retention_ms: long("delete.retention.ms"),
            flush_messages: long("flush.messages"),
            flush_ms: long("flush.ms"),
            timestamp_before_max_ms: long("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms"),
            zstd: get("compression.type") == "zstd",
            overrides,
        }
    }

    /// The value of a setting as DescribeConfigs shows it, with its source.
    pub fn describe(&self, config: &Config, d: &Def) -> (String, i8) {
        if let Some(v) = self.overrides.get(d.name) {
            return (v.clone(), source::TOPIC_CONFIG);
        }
        let (v, explicit) = broker_default(config, d);
        (v, if explicit { source::STATIC_BROKER_CONFIG } else { source::DEFAULT_CONFIG })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_kafka_rules() {
        assert!(validate("retention.ms", Some("-1")).is_ok());
        assert!(validate("retention.ms", Some("-2")).is_err());
        assert!(validate("retention.ms", Some("x")).is_err());
        assert!(validate("cleanup.policy", Some("compact,delete")).is_ok());
        assert!(validate("cleanup.policy", Some("archive")).is_err());
        assert!(validate("no.such", Some("1")).is_err());
        assert!(validate("retention.ms", None).is_err());
        assert!(validate("min.cleanable.dirty.ratio", Some("1.5")).is_err());
    }

    #[test]
    fn overrides_win_over_broker_defaults() {
        let mut c = Config::default();
        c.apply_toml("log.retention.hours = 1").unwrap();
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_string(), "compact".to_string());
        let t = TopicConfig::resolve(&c, o);
        assert_eq!(t.retention_ms, 3_600_000);
        assert!(t.compact && !t.delete);
        assert_eq!(t.describe(&c, def("retention.ms").unwrap()), ("3600000".into(), source::STATIC_BROKER_CONFIG));
        assert_eq!(t.describe(&c, def("cleanup.policy").unwrap()).1, source::TOPIC_CONFIG);
        assert_eq!(t.describe(&c, def("segment.bytes").unwrap()).1, source::DEFAULT_CONFIG);
    }
}
