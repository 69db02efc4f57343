//! What a response says in one code, for the per-request debug line: its error.
//!
//! A response's own error code when it has one and it is set; otherwise the first error of
//! the topics, partitions, groups or resources it answers for; 0 when all went well.

use kafka_protocol::messages::ResponseKind;

use crate::error::ErrorCode;

/// The first non-zero of `codes`, or 0.
fn first(codes: impl IntoIterator<Item = i16>) -> i16 {
    codes.into_iter().find(|c| *c != 0).unwrap_or(0)
}

/// The error a response carries (see the module docs).
pub fn error_of(resp: &ResponseKind) -> ErrorCode {
    ErrorCode::from(code_of(resp))
}

fn code_of(resp: &ResponseKind) -> i16 {
    match resp {
        ResponseKind::ApiVersions(r) => r.error_code,
        ResponseKind::FindCoordinator(r) => first(std::iter::once(r.error_code).chain(r.coordinators.iter().map(|c| c.error_code))),
        ResponseKind::JoinGroup(r) => r.error_code,
        ResponseKind::SyncGroup(r) => r.error_code,
        ResponseKind::Heartbeat(r) => r.error_code,
        ResponseKind::LeaveGroup(r) => first(std::iter::once(r.error_code).chain(r.members.iter().map(|m| m.error_code))),
        ResponseKind::OffsetCommit(r) => first(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))),
        ResponseKind::OffsetFetch(r) => {
            first(std::iter::once(r.error_code).chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))).chain(
                r.groups.iter().flat_map(|g| {
                    std::iter::once(g.error_code).chain(g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
                }),
            ))
        }
        ResponseKind::ListGroups(r) => r.error_code,
        ResponseKind::DescribeGroups(r) => first(r.groups.iter().map(|g| g.error_code)),
        ResponseKind::DeleteGroups(r) => first(r.results.iter().map(|g| g.error_code)),
        ResponseKind::OffsetDelete(r) => {
            first(std::iter::once(r.error_code).chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))))
        }
        ResponseKind::AddOffsetsToTxn(r) => r.error_code,
        ResponseKind::TxnOffsetCommit(r) => first(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))),
        ResponseKind::Metadata(r) => {
            first(r.topics.iter().flat_map(|t| std::iter::once(t.error_code).chain(t.partitions.iter().map(|p| p.error_code))))
        }
        ResponseKind::Produce(r) => first(r.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))),
        ResponseKind::Fetch(r) => {
            first(std::iter::once(r.error_code).chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))))
        }
        ResponseKind::ListOffsets(r) => first(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))),
        ResponseKind::OffsetForLeaderEpoch(r) => first(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))),
        ResponseKind::InitProducerId(r) => r.error_code,
        ResponseKind::CreateTopics(r) => first(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::DeleteTopics(r) => first(r.responses.iter().map(|t| t.error_code)),
        ResponseKind::CreatePartitions(r) => first(r.results.iter().map(|t| t.error_code)),
        ResponseKind::DeleteRecords(r) => first(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))),
        ResponseKind::DescribeCluster(r) => r.error_code,
        ResponseKind::DescribeConfigs(r) => first(r.results.iter().map(|x| x.error_code)),
        ResponseKind::AlterConfigs(r) => first(r.responses.iter().map(|x| x.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => first(r.responses.iter().map(|x| x.error_code)),
        ResponseKind::DescribeLogDirs(r) => first(std::iter::once(r.error_code).chain(r.results.iter().map(|x| x.error_code))),
        ResponseKind::DescribeAcls(r) => r.error_code,
        ResponseKind::EndTxn(r) => r.error_code,
        ResponseKind::AddPartitionsToTxn(r) => first(
            std::iter::once(r.error_code)
                .chain(r.results_by_topic_v3_and_below.iter().flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code)))
                .chain(
                    r.results_by_transaction
                        .iter()
                        .flat_map(|x| x.topic_results.iter().flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code))),
                ),
        ),
        ResponseKind::DescribeTransactions(r) => first(r.transaction_states.iter().map(|t| t.error_code)),
        ResponseKind::ListTransactions(r) => r.error_code,
        ResponseKind::ConsumerGroupHeartbeat(r) => r.error_code,
        ResponseKind::ConsumerGroupDescribe(r) => first(r.groups.iter().map(|g| g.error_code)),
        ResponseKind::DescribeProducers(r) => first(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::*;

    use super::*;

    #[test]
    fn the_own_code_or_the_first_nested_one() {
        assert_eq!(error_of(&ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(27))), ErrorCode::REBALANCE_IN_PROGRESS);
        let produce =
            ProduceResponse::default().with_responses(vec![produce_response::TopicProduceResponse::default().with_partition_responses(
                vec![
                    produce_response::PartitionProduceResponse::default(),
                    produce_response::PartitionProduceResponse::default().with_error_code(3),
                    produce_response::PartitionProduceResponse::default().with_error_code(6),
                ],
            )]);
        assert_eq!(error_of(&ResponseKind::Produce(produce)), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(error_of(&ResponseKind::Metadata(MetadataResponse::default())), ErrorCode::NONE);
        assert_eq!(error_of(&ResponseKind::EndTxn(EndTxnResponse::default().with_error_code(48))), ErrorCode::INVALID_TXN_STATE);
        let add = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
            add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default().with_results_by_partition(vec![
                add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default().with_partition_error_code(90),
            ]),
        ]);
        assert_eq!(error_of(&ResponseKind::AddPartitionsToTxn(add)), ErrorCode::PRODUCER_FENCED);
    }
}
