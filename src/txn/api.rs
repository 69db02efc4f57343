//! The transaction apis on the wire: each request at its version becomes a coordinator call,
//! and the answer becomes the response at that version — including Kafka's rewrite of
//! PRODUCER_FENCED to INVALID_PRODUCER_EPOCH for the versions that predate it (KIP-588).

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState as DescribedTxn};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::TxnCoordinator;
use super::state::TxnState;
use crate::broker::Broker;
use crate::error::ErrorCode;

/// PRODUCER_FENCED as a request of this version may carry it: INVALID_PRODUCER_EPOCH before
/// `since`.
fn fenced(code: ErrorCode, version: i16, since: i16) -> ErrorCode {
    if code == ErrorCode::PRODUCER_FENCED && version < since { ErrorCode::INVALID_PRODUCER_EPOCH } else { code }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// InitProducerId with a transactional id (the broker answers the others).
pub async fn init_producer_id(t: &TxnCoordinator, version: i16, req: &InitProducerIdRequest, id: &str) -> InitProducerIdResponse {
    let given = (version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    match t.init_producer_id(id, req.transaction_timeout_ms, given).await {
        Ok((pid, epoch)) => InitProducerIdResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
        Err(code) => InitProducerIdResponse::default()
            .with_error_code(fenced(code, version, 4).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// One transaction's AddPartitionsToTxn: an error per partition.
#[allow(clippy::too_many_arguments)] // one transaction's fields, as both request shapes carry them
async fn add_partitions_one(
    t: &TxnCoordinator,
    broker: &Broker,
    version: i16,
    id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut codes: Vec<(TopicName, Vec<(i32, ErrorCode)>)> = topics
        .iter()
        .map(|tp| {
            let topic = broker.topic(&tp.name);
            let parts = tp
                .partitions
                .iter()
                .map(|p| {
                    let known = topic.as_ref().is_some_and(|x| x.partition(*p).is_some());
                    (*p, if known { ErrorCode::NONE } else { ErrorCode::UNKNOWN_TOPIC_OR_PARTITION })
                })
                .collect();
            (tp.name.clone(), parts)
        })
        .collect();
    let any_unknown = codes.iter().any(|(_, ps)| ps.iter().any(|(_, c)| *c != ErrorCode::NONE));
    if any_unknown {
        // the others are not attempted
        for (_, ps) in &mut codes {
            for (_, c) in ps.iter_mut() {
                if *c == ErrorCode::NONE {
                    *c = ErrorCode::OPERATION_NOT_ATTEMPTED;
                }
            }
        }
    } else if id.is_empty() {
        set_all(&mut codes, ErrorCode::INVALID_REQUEST);
    } else if verify_only {
        for (name, ps) in &mut codes {
            for (p, c) in ps.iter_mut() {
                *c = match t.verify(id, producer_id, epoch, name, *p) {
                    Ok(()) => ErrorCode::NONE,
                    Err(ErrorCode::INVALID_TXN_STATE) => ErrorCode::TRANSACTION_ABORTABLE,
                    Err(ErrorCode::INVALID_PRODUCER_EPOCH) => ErrorCode::PRODUCER_FENCED,
                    Err(e) => e,
                };
            }
        }
    } else {
        let all: Vec<(String, i32)> = codes.iter().flat_map(|(n, ps)| ps.iter().map(move |(p, _)| (n.to_string(), *p))).collect();
        let code = match t.add_partitions(id, producer_id, epoch, &all).await {
            Ok(()) => ErrorCode::NONE,
            Err(c) => fenced(c, version, 2),
        };
        set_all(&mut codes, code);
    }
    codes
        .into_iter()
        .map(|(name, ps)| {
            AddPartitionsToTxnTopicResult::default().with_name(name).with_results_by_partition(
                ps.into_iter()
                    .map(|(p, c)| AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(c.code()))
                    .collect(),
            )
        })
        .collect()
}

fn set_all(codes: &mut [(TopicName, Vec<(i32, ErrorCode)>)], code: ErrorCode) {
    for (_, ps) in codes {
        for (_, c) in ps.iter_mut() {
            *c = code;
        }
    }
}

/// AddPartitionsToTxn: v0-3 one transaction (a client), v4+ a batch (KIP-890).
pub async fn add_partitions_to_txn(
    t: &TxnCoordinator,
    broker: &Broker,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version < 4 {
        let results = add_partitions_one(
            t,
            broker,
            version,
            req.v3_and_below_transactional_id.as_str(),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
            false,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for x in &req.transactions {
        let results = add_partitions_one(
            t,
            broker,
            version,
            x.transactional_id.as_str(),
            x.producer_id.0,
            x.producer_epoch,
            &x.topics,
            x.verify_only,
        )
        .await;
        out.push(AddPartitionsToTxnResult::default().with_transactional_id(x.transactional_id.clone()).with_topic_results(results));
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

/// AddOffsetsToTxn: the group's offsets partition joins the transaction.
pub async fn add_offsets_to_txn(t: &TxnCoordinator, version: i16, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let code = if req.transactional_id.is_empty() {
        ErrorCode::INVALID_REQUEST
    } else if req.group_id.is_empty() {
        ErrorCode::INVALID_GROUP_ID
    } else {
        let part = t.offsets_partition(&req.group_id);
        match t.add_partitions(&req.transactional_id, req.producer_id.0, req.producer_epoch, &[part]).await {
            Ok(()) => ErrorCode::NONE,
            Err(c) => fenced(c, version, 2),
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code.code())
}

/// EndTxn.
pub async fn end_txn(t: &TxnCoordinator, version: i16, req: EndTxnRequest) -> EndTxnResponse {
    let code = if req.transactional_id.is_empty() {
        ErrorCode::INVALID_REQUEST
    } else {
        match t.end_txn(&req.transactional_id, req.producer_id.0, req.producer_epoch, req.committed).await {
            Ok(()) => ErrorCode::NONE,
            Err(c) => fenced(c, version, 2),
        }
    };
    let mut r = EndTxnResponse::default().with_error_code(code.code());
    if version >= 5 {
        r.producer_id = req.producer_id;
        r.producer_epoch = req.producer_epoch;
    }
    r
}

/// TxnOffsetCommit's check of the producer, as the response code every partition gets when
/// it fails (TRANSACTION_ABORTABLE from v4, INVALID_TXN_STATE before).
pub fn txn_offset_commit_check(t: &TxnCoordinator, version: i16, req: &TxnOffsetCommitRequest) -> ErrorCode {
    match t.verify_offsets(&req.transactional_id, req.producer_id.0, req.producer_epoch, &req.group_id) {
        Ok(()) => ErrorCode::NONE,
        Err(ErrorCode::INVALID_TXN_STATE) if version >= 4 => ErrorCode::TRANSACTION_ABORTABLE,
        Err(c) => c,
    }
}

fn described(m: &super::state::TxnMeta) -> DescribedTxn {
    DescribedTxn::default()
        .with_transactional_id(TransactionalId(s(m.transactional_id.clone())))
        .with_transaction_state(s(m.state.name()))
        .with_transaction_timeout_ms(m.timeout_ms)
        .with_transaction_start_time_ms(m.start_ms)
        .with_producer_id(ProducerId(m.producer_id))
        .with_producer_epoch(m.producer_epoch)
        .with_topics(
            m.topics().into_iter().map(|(topic, ps)| TopicData::default().with_topic(TopicName(s(topic))).with_partitions(ps)).collect(),
        )
}

/// DescribeTransactions.
pub fn describe_transactions(t: &TxnCoordinator, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            if id.is_empty() {
                return DescribedTxn::default().with_transactional_id(id).with_error_code(ErrorCode::INVALID_REQUEST.code());
            }
            match t.describe(&id).filter(|m| m.state != TxnState::Dead) {
                Some(m) => described(&m),
                None => DescribedTxn::default()
                    .with_transactional_id(id)
                    .with_error_code(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND.code())
                    .with_transaction_state(s(""))
                    .with_transaction_start_time_ms(-1)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions, with its state, producer id and (v1) duration filters.
pub fn list_transactions(t: &TxnCoordinator, version: i16, req: ListTransactionsRequest) -> ListTransactionsResponse {
    const NAMES: [&str; 7] = ["Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "PrepareEpochFence"];
    let unknown: Vec<StrBytes> = req.state_filters.iter().filter(|f| !NAMES.contains(&f.as_str())).cloned().collect();
    let now = crate::clock::now_ms();
    let listed = t
        .snapshot()
        .into_iter()
        .filter(|m| m.state != TxnState::Dead)
        .filter(|m| req.state_filters.is_empty() || req.state_filters.iter().any(|f| f.as_str() == m.state.name()))
        .filter(|m| req.producer_id_filters.is_empty() || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id))
        .filter(|m| version < 1 || req.duration_filter < 0 || now - m.start_ms > req.duration_filter)
        .filter(|m| {
            version < 2
                || req.transactional_id_pattern.as_ref().is_none_or(|p| p.is_empty() || simple_match(p.as_str(), &m.transactional_id))
        })
        .map(|m| {
            ListedTxn::default()
                .with_transactional_id(TransactionalId(s(m.transactional_id.clone())))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(s(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(listed)
}

/// ListTransactions v2's pattern (a Java regular expression on Kafka): corral matches
/// literals, `.*` and `.` — anything else matches as a literal.
fn simple_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p {
            [] => t.is_empty(),
            [b'.', b'*', rest @ ..] => (0..=t.len()).any(|i| go(rest, &t[i..])),
            [b'.', rest @ ..] => !t.is_empty() && go(rest, &t[1..]),
            [c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// DescribeProducers: each partition's producers with state, and their open transactions.
pub fn describe_producers(broker: &Broker, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|tr| {
            let topic = broker.topic(&tr.name);
            let partitions = tr
                .partition_indexes
                .iter()
                .map(|&i| {
                    let Some(p) = topic.as_ref().and_then(|t| t.partition(i)) else {
                        return PartitionResponse::default()
                            .with_partition_index(i)
                            .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code());
                    };
                    let state = p.lock();
                    let producers = state
                        .producers
                        .describe()
                        .into_iter()
                        .map(|(pid, epoch, last_seq, last_ts, _)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(pid))
                                .with_producer_epoch(epoch as i32)
                                .with_last_sequence(last_seq)
                                .with_last_timestamp(last_ts)
                                .with_coordinator_epoch(0)
                                .with_current_txn_start_offset(state.log.txns().open_of(pid).map_or(-1, |o| o.first_offset))
                        })
                        .collect();
                    PartitionResponse::default().with_partition_index(i).with_active_producers(producers)
                })
                .collect();
            TopicResponse::default().with_name(tr.name).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_is_rewritten_for_old_versions_only() {
        assert_eq!(fenced(ErrorCode::PRODUCER_FENCED, 1, 2), ErrorCode::INVALID_PRODUCER_EPOCH);
        assert_eq!(fenced(ErrorCode::PRODUCER_FENCED, 2, 2), ErrorCode::PRODUCER_FENCED);
        assert_eq!(fenced(ErrorCode::PRODUCER_FENCED, 3, 4), ErrorCode::INVALID_PRODUCER_EPOCH);
        assert_eq!(fenced(ErrorCode::CONCURRENT_TRANSACTIONS, 0, 2), ErrorCode::CONCURRENT_TRANSACTIONS);
    }

    #[test]
    fn list_pattern() {
        assert!(simple_match("app-.*", "app-1"));
        assert!(!simple_match("app-.*", "other"));
        assert!(simple_match("a.c", "abc"));
        assert!(simple_match("abc", "abc"));
    }
}
