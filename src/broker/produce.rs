//! Produce and InitProducerId.
//!
//! A Produce partition's records are validated from their batch headers (sizes, magic, CRC,
//! counts), checked against the idempotent-producer state, given offsets by patching the
//! header, and stored as they came: records are never decoded or re-encoded here.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::Broker;
use crate::batch::{BatchHeader, validate_produce_records};
use crate::clock::now_ms;
use crate::error::ErrorCode;

fn partition_error(version: i16, index: i32, code: ErrorCode, message: Option<String>) -> PartitionProduceResponse {
    let mut p =
        PartitionProduceResponse::default().with_index(index).with_error_code(code.code()).with_base_offset(-1).with_log_append_time_ms(-1);
    if version >= 5 {
        p.log_start_offset = -1;
    }
    if version >= 8 {
        p.error_message = message.map(StrBytes::from_string);
    }
    p
}

/// Whether any partition of a Produce response carries an error (acks=0 then closes the
/// connection, as Kafka does, since there is no response to carry it).
pub fn has_error(resp: &ProduceResponse) -> bool {
    resp.responses.iter().any(|t| t.partition_responses.iter().any(|p| p.error_code != ErrorCode::NONE.code()))
}

/// Produce. Returns the response even for acks=0; the connection does not send it then.
pub fn handle_produce(broker: &Broker, version: i16, req: ProduceRequest) -> ProduceResponse {
    let now = now_ms();
    let acks_ok = matches!(req.acks, -1..=1);
    // Transactions are not supported: a transactional id, or a transactional batch, fails the
    // request the way an unauthorised transactional produce fails on Kafka.
    let transactional = req.transactional_id.as_ref().is_some_and(|t| !t.is_empty())
        || req.topic_data.iter().any(|t| {
            t.partition_data.iter().any(|p| p.records.as_ref().and_then(|r| BatchHeader::parse(r)).is_some_and(|h| h.is_transactional()))
        });
    let responses = req
        .topic_data
        .into_iter()
        .map(|td| {
            let topic = broker.topic(&td.name);
            let partition_responses = td
                .partition_data
                .into_iter()
                .map(|pd| {
                    let fail = |code: ErrorCode, msg: Option<String>| partition_error(version, pd.index, code, msg);
                    if !acks_ok {
                        return fail(ErrorCode::INVALID_REQUIRED_ACKS, None);
                    }
                    if transactional {
                        return fail(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, Some("corral does not support transactions".into()));
                    }
                    let Some(topic) = topic.as_ref() else {
                        return fail(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, None);
                    };
                    let Some(partition) = topic.partition(pd.index) else {
                        return fail(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, None);
                    };
                    let Some(records) = pd.records.as_ref() else {
                        return fail(ErrorCode::INVALID_RECORD, Some("produce request without records".into()));
                    };
                    let header = match validate_produce_records(records) {
                        Ok(h) => h,
                        Err(e) => {
                            tracing::debug!(topic = %td.name.as_str(), partition = pd.index, "{e}");
                            return fail(e.code(), Some(e.to_string()));
                        }
                    };
                    if version < 7 && header.compression() == 4 {
                        // KIP-110: zstd needs Produce v7.
                        return fail(ErrorCode::UNSUPPORTED_COMPRESSION_TYPE, None);
                    }
                    match partition.append(records, &header, &topic.config(), now) {
                        Ok(a) => {
                            let mut p = PartitionProduceResponse::default()
                                .with_index(pd.index)
                                .with_base_offset(a.base_offset)
                                .with_log_append_time_ms(a.log_append_time);
                            if version >= 5 {
                                p.log_start_offset = a.log_start_offset;
                            }
                            metrics::counter!("corral_produced_batches_total").increment(1);
                            p
                        }
                        Err(e) => fail(e.code, Some(e.message)),
                    }
                })
                .collect();
            TopicProduceResponse::default().with_name(td.name).with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// InitProducerId: every idempotent producer gets a fresh id at epoch 0, as Kafka does for
/// producers without a transactional id (a producer id and epoch sent along are ignored).
/// Transactional ids are refused with a fatal error until transactions exist.
pub async fn handle_init_producer_id(broker: &std::sync::Arc<Broker>, version: i16, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let fail = |code: ErrorCode| {
        InitProducerIdResponse::default().with_error_code(code.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
    };
    if version >= 3 && ((req.producer_id.0 == -1) != (req.producer_epoch == -1)) {
        return fail(ErrorCode::INVALID_REQUEST);
    }
    match req.transactional_id.as_ref() {
        Some(t) if t.is_empty() => return fail(ErrorCode::INVALID_REQUEST),
        Some(t) => {
            tracing::warn!(transactional_id = %t.as_str(), "InitProducerId with a transactional id: corral does not support transactions");
            return fail(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        }
        None => {}
    }
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => fail(if e.code == ErrorCode::KAFKA_STORAGE_ERROR { ErrorCode::UNKNOWN_SERVER_ERROR } else { e.code }),
    }
}
