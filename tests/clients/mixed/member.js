// A kafkajs consumer-group member for ../groupcheck.py (the line protocol is described there).
//
//   node member.js [--kafkajs-default-assigner] BOOTSTRAP TOPIC GROUP ASSIGNOR   (range | roundrobin)
//
// kafkajs is resolved from tests/clients/node_modules (mixed/install.sh puts it there).
//
// Why custom assigners: kafkajs's only built-in assigner announces the protocol name
// "RoundRobinAssigner", while the Java client, librdkafka and kafka-python announce
// "range" / "roundrobin". A classic group only admits a member that shares a protocol name
// with every other member, so a stock kafkajs consumer cannot join a group of the others
// (the coordinator answers INCONSISTENT_GROUP_PROTOCOL; check.py's inconsistent-protocol
// check shows it with --kafkajs-default-assigner). So this member announces "range" or
// "roundrobin" itself, with assigners that compute exactly what Java's RangeAssignor and
// RoundRobinAssignor compute (members sorted by member id; range: per topic, consecutive
// slices, the first n % m members one extra; roundrobin: all partitions sorted by topic then
// partition, dealt out in member order, skipping members not subscribed to the topic). The
// assignment then does not depend on which client happens to be the leader. Subscriptions
// and assignments use ConsumerProtocol version 0 (topics + user data), which every client
// decodes; kafkajs reads the fields it knows from the others' newer versions and ignores the rest.
'use strict'
const args = process.argv.slice(2)
const useDefault = args[0] === '--kafkajs-default-assigner'
const [bootstrap, topic, group, assignorName] = args.slice(-4)

const { Kafka, logLevel, AssignerProtocol, PartitionAssigners } = require('kafkajs')
const { MemberMetadata, MemberAssignment } = AssignerProtocol

const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n')

function subscriptions(members) {
  return members
    .map(m => ({ id: m.memberId, topics: MemberMetadata.decode(m.memberMetadata).topics }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

function partitionsOf(cluster, t) {
  return cluster
    .findTopicPartitionMetadata(t)
    .map(p => p.partitionId)
    .sort((a, b) => a - b)
}

function encodeAll(members, assignment) {
  return members.map(m => ({
    memberId: m.memberId,
    memberAssignment: MemberAssignment.encode({ version: 0, assignment: assignment[m.memberId] || {} }),
  }))
}

const protocolFor = name => ({ topics }) => ({
  name,
  metadata: MemberMetadata.encode({ version: 0, topics }),
})

// Java's RangeAssignor.
const RangeAssigner = ({ cluster }) => ({
  name: 'range',
  version: 0,
  async assign({ members }) {
    const subs = subscriptions(members)
    const topics = [...new Set(subs.flatMap(s => s.topics))].sort()
    await cluster.addMultipleTargetTopics(topics)
    const assignment = {}
    for (const t of topics) {
      const consumers = subs.filter(s => s.topics.includes(t)).map(s => s.id)
      const parts = partitionsOf(cluster, t)
      const per = Math.floor(parts.length / consumers.length)
      const extra = parts.length % consumers.length
      consumers.forEach((id, i) => {
        const start = per * i + Math.min(i, extra)
        const len = per + (i < extra ? 1 : 0)
        assignment[id] = assignment[id] || {}
        if (len > 0) assignment[id][t] = parts.slice(start, start + len)
      })
    }
    return encodeAll(members, assignment)
  },
  protocol: protocolFor('range'),
})

// Java's RoundRobinAssignor.
const RoundRobinAssigner = ({ cluster }) => ({
  name: 'roundrobin',
  version: 0,
  async assign({ members }) {
    const subs = subscriptions(members)
    const topics = [...new Set(subs.flatMap(s => s.topics))].sort()
    await cluster.addMultipleTargetTopics(topics)
    const assignment = {}
    let next = 0
    for (const t of topics) {
      for (const p of partitionsOf(cluster, t)) {
        while (!subs[next % subs.length].topics.includes(t)) next++
        const id = subs[next % subs.length].id
        next++
        assignment[id] = assignment[id] || {}
        ;(assignment[id][t] = assignment[id][t] || []).push(p)
      }
    }
    return encodeAll(members, assignment)
  },
  protocol: protocolFor('roundrobin'),
})

const toStderr = () => ({ level, log }) => {
  process.stderr.write(`${new Date().toISOString()} kafkajs ${level} ${log.message} ${JSON.stringify(log)}\n`)
}

const kafka = new Kafka({
  clientId: 'corral-kjs-member',
  brokers: [bootstrap],
  logLevel: logLevel.INFO,
  logCreator: toStderr,
  retry: { retries: 5 },
})

const consumer = kafka.consumer({
  groupId: group,
  sessionTimeout: 6000,
  heartbeatInterval: 1000,
  rebalanceTimeout: 30000,
  maxWaitTimeInMs: 100,
  partitionAssigners: useDefault
    ? [PartitionAssigners.roundRobin]
    : [{ range: RangeAssigner, roundrobin: RoundRobinAssigner }[assignorName]],
  retry: useDefault ? { retries: 0, restartOnFailure: async () => false } : { retries: 5 },
})

const { GROUP_JOIN, CRASH } = consumer.events
consumer.on(GROUP_JOIN, e => {
  const parts = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
  emit({ ev: 'assigned', parts, leader: e.payload.isLeader, protocol: e.payload.groupProtocol })
})
consumer.on(CRASH, e => {
  const err = e.payload.error
  emit({ ev: 'error', err: `crash: ${err && err.name} ${err && err.type} ${err && err.message}`, type: err && err.type })
  if (useDefault) process.exit(3)
})

let stopping = false
async function stop() {
  if (stopping) return
  stopping = true
  try {
    await consumer.disconnect() // LeaveGroup
    emit({ ev: 'closed' })
    process.exit(0)
  } catch (e) {
    emit({ ev: 'error', err: `disconnect: ${e}` })
    process.exit(1)
  }
}
process.on('SIGTERM', stop)
setTimeout(stop, 600000).unref()

async function main() {
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset, isRunning, isStale }) => {
      if (batch.messages.length === 0) return
      const recs = batch.messages.map(m => [
        batch.partition,
        Number(m.offset),
        m.key === null ? null : m.key.toString(),
        m.value.toString(),
      ])
      const last = batch.messages[batch.messages.length - 1].offset
      for (const m of batch.messages) resolveOffset(m.offset)
      try {
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() }])
      } catch (e) {
        emit({ ev: 'error', err: `commit: ${e}` })
      }
      emit({ ev: 'msgs', recs })
    },
  })
}

main().catch(e => {
  emit({ ev: 'error', err: `main: ${e && e.type} ${e}`, type: e && e.type })
  process.exit(2)
})
