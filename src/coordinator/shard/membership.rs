//! The classic group's membership rules: JoinGroup (with the join phase and its delays),
//! SyncGroup, Heartbeat, LeaveGroup, and the timers that end a session, a join phase or a sync
//! phase (`reference/kafka-group-coordinator.md` §2.5-2.12).

use std::collections::HashMap;

use bytes::Bytes;

use super::types::*;
use super::{Cx, Rules, Shard, heartbeat_key, join_key};
use crate::coordinator::RequestId;
use crate::coordinator::group::{Group, GroupState, InitialDelay, Member, Waiter};
use crate::coordinator::record::Record;
use crate::error::ErrorCode;

/// Kafka's fixed timeout for a new member's parked JoinGroup (§2.5).
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

// ------------------------------------------------------------------ JoinGroup (§2.5-2.8)

impl Shard {
    /// JoinGroup.
    pub fn join(&mut self, now: i64, req: RequestId, j: JoinInput) -> Output {
        self.join_with(now, req, j, None)
    }

    /// JoinGroup, with the topics as they are now (a JoinGroup into a consumer group resolves
    /// its subscription against them; without them, against what the group last saw).
    pub fn join_with(
        &mut self,
        now: i64,
        req: RequestId,
        j: JoinInput,
        topics: Option<&dyn crate::coordinator::consumer::TopicView>,
    ) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let waiter = Waiter { request: req, version: j.version };
        if j.session_timeout_ms < self.config.min_session_timeout_ms || j.session_timeout_ms > self.config.max_session_timeout_ms {
            cx.reply(req, Reply::Join(JoinResult::error(ErrorCode::INVALID_SESSION_TIMEOUT, &j.member_id)));
            return self.done(cx);
        }
        if self.classic_goes_to_consumer_group(&j.group_id) {
            // a classic member joins a consumer group (§4.7)
            let r = self.classic_join_consumer_group(&mut cx, j, topics);
            cx.reply(req, Reply::Join(r));
            return self.done(cx);
        }
        if let Some(g) = self.groups.get_mut(&j.group_id)
            && g.consumer.is_some()
        {
            // an empty consumer group becomes a classic group (§4.7)
            for r in crate::coordinator::consumer::ConsumerGroup::deletion_records(&j.group_id) {
                cx.emit(Record::Consumer(r));
            }
            g.consumer = None;
        }
        if !j.member_id.is_empty() && !self.groups.contains_key(&j.group_id) {
            cx.reply(req, Reply::Join(JoinResult::error(ErrorCode::UNKNOWN_MEMBER_ID, &j.member_id)));
            return self.done(cx);
        }
        let Shard { groups, config, ids, .. } = self;
        let g = groups.entry(j.group_id.clone()).or_insert_with(|| {
            let g = Group::new(&j.group_id, now);
            // Checklist 106: a new group is made durable with an empty snapshot.
            cx.emit(Record::Group { group: j.group_id.clone(), value: Some(g.snapshot(now, None)) });
            g
        });
        let mut rules = Rules { config, ids };
        if !g.accepts_joining_member(&j.member_id, rules.config.max_size) {
            if g.members.contains_key(&j.member_id) {
                rules.remove_member(&mut cx, g, &j.member_id);
            }
            cx.reply(req, Reply::Join(JoinResult::error(ErrorCode::GROUP_MAX_SIZE_REACHED, "")));
        } else if j.member_id.is_empty() {
            rules.join_new_member(&mut cx, g, waiter, j);
        } else {
            rules.join_existing_member(&mut cx, g, waiter, j);
        }
        self.done(cx)
    }
}

impl Rules<'_> {
    fn join_new_member(&mut self, cx: &mut Cx, g: &mut Group, waiter: Waiter, j: JoinInput) {
        let req = waiter.request;
        if g.is(GroupState::Dead) {
            cx.reply(req, Reply::Join(JoinResult::error(ErrorCode::COORDINATOR_NOT_AVAILABLE, "")));
            return;
        }
        if !g.supports_protocols(&j.protocol_type, &j.protocols) {
            cx.reply(req, Reply::Join(JoinResult::error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, "")));
            return;
        }
        let prefix = j.group_instance_id.clone().unwrap_or_else(|| j.client_id.clone());
        let new_id = self.new_member_id(&prefix);
        if let Some(instance) = j.group_instance_id.clone() {
            match g.static_members.get(&instance).cloned() {
                Some(old_id) => self.replace_static_member(cx, g, &old_id, new_id, waiter, j),
                None => self.add_member(cx, g, new_id, waiter, j),
            }
        } else if j.version >= 4 {
            // §2.5: the two-step join; the id is remembered until it rejoins or its session ends.
            g.pending_members.insert(new_id.clone());
            cx.set(heartbeat_key(&g.id, &new_id), j.session_timeout_ms as i64);
            cx.reply(req, Reply::Join(JoinResult::error(ErrorCode::MEMBER_ID_REQUIRED, &new_id)));
        } else {
            self.add_member(cx, g, new_id, waiter, j);
        }
    }

    fn join_existing_member(&mut self, cx: &mut Cx, g: &mut Group, waiter: Waiter, j: JoinInput) {
        let req = waiter.request;
        let fail = |cx: &mut Cx, code| cx.reply(req, Reply::Join(JoinResult::error(code, &j.member_id)));
        if g.is(GroupState::Dead) {
            return fail(cx, ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        if !g.supports_protocols(&j.protocol_type, &j.protocols) {
            return fail(cx, ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
        }
        if g.pending_members.contains(&j.member_id) {
            let id = j.member_id.clone();
            return self.add_member(cx, g, id, waiter, j);
        }
        if let Err(code) = g.validate_member(&j.member_id, j.group_instance_id.as_deref()) {
            return fail(cx, code);
        }
        match g.state {
            GroupState::PreparingRebalance => self.update_member(cx, g, waiter, j),
            GroupState::CompletingRebalance => {
                if g.members[&j.member_id].same_protocols(&j.protocols) {
                    // §2.6: a duplicate join during CompletingRebalance gets the current generation.
                    let r = join_answer(g, &j.member_id, g.leader.as_deref() == Some(j.member_id.as_str()));
                    cx.reply(req, Reply::Join(r));
                } else {
                    self.update_member(cx, g, waiter, j);
                }
            }
            GroupState::Stable => {
                let is_leader = g.leader.as_deref() == Some(j.member_id.as_str());
                if is_leader || !g.members[&j.member_id].same_protocols(&j.protocols) {
                    self.update_member(cx, g, waiter, j);
                } else {
                    cx.reply(req, Reply::Join(join_answer(g, &j.member_id, false)));
                }
            }
            GroupState::Empty | GroupState::Dead => fail(cx, ErrorCode::UNKNOWN_MEMBER_ID),
        }
    }

    /// Kafka's `addMemberThenRebalanceOrCompleteJoin`.
    fn add_member(&mut self, cx: &mut Cx, g: &mut Group, id: String, waiter: Waiter, j: JoinInput) {
        if g.members.is_empty() {
            g.protocol_type = Some(j.protocol_type.clone());
        }
        if g.leader.is_none() {
            g.leader = Some(id.clone());
        }
        if let Some(instance) = &j.group_instance_id {
            g.static_members.insert(instance.clone(), id.clone());
        }
        g.pending_members.remove(&id);
        if g.is(GroupState::PreparingRebalance) && g.previous_state == GroupState::Empty {
            g.new_member_added = true;
        }
        g.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: j.group_instance_id,
                client_id: j.client_id,
                client_host: j.client_host,
                session_timeout_ms: j.session_timeout_ms,
                rebalance_timeout_ms: j.rebalance_timeout_ms,
                protocol_type: j.protocol_type,
                protocols: j.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(waiter),
                awaiting_sync: None,
                is_new: true,
            },
        );
        cx.set(heartbeat_key(&g.id, &id), NEW_MEMBER_JOIN_TIMEOUT_MS);
        if g.can_rebalance() {
            self.prepare_rebalance(cx, g);
        } else {
            self.maybe_complete_join(cx, g);
        }
    }

    /// Kafka's `updateMemberThenRebalanceOrCompleteJoin`.
    fn update_member(&mut self, cx: &mut Cx, g: &mut Group, waiter: Waiter, j: JoinInput) {
        let m = g.members.get_mut(&j.member_id).expect("validated member");
        if let Some(old) = m.awaiting_join.replace(waiter) {
            // A second JoinGroup from the same member: the first one is superseded.
            cx.reply(old.request, Reply::Join(JoinResult::error(ErrorCode::REBALANCE_IN_PROGRESS, &m.id)));
        }
        m.protocols = j.protocols;
        m.rebalance_timeout_ms = j.rebalance_timeout_ms;
        m.session_timeout_ms = j.session_timeout_ms;
        if g.can_rebalance() {
            self.prepare_rebalance(cx, g);
        } else {
            self.maybe_complete_join(cx, g);
        }
    }

    /// §2.10: a static member rejoining with an unknown member id takes over its old identity.
    fn replace_static_member(&mut self, cx: &mut Cx, g: &mut Group, old_id: &str, new_id: String, waiter: Waiter, j: JoinInput) {
        let req = waiter.request;
        let previous_leader = g.leader.clone();
        let selected_before = g.protocol_name.clone();
        let mut m = g.members.remove(old_id).expect("static member maps to a member");
        if let Some(w) = m.awaiting_join.take() {
            cx.reply(w.request, Reply::Join(JoinResult::error(ErrorCode::FENCED_INSTANCE_ID, old_id)));
        }
        if let Some(w) = m.awaiting_sync.take() {
            cx.reply(w.request, Reply::Sync(SyncResult::error(ErrorCode::FENCED_INSTANCE_ID)));
        }
        cx.cancel(heartbeat_key(&g.id, old_id));
        let was_pending_sync = g.pending_sync.remove(old_id);
        m.id = new_id.clone();
        m.protocols = j.protocols.clone();
        m.rebalance_timeout_ms = j.rebalance_timeout_ms;
        m.session_timeout_ms = j.session_timeout_ms;
        let instance = j.group_instance_id.clone().expect("static member");
        g.static_members.insert(instance, new_id.clone());
        if g.leader.as_deref() == Some(old_id) {
            g.leader = Some(new_id.clone());
        }
        if was_pending_sync {
            g.pending_sync.insert(new_id.clone());
        }
        cx.set(heartbeat_key(&g.id, &new_id), m.session_timeout_ms as i64);
        g.members.insert(new_id.clone(), m);
        match g.state {
            GroupState::Stable if g.select_protocol() == selected_before => {
                // No rebalance: persist the new id, then answer (v9: SkipAssignment for the
                // leader; older versions are told the previous leader id, so an ex-leader
                // does not believe it must assign).
                cx.emit(Record::Group { group: g.id.clone(), value: Some(g.snapshot(cx.now, None)) });
                let is_leader = g.leader.as_deref() == Some(new_id.as_str());
                let mut r = join_answer(g, &new_id, is_leader && j.version >= 9);
                if j.version >= 9 {
                    r.skip_assignment = is_leader;
                } else {
                    r.leader = previous_leader.unwrap_or_default();
                }
                cx.reply(req, Reply::Join(r));
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                g.members.get_mut(&new_id).expect("inserted").awaiting_join = Some(waiter);
                self.prepare_rebalance(cx, g);
            }
            _ => {
                g.members.get_mut(&new_id).expect("inserted").awaiting_join = Some(waiter);
                self.maybe_complete_join(cx, g);
            }
        }
    }

    /// §2.7: enters PreparingRebalance and arms the join phase's end.
    pub(super) fn prepare_rebalance(&mut self, cx: &mut Cx, g: &mut Group) {
        if g.is(GroupState::CompletingRebalance) {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.awaiting_sync.take() {
                    cx.reply(w.request, Reply::Sync(SyncResult::error(ErrorCode::REBALANCE_IN_PROGRESS)));
                }
            }
        }
        cx.cancel(TimerKey::Sync { group: g.id.clone(), generation: g.generation });
        g.pending_sync.clear();
        if g.is(GroupState::Empty) {
            let delay = self.config.initial_rebalance_delay_ms;
            let remaining = (g.rebalance_timeout_ms() - delay).max(0);
            g.initial_delay = Some(InitialDelay { remaining_ms: remaining, delay_ms: delay });
            g.new_member_added = false;
            cx.set(join_key(&g.id), delay);
        } else {
            g.initial_delay = None;
            cx.set(join_key(&g.id), g.rebalance_timeout_ms());
        }
        metrics::counter!("corral_rebalances_total").increment(1);
        g.rebalance_started.get_or_insert(cx.now);
        g.transition(GroupState::PreparingRebalance, cx.now);
        self.maybe_complete_join(cx, g);
    }

    /// Completes the join phase early once everyone has rejoined — never during the initial
    /// (delayed) rebalance of a group that was Empty (§2.7).
    fn maybe_complete_join(&mut self, cx: &mut Cx, g: &mut Group) {
        if g.is(GroupState::PreparingRebalance) && g.all_members_joined() && g.previous_state != GroupState::Empty {
            self.complete_join(cx, g);
        }
    }

    /// The join timer fired.
    pub(super) fn on_join_timer(&mut self, cx: &mut Cx, g: &mut Group) {
        if !g.is(GroupState::PreparingRebalance) {
            return;
        }
        if let Some(InitialDelay { remaining_ms, delay_ms }) = g.initial_delay
            && g.new_member_added
            && remaining_ms != 0
        {
            // §2.7: a member joined during the initial delay: wait another step.
            g.new_member_added = false;
            let next = self.config.initial_rebalance_delay_ms.min(remaining_ms);
            g.initial_delay = Some(InitialDelay { remaining_ms: (remaining_ms - delay_ms).max(0), delay_ms: next });
            cx.set(join_key(&g.id), next);
            return;
        }
        self.complete_join(cx, g);
    }

    /// §2.8: removes dynamic members that did not rejoin, starts the next generation and
    /// answers every parked JoinGroup.
    fn complete_join(&mut self, cx: &mut Cx, g: &mut Group) {
        let stragglers: Vec<String> =
            g.members.values().filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none()).map(|m| m.id.clone()).collect();
        for id in stragglers {
            self.remove_member(cx, g, &id);
        }
        if g.is(GroupState::Dead) {
            return;
        }
        let leader_joined = g.leader.as_ref().and_then(|l| g.members.get(l)).is_some_and(|m| m.awaiting_join.is_some());
        if !leader_joined {
            match g.members.values().find(|m| m.awaiting_join.is_some()) {
                Some(m) => g.leader = Some(m.id.clone()),
                None if !g.members.is_empty() => {
                    // Only static members that did not rejoin are left: wait for them (§2.8.2).
                    tracing::info!(group = g.id.as_str(), "join phase waiting for static members that did not rejoin");
                    cx.set(join_key(&g.id), g.rebalance_timeout_ms());
                    return;
                }
                None => g.leader = None,
            }
        }
        cx.cancel(join_key(&g.id));
        g.initial_delay = None;
        g.generation += 1;
        g.pending_sync.clear();
        if g.members.is_empty() {
            g.protocol_name = None;
            g.transition(GroupState::Empty, cx.now);
            cx.emit(Record::Group { group: g.id.clone(), value: Some(g.snapshot(cx.now, None)) });
            return;
        }
        g.protocol_name = g.select_protocol();
        g.transition(GroupState::CompletingRebalance, cx.now);
        tracing::info!(
            group = g.id.as_str(),
            generation = g.generation,
            members = g.members.len(),
            protocol = g.protocol_name.as_deref().unwrap_or(""),
            "join phase complete"
        );
        let leader = g.leader.clone().unwrap_or_default();
        let answered: Vec<(String, Waiter)> = g.members.values().filter_map(|m| m.awaiting_join.map(|w| (m.id.clone(), w))).collect();
        for (id, w) in answered {
            let r = join_answer(g, &id, id == leader);
            cx.reply(w.request, Reply::Join(r));
            let m = g.members.get_mut(&id).expect("member");
            m.awaiting_join = None;
            m.is_new = false;
            cx.set(heartbeat_key(&g.id, &id), m.session_timeout_ms as i64);
            g.pending_sync.insert(id);
        }
        cx.set(TimerKey::Sync { group: g.id.clone(), generation: g.generation }, g.rebalance_timeout_ms());
    }
}

// ------------------------------------------------------------------ SyncGroup (§2.9)

impl Shard {
    /// SyncGroup.
    pub fn sync(&mut self, now: i64, req: RequestId, s: SyncInput, version: i16) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        if self.classic_goes_to_consumer_group(&s.group_id) {
            let r = self.classic_sync_consumer_group(&mut cx, &s);
            cx.reply(req, Reply::Sync(r));
            return self.done(cx);
        }
        let Some((mut rules, g)) = self.split(&s.group_id) else {
            cx.reply(req, Reply::Sync(SyncResult::error(ErrorCode::UNKNOWN_MEMBER_ID)));
            return self.done(cx);
        };
        if let Err(code) = rules.sync_in(&mut cx, g, req, &s, version) {
            cx.reply(req, Reply::Sync(SyncResult::error(code)));
        }
        self.done(cx)
    }
}

impl Rules<'_> {
    fn sync_in(&mut self, cx: &mut Cx, g: &mut Group, req: RequestId, s: &SyncInput, version: i16) -> Result<(), ErrorCode> {
        match g.state {
            GroupState::Dead => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            GroupState::Empty => Err(ErrorCode::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => {
                check_sync(g, s)?;
                Err(ErrorCode::REBALANCE_IN_PROGRESS)
            }
            GroupState::CompletingRebalance => {
                check_sync(g, s)?;
                g.pending_sync.remove(&s.member_id);
                if g.pending_sync.is_empty() {
                    cx.cancel(TimerKey::Sync { group: g.id.clone(), generation: g.generation });
                }
                g.members.get_mut(&s.member_id).expect("validated").awaiting_sync = Some(Waiter { request: req, version });
                if g.leader.as_deref() == Some(s.member_id.as_str()) {
                    self.complete_sync(cx, g, &s.assignments);
                }
                Ok(())
            }
            GroupState::Stable => {
                check_sync(g, s)?;
                g.pending_sync.remove(&s.member_id);
                if g.pending_sync.is_empty() {
                    cx.cancel(TimerKey::Sync { group: g.id.clone(), generation: g.generation });
                }
                let assignment = g.members[&s.member_id].assignment.clone();
                cx.reply(req, Reply::Sync(sync_answer(g, assignment)));
                Ok(())
            }
        }
    }

    /// The leader's assignment arrived: persist it, answer every parked SyncGroup, go Stable.
    fn complete_sync(&mut self, cx: &mut Cx, g: &mut Group, assignments: &[(String, Bytes)]) {
        let mut map: HashMap<String, Bytes> = HashMap::new();
        for (member, a) in assignments {
            if g.members.contains_key(member) {
                map.insert(member.clone(), a.clone());
            } else {
                tracing::debug!(group = g.id.as_str(), member = member.as_str(), "leader assigned to an unknown member; ignored");
            }
        }
        for id in g.members.keys() {
            map.entry(id.clone()).or_default();
        }
        cx.emit(Record::Group { group: g.id.clone(), value: Some(g.snapshot(cx.now, Some(&map))) });
        for (id, a) in map {
            let m = g.members.get_mut(&id).expect("member");
            m.assignment = a;
        }
        let parked: Vec<(String, Waiter)> = g.members.values().filter_map(|m| m.awaiting_sync.map(|w| (m.id.clone(), w))).collect();
        for (id, w) in parked {
            let assignment = g.members[&id].assignment.clone();
            cx.reply(w.request, Reply::Sync(sync_answer(g, assignment)));
            let m = g.members.get_mut(&id).expect("member");
            m.awaiting_sync = None;
            cx.set(heartbeat_key(&g.id, &id), m.session_timeout_ms as i64);
        }
        g.transition(GroupState::Stable, cx.now);
        if let Some(started) = g.rebalance_started.take() {
            metrics::histogram!("corral_rebalance_seconds").record((cx.now - started) as f64 / 1000.0);
        }
    }

    /// The pending-sync timer fired: members that never sent SyncGroup are removed (§2.9).
    pub(super) fn on_sync_timer(&mut self, cx: &mut Cx, g: &mut Group, generation: i32) {
        if g.generation != generation || !matches!(g.state, GroupState::CompletingRebalance | GroupState::Stable) {
            return;
        }
        let late: Vec<String> = g.pending_sync.drain().collect();
        if late.is_empty() {
            return;
        }
        for id in &late {
            tracing::info!(group = g.id.as_str(), member = id.as_str(), "removing a member that did not send SyncGroup in time");
            self.remove_member(cx, g, id);
        }
        self.prepare_rebalance(cx, g);
    }
}

// ------------------------------------------------------------------ Heartbeat (§2.11)

impl Shard {
    /// Heartbeat.
    pub fn heartbeat(&mut self, now: i64, req: RequestId, h: HeartbeatInput) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        if self.classic_goes_to_consumer_group(&h.group_id) {
            let code = self.classic_heartbeat_consumer_group(&mut cx, &h);
            cx.reply(req, Reply::Heartbeat(code));
            return self.done(cx);
        }
        let code = match self.groups.get(&h.group_id) {
            None => ErrorCode::UNKNOWN_MEMBER_ID,
            Some(g) if g.is(GroupState::Dead) => ErrorCode::COORDINATOR_NOT_AVAILABLE,
            Some(g) => match g.validate_member(&h.member_id, h.group_instance_id.as_deref()) {
                Err(code) => code,
                Ok(()) if h.generation_id != g.generation => ErrorCode::ILLEGAL_GENERATION,
                Ok(()) => match g.state {
                    GroupState::Empty | GroupState::Dead => ErrorCode::UNKNOWN_MEMBER_ID,
                    GroupState::PreparingRebalance => {
                        cx.set(heartbeat_key(&g.id, &h.member_id), g.members[&h.member_id].session_timeout_ms as i64);
                        ErrorCode::REBALANCE_IN_PROGRESS
                    }
                    GroupState::CompletingRebalance | GroupState::Stable => {
                        cx.set(heartbeat_key(&g.id, &h.member_id), g.members[&h.member_id].session_timeout_ms as i64);
                        ErrorCode::NONE
                    }
                },
            },
        };
        cx.reply(req, Reply::Heartbeat(code));
        self.done(cx)
    }
}

impl Rules<'_> {
    /// A member's session timer fired (§2.11).
    pub(super) fn on_heartbeat_timer(&mut self, cx: &mut Cx, g: &mut Group, member: &str) {
        if g.pending_members.remove(member) {
            tracing::info!(group = g.id.as_str(), member, "pending member did not rejoin within its session timeout");
            // §2.5: the join completes if it was the last one outstanding — even during the
            // initial delay (Kafka's removePendingMemberAndUpdateClassicGroup; checklist 25).
            if g.is(GroupState::PreparingRebalance) && g.all_members_joined() {
                self.complete_join(cx, g);
            }
            return;
        }
        let Some(m) = g.members.get(member) else { return };
        if !m.is_new && (m.awaiting_join.is_some() || m.awaiting_sync.is_some()) {
            return;
        }
        tracing::info!(group = g.id.as_str(), member, "member's session expired");
        metrics::counter!("corral_expired_members_total").increment(1);
        self.remove_member_and_update(cx, g, member);
    }

    /// Removes a member: its timers go, a parked request is told UNKNOWN_MEMBER_ID, the lead
    /// passes on.
    fn remove_member(&mut self, cx: &mut Cx, g: &mut Group, id: &str) {
        let Some(mut m) = g.members.remove(id) else { return };
        if let Some(instance) = &m.instance_id
            && g.static_members.get(instance).map(String::as_str) == Some(id)
        {
            g.static_members.remove(instance);
        }
        cx.cancel(heartbeat_key(&g.id, id));
        if let Some(w) = m.awaiting_join.take() {
            cx.reply(w.request, Reply::Join(JoinResult::error(ErrorCode::UNKNOWN_MEMBER_ID, "")));
        }
        if let Some(w) = m.awaiting_sync.take() {
            cx.reply(w.request, Reply::Sync(SyncResult::error(ErrorCode::UNKNOWN_MEMBER_ID)));
        }
        g.pending_sync.remove(id);
        if g.leader.as_deref() == Some(id) {
            g.leader = g.members.keys().next().cloned();
        }
    }

    /// Removes a member and moves the group on: a rebalance from Stable or
    /// CompletingRebalance, or the end of the join phase if everyone left has joined.
    fn remove_member_and_update(&mut self, cx: &mut Cx, g: &mut Group, id: &str) {
        self.remove_member(cx, g, id);
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(cx, g),
            GroupState::PreparingRebalance if g.all_members_joined() => self.complete_join(cx, g),
            _ => {}
        }
    }
}

// ------------------------------------------------------------------ LeaveGroup (§2.12)

impl Shard {
    /// LeaveGroup, in its batch form.
    pub fn leave(&mut self, now: i64, req: RequestId, l: LeaveInput) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        if self.classic_goes_to_consumer_group(&l.group_id) {
            let r = self.classic_leave_consumer_group(&mut cx, l);
            cx.reply(req, Reply::Leave(r));
            return self.done(cx);
        }
        let Some((mut rules, g)) = self.split(&l.group_id) else {
            let members = l
                .members
                .into_iter()
                .map(|(member_id, group_instance_id)| MemberError { member_id, group_instance_id, error: ErrorCode::UNKNOWN_MEMBER_ID })
                .collect();
            cx.reply(req, Reply::Leave(LeaveResult { error: ErrorCode::NONE, members }));
            return self.done(cx);
        };
        if g.is(GroupState::Dead) {
            cx.reply(req, Reply::Leave(LeaveResult { error: ErrorCode::COORDINATOR_NOT_AVAILABLE, members: Vec::new() }));
            return self.done(cx);
        }
        let mut results = Vec::with_capacity(l.members.len());
        let mut removed = false;
        for (member_id, instance) in l.members {
            let code = if member_id.is_empty() {
                match instance.as_ref().and_then(|i| g.static_members.get(i)).cloned() {
                    Some(id) => {
                        rules.remove_member(&mut cx, g, &id);
                        removed = true;
                        ErrorCode::NONE
                    }
                    None => ErrorCode::UNKNOWN_MEMBER_ID,
                }
            } else if g.pending_members.remove(&member_id) {
                cx.cancel(heartbeat_key(&g.id, &member_id));
                removed = true;
                ErrorCode::NONE
            } else {
                match g.validate_member(&member_id, instance.as_deref()) {
                    Err(code) => code,
                    Ok(()) => {
                        rules.remove_member(&mut cx, g, &member_id);
                        removed = true;
                        ErrorCode::NONE
                    }
                }
            };
            results.push(MemberError { member_id, group_instance_id: instance, error: code });
        }
        if removed {
            match g.state {
                GroupState::Stable | GroupState::CompletingRebalance => rules.prepare_rebalance(&mut cx, g),
                // Kafka's maybeCompleteJoinPhase: an initial rebalance still waits out its delay.
                GroupState::PreparingRebalance => rules.maybe_complete_join(&mut cx, g),
                _ => {}
            }
        }
        cx.reply(req, Reply::Leave(LeaveResult { error: ErrorCode::NONE, members: results }));
        self.done(cx)
    }
}

/// A JoinGroup answer for the current generation; the leader also gets the member list.
fn join_answer(g: &Group, member_id: &str, with_members: bool) -> JoinResult {
    let protocol = g.protocol_name.clone();
    JoinResult {
        error: ErrorCode::NONE,
        generation_id: g.generation,
        protocol_type: g.protocol_type.clone(),
        protocol_name: protocol.clone(),
        leader: g.leader.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_string(),
        members: if with_members {
            g.members
                .values()
                .map(|m| JoinMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: protocol.as_deref().and_then(|p| m.metadata(p)).cloned().unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// A SyncGroup's checks against a group in a rebalance or Stable, in Kafka's order: the member,
/// its generation, then the protocol type and name if it gave them.
fn check_sync(g: &Group, s: &SyncInput) -> Result<(), ErrorCode> {
    g.validate_member(&s.member_id, s.group_instance_id.as_deref())?;
    if s.generation_id != g.generation {
        return Err(ErrorCode::ILLEGAL_GENERATION);
    }
    if s.protocol_type.as_ref().is_some_and(|t| Some(t) != g.protocol_type.as_ref())
        || s.protocol_name.as_ref().is_some_and(|n| Some(n) != g.protocol_name.as_ref())
    {
        return Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    }
    Ok(())
}

/// A SyncGroup answer for the current generation, carrying the member's assignment.
fn sync_answer(g: &Group, assignment: Bytes) -> SyncResult {
    SyncResult { error: ErrorCode::NONE, protocol_type: g.protocol_type.clone(), protocol_name: g.protocol_name.clone(), assignment }
}
