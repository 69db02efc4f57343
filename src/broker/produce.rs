//! Produce and InitProducerId.
//!
//! A Produce partition's records are validated from their batch headers (sizes, magic, CRC,
//! counts), checked against the idempotent-producer state, given offsets by patching the
//! header, and stored as they came: records are never decoded or re-encoded here.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::Broker;
use crate::batch::validate_produce_records;
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

/// Whether a transactional batch may be written: the transaction coordinator's answer for a
/// producer's transaction and one partition (KIP-890's verification).
pub trait TxnCheck {
    fn verify(&self, transactional_id: &str, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> Result<(), ErrorCode>;
}

/// No transaction coordinator: every transactional batch is refused (INVALID_TXN_STATE).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTransactions;

impl TxnCheck for NoTransactions {
    fn verify(&self, _: &str, _: i64, _: i16, _: &str, _: i32) -> Result<(), ErrorCode> {
        Err(ErrorCode::INVALID_TXN_STATE)
    }
}

/// The Produce error for a failed verification, at the request's version (Kafka's mapping).
fn verification_error(code: ErrorCode, version: i16) -> ErrorCode {
    match code {
        ErrorCode::INVALID_TXN_STATE if version >= 11 => ErrorCode::TRANSACTION_ABORTABLE,
        ErrorCode::PRODUCER_FENCED => ErrorCode::INVALID_PRODUCER_EPOCH,
        ErrorCode::CONCURRENT_TRANSACTIONS | ErrorCode::COORDINATOR_NOT_AVAILABLE | ErrorCode::NOT_COORDINATOR => {
            ErrorCode::NOT_ENOUGH_REPLICAS
        }
        other => other,
    }
}

/// Produce. Returns the response even for acks=0; the connection does not send it then.
/// Transactional batches are checked with `txns` before they are appended.
pub fn handle_produce(broker: &Broker, version: i16, req: ProduceRequest, txns: &dyn TxnCheck) -> ProduceResponse {
    let now = now_ms();
    let acks_ok = matches!(req.acks, -1..=1);
    let transactional_id = req.transactional_id.as_ref().map(|t| t.to_string()).filter(|t| !t.is_empty());
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
                    if header.is_transactional() {
                        let Some(id) = transactional_id.as_deref() else {
                            return fail(
                                ErrorCode::INVALID_REQUEST,
                                Some("a transactional batch needs the request's transactional id".into()),
                            );
                        };
                        if let Err(code) = txns.verify(id, header.producer_id, header.producer_epoch, &td.name, pd.index) {
                            let code = verification_error(code, version);
                            return fail(code, Some("Partition was not added to the transaction, or the producer is not its owner".into()));
                        }
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

/// InitProducerId without a transactional id: every idempotent producer gets a fresh id at
/// epoch 0, as Kafka does (a producer id and epoch sent along are ignored). An empty
/// transactional id is INVALID_REQUEST; the others go to the transaction coordinator.
pub async fn handle_init_producer_id(broker: &std::sync::Arc<Broker>, version: i16, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let fail = |code: ErrorCode| {
        InitProducerIdResponse::default().with_error_code(code.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
    };
    if version >= 3 && ((req.producer_id.0 == -1) != (req.producer_epoch == -1)) {
        return fail(ErrorCode::INVALID_REQUEST);
    }
    if req.transactional_id.as_ref().is_some_and(|t| t.is_empty()) {
        return fail(ErrorCode::INVALID_REQUEST);
    }
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => fail(if e.code == ErrorCode::KAFKA_STORAGE_ERROR { ErrorCode::UNKNOWN_SERVER_ERROR } else { e.code }),
    }
}
