//! Typed answers: a request waiting on a shard waits for its own kind of answer.
//!
//! The pure shard hands its answers out as [`Reply`] values, one enum for every kind of
//! request, because one input can answer requests of several kinds (a completed join answers
//! every parked JoinGroup; a leaving member's parked SyncGroup is answered by the LeaveGroup).
//! The runtime parks each request's reply channel by the kind of answer it expects
//! ([`Waiting`]), so each coordinator call returns its own type; an answer of the wrong kind
//! for a request is a broken invariant of the shard, and panics.

use tokio::sync::oneshot;

use super::consumer::HeartbeatResult;
use super::shard::{JoinResult, LeaveResult, OffsetDeleteResult, Reply, SyncResult};
use crate::error::ErrorCode;

/// A Heartbeat's answer: its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeated(pub ErrorCode);

/// An OffsetCommit's answer: one error code per partition, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed(pub Vec<ErrorCode>);

/// A DeleteGroups answer for one group: its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDeleted(pub ErrorCode);

/// A transaction's end applied to a shard's pending offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnEnded;

/// A parked request's reply channel, by the kind of answer it waits for.
#[derive(Debug)]
pub enum Waiting {
    Join(oneshot::Sender<JoinResult>),
    Sync(oneshot::Sender<SyncResult>),
    Heartbeat(oneshot::Sender<Heartbeated>),
    Leave(oneshot::Sender<LeaveResult>),
    Commit(oneshot::Sender<Committed>),
    DeleteGroup(oneshot::Sender<GroupDeleted>),
    OffsetDelete(oneshot::Sender<OffsetDeleteResult>),
    /// Failure is its own answer here: the sender is dropped (the caller sees a closed channel).
    TxnEnded(oneshot::Sender<TxnEnded>),
    ConsumerHeartbeat(oneshot::Sender<HeartbeatResult>),
}

/// The answer of one kind of coordinator call.
pub trait Answer: Sized + Send + 'static {
    /// Parks `tx` as the channel of a request waiting for this kind of answer.
    fn waiting(tx: oneshot::Sender<Self>) -> Waiting;
}

macro_rules! answer {
    ($ty:ty, $variant:ident) => {
        impl Answer for $ty {
            fn waiting(tx: oneshot::Sender<Self>) -> Waiting {
                Waiting::$variant(tx)
            }
        }
    };
}

answer!(JoinResult, Join);
answer!(SyncResult, Sync);
answer!(Heartbeated, Heartbeat);
answer!(LeaveResult, Leave);
answer!(Committed, Commit);
answer!(GroupDeleted, DeleteGroup);
answer!(OffsetDeleteResult, OffsetDelete);
answer!(TxnEnded, TxnEnded);
answer!(HeartbeatResult, ConsumerHeartbeat);

impl Waiting {
    /// Sends `reply` — or, with `failure`, the same kind of answer carrying that error code
    /// instead (its records never became durable). A receiver that went away is fine.
    ///
    /// # Panics
    ///
    /// If `reply` is not the kind of answer this request waits for.
    pub fn send(self, reply: Reply, failure: Option<ErrorCode>) {
        match (self, reply) {
            (Waiting::Join(tx), Reply::Join(r)) => {
                // a failed write leaves the member unknown: no member id (checklist 83)
                let _ = tx.send(match failure {
                    Some(code) => JoinResult::error(code, ""),
                    None => r,
                });
            }
            (Waiting::Sync(tx), Reply::Sync(r)) => {
                let _ = tx.send(failure.map_or(r, SyncResult::error));
            }
            (Waiting::Heartbeat(tx), Reply::Heartbeat(code)) => {
                let _ = tx.send(Heartbeated(failure.unwrap_or(code)));
            }
            (Waiting::Leave(tx), Reply::Leave(r)) => {
                let _ = tx.send(match failure {
                    Some(code) => LeaveResult { error: code, members: Vec::new() },
                    None => r,
                });
            }
            (Waiting::Commit(tx), Reply::Commit(errors)) => {
                let _ = tx.send(Committed(match failure {
                    Some(code) => vec![code; errors.len()],
                    None => errors,
                }));
            }
            (Waiting::DeleteGroup(tx), Reply::DeleteGroup(code)) => {
                let _ = tx.send(GroupDeleted(failure.unwrap_or(code)));
            }
            (Waiting::OffsetDelete(tx), Reply::OffsetDelete(r)) => {
                let _ = tx.send(match failure {
                    Some(code) => OffsetDeleteResult { error: code, partitions: Vec::new() },
                    None => r,
                });
            }
            (Waiting::ConsumerHeartbeat(tx), Reply::ConsumerHeartbeat(r)) => {
                // a failed write: the member learns nothing of it but the error
                let _ = tx.send(match failure {
                    Some(code) => HeartbeatResult { error: code, ..Default::default() },
                    None => r,
                });
            }
            (Waiting::TxnEnded(tx), Reply::TxnEnded) => {
                if failure.is_none() {
                    let _ = tx.send(TxnEnded);
                }
            }
            (waiting, reply) => panic!("the shard answered a request waiting as {waiting:?} with {reply:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_arrive_typed_and_failures_keep_their_shape() {
        let (tx, rx) = oneshot::channel();
        let not_coordinator = Some(ErrorCode::NOT_COORDINATOR);
        Committed::waiting(tx).send(Reply::Commit(vec![ErrorCode::NONE, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION]), not_coordinator);
        assert_eq!(rx.blocking_recv().unwrap(), Committed(vec![ErrorCode::NOT_COORDINATOR; 2]));
        let (tx, rx) = oneshot::channel();
        JoinResult::waiting(tx).send(Reply::Join(JoinResult::error(ErrorCode::NONE, "m-1")), not_coordinator);
        let r = rx.blocking_recv().unwrap();
        assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::NOT_COORDINATOR, ""));
        let (tx, rx) = oneshot::channel();
        Heartbeated::waiting(tx).send(Reply::Heartbeat(ErrorCode::REBALANCE_IN_PROGRESS), None);
        assert_eq!(rx.blocking_recv().unwrap(), Heartbeated(ErrorCode::REBALANCE_IN_PROGRESS));
    }

    #[test]
    #[should_panic(expected = "answered a request waiting as")]
    fn an_answer_of_the_wrong_kind_is_a_broken_invariant() {
        let (tx, _rx) = oneshot::channel();
        Heartbeated::waiting(tx).send(Reply::DeleteGroup(ErrorCode::NONE), None);
    }
}
