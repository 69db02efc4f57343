// kafkajs 2.2.4 against corral. kafkajs speaks only non-flexible protocol versions (Produce v7,
// Fetch v11, JoinGroup v5, SyncGroup v3, Heartbeat v3, OffsetCommit v5, ...), which is why it is
// in the suite. In proxy mode (CORRAL_MODE=proxy, see ../run.sh) topics are made through the mock
// upstream's control port and create-topic is a SKIP: the mock has no CreateTopics. Usage:
//   node check.mjs BOOTSTRAP                            the checks
//   node check.mjs --member BOOTSTRAP TOPIC GROUP       one group member (group-kill's child)
import { createRequire } from 'node:module'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { CORRAL_NODE_ID, EXPECT_BROKERS, PROXY, mockCreate, upstreamLacks } from '../suitemode.mjs'

const F = 'kafkajs'
const require = createRequire(import.meta.url)
let kafkajs
try {
  kafkajs = require('kafkajs')
} catch (e) {
  console.log(`FAIL ${F} install: kafkajs is not installed (${e.message.split('\n')[0]}); run tests/clients/kafkajs/install.sh`)
  process.exit(1)
}
const { Kafka, logLevel, Partitioners, AssignerProtocol } = kafkajs

const SESSION_MS = 6000 // corral's group.min.session.timeout.ms
const HEARTBEAT_MS = 1000
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// kafkajs logs with console.*; send them to stderr so stdout carries only result lines.
const logCreator = () => ({ namespace, level, label, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`[${F} ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
}

function client(bootstrap, clientId) {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator,
    retry: { retries: 5, initialRetryTime: 100 },
  })
}

function groupConsumer(kafka, groupId, extra = {}) {
  return kafka.consumer({
    groupId,
    sessionTimeout: SESSION_MS,
    rebalanceTimeout: 10000,
    heartbeatInterval: HEARTBEAT_MS,
    maxWaitTimeInMs: 250,
    retry: { retries: 5, initialRetryTime: 100 },
    ...extra,
  })
}

// ---------------------------------------------------------------- child: one group member
if (process.argv[2] === '--member') {
  const [, , , bootstrap, topic, groupId] = process.argv
  const kafka = client(bootstrap, 'kjs-child')
  const c = groupConsumer(kafka, groupId)
  c.on(c.events.GROUP_JOIN, e => {
    const parts = e.payload.memberAssignment[topic] || []
    process.stdout.write(JSON.stringify({ assigned: parts }) + '\n')
  })
  await c.connect()
  await c.subscribe({ topics: [topic], fromBeginning: true })
  await c.run({ autoCommitInterval: 200, eachMessage: async () => {} })
  await new Promise(() => {}) // until SIGKILL
}

// ---------------------------------------------------------------- the checks
const B = process.argv[2]
if (!B) {
  console.error('usage: check.mjs BOOTSTRAP')
  process.exit(2)
}
let failed = 0
const pass = check => console.log(`PASS ${F} ${check}`)
const fail = (check, why) => {
  failed++
  console.log(`FAIL ${F} ${check}: ${String(why).replace(/\s+/g, ' ').slice(0, 600)}`)
}
// closers of what a check started, run when it ends, passed or failed, so that a failure does
// not leave members in groups that later checks look at
const checkClosers = []
const atCheckEnd = f => checkClosers.push(f)
const closeQuietly = f => Promise.race([Promise.resolve().then(f).catch(() => {}), sleep(5000)])
// Runs one check with a time limit; the body returns nothing (PASS) or throws (FAIL). With
// skipWhy, a body that returns is a SKIP for that reason (it checked what it could; a throw is
// still a FAIL).
async function check(name, limitMs, body, skipWhy = null) {
  const t0 = Date.now()
  let timer
  try {
    await Promise.race([
      body(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${limitMs} ms`)), limitMs)
      }),
    ])
    if (skipWhy) console.log(`SKIP ${F} ${name}: ${skipWhy}`)
    else pass(name)
  } catch (e) {
    const detail = e && e.groups ? ` ${JSON.stringify(e.groups.map(g => [g.groupId, g.error?.type]))}` : ''
    fail(name, e && e.stack ? `${e.message}${e.type ? ` [${e.type}]` : ''}${detail}` : e)
    if (e && e.stack) process.stderr.write(`${name}: ${e.stack}\n`)
  } finally {
    clearTimeout(timer)
    for (const f of checkClosers.splice(0).reverse()) await closeQuietly(f)
    console.log(`# ${F} ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  }
}
// A check that cannot run because the upstream lacks an API: SKIP, after setup (what the
// check would have made, made another way), whose failure is a FAIL.
async function skipCheck(name, why, setup = async () => {}) {
  try {
    await setup()
    console.log(`SKIP ${F} ${name}: ${why}`)
  } catch (e) {
    fail(name, `${why}; and the setup in its place failed: ${e && e.message}`)
  }
}
function assert(cond, why) {
  if (!cond) throw new Error(why)
}
async function waitFor(what, limitMs, pred) {
  const end = Date.now() + limitMs
  while (!pred()) {
    if (Date.now() > end) throw new Error(`waited ${limitMs} ms for ${what}`)
    await sleep(25)
  }
}

const kafka = client(B, 'kjs-suite')
const admin = kafka.admin()
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
const cleanup = [] // closers of the group members several checks share, run at the end

const T_DATA = 'kjs-data' // 3 partitions
const T_GROUP = 'kjs-group' // 6 partitions
const T_RESUME = 'kjs-resume' // 1 partition
const T_IDEM = 'kjs-idem' // 3 partitions
const G_DATA = 'kjs-g-data'
const G_BAL = 'kjs-g-balance'
const G_RESUME = 'kjs-g-resume'
const G_DEL = 'kjs-g-empty'

await check('metadata', 20000, async () => {
  await admin.connect()
  const c = await admin.describeCluster()
  assert(c.brokers.length === EXPECT_BROKERS, `describeCluster brokers ${JSON.stringify(c.brokers)}, expected ${EXPECT_BROKERS}`)
  if (PROXY) {
    // the upstream's brokers at corral listeners, corral's own node at the bootstrap address,
    // the controller one of the upstream's
    const me = c.brokers.find(b => b.nodeId === CORRAL_NODE_ID)
    assert(me && `${me.host}:${me.port}` === B, `no node ${CORRAL_NODE_ID} at ${B}: ${JSON.stringify(c.brokers)}`)
    assert(c.controller !== CORRAL_NODE_ID && c.brokers.some(b => b.nodeId === c.controller), `controller ${c.controller}, brokers ${JSON.stringify(c.brokers)}`)
  } else {
    assert(c.controller === c.brokers[0].nodeId, `controller ${c.controller}, brokers ${JSON.stringify(c.brokers)}`)
  }
  const md = await admin.fetchTopicMetadata({ topics: [] })
  assert(Array.isArray(md.topics), `fetchTopicMetadata ${JSON.stringify(md)}`)
})

if (PROXY) {
  await skipCheck('create-topic', upstreamLacks('CreateTopics'), async () => {
    for (const [t, n] of [[T_DATA, 3], [T_GROUP, 6], [T_RESUME, 1], [T_IDEM, 3]]) await mockCreate(t, n)
  })
} else await check('create-topic', 20000, async () => {
  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: T_DATA, numPartitions: 3 },
      { topic: T_GROUP, numPartitions: 6 },
      { topic: T_RESUME, numPartitions: 1 },
      { topic: T_IDEM, numPartitions: 3 },
    ],
  })
  assert(created === true, `createTopics returned ${created}`)
  const md = await admin.fetchTopicMetadata({ topics: [T_DATA, T_GROUP, T_RESUME, T_IDEM] })
  const counts = Object.fromEntries(md.topics.map(t => [t.name, t.partitions.length]).sort())
  const want = Object.fromEntries([[T_DATA, 3], [T_GROUP, 6], [T_RESUME, 1], [T_IDEM, 3]].sort())
  assert(JSON.stringify(counts) === JSON.stringify(want), `partition counts ${JSON.stringify(counts)}`)
  const names = await admin.listTopics()
  assert(names.includes(T_DATA) && names.includes(T_GROUP), `listTopics ${JSON.stringify(names)}`)
  // creating it again must fail with TOPIC_ALREADY_EXISTS (kafkajs returns false)
  const again = await admin.createTopics({ topics: [{ topic: T_DATA, numPartitions: 3 }] })
  assert(again === false, `second createTopics returned ${again}, expected false (TOPIC_ALREADY_EXISTS)`)
})

let dataOk = false
await check('produce-consume-10k', 90000, async () => {
  const N = 10000
  await producer.connect()
  for (let i = 0; i < N; i += 1000) {
    const messages = []
    for (let j = i; j < i + 1000; j++) messages.push({ key: `k${j % 37}`, value: `v${j}` })
    await producer.send({ topic: T_DATA, acks: -1, messages })
  }
  const c = groupConsumer(kafka, G_DATA)
  atCheckEnd(() => c.disconnect())
  await c.connect()
  await c.subscribe({ topics: [T_DATA], fromBeginning: true })
  const seen = new Map() // value -> count
  const lastOffset = new Map() // partition -> offset
  const lastValue = new Map() // partition -> value index
  const keyPartition = new Map()
  const problems = []
  await c.run({
    eachMessage: async ({ partition, message }) => {
      const v = Number(message.value.toString().slice(1))
      const k = message.key.toString()
      if (k !== `k${v % 37}`) problems.push(`key ${k} with value v${v}`)
      const off = Number(message.offset)
      if ((lastOffset.get(partition) ?? -1) >= off) problems.push(`p${partition} offset ${off} after ${lastOffset.get(partition)}`)
      if ((lastValue.get(partition) ?? -1) >= v) problems.push(`p${partition} v${v} after v${lastValue.get(partition)}`)
      lastOffset.set(partition, off)
      lastValue.set(partition, v)
      if (keyPartition.has(k) && keyPartition.get(k) !== partition) problems.push(`key ${k} in p${keyPartition.get(k)} and p${partition}`)
      keyPartition.set(k, partition)
      seen.set(v, (seen.get(v) || 0) + 1)
    },
  })
  await waitFor(`${N} messages (have ${seen.size})`, 60000, () => seen.size >= N || problems.length > 0)
  await sleep(300) // a duplicate would show up here
  await c.disconnect()
  assert(problems.length === 0, problems.slice(0, 5).join('; '))
  const dups = [...seen.values()].filter(n => n > 1).length
  assert(seen.size === N && dups === 0, `${seen.size} distinct of ${N}, ${dups} duplicated`)
  assert(lastOffset.size === 3, `messages in ${lastOffset.size} partitions, expected 3`)
  const offsets = await admin.fetchTopicOffsets(T_DATA)
  const high = offsets.reduce((s, p) => s + Number(p.high), 0)
  assert(high === N, `high watermarks sum to ${high}`)
  dataOk = true
})

// ------------------------------------------------------------ group: balance, leave, kill
// Members record their latest assignment; the messages they see are counted per value.
const members = []
const consumedBy = new Map() // value -> [member names]
function member(name) {
  const m = { name, parts: [], memberId: null, c: groupConsumer(kafka, G_BAL) }
  m.c.on(m.c.events.GROUP_JOIN, e => {
    m.parts = (e.payload.memberAssignment[T_GROUP] || []).slice().sort((a, b) => a - b)
    m.memberId = e.payload.memberId
  })
  return m
}
async function startMember(m) {
  await m.c.connect()
  await m.c.subscribe({ topics: [T_GROUP], fromBeginning: true })
  await m.c.run({
    autoCommitInterval: 200,
    eachMessage: async ({ message }) => {
      const v = message.value.toString()
      if (!consumedBy.has(v)) consumedBy.set(v, [])
      consumedBy.get(v).push(m.name)
    },
  })
}
async function produceGroup(tag, n) {
  await sleep(1000) // let fetches issued before the last rebalance finish
  const messages = []
  for (let i = 0; i < n; i++) messages.push({ key: `${tag}-${i}`, value: `${tag}-${i}` })
  await producer.send({ topic: T_GROUP, acks: -1, messages })
  const want = new Set(messages.map(m => m.value))
  await waitFor(`${n} ${tag} messages consumed`, 20000, () => [...want].every(v => consumedBy.has(v)))
  await sleep(500) // a duplicate would show up here
  const dups = [...want].filter(v => consumedBy.get(v).length !== 1)
  assert(dups.length === 0, `${dups.length} of ${n} ${tag} messages consumed more than once, e.g. ${dups[0]} by ${consumedBy.get(dups[0])}`)
}
const describeParts = ms => ms.map(m => `${m.name}:[${m.parts}]`).join(' ')
const balanced = (ms, each) => () => {
  const all = ms.flatMap(m => m.parts)
  return ms.every(m => m.parts.length === each) && new Set(all).size === 6
}

let balanceOk = false
await check('group-balance', 40000, async () => {
  for (const name of ['m1', 'm2', 'm3']) {
    const m = member(name)
    members.push(m)
    cleanup.push(() => m.c.disconnect())
    await startMember(m)
  }
  await waitFor(`2 partitions each (${describeParts(members)})`, 25000, balanced(members, 2))
  await produceGroup('bal', 600)
  const by = new Set(members.flatMap(m => [...consumedBy.values()].filter(l => l[0] === m.name).length ? [m.name] : []))
  assert(by.size === 3, `only ${[...by]} consumed anything`)
  balanceOk = true
})

let leaveMs = null
let killOk = false
await check('group-leave', 30000, async () => {
  assert(balanceOk, 'needs group-balance')
  const gone = members.shift()
  const t0 = Date.now()
  await gone.c.disconnect() // LeaveGroup
  await waitFor(`3 partitions each after ${gone.name} left (${describeParts(members)})`, 20000, balanced(members, 3))
  leaveMs = Date.now() - t0
  console.log(`# ${F} group-leave: reassigned ${leaveMs} ms after the clean leave`)
  assert(leaveMs < SESSION_MS - 1000, `reassignment took ${leaveMs} ms, not quicker than the ${SESSION_MS} ms session timeout`)
  await produceGroup('leave', 300)
})

await check('group-kill', 60000, async () => {
  assert(leaveMs !== null, 'needs group-leave')
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--member', B, T_GROUP, G_BAL], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  atCheckEnd(() => child.kill('SIGKILL'))
  let childParts = []
  let buf = ''
  child.stdout.on('data', d => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try {
        childParts = JSON.parse(line).assigned
      } catch {}
    }
  })
  await waitFor(`the child to join: 2 partitions each (${describeParts(members)} child:[${childParts}])`, 25000, () =>
    childParts.length === 2 && members.every(m => m.parts.length === 2) && new Set([...childParts, ...members.flatMap(m => m.parts)]).size === 6
  )
  await sleep(1500) // let the child's first auto-commits happen; it consumed nothing new
  const t0 = Date.now()
  child.kill('SIGKILL')
  await new Promise(resolve => child.once('exit', resolve))
  await waitFor(`3 partitions each after SIGKILL (${describeParts(members)})`, 25000, balanced(members, 3))
  const ms = Date.now() - t0
  console.log(`# ${F} group-kill: reassigned ${ms} ms after SIGKILL (session timeout ${SESSION_MS} ms)`)
  assert(ms >= SESSION_MS - HEARTBEAT_MS - 500, `reassigned after ${ms} ms, before the ${SESSION_MS} ms session timeout could expire`)
  assert(ms <= SESSION_MS + 6000, `reassigned only after ${ms} ms (session timeout ${SESSION_MS} ms)`)
  await produceGroup('kill', 300)
  killOk = true
})

// ------------------------------------------------------------ commit-resume
let resumeOk = false
await check('commit-resume', 40000, async () => {
  const N = 100
  const messages = []
  for (let i = 0; i < N; i++) messages.push({ key: `r${i}`, value: `r${i}` })
  await producer.send({ topic: T_RESUME, acks: -1, messages })
  const first = groupConsumer(kafka, G_RESUME)
  atCheckEnd(() => first.disconnect())
  await first.connect()
  await first.subscribe({ topics: [T_RESUME], fromBeginning: true })
  let got = 0
  let committed = false
  await first.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      if (got >= 50) return
      got++
      if (got === 50) {
        await first.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
        first.pause([{ topic }])
        committed = true
      }
    },
  })
  await waitFor('50 messages and the commit', 20000, () => committed)
  await first.disconnect()

  const second = groupConsumer(kafka, G_RESUME)
  atCheckEnd(() => second.disconnect())
  await second.connect()
  await second.subscribe({ topics: [T_RESUME], fromBeginning: true })
  const offsets = []
  await second.run({ autoCommit: false, eachMessage: async ({ message }) => offsets.push(Number(message.offset)) })
  await waitFor(`the remaining 50 (have ${offsets.length})`, 20000, () => offsets.length >= 50)
  await sleep(300)
  await second.disconnect()
  assert(offsets[0] === 50, `resumed at offset ${offsets[0]}, committed 50`)
  assert(offsets.length === 50 && offsets[49] === 99, `read ${offsets.length} messages, offsets ${offsets[0]}..${offsets.at(-1)}`)
  resumeOk = true
})

// ------------------------------------------------------------ admin
await check('list-groups', 15000, async () => {
  const { groups } = await admin.listGroups()
  const ids = groups.map(g => g.groupId)
  for (const g of [G_DATA, G_BAL, G_RESUME]) assert(ids.includes(g), `${g} missing from ${JSON.stringify(groups)}`)
  const bal = groups.find(g => g.groupId === G_BAL)
  assert(bal.protocolType === 'consumer', `protocolType ${bal.protocolType}`)
})

await check('describe-group', 15000, async () => {
  assert(killOk, 'needs group-kill (describes the two members it leaves)')
  const { groups } = await admin.describeGroups([G_BAL, G_RESUME])
  const bal = groups.find(g => g.groupId === G_BAL)
  assert(bal && bal.errorCode === 0, `describeGroups ${JSON.stringify(groups)}`)
  assert(bal.state === 'Stable', `${G_BAL} state ${bal.state}`)
  assert(bal.protocolType === 'consumer' && bal.protocol === 'RoundRobinAssigner', `protocol ${bal.protocolType}/${bal.protocol}`)
  // the members and assignments are exactly what the members themselves were told
  const want = new Map(members.map(m => [m.memberId, m]))
  const ids = bal.members.map(mb => mb.memberId)
  assert(ids.length === want.size && ids.every(id => want.has(id)), `members ${JSON.stringify(ids)}, expected ${JSON.stringify([...want.keys()])}`)
  const assigned = []
  for (const mb of bal.members) {
    assert(mb.clientId === 'kjs-suite', `member ${mb.memberId} client ${mb.clientId}`)
    const meta = AssignerProtocol.MemberMetadata.decode(mb.memberMetadata)
    assert(meta && meta.topics.includes(T_GROUP), `member ${mb.memberId} metadata ${JSON.stringify(meta)}`)
    const a = AssignerProtocol.MemberAssignment.decode(mb.memberAssignment)
    const parts = ((a && a.assignment[T_GROUP]) || []).slice().sort((x, y) => x - y)
    const m = want.get(mb.memberId)
    assert(JSON.stringify(parts) === JSON.stringify(m.parts), `member ${mb.memberId} (${m.name}) assignment ${JSON.stringify(a)}, it was told [${m.parts}]`)
    assigned.push(...parts)
  }
  assert(assigned.length === 6 && new Set(assigned).size === 6, `assignments cover ${JSON.stringify(assigned)}`)
  const res = groups.find(g => g.groupId === G_RESUME)
  assert(res.state === 'Empty' && res.members.length === 0, `${G_RESUME}: state ${res.state}, ${res.members.length} members`)
})

await check('list-group-offsets', 15000, async () => {
  assert(resumeOk && dataOk, `needs ${[resumeOk ? '' : 'commit-resume', dataOk ? '' : 'produce-consume-10k'].filter(Boolean).join(' and ')} (lists the offsets they commit)`)
  const r = await admin.fetchOffsets({ groupId: G_RESUME, topics: [T_RESUME] })
  const p = r.find(t => t.topic === T_RESUME)?.partitions.find(x => x.partition === 0)
  assert(p && p.offset === '50', `fetchOffsets ${JSON.stringify(r)}`)
  const all = await admin.fetchOffsets({ groupId: G_DATA })
  const d = all.find(t => t.topic === T_DATA)
  const sum = d ? d.partitions.reduce((s, x) => s + Number(x.offset), 0) : -1
  assert(sum === 10000, `${G_DATA} committed offsets sum to ${sum}, expected 10000: ${JSON.stringify(all)}`)
})

await check('reset-offsets', 40000, async () => {
  // G_RESUME is empty: kafkajs' setOffsets joins as a consumer, seeks, commits, leaves.
  await admin.setOffsets({ groupId: G_RESUME, topic: T_RESUME, partitions: [{ partition: 0, offset: '10' }] })
  const r = await admin.fetchOffsets({ groupId: G_RESUME, topics: [T_RESUME] })
  const p = r[0]?.partitions.find(x => x.partition === 0)
  assert(p && p.offset === '10', `after setOffsets(10): ${JSON.stringify(r)}`)
  const c = groupConsumer(kafka, G_RESUME)
  atCheckEnd(() => c.disconnect())
  await c.connect()
  await c.subscribe({ topics: [T_RESUME], fromBeginning: false })
  const offsets = []
  await c.run({ autoCommit: false, eachMessage: async ({ message }) => offsets.push(Number(message.offset)) })
  await waitFor(`messages from offset 10 (have ${offsets.length})`, 20000, () => offsets.length >= 90)
  await c.disconnect()
  assert(offsets[0] === 10 && offsets.length === 90, `consumer started at ${offsets[0]}, read ${offsets.length}`)
  // resetOffsets(earliest): kafkajs commits its EARLIEST sentinel -2 (Kafka stores it as it is;
  // a kafkajs consumer then starts where its own fromBeginning says)
  await admin.resetOffsets({ groupId: G_RESUME, topic: T_RESUME, earliest: true })
  const r2 = await admin.fetchOffsets({ groupId: G_RESUME, topics: [T_RESUME] })
  const p2 = r2[0]?.partitions.find(x => x.partition === 0)
  assert(p2 && (p2.offset === '-2' || p2.offset === '0'), `after resetOffsets(earliest): ${JSON.stringify(r2)}`)
})

await check('delete-group', 20000, async () => {
  // an empty group with committed offsets: deleted, and gone from ListGroups
  const res = await admin.deleteGroups([G_RESUME])
  assert(res.length === 1 && res[0].errorCode === 0, `deleteGroups ${JSON.stringify(res)}`)
  const { groups } = await admin.listGroups()
  assert(!groups.some(g => g.groupId === G_RESUME), `${G_RESUME} still listed after delete`)
  const off = await admin.fetchOffsets({ groupId: G_RESUME, topics: [T_RESUME] })
  assert(off[0].partitions[0].offset === '-1', `offsets after delete ${JSON.stringify(off)}`)
  // a group that never existed: GROUP_ID_NOT_FOUND
  let e1 = null
  try {
    await admin.deleteGroups([G_DEL])
  } catch (e) {
    e1 = e
  }
  const t1 = e1?.groups?.[0]?.error?.type
  assert(t1 === 'GROUP_ID_NOT_FOUND', `deleting an unknown group: ${e1 ? e1.message + ' ' + t1 : 'no error'}`)
  // a non-empty group (two members still in G_BAL) must fail with NON_EMPTY_GROUP
  let e2 = null
  try {
    await admin.deleteGroups([G_BAL])
  } catch (e) {
    e2 = e
  }
  const t2 = e2?.groups?.[0]?.error?.type
  assert(t2 === 'NON_EMPTY_GROUP', `deleting the live group ${G_BAL}: ${e2 ? e2.message + ' ' + t2 : 'no error'}`)
})

// ------------------------------------------------------------ idempotent producer
await check('idempotent-producer', 40000, async () => {
  const N = 3000
  const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
  atCheckEnd(() => p.disconnect())
  await p.connect()
  for (let i = 0; i < N; i += 500) {
    const messages = []
    for (let j = i; j < i + 500; j++) messages.push({ key: `i${j % 11}`, value: `i${j}` })
    await p.send({ topic: T_IDEM, acks: -1, messages })
  }
  await p.disconnect()
  const offsets = await admin.fetchTopicOffsets(T_IDEM)
  const high = offsets.reduce((s, x) => s + Number(x.high), 0)
  assert(high === N, `high watermarks sum to ${high}, sent ${N}`)
  // read back: producer ids and sequences are in the batches
  const c = kafka.consumer({ groupId: 'kjs-g-idem', maxWaitTimeInMs: 250 })
  atCheckEnd(() => c.disconnect())
  await c.connect()
  await c.subscribe({ topics: [T_IDEM], fromBeginning: true })
  const seen = new Set()
  const pids = new Set()
  const seqProblems = []
  const nextSeq = new Map()
  await c.run({
    eachMessage: async ({ partition, message }) => {
      const ctx = message.batchContext
      pids.add(`${ctx.producerId}/${ctx.producerEpoch}`)
      const seq = ctx.firstSequence + (Number(message.offset) - Number(ctx.firstOffset))
      const want = nextSeq.get(partition) ?? 0
      if (seq !== want) seqProblems.push(`p${partition} offset ${message.offset} has sequence ${seq}, expected ${want}`)
      nextSeq.set(partition, seq + 1)
      seen.add(message.value.toString())
    },
  })
  await waitFor(`${N} messages back (have ${seen.size})`, 20000, () => seen.size >= N)
  await c.disconnect()
  assert(seqProblems.length === 0, seqProblems.slice(0, 3).join('; '))
  const ids = [...pids]
  assert(ids.length === 1 && !ids[0].startsWith('-1/'), `producer id/epoch in the batches: ${JSON.stringify(ids)}`)
})

// ------------------------------------------------------------ transactions
// Fresh topics, groups and transactional ids each run. A transaction ends with one control
// record (its COMMIT or ABORT marker) in each partition it wrote to: consumers never see it, but
// it takes an offset, so the offsets asserted below are exact. In proxy mode txn-send-offsets is
// a SKIP (corral proxy refuses AddOffsetsToTxn and TxnOffsetCommit); txn-commit-abort goes
// through the proxy to the upstream's transaction coordinator, but is a SKIP too (see there).
const SFX = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
const NO_TXN_OFFSETS = 'proxy mode does not serve transactional offset commits yet'
let txnReads = 0

async function createTopic(topic, numPartitions) {
  if (PROXY) return mockCreate(topic, numPartitions)
  const created = await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions }] })
  assert(created === true, `createTopics ${topic} returned ${created}`)
}
function txnProducer(transactionalId) {
  return kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 30000,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
}
// [{ partition, key, value }]: perPartition records in each of 3 partitions, in produce order
function txnRecords(tag, perPartition) {
  const out = []
  for (let q = 0; q < 3; q++) for (let i = 0; i < perPartition; i++) out.push({ partition: q, key: `${tag}-k${q}-${i}`, value: `${tag}-v${q}-${i}` })
  return out
}
// one record as compared: "partition/offset/key/value", the offset padded so that they sort
const txnRec = (q, offset, key, value) => `${q}/${String(offset).padStart(8, '0')}/${key}/${value}`
// The log a run of transactions leaves in a fresh 3-partition topic (txns: [[records, committed]]
// in the order they ended): what read-committed and read-uncommitted consumers must read (sorted
// txnRec strings), the last offset each must reach in each partition, each partition's end offset.
function txnLayout(txns) {
  const next = [0, 0, 0]
  const want = { rc: [], ru: [], lastRc: [-1, -1, -1], lastRu: [-1, -1, -1] }
  for (const [recs, committed] of txns) {
    for (const r of recs) {
      const off = next[r.partition]++
      want.ru.push(txnRec(r.partition, off, r.key, r.value))
      want.lastRu[r.partition] = off
      if (committed) {
        want.rc.push(txnRec(r.partition, off, r.key, r.value))
        want.lastRc[r.partition] = off
      }
    }
    for (const q of new Set(recs.map(r => r.partition))) next[q]++ // the marker
  }
  want.rc.sort()
  want.ru.sort()
  want.ends = next
  return want
}
function txnDiff(got, want) {
  if (JSON.stringify(got) === JSON.stringify(want)) return null
  const g = new Set(got)
  const w = new Set(want)
  const missing = want.filter(x => !g.has(x))
  const extra = got.filter(x => !w.has(x))
  return `${got.length} records, expected ${want.length}; missing ${JSON.stringify(missing.slice(0, 3))}; unexpected ${JSON.stringify(extra.slice(0, 3))}${g.size !== got.length ? '; some twice' : ''}`
}
// Reads `topic` from the start in a fresh group until each partition's `last` offset (15 s at
// most; what is missing shows in the comparison), then 300 ms more for anything unexpected.
async function txnRead(topic, readUncommitted, last) {
  const c = groupConsumer(kafka, `kjs-g-txn-read-${SFX}-${++txnReads}`, { readUncommitted })
  atCheckEnd(() => c.disconnect())
  const got = []
  const maxOffset = [-1, -1, -1]
  await c.connect()
  await c.subscribe({ topics: [topic], fromBeginning: true })
  await c.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      got.push(txnRec(partition, message.offset, message.key?.toString(), message.value?.toString()))
      maxOffset[partition] = Math.max(maxOffset[partition], Number(message.offset))
    },
  })
  await waitFor('the last records', 15000, () => last.every((o, q) => maxOffset[q] >= o)).catch(() => {})
  await sleep(300)
  await c.disconnect()
  return got.sort()
}
// What is wrong with `topic` as read-committed and read-uncommitted consumers read it (only the
// latter with uncommittedOnly), given the transactions that wrote it (see txnLayout): [] when
// nothing is.
async function txnReadProblems(topic, txns, uncommittedOnly = false) {
  const want = txnLayout(txns)
  const [rc, ru] = await Promise.all([uncommittedOnly ? want.rc : txnRead(topic, false, want.lastRc), txnRead(topic, true, want.lastRu)])
  const problems = []
  const d1 = txnDiff(rc, want.rc)
  if (d1) problems.push(`readUncommitted: false read ${d1}`)
  const d2 = txnDiff(ru, want.ru)
  if (d2) problems.push(`readUncommitted: true read ${d2}`)
  const offsets = await admin.fetchTopicOffsets(topic)
  const high = [0, 1, 2].map(q => Number(offsets.find(x => x.partition === q)?.high))
  if (JSON.stringify(high) !== JSON.stringify(want.ends)) problems.push(`end offsets ${JSON.stringify(high)}, expected ${JSON.stringify(want.ends)} (an offset for each record and each marker)`)
  return problems
}

// A transactional producer commits A, aborts B, commits C (4 records in each of 3 partitions
// each); readUncommitted: false reads exactly A and C, readUncommitted: true A, B and C, at the
// offsets the markers leave. In proxy mode a SKIP after the same transactions through the proxy
// and the readUncommitted: true half (whose failure is a FAIL): the mock upstream hands
// read-committed consumers aborted records.
const UPSTREAM_READ_COMMITTED = "the upstream, librdkafka's mock cluster, hands read-committed consumers aborted records (checked instead: commit, abort, commit through the proxy and the log as readUncommitted: true reads it, markers' offsets included)"
await check('txn-commit-abort', 45000, async () => {
  const topic = `kjs-txn-ca-${SFX}`
  await createTopic(topic, 3)
  const p = txnProducer(`kjs-txn-ca-${SFX}`)
  atCheckEnd(() => p.disconnect())
  await p.connect()
  const a = txnRecords('A', 4)
  const b = txnRecords('B', 4)
  const c = txnRecords('C', 4)
  for (const [messages, commit] of [[a, true], [b, false], [c, true]]) {
    const txn = await p.transaction()
    await txn.send({ topic, acks: -1, messages }) // acknowledged: the aborted ones are in the log too
    if (commit) await txn.commit()
    else await txn.abort()
  }
  const problems = await txnReadProblems(topic, [[a, true], [b, false], [c, true]], PROXY)
  assert(problems.length === 0, problems.join('; '))
}, PROXY ? UPSTREAM_READ_COMMITTED : null)

// Consume-transform-produce: a live member of the group (autoCommit off) reads the input; each
// round sends the transformed records and sendOffsets({ consumerGroupId, topics }) with the next
// offsets in one transaction (TxnOffsetCommit v0: no member id, which Kafka accepts for a group
// with members). Round 1 commits phase 1, round 2 aborts phase 2, round 3 commits phase 2 again.
// admin.fetchOffsets: 5/5/5 after round 1, still after round 2, 10/10/10 after round 3; the
// output read-committed holds each input record once, transformed.
if (PROXY) await skipCheck('txn-send-offsets', NO_TXN_OFFSETS)
else await check('txn-send-offsets', 50000, async () => {
  const tin = `kjs-txn-in-${SFX}`
  const tout = `kjs-txn-out-${SFX}`
  const group = `kjs-g-txn-${SFX}`
  await createTopic(tin, 3)
  await createTopic(tout, 3)
  const plain = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  atCheckEnd(() => plain.disconnect())
  await plain.connect()
  const phase1 = txnRecords('in1', 5)
  const phase2 = txnRecords('in2', 5)
  await plain.send({ topic: tin, acks: -1, messages: phase1 })
  const c = groupConsumer(kafka, group, { readUncommitted: false })
  atCheckEnd(() => c.disconnect())
  const consumed = []
  await c.connect()
  await c.subscribe({ topics: [tin], fromBeginning: true })
  await c.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      consumed.push({ partition, offset: Number(message.offset), key: message.key.toString(), value: message.value.toString() })
    },
  })
  const p = txnProducer(`kjs-txn-ctp-${SFX}`)
  atCheckEnd(() => p.disconnect())
  await p.connect()
  const take = async n => {
    await waitFor(`${n} input records (have ${consumed.length})`, 20000, () => consumed.length >= n)
    return consumed.splice(0, n)
  }
  const round = async (batch, commit) => {
    const txn = await p.transaction()
    await txn.send({ topic: tout, acks: -1, messages: batch.map(r => ({ partition: r.partition, key: r.key, value: `T:${r.value}` })) })
    const partitions = [0, 1, 2].map(q => ({ partition: q, offset: String(Math.max(-1, ...batch.filter(r => r.partition === q).map(r => r.offset)) + 1) }))
    await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic: tin, partitions }] })
    if (commit) await txn.commit()
    else await txn.abort()
    return partitions.map(x => Number(x.offset))
  }
  const committed = async () => {
    const r = await admin.fetchOffsets({ groupId: group, topics: [tin] })
    const t = r.find(x => x.topic === tin)
    return [0, 1, 2].map(q => Number(t?.partitions.find(x => x.partition === q)?.offset))
  }
  const same = (x, y) => JSON.stringify(x) === JSON.stringify(y)
  const problems = []
  const b1 = await take(15)
  const pos1 = await round(b1, true)
  const com1 = await committed()
  if (!same(pos1, [5, 5, 5]) || !same(com1, [5, 5, 5])) problems.push(`round 1 (commit): sent ${JSON.stringify(pos1)}, committed afterwards ${JSON.stringify(com1)}, expected [5,5,5]`)
  await plain.send({ topic: tin, acks: -1, messages: phase2 })
  const b2 = await take(15)
  const pos2 = await round(b2, false)
  const com2 = await committed()
  if (!same(pos2, [10, 10, 10]) || !same(com2, [5, 5, 5])) problems.push(`round 2 (abort): sent ${JSON.stringify(pos2)} (expected [10,10,10]), committed afterwards ${JSON.stringify(com2)}, expected [5,5,5] unmoved`)
  const pos3 = await round(b2, true)
  const com3 = await committed()
  if (!same(pos3, [10, 10, 10]) || !same(com3, [10, 10, 10])) problems.push(`round 3 (commit again): sent ${JSON.stringify(pos3)}, committed afterwards ${JSON.stringify(com3)}, expected [10,10,10]`)
  await sleep(300)
  const gotIn = [...b1, ...b2, ...consumed].map(r => txnRec(r.partition, r.offset, r.key, r.value)).sort()
  // the input topic is not transactional: no markers, phase 2 right after phase 1
  const wantPlain = [...phase1, ...phase2].map((r, i, all) => txnRec(r.partition, all.slice(0, i).filter(x => x.partition === r.partition).length, r.key, r.value)).sort()
  const dIn = txnDiff(gotIn, wantPlain)
  if (dIn) problems.push(`the consumer read ${dIn}`)
  const out = recs => recs.map(r => ({ partition: r.partition, key: r.key, value: `T:${r.value}` }))
  problems.push(...(await txnReadProblems(tout, [[out(phase1), true], [out(phase2), false], [out(phase2), true]])))
  assert(problems.length === 0, problems.join('; '))
})

for (const f of cleanup.reverse()) await closeQuietly(f)
try {
  await producer.disconnect()
  await admin.disconnect()
} catch {}
process.exit(failed ? 1 : 0)
