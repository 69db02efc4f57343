//! The one match on api key: a decoded request goes to its handler and comes back as a
//! response body, or as nothing (Produce with acks=0). In proxy mode only the apis corral
//! answers itself come here (the rest are forwarded as bytes, see `proxy::forward`).

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, DescribeAclsResponse, ListGroupsResponse, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use tokio_util::sync::CancellationToken;

use crate::broker;
use crate::config::Config;
use crate::coordinator::{Coordinator, api as group_api};
use crate::error::ErrorCode;
use crate::plane::DataPlane;
use crate::protocol::{Request, VersionTable};
use crate::txn::{TxnCoordinator, api as txn_api};

/// What every handler may reach: shared state and the shutdown signal.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub plane: DataPlane,
    pub coordinator: Arc<Coordinator>,
    /// The versions this server serves (ApiVersions advertises exactly these).
    pub versions: Arc<VersionTable>,
    /// Cancelled when the server shuts down; parked requests answer early.
    pub shutdown: CancellationToken,
    /// `max.connections` over every listener: connections beyond it wait in the backlog.
    pub conn_limit: Arc<tokio::sync::Semaphore>,
    /// The transaction coordinator (broker mode only).
    pub txn: Option<Arc<TxnCoordinator>>,
}

/// Which of the server's listeners a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The `--listen` address: corral's own node (broker mode: the broker; proxy mode: the
    /// bootstrap address and the group coordinator).
    Own,
    /// Proxy mode: the listener standing for upstream broker `node`.
    Node(i32),
}

/// Facts about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub listener: Listener,
}

/// Kafka's rule for ApiVersions v3+ client software name and version.
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.last().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

fn api_versions(table: &VersionTable, version: i16, req: &ApiVersionsRequest) -> ApiVersionsResponse {
    if version >= 3
        && !(valid_software_field(req.client_software_name.as_str()) && valid_software_field(req.client_software_version.as_str()))
    {
        return ApiVersionsResponse::default().with_error_code(ErrorCode::INVALID_REQUEST.code());
    }
    ApiVersionsResponse::default().with_api_keys(table.api_version_entries())
}

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this response (boxed: response structs are large and a Reply moves often).
    Send(Box<ResponseKind>),
    /// Send nothing (Produce with acks=0).
    Nothing,
    /// Close the connection: there is no response to carry the error (acks=0 Produce that
    /// failed; in proxy mode, an upstream that cannot answer).
    Close(std::borrow::Cow<'static, str>),
}

/// Routes one request.
pub async fn route(ctx: &Context, conn: &ConnInfo, req: Request) -> Reply {
    let v = req.version;
    let key = req.api_key;
    let caller = group_api::Caller {
        coordinator: &ctx.coordinator,
        plane: &ctx.plane,
        client_id: req.header.client_id.as_ref().map(|c| c.as_str()).unwrap_or(""),
        client_host: format!("/{}", conn.peer.ip()),
    };
    let c = &caller;
    // The apis every mode answers itself.
    let body = match req.body {
        RequestKind::ApiVersions(r) => return send(ResponseKind::ApiVersions(api_versions(&ctx.versions, v, &r))),
        RequestKind::FindCoordinator(r) => {
            if let DataPlane::Proxy(p) = &ctx.plane
                && r.key_type != 0
                && v >= 1
            {
                // transaction (and other non-group) coordinators are the upstream's
                return match p.find_coordinator_upstream(v, r).await {
                    Ok(resp) => send(ResponseKind::FindCoordinator(resp)),
                    Err(why) => Reply::Close(why.into()),
                };
            }
            return send(ResponseKind::FindCoordinator(group_api::find_coordinator(c, v, r)));
        }
        RequestKind::JoinGroup(r) => return send(ResponseKind::JoinGroup(group_api::join_group(c, v, r).await)),
        RequestKind::SyncGroup(r) => return send(ResponseKind::SyncGroup(group_api::sync_group(c, v, r).await)),
        RequestKind::Heartbeat(r) => return send(ResponseKind::Heartbeat(group_api::heartbeat(c, v, r).await)),
        RequestKind::LeaveGroup(r) => return send(ResponseKind::LeaveGroup(group_api::leave_group(c, v, r).await)),
        RequestKind::OffsetCommit(r) => return send(ResponseKind::OffsetCommit(group_api::offset_commit(c, v, r).await)),
        RequestKind::OffsetFetch(r) => return send(ResponseKind::OffsetFetch(group_api::offset_fetch(c, v, r).await)),
        RequestKind::ListGroups(r) => {
            // A proxy's upstream-node listeners stand for brokers that coordinate none of
            // corral's groups: clients that ask every broker (admin clients do) see each once.
            if conn.listener != Listener::Own && matches!(ctx.plane, DataPlane::Proxy(_)) {
                return send(ResponseKind::ListGroups(ListGroupsResponse::default()));
            }
            return send(ResponseKind::ListGroups(group_api::list_groups(c, v, r)));
        }
        RequestKind::DescribeGroups(r) => return send(ResponseKind::DescribeGroups(group_api::describe_groups(c, v, r))),
        RequestKind::DeleteGroups(r) => return send(ResponseKind::DeleteGroups(group_api::delete_groups(c, v, r).await)),
        RequestKind::OffsetDelete(r) => return send(ResponseKind::OffsetDelete(group_api::offset_delete(c, v, r).await)),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            return send(ResponseKind::ConsumerGroupHeartbeat(group_api::consumer_group_heartbeat(c, v, r).await));
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            return send(ResponseKind::ConsumerGroupDescribe(group_api::consumer_group_describe(c, v, r)));
        }
        RequestKind::AddOffsetsToTxn(r) => {
            return send(ResponseKind::AddOffsetsToTxn(match &ctx.txn {
                Some(t) => txn_api::add_offsets_to_txn(t, v, r).await,
                None => crate::proxy::refuse_add_offsets_to_txn(r),
            }));
        }
        RequestKind::TxnOffsetCommit(r) => {
            return send(ResponseKind::TxnOffsetCommit(match &ctx.txn {
                Some(t) => {
                    let check = txn_api::txn_offset_commit_check(t, v, &r);
                    group_api::txn_offset_commit(c, v, r, check).await
                }
                None => crate::proxy::refuse_txn_offset_commit(r),
            }));
        }
        other => other,
    };
    let (DataPlane::Broker(b), Some(txn)) = (&ctx.plane, &ctx.txn) else {
        // The forwarder takes every other api before it gets here.
        return Reply::Close("an api corral forwards reached the router".into());
    };
    let resp = match body {
        RequestKind::Metadata(r) => ResponseKind::Metadata(broker::handle_metadata(b, v, r).await),
        RequestKind::Produce(r) => {
            let acks = r.acks;
            let resp = broker::handle_produce(b, v, r, &**txn);
            if acks == 0 {
                return if broker::produce_has_error(&resp) { Reply::Close("an acks=0 produce failed".into()) } else { Reply::Nothing };
            }
            ResponseKind::Produce(resp)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(broker::handle_fetch(b, v, r, &ctx.shutdown).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(broker::handle_list_offsets(b, v, r)),
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(broker::handle_offset_for_leader_epoch(b, v, r)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(match r.transactional_id.as_ref().map(|t| t.to_string()) {
            Some(id) if !id.is_empty() => txn_api::init_producer_id(txn, v, &r, &id).await,
            _ => broker::handle_init_producer_id(b, v, r).await,
        }),
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(txn_api::add_partitions_to_txn(txn, b, v, r).await),
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn_api::end_txn(txn, v, r).await),
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(txn_api::describe_transactions(txn, r)),
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(txn_api::list_transactions(txn, v, r)),
        RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(txn_api::describe_producers(b, r)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(broker::handle_create_topics(b, v, r).await),
        RequestKind::DeleteTopics(r) => {
            let resp = broker::handle_delete_topics(b, v, r).await;
            for t in resp.responses.iter().filter(|t| t.error_code == ErrorCode::NONE.code()) {
                if let Some(name) = &t.name {
                    ctx.coordinator.on_topic_deleted(name.as_str()).await;
                }
            }
            ResponseKind::DeleteTopics(resp)
        }
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(broker::handle_create_partitions(b, v, r).await),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(broker::handle_delete_records(b, v, r).await),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(broker::handle_describe_cluster(b, v, r)),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(broker::handle_describe_configs(b, v, r)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(broker::handle_alter_configs(b, v, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(broker::handle_incremental_alter_configs(b, v, r).await)
        }
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(broker::handle_describe_log_dirs(b, v, r)),
        RequestKind::DescribeAcls(_) => ResponseKind::DescribeAcls(
            DescribeAclsResponse::default()
                .with_error_code(ErrorCode::SECURITY_DISABLED.code())
                .with_error_message(Some(StrBytes::from_static_str("No Authorizer is configured on the broker"))),
        ),
        _ => unreachable!("{key:?} is in the version table but has no handler"),
    };
    Reply::Send(Box::new(resp))
}

fn send(resp: ResponseKind) -> Reply {
    Reply::Send(Box::new(resp))
}
