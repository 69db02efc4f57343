//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords,
//! DescribeLogDirs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::topic_config::{DEFS, TopicConfig};
use super::{Broker, TopicError};
use crate::error::ErrorCode;

fn topic_configs(broker: &Broker, config: &TopicConfig) -> Vec<CreatableTopicConfigs> {
    DEFS.iter()
        .map(|d| {
            let (value, source) = config.describe(&broker.config, d);
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(d.name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source)
        })
        .collect()
}

/// The replica assignment form of CreateTopics: every partition on our node, one replica.
fn check_assignments(broker: &Broker, t: &kafka_protocol::messages::create_topics_request::CreatableTopic) -> Result<i32, TopicError> {
    if t.replication_factor != -1 {
        return Err(TopicError::new(
            ErrorCode::INVALID_REQUEST,
            "A manual partition assignment was specified, but replication factor was not set to -1.",
        ));
    }
    if t.num_partitions != -1 {
        return Err(TopicError::new(
            ErrorCode::INVALID_REQUEST,
            "A manual partition assignment was specified, but numPartitions was not set to -1.",
        ));
    }
    let mut seen = vec![false; t.assignments.len()];
    for a in &t.assignments {
        let idx = a.partition_index;
        if idx < 0 || idx as usize >= seen.len() || seen[idx as usize] {
            return Err(TopicError::new(
                ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                "Partitions should be a consecutive 0-based integer sequence",
            ));
        }
        seen[idx as usize] = true;
        if a.broker_ids.len() != 1 || a.broker_ids[0].0 != broker.node_id() {
            return Err(TopicError::new(
                ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                format!("Replica assignment for partition {idx} must name exactly broker {}", broker.node_id()),
            ));
        }
    }
    Ok(t.assignments.len() as i32)
}

/// CreateTopics, with validate_only and Kafka's v5+ configs in the answer. What cannot be
/// served is refused before any disk is touched: more partitions in one request than
/// `max.partitions.per.request`, or in all than `max.partitions`, get POLICY_VIOLATION.
pub async fn handle_create_topics(broker: &Arc<Broker>, version: i16, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.as_str()).or_default() += 1;
    }
    let duplicates: Vec<String> = counts.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.to_string()).collect();
    let asked: i64 = req
        .topics
        .iter()
        .map(|t| if t.assignments.is_empty() { i64::from(t.num_partitions.max(0)) } else { t.assignments.len() as i64 })
        .sum();
    let too_many = (asked > broker.config.max_partitions_per_request).then(|| {
        TopicError::new(
            ErrorCode::POLICY_VIOLATION,
            format!("The request adds {asked} partitions, past max.partitions.per.request ({})", broker.config.max_partitions_per_request),
        )
    });
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.name.as_str();
        let mut r = CreatableTopicResult::default().with_name(t.name.clone()).with_error_message(None);
        if version >= 5 {
            r.num_partitions = -1;
            r.replication_factor = -1;
        }
        if duplicates.iter().any(|d| d == name) {
            r.error_code = ErrorCode::INVALID_REQUEST.code();
            r.error_message = Some(StrBytes::from_static_str("Duplicate topic name."));
            results.push(r);
            continue;
        }
        let configs: BTreeMap<String, Option<String>> =
            t.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect();
        let outcome = async {
            let (partitions, rf) =
                if t.assignments.is_empty() { (t.num_partitions, t.replication_factor) } else { (check_assignments(broker, t)?, 1) };
            let (partitions, overrides) = broker.validate_new_topic(name, partitions, rf, &configs)?;
            if let Some(e) = &too_many {
                return Err(e.clone());
            }
            broker.check_partition_caps(i64::from(partitions))?;
            if req.validate_only {
                Ok((partitions, TopicConfig::resolve(&broker.config, overrides), Uuid::nil()))
            } else {
                let topic = broker.create_topic(name, partitions, overrides).await?;
                let cfg = topic.config();
                Ok((partitions, cfg, topic.id))
            }
        }
        .await;
        match outcome {
            Ok((partitions, cfg, id)) => {
                if version >= 5 {
                    r.num_partitions = partitions;
                    r.replication_factor = 1;
                    r.configs = Some(topic_configs(broker, &cfg));
                }
                if version >= 7 {
                    r.topic_id = id;
                }
            }
            Err(e) => {
                r.error_code = e.code.code();
                r.error_message = Some(StrBytes::from_string(e.message));
            }
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// DeleteTopics, by name (v1-5) or by name or id (v6).
pub async fn handle_delete_topics(broker: &Arc<Broker>, version: i16, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        req.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        req.topic_names.into_iter().map(|n| (Some(n), Uuid::nil())).collect()
    };
    let mut names = HashMap::<String, usize>::new();
    let mut ids = HashMap::<Uuid, usize>::new();
    for (n, id) in &targets {
        if let Some(n) = n {
            *names.entry(n.to_string()).or_default() += 1;
        }
        if !id.is_nil() {
            *ids.entry(*id).or_default() += 1;
        }
    }
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let r = {
            let mut r = DeletableTopicResult::default().with_name(name.clone()).with_error_message(None);
            if version >= 6 {
                r.topic_id = id;
            }
            let outcome = if !broker.config.delete_topic_enable {
                let code = if version >= 3 { ErrorCode::TOPIC_DELETION_DISABLED } else { ErrorCode::INVALID_REQUEST };
                Err(TopicError::new(code, "Topic deletion is disabled."))
            } else {
                match (&name, id.is_nil()) {
                    (Some(_), false) => {
                        Err(TopicError::new(ErrorCode::INVALID_REQUEST, "You may not specify both topic name and topic id."))
                    }
                    (None, true) => Err(TopicError::new(ErrorCode::INVALID_REQUEST, "Neither topic name nor id were specified.")),
                    (Some(n), true) if names[n.as_str()] > 1 => Err(TopicError::new(ErrorCode::INVALID_REQUEST, "Duplicate topic name.")),
                    (None, false) if ids[&id] > 1 => Err(TopicError::new(ErrorCode::INVALID_REQUEST, "Duplicate topic id.")),
                    (Some(n), true) => broker.delete_topic(n).await,
                    (None, false) => match broker.topic_by_id(&id) {
                        Some(t) if names.contains_key(&t.name) => {
                            Err(TopicError::new(ErrorCode::INVALID_REQUEST, "The same topic was named by both name and id."))
                        }
                        Some(t) => {
                            r.name = Some(TopicName(StrBytes::from_string(t.name.clone())));
                            broker.delete_topic(&t.name).await
                        }
                        None => Err(TopicError::new(ErrorCode::UNKNOWN_TOPIC_ID, "This server does not host this topic ID.")),
                    },
                }
            };
            match outcome {
                Ok(t) => {
                    if version >= 6 {
                        r.topic_id = t.id;
                    }
                }
                Err(e) => {
                    r.error_code = e.code.code();
                    if version >= 5 {
                        r.error_message = Some(StrBytes::from_string(e.message));
                    }
                }
            }
            r
        };
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// CreatePartitions (more partitions in one request than `max.partitions.per.request` get
/// POLICY_VIOLATION before any disk is touched).
pub async fn handle_create_partitions(broker: &Arc<Broker>, _version: i16, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut counts = HashMap::<String, usize>::new();
    for t in &req.topics {
        *counts.entry(t.name.to_string()).or_default() += 1;
    }
    let asked: i64 = req
        .topics
        .iter()
        .map(|t| broker.topic(&t.name).map_or(0, |topic| i64::from(t.count) - i64::from(topic.partition_count())).max(0))
        .sum();
    let too_many = asked > broker.config.max_partitions_per_request;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let r = 'one: {
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone()).with_error_message(None);
            if counts[t.name.as_str()] > 1 {
                r.error_code = ErrorCode::INVALID_REQUEST.code();
                r.error_message = Some(StrBytes::from_static_str("Duplicate topic name."));
                break 'one r;
            }
            let outcome = match broker.topic(&t.name) {
                None => {
                    r.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
                    break 'one r;
                }
                Some(topic) => {
                    let current = topic.partition_count();
                    match &t.assignments {
                        Some(a) if a.len() as i64 != t.count as i64 - current as i64 => Err(TopicError::new(
                            ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                            format!("Increasing the number of partitions by {} but {} assignments provided.", t.count - current, a.len()),
                        )),
                        Some(a) if a.iter().any(|x| x.broker_ids.len() != 1 || x.broker_ids[0].0 != broker.node_id()) => {
                            Err(TopicError::new(ErrorCode::INVALID_REPLICA_ASSIGNMENT, "Assignments may only name this broker, once."))
                        }
                        _ if too_many => Err(TopicError::new(
                            ErrorCode::POLICY_VIOLATION,
                            format!(
                                "The request adds {asked} partitions, past max.partitions.per.request ({})",
                                broker.config.max_partitions_per_request
                            ),
                        )),
                        _ => broker.create_partitions(&topic, t.count, req.validate_only).await,
                    }
                }
            };
            if let Err(e) = outcome {
                r.error_code = e.code.code();
                r.error_message = Some(StrBytes::from_string(e.message));
            }
            r
        };
        results.push(r);
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// DeleteRecords: moves log start offsets up (-1 means the high watermark). Each new start is
/// taken under its partition's lock and written to disk outside it (on a blocking thread);
/// the answer waits until it is durable.
pub async fn handle_delete_records(broker: &Broker, _version: i16, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                r.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
                partitions.push(r);
                continue;
            };
            if !topic.as_ref().is_some_and(|t| t.config().delete) {
                r.error_code = ErrorCode::POLICY_VIOLATION.code();
                partitions.push(r);
                continue;
            }
            let (removal, start) = {
                let mut state = partition.lock();
                let hwm = state.log.next_offset();
                let target = if p.offset == -1 { hwm } else { p.offset };
                if target < 0 || target > hwm {
                    r.error_code = ErrorCode::OFFSET_OUT_OF_RANGE.code();
                    partitions.push(r);
                    continue;
                }
                let removal = state.log.delete_before(target);
                let start = state.log.start_offset();
                state.producers.forget_before(start);
                (removal, start)
            };
            match tokio::task::spawn_blocking(move || removal.run()).await {
                Ok(Ok(())) => r.low_watermark = start,
                Ok(Err(e)) => {
                    tracing::error!(topic = %t.name.as_str(), partition = p.partition_index, "delete records failed: {e}");
                    r.error_code = ErrorCode::KAFKA_STORAGE_ERROR.code();
                }
                Err(e) => {
                    tracing::error!(topic = %t.name.as_str(), partition = p.partition_index, "delete records panicked: {e}");
                    r.error_code = ErrorCode::KAFKA_STORAGE_ERROR.code();
                }
            }
            partitions.push(r);
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// DescribeLogDirs: one log dir holding every partition.
pub fn handle_describe_log_dirs(broker: &Broker, _version: i16, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let wanted: Vec<(std::sync::Arc<super::Topic>, Option<Vec<i32>>)> = match req.topics {
        None => broker.topics().into_iter().map(|t| (t, None)).collect(),
        Some(list) => list.into_iter().filter_map(|t| broker.topic(&t.topic).map(|topic| (topic, Some(t.partitions)))).collect(),
    };
    let topics = wanted
        .into_iter()
        .map(|(topic, parts)| {
            let indexes = parts.unwrap_or_else(|| (0..topic.partition_count()).collect());
            let partitions = indexes
                .into_iter()
                .filter_map(|i| topic.partition(i))
                .map(|p| {
                    let size = p.lock().log.size_bytes();
                    DescribeLogDirsPartition::default().with_partition_index(p.index).with_partition_size(size as i64)
                })
                .collect();
            DescribeLogDirsTopic::default().with_name(TopicName(StrBytes::from_string(topic.name.clone()))).with_partitions(partitions)
        })
        .collect();
    let dir = if broker.config.ephemeral {
        "(memory)".to_string()
    } else {
        std::path::absolute(&broker.config.data_dir).unwrap_or_else(|_| broker.config.data_dir.clone()).display().to_string()
    };
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    DescribeLogDirsResponse::default().with_results(vec![result])
}
