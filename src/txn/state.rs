//! One transactional id's state and its transitions: Kafka's `TransactionMetadata` and the
//! checks of its `TransactionCoordinator`, as pure functions of the current state, the request
//! and the time (tested with literal times). Each transition returns the state to write; the
//! coordinator makes it durable before it takes effect.
//!
//! States (Kafka's `TransactionState`, with their record codes): Empty 0, Ongoing 1,
//! PrepareCommit 2, PrepareAbort 3, CompleteCommit 4, CompleteAbort 5, Dead 6,
//! PrepareEpochFence 7 (in memory only: a fenced producer's transaction on its way to abort).

use std::collections::BTreeSet;

use crate::error::ErrorCode;

/// Kafka's `TransactionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    /// The state's byte in a `__transaction_state` value.
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(c: i8) -> Option<Self> {
        Some(match c {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Whether markers are being written (PrepareCommit, PrepareAbort).
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// The epoch at which a producer id is used up: the next bump takes a new producer id.
pub const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// A transactional id's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last epoch exhaustion (-1 if none).
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, so a retried InitProducerId is recognised (-1 if none).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partition) of the ongoing transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the ongoing transaction began (-1 when none).
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMeta {
    /// A new id's metadata: Empty, epoch `epoch` (Kafka starts at -1 and bumps to 0).
    pub fn new(transactional_id: &str, producer_id: i64, epoch: i16, timeout_ms: i32, now: i64) -> Self {
        TxnMeta {
            transactional_id: transactional_id.to_string(),
            producer_id,
            previous_producer_id: -1,
            producer_epoch: epoch,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now,
        }
    }

    /// The partitions grouped by topic, partitions ascending.
    pub fn topics(&self) -> Vec<(String, Vec<i32>)> {
        let mut out: Vec<(String, Vec<i32>)> = Vec::new();
        for (t, p) in &self.partitions {
            match out.last_mut() {
                Some((last, ps)) if last == t => ps.push(*p),
                _ => out.push((t.clone(), vec![*p])),
            }
        }
        out
    }

    /// Whether the ongoing transaction ran past its timeout at `now`.
    pub fn timed_out(&self, now: i64) -> bool {
        self.state == TxnState::Ongoing && self.start_ms >= 0 && now > self.start_ms.saturating_add(self.timeout_ms as i64)
    }

    /// Whether an idle id may be forgotten (`transactional.id.expiration.ms`).
    pub fn expired(&self, now: i64, expiration_ms: i64) -> bool {
        matches!(self.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
            && now.saturating_sub(self.last_update_ms) >= expiration_ms
    }

    /// The same id with its epoch bumped (a new producer id once the epoch is used up).
    /// `remember`: keep the old epoch as the one a retry may name (a KIP-360 bump asked for by
    /// the producer itself); otherwise the old instance's retries are fenced.
    fn bumped(&self, remember: bool, new_producer_id: impl FnOnce() -> i64) -> TxnMeta {
        let mut m = self.clone();
        m.last_producer_epoch = if remember { self.producer_epoch } else { -1 };
        if self.producer_epoch >= EPOCH_EXHAUSTED {
            m.previous_producer_id = self.producer_id;
            m.producer_id = new_producer_id();
            m.producer_epoch = 0;
        } else {
            m.producer_epoch = self.producer_epoch + 1;
        }
        m
    }

    /// Checks that a request's producer id and epoch are this id's current ones.
    fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ErrorCode> {
        if producer_id != self.producer_id {
            return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
        }
        if epoch != self.producer_epoch {
            return Err(ErrorCode::PRODUCER_FENCED);
        }
        Ok(())
    }
}

/// What InitProducerId does for an id that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitPlan {
    /// Write this state and answer its producer id and epoch.
    Write(TxnMeta),
    /// The request is a retry of the last bump: answer the current id and epoch, write nothing.
    Current,
    /// An ongoing transaction must be aborted first, fenced at this state's (bumped) epoch:
    /// write it (PrepareAbort), complete the abort, then plan the init again.
    AbortFirst(TxnMeta),
}

/// InitProducerId with a transactional id that has metadata. `given` is the producer id and
/// epoch a v3+ request carries (KIP-360: a producer that knows its id asks for a bump).
pub fn init(
    m: &TxnMeta,
    timeout_ms: i32,
    given: Option<(i64, i16)>,
    now: i64,
    new_producer_id: impl FnOnce() -> i64,
) -> Result<InitPlan, ErrorCode> {
    if let Some((pid, epoch)) = given {
        let current = pid == m.producer_id && epoch == m.producer_epoch;
        let retry = pid == m.producer_id && m.last_producer_epoch >= 0 && epoch == m.last_producer_epoch;
        let after_exhaustion = pid == m.previous_producer_id && m.producer_epoch == 0;
        if retry || after_exhaustion {
            // the bump this producer asked for already happened
            return match m.state {
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => Ok(InitPlan::Current),
                _ => Err(ErrorCode::CONCURRENT_TRANSACTIONS),
            };
        }
        if !current {
            return Err(ErrorCode::PRODUCER_FENCED);
        }
    }
    match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => Err(ErrorCode::CONCURRENT_TRANSACTIONS),
        TxnState::Ongoing => {
            let mut f = m.bumped(false, new_producer_id);
            f.state = TxnState::PrepareAbort;
            f.last_update_ms = now;
            Ok(InitPlan::AbortFirst(f))
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let mut b = m.bumped(given.is_some(), new_producer_id);
            b.state = TxnState::Empty;
            b.timeout_ms = timeout_ms;
            b.partitions.clear();
            b.start_ms = -1;
            b.last_update_ms = now;
            Ok(InitPlan::Write(b))
        }
        TxnState::Dead => Err(ErrorCode::CONCURRENT_TRANSACTIONS),
    }
}

/// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): the state
/// to write, or `None` when every partition is already in the ongoing transaction.
pub fn add_partitions(
    m: &TxnMeta,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    now: i64,
) -> Result<Option<TxnMeta>, ErrorCode> {
    m.check_producer(producer_id, epoch)?;
    match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => Err(ErrorCode::CONCURRENT_TRANSACTIONS),
        TxnState::Dead => Err(ErrorCode::INVALID_TXN_STATE),
        TxnState::Ongoing if partitions.iter().all(|p| m.partitions.contains(p)) => Ok(None),
        TxnState::Ongoing | TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let mut n = m.clone();
            if m.state != TxnState::Ongoing {
                n.partitions.clear();
                n.start_ms = now;
            }
            n.state = TxnState::Ongoing;
            n.partitions.extend(partitions.iter().cloned());
            n.last_update_ms = now;
            Ok(Some(n))
        }
    }
}

/// What EndTxn does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPlan {
    /// Write this Prepare state, then the markers, then [`complete`].
    Prepare(TxnMeta),
    /// A retry of an EndTxn that already completed: answer success, write nothing.
    AlreadyDone,
}

/// EndTxn (commit or abort).
pub fn end(m: &TxnMeta, producer_id: i64, epoch: i16, commit: bool, now: i64) -> Result<EndPlan, ErrorCode> {
    m.check_producer(producer_id, epoch)?;
    match (m.state, commit) {
        (TxnState::Ongoing, _) => {
            let mut n = m.clone();
            n.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
            n.last_update_ms = now;
            Ok(EndPlan::Prepare(n))
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(EndPlan::AlreadyDone),
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err(ErrorCode::CONCURRENT_TRANSACTIONS),
        (TxnState::PrepareEpochFence, _) => Err(ErrorCode::CONCURRENT_TRANSACTIONS),
        _ => Err(ErrorCode::INVALID_TXN_STATE),
    }
}

/// The timeout abort of an ongoing transaction: fenced at a bumped epoch (the producer's next
/// request with its old epoch is refused) and prepared to abort.
pub fn fence_timed_out(m: &TxnMeta, now: i64, new_producer_id: impl FnOnce() -> i64) -> Option<TxnMeta> {
    if !m.timed_out(now) {
        return None;
    }
    let mut f = m.bumped(false, new_producer_id);
    f.state = TxnState::PrepareAbort;
    f.last_update_ms = now;
    Some(f)
}

/// The state after every marker of a prepared transaction was written.
pub fn complete(m: &TxnMeta, now: i64) -> TxnMeta {
    let mut n = m.clone();
    n.state = if m.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
    n.partitions.clear();
    n.start_ms = -1;
    n.last_update_ms = now;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> TxnMeta {
        TxnMeta::new("t", 7, 0, 60_000, 1_000)
    }

    fn never() -> i64 {
        panic!("no new producer id expected")
    }

    #[test]
    fn init_bumps_the_epoch_of_an_idle_id_and_recognises_its_retry() {
        let m = fresh();
        let InitPlan::Write(b0) = init(&m, 30_000, None, 2_000, never).unwrap() else { panic!() };
        // a plain init fences the old instance: no epoch is remembered for retries
        assert_eq!(
            (b0.producer_id, b0.producer_epoch, b0.last_producer_epoch, b0.timeout_ms, b0.state),
            (7, 1, -1, 30_000, TxnState::Empty)
        );
        assert_eq!(b0.last_update_ms, 2_000);
        assert_eq!(init(&b0, 30_000, Some((7, 0)), 2_001, never), Err(ErrorCode::PRODUCER_FENCED));
        // a bump the producer asks for (KIP-360) remembers the epoch it had
        let InitPlan::Write(b) = init(&m, 30_000, Some((7, 0)), 2_000, never).unwrap() else { panic!() };
        assert_eq!((b.producer_epoch, b.last_producer_epoch), (1, 0));
        // KIP-360: the producer at epoch 0 asks again after the bump was written
        assert_eq!(init(&b, 30_000, Some((7, 0)), 2_001, never), Ok(InitPlan::Current));
        // at its current epoch: another bump
        assert!(matches!(init(&b, 30_000, Some((7, 1)), 2_002, never), Ok(InitPlan::Write(x)) if x.producer_epoch == 2));
        // someone else's id or an old epoch is fenced
        assert_eq!(init(&b, 30_000, Some((8, 1)), 2_003, never), Err(ErrorCode::PRODUCER_FENCED));
    }

    #[test]
    fn an_exhausted_epoch_takes_a_new_producer_id() {
        let mut m = fresh();
        m.producer_epoch = EPOCH_EXHAUSTED;
        let InitPlan::Write(b) = init(&m, 1, None, 5, || 99).unwrap() else { panic!() };
        assert_eq!((b.producer_id, b.producer_epoch, b.previous_producer_id), (99, 0, 7));
        // the old producer's retry is recognised
        assert_eq!(init(&b, 1, Some((7, EPOCH_EXHAUSTED)), 6, never), Ok(InitPlan::Current));
    }

    #[test]
    fn init_during_a_transaction_fences_and_aborts_it_first() {
        let m = add_partitions(&fresh(), 7, 0, &[("a".into(), 0)], 1_500).unwrap().unwrap();
        let InitPlan::AbortFirst(f) = init(&m, 60_000, None, 2_000, never).unwrap() else { panic!() };
        assert_eq!((f.state, f.producer_epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(f.partitions.len(), 1);
        // while the abort's markers are written, another init waits
        assert_eq!(init(&f, 60_000, None, 2_001, never), Err(ErrorCode::CONCURRENT_TRANSACTIONS));
        let done = complete(&f, 2_002);
        assert_eq!((done.state, done.partitions.len(), done.start_ms), (TxnState::CompleteAbort, 0, -1));
        let InitPlan::Write(b) = init(&done, 60_000, None, 2_003, never).unwrap() else { panic!() };
        assert_eq!(b.producer_epoch, 2);
    }

    #[test]
    fn add_partitions_checks_the_producer_and_the_state() {
        let m = fresh();
        let p = [("a".to_string(), 0), ("a".to_string(), 1)];
        assert_eq!(add_partitions(&m, 8, 0, &p, 1), Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING));
        assert_eq!(add_partitions(&m, 7, 1, &p, 1), Err(ErrorCode::PRODUCER_FENCED));
        let o = add_partitions(&m, 7, 0, &p, 1_100).unwrap().unwrap();
        assert_eq!((o.state, o.start_ms, o.partitions.len()), (TxnState::Ongoing, 1_100, 2));
        // nothing new: nothing to write
        assert_eq!(add_partitions(&o, 7, 0, &p[..1], 1_200), Ok(None));
        let more = add_partitions(&o, 7, 0, &[("b".into(), 0)], 1_300).unwrap().unwrap();
        assert_eq!((more.partitions.len(), more.start_ms), (3, 1_100));
        let EndPlan::Prepare(pc) = end(&more, 7, 0, true, 1_400).unwrap() else { panic!() };
        assert_eq!(add_partitions(&pc, 7, 0, &p, 1_401), Err(ErrorCode::CONCURRENT_TRANSACTIONS));
    }

    #[test]
    fn end_transitions_and_their_errors() {
        let m = fresh();
        // nothing ongoing
        assert_eq!(end(&m, 7, 0, true, 1), Err(ErrorCode::INVALID_TXN_STATE));
        assert_eq!(end(&m, 7, 0, false, 1), Err(ErrorCode::INVALID_TXN_STATE));
        let o = add_partitions(&m, 7, 0, &[("a".into(), 0)], 10).unwrap().unwrap();
        assert_eq!(end(&o, 7, 1, true, 11), Err(ErrorCode::PRODUCER_FENCED));
        assert_eq!(end(&o, 6, 0, true, 11), Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING));
        let EndPlan::Prepare(pc) = end(&o, 7, 0, true, 12).unwrap() else { panic!() };
        assert_eq!(pc.state, TxnState::PrepareCommit);
        assert_eq!(end(&pc, 7, 0, true, 13), Err(ErrorCode::CONCURRENT_TRANSACTIONS));
        assert_eq!(end(&pc, 7, 0, false, 13), Err(ErrorCode::INVALID_TXN_STATE));
        let cc = complete(&pc, 14);
        assert_eq!(cc.state, TxnState::CompleteCommit);
        assert_eq!(end(&cc, 7, 0, true, 15), Ok(EndPlan::AlreadyDone));
        assert_eq!(end(&cc, 7, 0, false, 15), Err(ErrorCode::INVALID_TXN_STATE));
        let EndPlan::Prepare(pa) = end(&add_partitions(&cc, 7, 0, &[("a".into(), 0)], 16).unwrap().unwrap(), 7, 0, false, 17).unwrap()
        else {
            panic!()
        };
        assert_eq!(end(&pa, 7, 0, false, 18), Err(ErrorCode::CONCURRENT_TRANSACTIONS));
        let ca = complete(&pa, 19);
        assert_eq!(ca.state, TxnState::CompleteAbort);
        assert_eq!(end(&ca, 7, 0, false, 20), Ok(EndPlan::AlreadyDone));
        assert_eq!(end(&ca, 7, 0, true, 20), Err(ErrorCode::INVALID_TXN_STATE));
    }

    #[test]
    fn a_transaction_past_its_timeout_is_fenced_and_aborted() {
        let o = add_partitions(&fresh(), 7, 0, &[("a".into(), 0)], 10_000).unwrap().unwrap();
        assert_eq!(fence_timed_out(&o, 70_000, never), None);
        let f = fence_timed_out(&o, 70_001, never).unwrap();
        assert_eq!((f.state, f.producer_epoch), (TxnState::PrepareAbort, 1));
        // the producer's next request at its old epoch is fenced
        assert_eq!(end(&complete(&f, 70_002), 7, 0, true, 70_003), Err(ErrorCode::PRODUCER_FENCED));
    }

    #[test]
    fn only_idle_ids_expire() {
        let m = fresh();
        assert!(!m.expired(1_000 + 99, 100));
        assert!(m.expired(1_000 + 100, 100));
        let o = add_partitions(&m, 7, 0, &[("a".into(), 0)], 1_000).unwrap().unwrap();
        assert!(!o.expired(1_000_000, 100));
    }

    mod replay {
        use proptest::prelude::*;

        use super::super::*;
        use crate::txn::record::{decode_value, encode_value};

        #[derive(Debug, Clone)]
        enum Op {
            Init { given: bool },
            Add(i32),
            End(bool),
            Complete,
            Fence,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                any::<bool>().prop_map(|given| Op::Init { given }),
                (0..4i32).prop_map(Op::Add),
                any::<bool>().prop_map(Op::End),
                Just(Op::Complete),
                Just(Op::Fence),
            ]
        }

        proptest! {
            /// Every state a run of transitions reaches is written as a record that reads back
            /// into the same durable state (what start-up rebuilds), and no transition ever
            /// leaves a state without a record code.
            #[test]
            fn every_state_written_reads_back(ops in proptest::collection::vec(op(), 1..60)) {
                let mut m = TxnMeta::new("t", 1, 0, 1_000, 0);
                let mut now = 0;
                let mut next_pid = 100;
                for o in ops {
                    now += 700;
                    let (pid, epoch) = (m.producer_id, m.producer_epoch);
                    let next = match o {
                        Op::Init { given } => match init(&m, 1_000, given.then_some((pid, epoch)), now, || { next_pid += 1; next_pid }) {
                            Ok(InitPlan::Write(n)) | Ok(InitPlan::AbortFirst(n)) => Some(n),
                            _ => None,
                        },
                        Op::Add(p) => add_partitions(&m, pid, epoch, &[("a".to_string(), p)], now).ok().flatten(),
                        Op::End(commit) => match end(&m, pid, epoch, commit, now) {
                            Ok(EndPlan::Prepare(n)) => Some(n),
                            _ => None,
                        },
                        Op::Complete => m.state.is_preparing().then(|| complete(&m, now)),
                        Op::Fence => fence_timed_out(&m, now, || { next_pid += 1; next_pid }),
                    };
                    if let Some(n) = next {
                        m = n;
                    }
                    let back = decode_value("t", &encode_value(&m)).expect("a written value reads back");
                    prop_assert_eq!(
                        (back.producer_id, back.producer_epoch, back.timeout_ms, back.state, &back.partitions, back.last_update_ms, back.start_ms),
                        (m.producer_id, m.producer_epoch, m.timeout_ms, m.state, &m.partitions, m.last_update_ms, m.start_ms)
                    );
                    prop_assert!(m.state != TxnState::Ongoing || !m.partitions.is_empty());
                }
            }
        }
    }
}
