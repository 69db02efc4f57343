//! Replay equivalence as a property: a shard driven through random joins, syncs, heartbeats,
//! leaves, commits, deletions and the passing of time must, after every step, be rebuilt by
//! start-up (`Shard::replay` of the records written so far, as the loader calls it) into the
//! same durable state: every offset of every group, and for each group that is Stable or Empty
//! its generation, protocol, leader and members with their assignments. Groups in the middle
//! of a rebalance are compared by their offsets only (their membership is soft state; a restart
//! brings back the last Stable snapshot, as Kafka's does).

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::group::{Group, GroupState};
use super::record::Record;
use super::shard::{IdSource, Shard};
use super::testkit::*;
use crate::error::ErrorCode;

/// One step of a random run.
#[derive(Debug, Clone)]
enum Step {
    /// Client `c` of group `g` joins (or rejoins with its member id).
    Join {
        g: usize,
        c: usize,
    },
    /// Client `c` syncs at its group's generation (the leader with an assignment for all).
    Sync {
        g: usize,
        c: usize,
    },
    Heartbeat {
        g: usize,
        c: usize,
    },
    Leave {
        g: usize,
        c: usize,
    },
    /// A commit, as a member (at its generation) or as an admin tool (generation -1).
    Commit {
        g: usize,
        c: Option<usize>,
        partition: i32,
        offset: i64,
    },
    DeleteOffsets {
        g: usize,
        partition: i32,
    },
    DeleteGroup {
        g: usize,
    },
    /// A transactional commit of producer `p` (TxnOffsetCommit, no member).
    TxnCommit {
        g: usize,
        p: i64,
        partition: i32,
        offset: i64,
    },
    /// Producer `p`'s transaction ends: its COMMIT or ABORT marker reaches the shard.
    EndTxn {
        p: i64,
        commit: bool,
    },
    Advance {
        ms: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let g = 0..2usize;
    let c = 0..4usize;
    prop_oneof![
        8 => (g.clone(), c.clone()).prop_map(|(g, c)| Step::Join { g, c }),
        10 => (g.clone(), c.clone()).prop_map(|(g, c)| Step::Sync { g, c }),
        4 => (g.clone(), c.clone()).prop_map(|(g, c)| Step::Heartbeat { g, c }),
        1 => (g.clone(), c.clone()).prop_map(|(g, c)| Step::Leave { g, c }),
        8 => (g.clone(), proptest::option::weighted(0.8, c.clone()), 0..3i32, 0..1000i64)
            .prop_map(|(g, c, partition, offset)| Step::Commit { g, c, partition, offset }),
        1 => (g.clone(), 0..3i32).prop_map(|(g, partition)| Step::DeleteOffsets { g, partition }),
        1 => g.clone().prop_map(|g| Step::DeleteGroup { g }),
        3 => (g.clone(), 0..2i64, 0..3i32, 0..1000i64).prop_map(|(g, p, partition, offset)| Step::TxnCommit { g, p, partition, offset }),
        2 => (0..2i64, proptest::bool::ANY).prop_map(|(p, commit)| Step::EndTxn { p, commit }),
        4 => prop_oneof![3 => 0..500i64, 1 => 5_000..12_000i64, 1 => 25_000..40_000i64].prop_map(|ms| Step::Advance { ms }),
    ]
}

/// The durable state of one group, as a restart must see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Durable {
    /// `Some` for a Stable or Empty group: (state, generation, protocol type, protocol,
    /// leader, member → (instance id, assignment)).
    membership: Option<Membership>,
    offsets: BTreeMap<(String, i32), (i64, String)>,
    /// Pending transactional offsets, by producer.
    pending: BTreeMap<i64, BTreeMap<(String, i32), i64>>,
}

fn pending(g: &Group) -> BTreeMap<i64, BTreeMap<(String, i32), i64>> {
    g.pending_txn.iter().map(|(p, m)| (*p, m.iter().map(|(k, v)| (k.clone(), v.offset)).collect())).collect()
}

type Membership = (&'static str, i32, Option<String>, Option<String>, Option<String>, BTreeMap<String, (Option<String>, Bytes)>);

fn membership(g: &Group) -> Membership {
    (
        g.state.name(),
        g.generation,
        g.protocol_type.clone().filter(|t| !t.is_empty()),
        g.protocol_name.clone(),
        g.leader.clone(),
        g.members.values().map(|m| (m.id.clone(), (m.instance_id.clone(), m.assignment.clone()))).collect(),
    )
}

fn offsets(g: &Group) -> BTreeMap<(String, i32), (i64, String)> {
    g.offsets.iter().map(|(k, v)| (k.clone(), (v.offset, v.metadata.clone()))).collect()
}

/// Compares the live shard with one rebuilt from its records; `Err` says how they differ.
fn compare(live: &Shard, replayed: &Shard) -> Result<(), String> {
    let mut ids: Vec<&str> = live.groups().map(|g| g.id.as_str()).chain(replayed.groups().map(|g| g.id.as_str())).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let (l, r) = (live.group(id), replayed.group(id));
        let durable_live = l.map(|g| Durable {
            membership: matches!(g.state, GroupState::Stable | GroupState::Empty).then(|| membership(g)),
            offsets: offsets(g),
            pending: pending(g),
        });
        let durable_replayed = r.map(|g| Durable {
            membership: l.filter(|lg| matches!(lg.state, GroupState::Stable | GroupState::Empty)).map(|_| membership(g)),
            offsets: offsets(g),
            pending: pending(g),
        });
        // a group that exists only as soft state (members joining, nothing written yet) is
        // not durable: a restart does not know it
        let live_is_soft = l.is_some_and(|g| g.persisted.is_none() && g.offsets.is_empty() && g.pending_txn.is_empty());
        if live_is_soft && r.is_none() {
            continue;
        }
        if durable_live != durable_replayed {
            return Err(format!("group {id}:\n  live     {durable_live:?}\n  replayed {durable_replayed:?}"));
        }
    }
    Ok(())
}

/// The replay start-up does: every record through `Shard::replay`, then `finish_load`.
fn replay(kit: &Kit) -> Shard {
    let mut s = Shard::new(kit.shard.config.clone(), IdSource::Counter(1000));
    s.begin_load();
    for raw in kit.raw_records() {
        s.replay(kit.now, Record::decode(&raw).expect("records decode"));
    }
    let _ = s.finish_load(kit.now);
    s
}

/// A client's view: its member id once it has one, and the join it waits on.
#[derive(Debug, Clone, Default)]
struct Client {
    member: Option<String>,
    pending_join: Option<u64>,
}

/// What a run reached, to show the generator gets somewhere interesting.
#[derive(Debug, Default)]
struct Reached {
    /// The most members a Stable group had.
    stable_members: usize,
    /// Commits by a member (generation checked) that were accepted.
    member_commits: usize,
    /// Steps after which some group was mid-rebalance.
    rebalancing: usize,
}

fn run(steps: Vec<Step>) -> Result<Reached, TestCaseError> {
    let mut reached = Reached::default();
    let mut kit = Kit::new();
    let groups = ["g0", "g1"];
    let mut clients: Vec<Vec<Client>> = vec![vec![Client::default(); 4]; 2];
    for (i, step) in steps.iter().enumerate() {
        match step.clone() {
            Step::Join { g, c } => {
                let cl = &mut clients[g][c];
                if let Some(req) = cl.pending_join {
                    // still parked: an answer may have come meanwhile
                    if let Some(r) = kit.joined(req) {
                        cl.pending_join = None;
                        if r.error == ErrorCode::NONE {
                            cl.member = Some(r.member_id);
                        }
                    }
                    continue;
                }
                let mut j = join(groups[g], cl.member.as_deref().unwrap_or(""));
                // clients 0 and 1 are static members
                if c < 2 {
                    j.group_instance_id = Some(format!("i{c}"));
                }
                let req = kit.join(j);
                match kit.joined(req) {
                    Some(r) if r.error == ErrorCode::NONE => cl.member = Some(r.member_id),
                    Some(r) if r.error == ErrorCode::MEMBER_ID_REQUIRED => cl.member = Some(r.member_id),
                    Some(_) => cl.member = None,
                    None => cl.pending_join = Some(req),
                }
            }
            Step::Sync { g, c } => {
                let Some(member) = clients[g][c].member.clone() else { continue };
                let Some(group) = kit.shard.group(groups[g]) else { continue };
                let generation = group.generation;
                let leads = group.leader.as_deref() == Some(member.as_str());
                let everyone: Vec<String> = group.members.keys().cloned().collect();
                let assignments: Vec<(String, String)> = everyone.iter().map(|m| (m.clone(), format!("a-{m}-{generation}"))).collect();
                let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
                let mut s = sync(groups[g], &member, generation, if leads { &pairs } else { &[] });
                if c < 2 {
                    s.group_instance_id = Some(format!("i{c}"));
                }
                let req = kit.sync(s);
                let _ = kit.synced(req);
            }
            Step::Heartbeat { g, c } => {
                let Some(member) = clients[g][c].member.clone() else { continue };
                let generation = kit.shard.group(groups[g]).map_or(-1, |g| g.generation);
                let mut h = heartbeat(groups[g], &member, generation);
                if c < 2 {
                    h.group_instance_id = Some(format!("i{c}"));
                }
                kit.heartbeat(h);
            }
            Step::Leave { g, c } => {
                let Some(member) = clients[g][c].member.take() else { continue };
                let instance = (c < 2).then(|| format!("i{c}"));
                kit.leave(groups[g], &[(member.as_str(), instance.as_deref())]);
                clients[g][c].pending_join = None;
            }
            Step::Commit { g, c, partition, offset } => {
                let (member, generation) = match c.and_then(|c| clients[g][c].member.clone()) {
                    Some(m) => (m, kit.shard.group(groups[g]).map_or(-1, |g| g.generation)),
                    None => (String::new(), -1),
                };
                let errors = kit.commit(commit(groups[g], &member, generation, &[("t", partition, offset)]));
                if !member.is_empty() && errors == [ErrorCode::NONE] {
                    reached.member_commits += 1;
                }
            }
            Step::DeleteOffsets { g, partition } => {
                kit.delete_offsets(groups[g], &[("t", partition)]);
            }
            Step::DeleteGroup { g } => {
                if kit.delete_group(groups[g]) == ErrorCode::NONE {
                    clients[g] = vec![Client::default(); 4];
                }
            }
            Step::TxnCommit { g, p, partition, offset } => {
                kit.txn_commit(groups[g], p, &[("t", partition, offset)]);
            }
            Step::EndTxn { p, commit } => kit.end_txn(p, commit),
            Step::Advance { ms } => kit.advance(ms),
        }
        for g in kit.shard.groups() {
            if g.is(GroupState::Stable) {
                reached.stable_members = reached.stable_members.max(g.members.len());
            }
            if matches!(g.state, GroupState::PreparingRebalance | GroupState::CompletingRebalance) {
                reached.rebalancing += 1;
            }
        }
        let replayed = replay(&kit);
        if let Err(why) = compare(&kit.shard, &replayed) {
            return Err(TestCaseError::fail(format!("after step {i} ({step:?}):\n{why}\nsteps: {:?}", &steps[..=i])));
        }
    }
    Ok(reached)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Seeded (proptest's default: a failure prints the steps and
    /// is kept in proptest-regressions/ to be re-run first).
    #[test]
    fn replaying_the_records_rebuilds_the_durable_state(steps in proptest::collection::vec(step(), 1..80)) {
        run(steps)?;
    }
}

/// The generator is no use if random steps never get a group Stable with several members, or
/// never commit as a member: over a fixed sample of runs, they must.
#[test]
fn random_runs_reach_stable_groups_rebalances_and_member_commits() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(step(), 60..80);
    let mut total = Reached::default();
    for _ in 0..100 {
        let steps = strategy.new_tree(&mut runner).expect("a sample").current();
        let r = run(steps).expect("replay equivalence");
        total.stable_members = total.stable_members.max(r.stable_members);
        total.member_commits += r.member_commits;
        total.rebalancing += r.rebalancing;
    }
    eprintln!("{total:?}");
    assert!(total.stable_members >= 3, "{total:?}");
    assert!(total.member_commits > 50, "{total:?}");
    assert!(total.rebalancing > 1000, "{total:?}");
}
