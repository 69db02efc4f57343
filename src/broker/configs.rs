//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs, for topics and for the broker.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as AlterResult;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::topic_config::{self, DEFS, Kind, broker_default, source};
use super::{Broker, Topic};
use crate::config::Config;
use crate::error::ErrorCode;

/// DescribeConfigs resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

/// Broker settings that DescribeConfigs shows: (name, kind, value).
fn broker_entries(broker: &Broker) -> Vec<(&'static str, Kind, String)> {
    let c: &Config = &broker.config;
    let listeners = format!("PLAINTEXT://{}", c.listen);
    let advertised = format!("PLAINTEXT://{}", broker.advertised);
    vec![
        ("node.id", Kind::Int, c.node_id.to_string()),
        ("broker.id", Kind::Int, c.node_id.to_string()),
        ("process.roles", Kind::List, "broker,controller".into()),
        ("listeners", Kind::List, listeners),
        ("advertised.listeners", Kind::List, advertised),
        ("log.dirs", Kind::String, c.data_dir.display().to_string()),
        ("inter.broker.protocol.version", Kind::String, "4.0-IV3".into()),
        ("num.partitions", Kind::Int, c.num_partitions.to_string()),
        ("auto.create.topics.enable", Kind::Boolean, c.auto_create_topics_enable.to_string()),
        ("default.replication.factor", Kind::Int, "1".into()),
        ("delete.topic.enable", Kind::Boolean, c.delete_topic_enable.to_string()),
        ("message.max.bytes", Kind::Int, c.message_max_bytes.to_string()),
        ("socket.request.max.bytes", Kind::Int, c.socket_request_max_bytes.to_string()),
        ("max.connections", Kind::Int, c.connection_limit().to_string()),
        ("log.retention.ms", Kind::Long, c.log_retention_ms.to_string()),
        ("log.retention.bytes", Kind::Long, c.log_retention_bytes.to_string()),
        ("log.segment.bytes", Kind::Int, c.log_segment_bytes.to_string()),
        ("log.cleanup.policy", Kind::List, c.log_cleanup_policy.clone()),
        ("log.message.timestamp.type", Kind::String, c.log_message_timestamp_type.clone()),
        ("log.flush.interval.messages", Kind::Long, c.log_flush_interval_messages.to_string()),
        ("log.retention.check.interval.ms", Kind::Long, c.log_retention_check_interval_ms.to_string()),
        ("log.cleaner.delete.retention.ms", Kind::Long, c.log_cleaner_delete_retention_ms.to_string()),
        ("group.initial.rebalance.delay.ms", Kind::Int, c.group_initial_rebalance_delay_ms.to_string()),
        ("group.min.session.timeout.ms", Kind::Int, c.group_min_session_timeout_ms.to_string()),
        ("group.max.session.timeout.ms", Kind::Int, c.group_max_session_timeout_ms.to_string()),
        ("group.max.size", Kind::Int, c.group_max_size.to_string()),
        ("offsets.topic.num.partitions", Kind::Int, c.offsets_topic_num_partitions.to_string()),
        ("offsets.topic.replication.factor", Kind::Int, "1".into()),
        ("offsets.retention.minutes", Kind::Int, c.offsets_retention_minutes.to_string()),
        ("offsets.retention.check.interval.ms", Kind::Long, c.offsets_retention_check_interval_ms.to_string()),
        ("offset.metadata.max.bytes", Kind::Int, c.offset_metadata_max_bytes.to_string()),
        ("transaction.state.log.replication.factor", Kind::Int, "1".into()),
        ("min.insync.replicas", Kind::Int, "1".into()),
        ("compression.type", Kind::String, "producer".into()),
        ("unclean.leader.election.enable", Kind::Boolean, "false".into()),
    ]
}

/// Whether DescribeConfigs asked for `name` (null or empty keys mean all).
fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    match keys {
        None => true,
        Some(k) => k.is_empty() || k.iter().any(|k| k.as_str() == name),
    }
}

fn entry(name: &str, value: String, kind: Kind, source: i8, version: i16, doc: Option<&str>) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_config_source(source);
    e.documentation = None;
    if version >= 3 {
        e.config_type = kind as i8;
        e.documentation = doc.map(|d| StrBytes::from_string(d.to_string()));
    }
    e
}

fn describe_topic(
    broker: &Broker,
    version: i16,
    topic: &Topic,
    keys: &Option<Vec<StrBytes>>,
    synonyms: bool,
    docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let cfg = topic.config();
    DEFS.iter()
        .filter(|d| wanted(keys, d.name))
        .map(|d| {
            let (value, src) = cfg.describe(&broker.config, d);
            let mut e = entry(d.name, value, d.kind, src, version, docs.then_some(d.doc));
            if synonyms {
                let mut syn = Vec::new();
                if let Some(v) = cfg.overrides.get(d.name) {
                    syn.push((d.name.to_string(), v.clone(), source::TOPIC_CONFIG));
                }
                let (bv, explicit) = broker_default(&broker.config, d);
                if explicit {
                    syn.push((d.broker_key.to_string(), bv, source::STATIC_BROKER_CONFIG));
                }
                if !d.broker_key.is_empty() {
                    syn.push((d.broker_key.to_string(), d.default.to_string(), source::DEFAULT_CONFIG));
                }
                e.synonyms = syn
                    .into_iter()
                    .map(|(n, v, s)| {
                        DescribeConfigsSynonym::default()
                            .with_name(StrBytes::from_string(n))
                            .with_value(Some(StrBytes::from_string(v)))
                            .with_source(s)
                    })
                    .collect();
            }
            e
        })
        .collect()
}

/// DescribeConfigs.
pub fn handle_describe_configs(broker: &Broker, version: i16, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let mut out = DescribeConfigsResult::default()
                .with_error_message(None)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                TOPIC => match broker.topic(r.resource_name.as_str()) {
                    Some(t) => {
                        out.configs =
                            describe_topic(broker, version, &t, &r.configuration_keys, req.include_synonyms, req.include_documentation)
                    }
                    None if super::validate_topic_name(r.resource_name.as_str()).is_err() => {
                        out.error_code = ErrorCode::INVALID_TOPIC_EXCEPTION.code();
                        out.error_message =
                            super::validate_topic_name(r.resource_name.as_str()).err().map(|e| StrBytes::from_string(e.message));
                    }
                    None => out.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(),
                },
                // "" is the cluster-wide dynamic default: corral has none.
                BROKER if r.resource_name.is_empty() => {}
                BROKER if r.resource_name.as_str() == broker.node_id().to_string() => {
                    out.configs = broker_entries(broker)
                        .into_iter()
                        .filter(|(n, _, _)| wanted(&r.configuration_keys, n))
                        .map(|(n, kind, v)| {
                            let src =
                                if broker.config.explicit.contains(n) { source::STATIC_BROKER_CONFIG } else { source::DEFAULT_CONFIG };
                            let mut e = entry(n, v.clone(), kind, src, version, None);
                            e.read_only = true;
                            if req.include_synonyms {
                                e.synonyms = vec![
                                    DescribeConfigsSynonym::default()
                                        .with_name(StrBytes::from_static_str(n))
                                        .with_value(Some(StrBytes::from_string(v)))
                                        .with_source(src),
                                ];
                            }
                            e
                        })
                        .collect();
                }
                BROKER_LOGGER => {}
                BROKER => {
                    out.error_code = ErrorCode::INVALID_REQUEST.code();
                    out.error_message = Some(StrBytes::from_string(if r.resource_name.parse::<i32>().is_err() {
                        format!("Broker id must be an integer, but it is: {}", r.resource_name.as_str())
                    } else {
                        format!(
                            "Unexpected broker id, expected {} or empty string, but received {}",
                            broker.node_id(),
                            r.resource_name.as_str()
                        )
                    }));
                }
                other => {
                    out.error_code = ErrorCode::INVALID_REQUEST.code();
                    out.error_message = Some(StrBytes::from_string(format!("Unsupported resource type {other}")));
                }
            }
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Applies new overrides to a topic after validating them all.
async fn set_overrides(
    broker: &Arc<Broker>,
    topic: &Arc<Topic>,
    overrides: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    for (k, v) in &overrides {
        topic_config::validate(k, Some(v)).map_err(|m| (ErrorCode::INVALID_CONFIG, m))?;
    }
    if !validate_only {
        broker.set_topic_config(topic, overrides).await.map_err(|e| (e.code, e.message))?;
    }
    Ok(())
}

fn refuse_broker_change() -> (ErrorCode, String) {
    (ErrorCode::INVALID_REQUEST, "corral's broker settings are static: change the config file and restart".into())
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on topic settings.
pub async fn handle_incremental_alter_configs(
    broker: &Arc<Broker>,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        {
            let outcome = match (r.resource_type, broker.topic(r.resource_name.as_str())) {
                (TOPIC, None) => Err((ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, "The topic does not exist.".to_string())),
                (TOPIC, Some(topic)) => {
                    let mut o = topic.config().overrides;
                    let mut result = Ok(());
                    for c in &r.configs {
                        let name = c.name.to_string();
                        let value = c.value.as_ref().map(|v| v.to_string());
                        let list_op = |o: &BTreeMap<String, String>, add: bool| -> Result<String, (ErrorCode, String)> {
                            let d = topic_config::def(&name)
                                .ok_or((ErrorCode::INVALID_CONFIG, format!("Unknown topic config name: {name}")))?;
                            if d.kind != Kind::List {
                                return Err((
                                    ErrorCode::INVALID_CONFIG,
                                    format!("Config value append/subtract is not allowed for config key {name}"),
                                ));
                            }
                            let current = o.get(&name).cloned().unwrap_or_else(|| broker_default(&broker.config, d).0);
                            let mut items: Vec<String> =
                                current.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                            for v in value.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
                                if add && !items.iter().any(|i| i == v) {
                                    items.push(v.to_string());
                                } else if !add {
                                    items.retain(|i| i != v);
                                }
                            }
                            Ok(items.join(","))
                        };
                        let step = match c.config_operation {
                            0 => value.clone().ok_or((ErrorCode::INVALID_REQUEST, format!("Null value not supported for: {name}"))).map(
                                |v| {
                                    o.insert(name.clone(), v);
                                },
                            ),
                            1 => {
                                o.remove(&name);
                                Ok(())
                            }
                            2 => list_op(&o, true).map(|v| {
                                o.insert(name.clone(), v);
                            }),
                            3 => list_op(&o, false).map(|v| {
                                o.insert(name.clone(), v);
                            }),
                            op => Err((ErrorCode::INVALID_REQUEST, format!("Unknown config operation {op}"))),
                        };
                        if let Err(e) = step {
                            result = Err(e);
                            break;
                        }
                    }
                    match result {
                        Ok(()) => set_overrides(broker, &topic, o, req.validate_only).await,
                        Err(e) => Err(e),
                    }
                }
                (BROKER, _) => Err(refuse_broker_change()),
                (t, _) => Err((ErrorCode::INVALID_REQUEST, format!("Unsupported resource type {t}"))),
            };
            let mut resp =
                IncResult::default().with_error_message(None).with_resource_type(r.resource_type).with_resource_name(r.resource_name);
            if let Err((code, msg)) = outcome {
                resp.error_code = code.code();
                resp.error_message = Some(StrBytes::from_string(msg));
            }
            responses.push(resp);
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// AlterConfigs: replaces a topic's whole set of overrides.
pub async fn handle_alter_configs(broker: &Arc<Broker>, _version: i16, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        {
            let outcome = match (r.resource_type, broker.topic(r.resource_name.as_str())) {
                (TOPIC, None) => Err((ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, "The topic does not exist.".to_string())),
                (TOPIC, Some(topic)) => {
                    let mut o = BTreeMap::new();
                    let mut bad = None;
                    for c in &r.configs {
                        match &c.value {
                            Some(v) => {
                                o.insert(c.name.to_string(), v.to_string());
                            }
                            None => bad = Some((ErrorCode::INVALID_REQUEST, format!("Null value not supported for: {}", c.name.as_str()))),
                        }
                    }
                    match bad {
                        Some(e) => Err(e),
                        None => set_overrides(broker, &topic, o, req.validate_only).await,
                    }
                }
                (BROKER, _) => Err(refuse_broker_change()),
                (t, _) => Err((ErrorCode::INVALID_REQUEST, format!("Unsupported resource type {t}"))),
            };
            let mut resp =
                AlterResult::default().with_error_message(None).with_resource_type(r.resource_type).with_resource_name(r.resource_name);
            if let Err((code, msg)) = outcome {
                resp.error_code = code.code();
                resp.error_message = Some(StrBytes::from_string(msg));
            }
            responses.push(resp);
        }
    }
    AlterConfigsResponse::default().with_responses(responses)
}
