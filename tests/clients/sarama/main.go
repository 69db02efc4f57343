// Sarama (Debian golang-github-shopify-sarama-dev 1.22.1) against corral.
//
//	sarama-check BOOTSTRAP                       run every check
//	sarama-check member BOOTSTRAP GROUP TOPIC    one consumer-group member (the group-kill child)
//
// Prints "PASS sarama <check>" / "FAIL sarama <check>: <why>" on stdout; Sarama's own log and
// timings ("# ...") go to stderr. Exit status 1 if any check failed.
//
// Sarama 1.22.1 knows Kafka versions up to 2.2 and picks request versions from Config.Version
// (it never sends ApiVersions). With Version >= 1.0 it sends Produce v3, Fetch v4, Metadata v5,
// ListOffsets v1, OffsetFetch v1, JoinGroup v1, SyncGroup/Heartbeat/LeaveGroup/DescribeGroups/
// ListGroups/DeleteGroups/InitProducerId/FindCoordinator v0, CreateTopics v2: all still served
// by Kafka 4. OffsetCommit is v1 (removed in Kafka 4) unless Consumer.Offsets.Retention is set,
// which makes it v2, so every config here sets it. Beyond that, on Kafka 4 this Sarama cannot
// use ClusterAdmin.ListTopics/DescribeConfig (always DescribeConfigs v0, removed) nor zstd (it
// never sends Produce v7 / Fetch v10): old-protocol-version-fails-clearly and the zstd-* checks
// hold corral to Kafka's answers there.
//
// In proxy mode (CORRAL_MODE=proxy, see ../run.sh) the bootstrap is a corral proxy in front of
// librdkafka's mock cluster: topics are made through the mock's control port
// (CORRAL_MOCK_CONTROL), and the checks that need an API the mock lacks print
// "SKIP sarama <check>: <why>".
package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Shopify/sarama"
)

const family = "sarama"

var (
	bootstrap string
	failed    bool
	failures  []string // repeated at the end of stderr, which run.sh shows the tail of
	outMu     sync.Mutex
)

func pass(check string, start time.Time, detail string) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("PASS %s %s\n", family, check)
	fmt.Fprintf(os.Stderr, "# %s: PASS in %.1f s %s\n", check, time.Since(start).Seconds(), detail)
}

func fail(check string, start time.Time, format string, args ...interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	failed = true
	why := strings.Replace(fmt.Sprintf(format, args...), "\n", " | ", -1)
	fmt.Printf("FAIL %s %s: %s\n", family, check, why)
	failures = append(failures, check+": "+why)
	fmt.Fprintf(os.Stderr, "# %s: FAIL in %.1f s: %s\n", check, time.Since(start).Seconds(), why)
}

func skip(check, why string) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("SKIP %s %s: %s\n", family, check, why)
}

// ---------------------------------------------------------------- the suite's mode

var (
	proxyMode     = os.Getenv("CORRAL_MODE") == "proxy"
	expectBrokers = envInt("CORRAL_EXPECT_BROKERS", 1)
)

const corralNodeID = 1000000000 // corral's own node in proxy mode (the group coordinator)

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscanf(os.Getenv(name), "%d", &n); err != nil {
		return def
	}
	return n
}

func upstreamLacks(what string) string {
	return "the upstream, librdkafka's mock cluster, has no " + what
}

// mockCreate creates a topic on the proxy's upstream through mock_upstream.py's control port.
func mockCreate(topic string, partitions int) error {
	c, err := net.DialTimeout("tcp", os.Getenv("CORRAL_MOCK_CONTROL"), 5*time.Second)
	if err != nil {
		return fmt.Errorf("mock control: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "create %s %d\n", topic, partitions)
	reply, err := bufio.NewReader(c).ReadString('\n')
	if reply = strings.TrimSpace(reply); reply != "ok" {
		return fmt.Errorf("mock control: create %s %d: %q %v", topic, partitions, reply, err)
	}
	return nil
}

func note(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
}

// config is what a Kafka 4 user of Sarama 1.22 must set.
func config(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_1_0_0
	c.ClientID = clientID
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 5 * time.Second
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	// Retention != 0 makes Sarama send OffsetCommit v2 instead of v1 (gone in Kafka 4).
	c.Consumer.Offsets.Retention = 7 * 24 * time.Hour
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Heartbeat.Interval = time.Second
	c.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	return c
}

func main() {
	sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	if len(os.Args) == 5 && os.Args[1] == "member" {
		childMember(os.Args[2], os.Args[3], os.Args[4])
		return
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sarama-check BOOTSTRAP")
		os.Exit(2)
	}
	bootstrap = os.Args[1]
	note("Sarama 1.22.1 (Debian), config.Version %s", sarama.V2_1_0_0)
	all := time.Now()

	checkMetadata()
	if checkCreateTopic() {
		checkProduceConsume10k()
	}
	checkGroups()
	checkCommitResume()
	checkIdempotent()
	checkCompression()
	checkZstdOldVersions()
	checkOldVersion()

	note("all checks took %.1f s", time.Since(all).Seconds())
	for _, f := range failures {
		note("FAILED %s", f)
	}
	if failed {
		os.Exit(1)
	}
}

func newAdmin(id string) (sarama.ClusterAdmin, error) {
	return sarama.NewClusterAdmin([]string{bootstrap}, config(id))
}

// ---------------------------------------------------------------- metadata, create-topic

func checkMetadata() {
	start := time.Now()
	admin, err := newAdmin("sarama-metadata")
	if err != nil {
		fail("metadata", start, "NewClusterAdmin: %v", err)
		return
	}
	defer admin.Close()
	// DescribeCluster sends Metadata v0, which has no controller id (Sarama reports -1), so
	// the controller comes from Controller() (the client's Metadata v5).
	brokers, _, err := admin.DescribeCluster()
	client, err2 := sarama.NewClient([]string{bootstrap}, config("sarama-metadata"))
	if err2 != nil {
		fail("metadata", start, "NewClient: %v", err2)
		return
	}
	defer client.Close()
	ctrl, cerr := client.Controller()
	// (ClusterAdmin.ListTopics would also send DescribeConfigs v0, removed in Kafka 4: see
	// checkOldVersion.)
	topicsMd, terr := client.Topics()
	if proxyMode {
		// the upstream's brokers at corral listeners, corral's own node at the bootstrap
		// address, the controller one of the upstream's
		ids := map[int32]string{}
		for _, b := range brokers {
			ids[b.ID()] = b.Addr()
		}
		if err != nil || cerr != nil || terr != nil || len(brokers) != expectBrokers || ids[corralNodeID] != bootstrap || ctrl.ID() == corralNodeID || ids[ctrl.ID()] == "" {
			fail("metadata", start, "DescribeCluster: brokers %v (err %v), Controller %v (err %v), ListTopics err %v; want %d brokers, node %d at %s", ids, err, ctrl, cerr, terr, expectBrokers, corralNodeID, bootstrap)
			return
		}
		pass("metadata", start, fmt.Sprintf("%d brokers %v, controller %d; %d topics listed", len(brokers), ids, ctrl.ID(), len(topicsMd)))
		return
	}
	if err != nil || cerr != nil || terr != nil || len(brokers) != 1 || brokers[0].Addr() != bootstrap || ctrl.ID() != brokers[0].ID() {
		fail("metadata", start, "DescribeCluster: brokers %v (err %v), Controller %v (err %v), ListTopics err %v", brokers, err, ctrl, cerr, terr)
		return
	}
	pass("metadata", start, fmt.Sprintf("one broker, %d at %s, the controller; %d topics listed", brokers[0].ID(), brokers[0].Addr(), len(topicsMd)))
}

// topics made by this family; checkCreateTopic makes them all.
var topics = map[string]int32{
	"sarama-10k":    3,
	"sarama-group":  6,
	"sarama-resume": 3,
	"sarama-idem":   3,
}

func checkCreateTopic() bool {
	start := time.Now()
	if proxyMode {
		for t, n := range topics {
			if err := mockCreate(t, int(n)); err != nil {
				fail("create-topic", start, "%s; and creating the topics through the mock failed: %v", upstreamLacks("CreateTopics"), err)
				return false
			}
		}
		skip("create-topic", upstreamLacks("CreateTopics"))
		return true
	}
	admin, err := newAdmin("sarama-admin")
	if err != nil {
		fail("create-topic", start, "NewClusterAdmin: %v", err)
		return false
	}
	defer admin.Close()
	names := []string{}
	for t, n := range topics {
		names = append(names, t)
		if err := admin.CreateTopic(t, &sarama.TopicDetail{NumPartitions: n, ReplicationFactor: 1}, false); err != nil {
			fail("create-topic", start, "CreateTopic %s: %v", t, err)
			return false
		}
	}
	sort.Strings(names)
	md, err := admin.DescribeTopics(names)
	if err != nil {
		fail("create-topic", start, "DescribeTopics: %v", err)
		return false
	}
	for _, tm := range md {
		if tm.Err != sarama.ErrNoError || int32(len(tm.Partitions)) != topics[tm.Name] {
			fail("create-topic", start, "topic %s: err %v, %d partitions", tm.Name, tm.Err, len(tm.Partitions))
			return false
		}
	}
	// creating it again: TOPIC_ALREADY_EXISTS
	err = admin.CreateTopic("sarama-10k", &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false)
	if te, ok := err.(*sarama.TopicError); !ok || te.Err != sarama.ErrTopicAlreadyExists {
		fail("create-topic", start, "second CreateTopic sarama-10k: want TOPIC_ALREADY_EXISTS, got %v", err)
		return false
	}
	pass("create-topic", start, fmt.Sprintf("%v; a second create gets TOPIC_ALREADY_EXISTS", names))
	return true
}

// ---------------------------------------------------------------- produce-consume-10k

type produced struct {
	partition int32
	offset    int64
}

func checkProduceConsume10k() {
	const check, topic, n, nkeys = "produce-consume-10k", "sarama-10k", 10000, 97
	start := time.Now()
	conf := config("sarama-10k")
	conf.Producer.Flush.Messages = 500
	conf.Producer.Flush.Frequency = 5 * time.Millisecond
	conf.Net.MaxOpenRequests = 1 // keep per-partition order even on retries
	prod, err := sarama.NewAsyncProducer([]string{bootstrap}, conf)
	if err != nil {
		fail(check, start, "NewAsyncProducer: %v", err)
		return
	}
	where := make(map[string]produced, n)
	var perr []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < n; got++ {
			select {
			case m := <-prod.Successes():
				v, _ := m.Value.Encode()
				where[string(v)] = produced{m.Partition, m.Offset}
			case e := <-prod.Errors():
				perr = append(perr, e.Err)
			case <-time.After(30 * time.Second):
				perr = append(perr, fmt.Errorf("timed out after %d results", got))
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		prod.Input() <- &sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("key-%d", i%nkeys)),
			Value: sarama.StringEncoder(fmt.Sprintf("%d:%d", i%nkeys, i)),
		}
	}
	<-done
	prod.AsyncClose()
	if len(perr) > 0 || len(where) != n {
		fail(check, start, "produce: %d acknowledged distinct values of %d, %d errors, first %v", len(where), n, len(perr), first(perr))
		return
	}
	tProduce := time.Since(start)

	client, err := sarama.NewClient([]string{bootstrap}, config("sarama-10k-consumer"))
	if err != nil {
		fail(check, start, "NewClient: %v", err)
		return
	}
	defer client.Close()
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		fail(check, start, "NewConsumer: %v", err)
		return
	}
	defer cons.Close()
	parts, _ := client.Partitions(topic)
	total := 0
	lastOfKey := map[string]int{}
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			fail(check, start, "GetOffset %d: %v", p, err)
			return
		}
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			fail(check, start, "ConsumePartition %d: %v", p, err)
			return
		}
		next := int64(0)
		for next < hwm {
			select {
			case m := <-pc.Messages():
				if m.Offset != next {
					fail(check, start, "partition %d: offset %d after %d", p, m.Offset, next-1)
					pc.Close()
					return
				}
				next++
				var k, i int
				if _, err := fmt.Sscanf(string(m.Value), "%d:%d", &k, &i); err != nil || string(m.Key) != fmt.Sprintf("key-%d", k) || k != i%nkeys {
					fail(check, start, "partition %d offset %d: key %q value %q do not match", p, m.Offset, m.Key, m.Value)
					pc.Close()
					return
				}
				if w, ok := where[string(m.Value)]; !ok || w.partition != p || w.offset != m.Offset {
					fail(check, start, "value %q read at %d/%d, the producer was told %v", m.Value, p, m.Offset, w)
					pc.Close()
					return
				}
				if last, ok := lastOfKey[string(m.Key)]; ok && last >= i {
					fail(check, start, "key %s: value %d after %d (out of order)", m.Key, i, last)
					pc.Close()
					return
				}
				lastOfKey[string(m.Key)] = i
				total++
			case e := <-pc.Errors():
				fail(check, start, "partition %d: %v", p, e)
				pc.Close()
				return
			case <-time.After(15 * time.Second):
				fail(check, start, "partition %d: stuck at offset %d of %d", p, next, hwm)
				pc.Close()
				return
			}
		}
		pc.Close()
	}
	if total != n {
		fail(check, start, "consumed %d of %d", total, n)
		return
	}
	pass(check, start, fmt.Sprintf("(produce %.1f s) %d messages over %d partitions, keys/values intact, per-partition and per-key order kept", tProduce.Seconds(), n, len(parts)))
}

func first(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// produceTo writes values to explicit partitions with a SyncProducer.
func produceTo(topic string, msgs map[int32][]string) error {
	conf := config("sarama-feeder")
	conf.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{bootstrap}, conf)
	if err != nil {
		return err
	}
	defer p.Close()
	var batch []*sarama.ProducerMessage
	for part, vs := range msgs {
		for _, v := range vs {
			batch = append(batch, &sarama.ProducerMessage{Topic: topic, Partition: part, Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)})
		}
	}
	return p.SendMessages(batch)
}

// ---------------------------------------------------------------- consumer groups

// seenSet counts every consumed value over all members of a group.
type seenSet struct {
	mu    sync.Mutex
	count map[string]int
	by    map[string]string // value -> member that consumed it (last)
	part  map[string]int32
}

func newSeen() *seenSet {
	return &seenSet{count: map[string]int{}, by: map[string]string{}, part: map[string]int32{}}
}

func (s *seenSet) add(value, who string, part int32) {
	s.mu.Lock()
	s.count[value]++
	s.by[value] = who
	s.part[value] = part
	s.mu.Unlock()
}

// stats over the values: how many are missing, and how many were read more than once.
func (s *seenSet) stats(values []string) (missing, dups int, firstMissing string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		switch c := s.count[v]; {
		case c == 0:
			if missing == 0 {
				firstMissing = v
			}
			missing++
		case c > 1:
			dups++
		}
	}
	return
}

// member is one consumer-group member: a ConsumerGroup in this process, or (cmd != nil) a
// child process running `sarama-check member ...` that reports on its stdout.
type member struct {
	name   string
	topic  string
	seen   *seenSet
	cg     sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
	cmd    *exec.Cmd

	mu     sync.Mutex
	claims []int32
	gen    int32
	owned  map[int32]bool // partitions owned at any time
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	c := append([]int32(nil), s.Claims()[m.topic]...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	m.mu.Lock()
	m.claims, m.gen = c, s.GenerationID()
	for _, p := range c {
		m.owned[p] = true
	}
	m.mu.Unlock()
	note("member %s: generation %d, partitions %v", m.name, s.GenerationID(), c)
	return nil
}

func (m *member) Cleanup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	m.claims = nil
	m.mu.Unlock()
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		m.seen.add(string(msg.Value), m.name, msg.Partition)
		s.MarkMessage(msg, "")
	}
	return nil
}

func (m *member) view() (int32, []int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen, m.claims
}

func startMember(name, group, topic string, seen *seenSet) (*member, error) {
	cg, err := sarama.NewConsumerGroup([]string{bootstrap}, group, config("sarama-"+name))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: name, topic: topic, seen: seen, cg: cg, cancel: cancel, done: make(chan struct{}), owned: map[int32]bool{}}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, m); err != nil {
				if err == sarama.ErrClosedConsumerGroup {
					return
				}
				note("member %s: Consume: %v", name, err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	return m, nil
}

// stop leaves the group cleanly (LeaveGroup) after committing what it read.
func (m *member) stop() error {
	if m.cmd != nil {
		return nil
	}
	m.cancel()
	err := m.cg.Close()
	<-m.done
	return err
}

// startChild runs a member as a child process, so it can be SIGKILLed.
func startChild(name, group, topic string, seen *seenSet) (*member, error) {
	cmd := exec.Command(os.Args[0], "member", bootstrap, group, topic)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &member{name: name, topic: topic, seen: seen, cmd: cmd, done: make(chan struct{}), owned: map[int32]bool{}}
	go func() {
		defer close(m.done)
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 4096)
		for {
			n, err := out.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				i := strings.IndexByte(string(buf), '\n')
				if i < 0 {
					break
				}
				m.childLine(string(buf[:i]))
				buf = buf[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	return m, nil
}

func (m *member) childLine(line string) {
	f := strings.Fields(line)
	switch {
	case len(f) >= 2 && f[0] == "ASSIGNED":
		var gen int32
		fmt.Sscanf(f[1], "%d", &gen)
		var c []int32
		if len(f) > 2 {
			for _, s := range strings.Split(f[2], ",") {
				var p int32
				fmt.Sscanf(s, "%d", &p)
				c = append(c, p)
			}
		}
		m.mu.Lock()
		m.claims, m.gen = c, gen
		for _, p := range c {
			m.owned[p] = true
		}
		m.mu.Unlock()
		note("member %s (child pid %d): generation %d, partitions %v", m.name, m.cmd.Process.Pid, gen, c)
	case len(f) == 1 && f[0] == "REVOKED":
		m.mu.Lock()
		m.claims = nil
		m.mu.Unlock()
	case len(f) == 3 && f[0] == "GOT":
		var p int32
		fmt.Sscanf(f[2], "%d", &p)
		m.seen.add(f[1], m.name, p)
	}
}

// childMember is the body of the child process.
func childMember(bs, group, topic string) {
	bootstrap = bs
	var mu sync.Mutex
	say := func(format string, args ...interface{}) {
		mu.Lock()
		fmt.Printf(format+"\n", args...)
		mu.Unlock()
	}
	cg, err := sarama.NewConsumerGroup([]string{bootstrap}, group, config("sarama-child"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	h := &childHandler{topic: topic, say: say}
	for {
		if err := cg.Consume(context.Background(), []string{topic}, h); err != nil {
			fmt.Fprintln(os.Stderr, "child Consume:", err)
			time.Sleep(200 * time.Millisecond)
		}
	}
}

type childHandler struct {
	topic string
	say   func(string, ...interface{})
}

func (h *childHandler) Setup(s sarama.ConsumerGroupSession) error {
	c := append([]int32(nil), s.Claims()[h.topic]...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	ps := make([]string, len(c))
	for i, p := range c {
		ps[i] = fmt.Sprint(p)
	}
	h.say("ASSIGNED %d %s", s.GenerationID(), strings.Join(ps, ","))
	return nil
}

func (h *childHandler) Cleanup(sarama.ConsumerGroupSession) error {
	h.say("REVOKED")
	return nil
}

func (h *childHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		h.say("GOT %s %d", msg.Value, msg.Partition)
		s.MarkMessage(msg, "")
	}
	return nil
}

// waitBalanced waits until every member is in the same generation (newer than after) holding
// per partitions each, together all nparts partitions. It returns that generation.
func waitBalanced(ms []*member, per, nparts int, after int32, timeout time.Duration) (int32, string) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok := true
		var gen int32 = -1
		union := map[int32]bool{}
		var desc []string
		for _, m := range ms {
			g, c := m.view()
			desc = append(desc, fmt.Sprintf("%s:g%d%v", m.name, g, c))
			if len(c) != per || g <= after || (gen != -1 && g != gen) {
				ok = false
			}
			gen = g
			for _, p := range c {
				union[p] = true
			}
		}
		last = strings.Join(desc, " ")
		if ok && len(union) == nparts {
			return gen, last
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1, last
}

func values(prefix string, nparts int32, per int) (map[int32][]string, []string) {
	m := map[int32][]string{}
	var all []string
	for p := int32(0); p < nparts; p++ {
		for i := 0; i < per; i++ {
			v := fmt.Sprintf("%s-%d-%d", prefix, p, i)
			m[p] = append(m[p], v)
			all = append(all, v)
		}
	}
	return m, all
}

// waitConsumed waits until every value was read at least once, then a little longer to see
// duplicates.
func waitConsumed(seen *seenSet, vals []string, timeout time.Duration) (missing, dups int, firstMissing string) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if missing, _, _ = seen.stats(vals); missing == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	return seen.stats(vals)
}

func checkGroups() {
	const group, topic, nparts = "sarama-group", "sarama-group", 6
	start := time.Now()
	seen := newSeen()
	var ms []*member
	defer func() {
		for _, m := range ms {
			if m.cmd != nil {
				m.cmd.Process.Kill()
				m.cmd.Wait()
			} else {
				m.stop()
			}
		}
	}()
	for _, name := range []string{"a", "b", "c"} {
		m, err := startMember(name, group, topic, seen)
		if err != nil {
			fail("group-balance", start, "NewConsumerGroup %s: %v", name, err)
			return
		}
		ms = append(ms, m)
	}
	gen, desc := waitBalanced(ms, 2, nparts, 0, 40*time.Second)
	if gen < 0 {
		fail("group-balance", start, "three members never held 2 partitions each in one generation: %s", desc)
		failGroupRest(start, "group-balance never balanced")
		return
	}
	tBalanced := time.Since(start)
	batch1, vals1 := values("g1", nparts, 100)
	if err := produceTo(topic, batch1); err != nil {
		fail("group-balance", start, "produce: %v", err)
		failGroupRest(start, "produce failed")
		return
	}
	missing, dups, fm := waitConsumed(seen, vals1, 20*time.Second)
	wrong := 0
	seen.mu.Lock()
	for _, v := range vals1 {
		if who, ok := seen.by[v]; ok {
			for _, m := range ms {
				if m.name == who {
					_, c := m.view()
					found := false
					for _, p := range c {
						found = found || p == seen.part[v]
					}
					if !found {
						wrong++
					}
				}
			}
		}
	}
	seen.mu.Unlock()
	if missing > 0 || dups > 0 || wrong > 0 {
		fail("group-balance", start, "%d messages: %d never consumed (first %s), %d consumed twice, %d by a member not owning the partition; %s", len(vals1), missing, fm, dups, wrong, desc)
	} else {
		pass("group-balance", start, fmt.Sprintf("balanced at generation %d after %.1f s (%s); %d messages each consumed once", gen, tBalanced.Seconds(), desc, len(vals1)))
	}

	// admin checks against the live, stable group
	admin, err := newAdmin("sarama-group-admin")
	if err != nil {
		fail("list-groups", start, "NewClusterAdmin: %v", err)
		return
	}
	defer admin.Close()
	checkListGroups(admin, group)
	checkDescribeGroup(admin, group, gen)
	nonEmptyErr := deleteGroup(group)

	// group-leave: member c leaves cleanly
	t0 := time.Now()
	c := ms[2]
	if err := c.stop(); err != nil {
		note("member c Close: %v", err)
	}
	tClose := time.Since(t0)
	ms = ms[:2]
	gen2, desc := waitBalanced(ms, 3, nparts, gen, 20*time.Second)
	tLeave := time.Since(t0)
	if gen2 < 0 {
		fail("group-leave", t0, "after c left, a and b never held 3 partitions each: %s", desc)
	} else {
		batch2, vals2 := values("g2", nparts, 10)
		if err := produceTo(topic, batch2); err != nil {
			fail("group-leave", t0, "produce: %v", err)
		} else if missing, dups, fm := waitConsumed(seen, append(vals1, vals2...), 20*time.Second); missing > 0 || dups > 0 {
			fail("group-leave", t0, "%d never consumed (first %s), %d consumed twice", missing, fm, dups)
		} else if tLeave > 5*time.Second {
			fail("group-leave", t0, "partitions moved %.1f s after the clean leave (want < 5 s: LeaveGroup must rebalance at once)", tLeave.Seconds())
		} else {
			pass("group-leave", t0, fmt.Sprintf("Close took %.2f s; a and b had 3 partitions each %.2f s after it began (generation %d: %s); later messages consumed once", tClose.Seconds(), tLeave.Seconds(), gen2, desc))
		}
	}

	// group-kill: child d joins, then is SIGKILLed
	t1 := time.Now()
	d, err := startChild("d", group, topic, seen)
	if err != nil {
		fail("group-kill", t1, "start child: %v", err)
	} else {
		ms = append(ms, d)
		gen3, desc := waitBalanced(ms, 2, nparts, gen2, 40*time.Second)
		if gen3 < 0 {
			fail("group-kill", t1, "with child d the group never balanced 2/2/2: %s", desc)
		} else {
			batch3, vals3 := values("g3", nparts, 10)
			produceTo(topic, batch3)
			missing, _, fm := waitConsumed(seen, vals3, 20*time.Second)
			time.Sleep(600 * time.Millisecond) // let d commit (every 200 ms)
			note("group-kill: balanced 2/2/2 at generation %d (%s); d's partitions consumed (missing %d %s); SIGKILL child %d", gen3, desc, missing, fm, d.cmd.Process.Pid)
			tk := time.Now()
			d.cmd.Process.Signal(syscall.SIGKILL)
			d.cmd.Wait()
			<-d.done
			ms = ms[:2]
			gen4, desc4 := waitBalanced(ms, 3, nparts, gen3, 30*time.Second)
			tKill := time.Since(tk)
			batch4, vals4 := values("g4", nparts, 10)
			produceTo(topic, batch4)
			missing4, dups4, fm4 := waitConsumed(seen, vals4, 20*time.Second)
			switch {
			case gen4 < 0:
				fail("group-kill", t1, "after SIGKILL of d, a and b never held 3 partitions each within 30 s: %s", desc4)
			case tKill < 4*time.Second:
				fail("group-kill", t1, "partitions moved %.1f s after SIGKILL: before the 6 s session timeout", tKill.Seconds())
			case tKill > 16*time.Second:
				fail("group-kill", t1, "partitions moved only %.1f s after SIGKILL (session timeout 6 s)", tKill.Seconds())
			case missing4 > 0 || dups4 > 0:
				fail("group-kill", t1, "after reassignment: %d never consumed (first %s), %d twice", missing4, fm4, dups4)
			default:
				pass("group-kill", t1, fmt.Sprintf("a and b had 3 partitions each %.1f s after SIGKILL (session timeout 6 s; generation %d: %s)", tKill.Seconds(), gen4, desc4))
			}
		}
	}

	// stop a and b: the group is empty; its committed offsets remain
	for _, m := range ms {
		m.stop()
	}
	ms = nil
	checkGroupOffsets(admin, group, topic, nparts, nonEmptyErr)
}

func failGroupRest(start time.Time, why string) {
	for _, c := range []string{"list-groups", "describe-group", "group-leave", "group-kill", "list-group-offsets", "reset-offsets", "delete-group"} {
		fail(c, start, "not run: %s", why)
	}
}

func checkListGroups(admin sarama.ClusterAdmin, group string) {
	start := time.Now()
	groups, err := admin.ListConsumerGroups()
	if err != nil || groups[group] != "consumer" {
		fail("list-groups", start, "ListConsumerGroups: %v (err %v), want %s -> consumer", groups, err, group)
		return
	}
	pass("list-groups", start, fmt.Sprintf("%v", groups))
}

func checkDescribeGroup(admin sarama.ClusterAdmin, group string, gen int32) {
	start := time.Now()
	ds, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(ds) != 1 {
		fail("describe-group", start, "DescribeConsumerGroups: %v %v", ds, err)
		return
	}
	d := ds[0]
	union := map[int32]bool{}
	var desc []string
	for id, m := range d.Members {
		a, err := m.GetMemberAssignment()
		md, err2 := m.GetMemberMetadata()
		if err != nil || err2 != nil {
			fail("describe-group", start, "member %s: assignment %v / metadata %v do not decode", id, err, err2)
			return
		}
		ps := a.Topics[group]
		for _, p := range ps {
			union[p] = true
		}
		desc = append(desc, fmt.Sprintf("%s(%s) %v topics %v", m.ClientId, m.ClientHost, ps, md.Topics))
		if len(ps) != 2 {
			fail("describe-group", start, "member %s has %v", id, ps)
			return
		}
	}
	sort.Strings(desc)
	if d.Err != sarama.ErrNoError || d.GroupId != group || d.State != "Stable" || d.ProtocolType != "consumer" || d.Protocol != "range" || len(d.Members) != 3 || len(union) != 6 {
		fail("describe-group", start, "err %v id %q state %q protocol type %q protocol %q, %d members %v", d.Err, d.GroupId, d.State, d.ProtocolType, d.Protocol, len(d.Members), desc)
		return
	}
	pass("describe-group", start, fmt.Sprintf("Stable, consumer/range, members %v", desc))
}

// deleteGroup sends DeleteGroups (Sarama 1.22 has it on Broker, not on ClusterAdmin).
func deleteGroup(group string) error {
	client, err := sarama.NewClient([]string{bootstrap}, config("sarama-delete"))
	if err != nil {
		return err
	}
	defer client.Close()
	coord, err := client.Coordinator(group)
	if err != nil {
		return err
	}
	resp, err := coord.DeleteGroups(&sarama.DeleteGroupsRequest{Groups: []string{group}})
	if err != nil {
		return err
	}
	if e, ok := resp.GroupErrorCodes[group]; !ok {
		return fmt.Errorf("no result for %s in %v", group, resp.GroupErrorCodes)
	} else if e != sarama.ErrNoError {
		return e
	}
	return nil
}

func committed(admin sarama.ClusterAdmin, group, topic string, nparts int32) (map[int32]int64, error) {
	ps := make([]int32, nparts)
	for i := range ps {
		ps[i] = int32(i)
	}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
	if err != nil {
		return nil, err
	}
	if resp.Err != sarama.ErrNoError {
		return nil, resp.Err
	}
	out := map[int32]int64{}
	for _, p := range ps {
		b := resp.GetBlock(topic, p)
		if b == nil {
			return nil, fmt.Errorf("no block for partition %d", p)
		}
		if b.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("partition %d: %v", p, b.Err)
		}
		out[p] = b.Offset
	}
	return out, nil
}

func checkGroupOffsets(admin sarama.ClusterAdmin, group, topic string, nparts int32, nonEmptyErr error) {
	start := time.Now()
	client, err := sarama.NewClient([]string{bootstrap}, config("sarama-offsets"))
	if err != nil {
		fail("list-group-offsets", start, "NewClient: %v", err)
		return
	}
	defer client.Close()
	got, err := committed(admin, group, topic, nparts)
	want := map[int32]int64{}
	for p := int32(0); p < nparts; p++ {
		want[p], _ = client.GetOffset(topic, p, sarama.OffsetNewest)
	}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		fail("list-group-offsets", start, "committed %v (err %v), want the high watermarks %v", got, err, want)
	} else {
		pass("list-group-offsets", start, fmt.Sprintf("committed = high watermarks %v", got))
	}

	// reset-offsets: the group is empty, so a commit outside the group (generation -1) is allowed
	start = time.Now()
	ds, _ := admin.DescribeConsumerGroups([]string{group})
	state := "?"
	if len(ds) == 1 {
		state = ds[0].State
	}
	rconf := config("sarama-reset")
	rconf.Consumer.Return.Errors = true
	rclient, err := sarama.NewClient([]string{bootstrap}, rconf)
	if err != nil {
		fail("reset-offsets", start, "NewClient: %v", err)
		return
	}
	defer rclient.Close()
	om, err := sarama.NewOffsetManagerFromClient(group, rclient)
	if err != nil {
		fail("reset-offsets", start, "NewOffsetManagerFromClient: %v", err)
	} else {
		var poms []sarama.PartitionOffsetManager
		for p := int32(0); p < nparts; p++ {
			pom, err := om.ManagePartition(topic, p)
			if err != nil {
				fail("reset-offsets", start, "ManagePartition %d: %v", p, err)
				break
			}
			pom.ResetOffset(5, "reset by sarama-check")
			poms = append(poms, pom)
		}
		for _, pom := range poms {
			pom.AsyncClose()
		}
		om.Close() // flushes the commit, then releases the partition managers
		var perrs []string
		for _, pom := range poms {
			for e := range pom.Errors() {
				perrs = append(perrs, e.Error())
			}
		}
		got, err := committed(admin, group, topic, nparts)
		okAll := err == nil && len(got) == int(nparts)
		for _, o := range got {
			okAll = okAll && o == 5
		}
		if !okAll || len(perrs) > 0 {
			fail("reset-offsets", start, "group state %s; after ResetOffset(5): %v (err %v, commit errors %v)", state, got, err, perrs)
		} else {
			pass("reset-offsets", start, fmt.Sprintf("group %s, offsets reset to %v", state, got))
		}
	}

	// delete-group: refused while the group had members, done once empty
	start = time.Now()
	err = deleteGroup(group)
	groups, lerr := admin.ListConsumerGroups()
	_, listed := groups[group]
	ds, _ = admin.DescribeConsumerGroups([]string{group})
	after := "?"
	if len(ds) == 1 {
		after = ds[0].State
	}
	gone, gerr := committed(admin, group, topic, nparts)
	switch {
	case nonEmptyErr != sarama.ErrNonEmptyGroup:
		fail("delete-group", start, "DeleteGroups on the group with 3 members: want NON_EMPTY_GROUP, got %v", nonEmptyErr)
	case err != nil:
		fail("delete-group", start, "DeleteGroups on the empty group: %v", err)
	case lerr != nil || listed || after != "Dead":
		fail("delete-group", start, "after delete: listed %v (err %v), state %q", listed, lerr, after)
	case gerr != nil || gone[0] != -1:
		fail("delete-group", start, "after delete: committed offsets %v (err %v), want -1", gone, gerr)
	default:
		pass("delete-group", start, fmt.Sprintf("non-empty: %v; empty: deleted, state Dead, offsets %v", nonEmptyErr, gone))
	}
}

// ---------------------------------------------------------------- commit-resume

// resumeHandler reads; in phase 1 it marks (commits) only offsets below upto.
type resumeHandler struct {
	topic string
	upto  int64 // phase 1: mark offsets < upto; phase 2: 0 = mark everything
	mu    sync.Mutex
	first map[int32]int64
	max   map[int32]int64
	lower int // phase 2: messages read below the committed offset
	ready chan struct{}
	once  sync.Once
	until int64 // signal ready once every partition reached offset until-1
	n     int
}

func (h *resumeHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *resumeHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *resumeHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		h.mu.Lock()
		if _, ok := h.first[msg.Partition]; !ok {
			h.first[msg.Partition] = msg.Offset
		}
		if msg.Offset > h.max[msg.Partition] {
			h.max[msg.Partition] = msg.Offset
		}
		if h.upto == 0 || msg.Offset < h.upto {
			s.MarkMessage(msg, "")
		}
		done := len(h.max) == h.n
		for _, m := range h.max {
			done = done && m >= h.until-1
		}
		h.mu.Unlock()
		if done {
			h.once.Do(func() { close(h.ready) })
		}
	}
	return nil
}

func runResume(group, topic string, h *resumeHandler, timeout time.Duration) error {
	cg, err := sarama.NewConsumerGroup([]string{bootstrap}, group, config("sarama-resume"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil {
				if err == sarama.ErrClosedConsumerGroup {
					return
				}
				note("resume: Consume: %v", err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	var werr error
	select {
	case <-h.ready:
	case <-time.After(timeout):
		werr = fmt.Errorf("timed out: read up to %v", h.max)
	}
	cancel()
	if err := cg.Close(); err != nil && werr == nil {
		werr = fmt.Errorf("Close: %v", err)
	}
	<-done
	return werr
}

func checkCommitResume() {
	const check, group, topic, nparts, per, cut = "commit-resume", "sarama-resume", "sarama-resume", 3, 60, 30
	start := time.Now()
	batch, _ := values("r", nparts, per)
	if err := produceTo(topic, batch); err != nil {
		fail(check, start, "produce: %v", err)
		return
	}
	h1 := &resumeHandler{topic: topic, upto: cut, first: map[int32]int64{}, max: map[int32]int64{}, ready: make(chan struct{}), until: cut, n: nparts}
	if err := runResume(group, topic, h1, 30*time.Second); err != nil {
		fail(check, start, "first run: %v", err)
		return
	}
	admin, err := newAdmin("sarama-resume-admin")
	if err != nil {
		fail(check, start, "NewClusterAdmin: %v", err)
		return
	}
	defer admin.Close()
	c1, err := committed(admin, group, topic, nparts)
	if err != nil {
		fail(check, start, "committed after first run: %v", err)
		return
	}
	for p, o := range c1 {
		if o != cut {
			fail(check, start, "after the first run partition %d committed %d, want %d (all: %v)", p, o, cut, c1)
			return
		}
	}
	h2 := &resumeHandler{topic: topic, first: map[int32]int64{}, max: map[int32]int64{}, ready: make(chan struct{}), until: per, n: nparts}
	if err := runResume(group, topic, h2, 30*time.Second); err != nil {
		fail(check, start, "second run: %v", err)
		return
	}
	for p := int32(0); p < nparts; p++ {
		if h2.first[p] != cut {
			fail(check, start, "second run: partition %d started at offset %d, want the committed %d (first offsets %v)", p, h2.first[p], cut, h2.first)
			return
		}
	}
	c2, err := committed(admin, group, topic, nparts)
	for p, o := range c2 {
		if o != per {
			err = fmt.Errorf("partition %d committed %d, want %d", p, o, per)
		}
	}
	if err != nil {
		fail(check, start, "after the second run: %v", err)
		return
	}
	pass(check, start, fmt.Sprintf("committed %v after run 1; run 2 started at %v, ended with %v committed", c1, h2.first, c2))
}

// ---------------------------------------------------------------- idempotent-producer

func checkIdempotent() {
	const check, topic, n, nkeys = "idempotent-producer", "sarama-idem", 3000, 31
	start := time.Now()
	conf := config("sarama-idem")
	conf.Producer.Idempotent = true
	conf.Producer.RequiredAcks = sarama.WaitForAll
	conf.Producer.Retry.Max = 5
	conf.Net.MaxOpenRequests = 1
	conf.Producer.Flush.Messages = 200
	conf.Producer.Flush.Frequency = 5 * time.Millisecond
	prod, err := sarama.NewAsyncProducer([]string{bootstrap}, conf)
	if err != nil {
		fail(check, start, "NewAsyncProducer: %v", err)
		return
	}
	var perr []error
	acked := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < n; got++ {
			select {
			case <-prod.Successes():
				acked++
			case e := <-prod.Errors():
				perr = append(perr, e.Err)
			case <-time.After(30 * time.Second):
				perr = append(perr, fmt.Errorf("timed out after %d results", got))
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		prod.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("key-%d", i%nkeys)), Value: sarama.StringEncoder(fmt.Sprintf("%d:%d", i%nkeys, i))}
	}
	<-done
	prod.AsyncClose()
	if acked != n || len(perr) > 0 {
		fail(check, start, "%d of %d acknowledged, %d errors, first %v", acked, n, len(perr), first(perr))
		return
	}
	client, err := sarama.NewClient([]string{bootstrap}, config("sarama-idem-consumer"))
	if err != nil {
		fail(check, start, "NewClient: %v", err)
		return
	}
	defer client.Close()
	cons, _ := sarama.NewConsumerFromClient(client)
	defer cons.Close()
	seen := map[string]int{}
	last := map[string]int{}
	total := int64(0)
	for p := int32(0); p < 3; p++ {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			fail(check, start, "GetOffset: %v", err)
			return
		}
		total += hwm
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			fail(check, start, "ConsumePartition: %v", err)
			return
		}
		for next := int64(0); next < hwm; next++ {
			select {
			case m := <-pc.Messages():
				var k, i int
				fmt.Sscanf(string(m.Value), "%d:%d", &k, &i)
				if l, ok := last[string(m.Key)]; ok && l >= i {
					fail(check, start, "key %s: %d after %d", m.Key, i, l)
					pc.Close()
					return
				}
				last[string(m.Key)] = i
				seen[string(m.Value)]++
			case <-time.After(15 * time.Second):
				fail(check, start, "partition %d stuck at %d of %d", p, next, hwm)
				pc.Close()
				return
			}
		}
		pc.Close()
	}
	if total != n || len(seen) != n {
		fail(check, start, "log has %d records, %d distinct values, want %d each once", total, len(seen), n)
		return
	}
	pass(check, start, fmt.Sprintf("InitProducerId + %d sequenced messages, log holds each exactly once in order", n))
}

// ---------------------------------------------------------------- old-protocol-version-fails-clearly

// With Sarama's default Version (0.8.2.0) it sends Produce v0, Fetch v0, ListOffsets v0: Kafka 4
// (and corral) close the connection on those. The client must come back with an error, not hang.
func checkOldVersion() {
	const check, topic = "old-protocol-version-fails-clearly", "sarama-oldver"
	start := time.Now()
	conf := sarama.NewConfig() // Version = sarama.MinVersion (0.8.2.0)
	conf.ClientID = "sarama-oldver"
	conf.Producer.Return.Successes = true
	conf.Net.DialTimeout = 5 * time.Second
	conf.Net.ReadTimeout = 10 * time.Second
	note("%s: default Version %s", check, conf.Version)
	var why []string
	ok := true

	// 1. SyncProducer: Metadata v0 works, Produce v0 gets the connection closed
	t := time.Now()
	prod, err := sarama.NewSyncProducer([]string{bootstrap}, conf)
	if err != nil {
		ok = false
		why = append(why, fmt.Sprintf("NewSyncProducer: %v", err))
	} else {
		res := make(chan error, 1)
		go func() {
			_, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("x")})
			res <- err
		}()
		select {
		case err := <-res:
			d := time.Since(t)
			if err == nil {
				ok = false
				why = append(why, "Produce v0 succeeded")
			} else {
				why = append(why, fmt.Sprintf("SendMessage failed after %.1f s: %v", d.Seconds(), err))
			}
		case <-time.After(60 * time.Second):
			ok = false
			why = append(why, "SendMessage hung for 60 s")
		}
		prod.Close()
	}

	// 2. Consumer: ConsumePartition resolves OffsetOldest with ListOffsets v0 (removed in Kafka 4)
	t = time.Now()
	cons, err := sarama.NewConsumer([]string{bootstrap}, conf)
	if err != nil {
		ok = false
		why = append(why, fmt.Sprintf("NewConsumer: %v", err))
	} else {
		res := make(chan error, 1)
		go func() {
			pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
			if err == nil {
				select {
				case m := <-pc.Messages():
					err = fmt.Errorf("unexpectedly read %v", m)
				case e := <-pc.Errors():
					err = e
				case <-time.After(20 * time.Second):
					err = nil
				}
				pc.Close()
				if err == nil {
					err = fmt.Errorf("no messages and no error for 20 s")
				}
				res <- fmt.Errorf("ConsumePartition started; %v", err)
				return
			}
			res <- err
		}()
		select {
		case err := <-res:
			why = append(why, fmt.Sprintf("ConsumePartition failed after %.1f s: %v", time.Since(t).Seconds(), err))
			if strings.HasPrefix(err.Error(), "ConsumePartition started") {
				ok = false
			}
		case <-time.After(60 * time.Second):
			ok = false
			why = append(why, "ConsumePartition hung for 60 s")
		}
		cons.Close()
	}

	// 3. Consumer groups: refused by Sarama itself below 0.10.2
	_, err = sarama.NewConsumerGroup([]string{bootstrap}, "sarama-oldver", conf)
	if err == nil {
		ok = false
		why = append(why, "NewConsumerGroup accepted Version 0.8.2")
	} else {
		why = append(why, fmt.Sprintf("NewConsumerGroup: %v", err))
	}
	// 4. Any Version: Consumer.Offsets.Retention = 0 (the default) means OffsetCommit v1, also
	// removed in Kafka 4. The commit must come back as an error (Sarama only logs it unless
	// Consumer.Return.Errors is set).
	t = time.Now()
	vconf := config("sarama-oldver-commit")
	vconf.Consumer.Offsets.Retention = 0
	vconf.Consumer.Return.Errors = true
	if client, err := sarama.NewClient([]string{bootstrap}, vconf); err != nil {
		ok = false
		why = append(why, fmt.Sprintf("NewClient: %v", err))
	} else {
		om, _ := sarama.NewOffsetManagerFromClient("sarama-oldver", client)
		pom, err := om.ManagePartition(topic, 0)
		if err != nil {
			ok = false
			why = append(why, fmt.Sprintf("ManagePartition: %v", err))
		} else {
			pom.MarkOffset(1, "")
			pom.AsyncClose()
			res := make(chan []string, 1)
			go func() {
				om.Close()
				var errs []string
				for e := range pom.Errors() {
					errs = append(errs, e.Err.Error())
				}
				res <- errs
			}()
			select {
			case errs := <-res:
				if len(errs) == 0 {
					ok = false
					why = append(why, "OffsetCommit v1 reported no error")
				} else {
					why = append(why, fmt.Sprintf("Version %s with Offsets.Retention 0: OffsetCommit v1 failed after %.1f s: %v", vconf.Version, time.Since(t).Seconds(), errs[0]))
				}
			case <-time.After(60 * time.Second):
				ok = false
				why = append(why, "OffsetCommit v1 hung for 60 s")
			}
		}
		client.Close()
	}
	// 5. Any Version: ClusterAdmin.ListTopics (and DescribeConfig) send DescribeConfigs v0,
	// removed in Kafka 4.
	t = time.Now()
	if admin, err := newAdmin("sarama-oldver-admin"); err != nil {
		ok = false
		why = append(why, fmt.Sprintf("NewClusterAdmin: %v", err))
	} else {
		res := make(chan error, 1)
		go func() {
			_, err := admin.ListTopics()
			res <- err
		}()
		select {
		case err := <-res:
			if err == nil {
				ok = false
				why = append(why, "ListTopics (DescribeConfigs v0) succeeded")
			} else {
				why = append(why, fmt.Sprintf("ClusterAdmin.ListTopics (DescribeConfigs v0) failed after %.1f s: %v", time.Since(t).Seconds(), err))
			}
		case <-time.After(60 * time.Second):
			ok = false
			why = append(why, "ListTopics hung for 60 s")
		}
		admin.Close()
	}
	if ok {
		pass(check, start, strings.Join(why, "; "))
	} else {
		fail(check, start, "%s", strings.Join(why, "; "))
	}
}

// ---------------------------------------------------------------- compression

// checkCompression round-trips gzip, snappy and lz4 batches (Produce v3, Fetch v4).
func checkCompression() {
	const check, n = "compression", 200
	start := time.Now()
	var done []string
	for _, cc := range []sarama.CompressionCodec{sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4} {
		topic := fmt.Sprintf("sarama-comp-%s", cc)
		if proxyMode { // one partition, as corral auto-creates it (the mock would make four)
			if err := mockCreate(topic, 1); err != nil {
				fail(check, start, "%s: %v", cc, err)
				return
			}
		}
		conf := config("sarama-compression")
		conf.Producer.Compression = cc
		p, err := sarama.NewSyncProducer([]string{bootstrap}, conf)
		if err != nil {
			fail(check, start, "%s: NewSyncProducer: %v", cc, err)
			return
		}
		var msgs []*sarama.ProducerMessage
		for i := 0; i < n; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("%s value %d %s", cc, i, strings.Repeat("x", 100)))})
		}
		err = p.SendMessages(msgs)
		p.Close()
		if err != nil {
			fail(check, start, "%s: SendMessages: %v", cc, err)
			return
		}
		cons, err := sarama.NewConsumer([]string{bootstrap}, config("sarama-compression"))
		if err != nil {
			fail(check, start, "%s: NewConsumer: %v", cc, err)
			return
		}
		pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
		if err != nil {
			cons.Close()
			fail(check, start, "%s: ConsumePartition: %v", cc, err)
			return
		}
		for i := 0; i < n; i++ {
			select {
			case m := <-pc.Messages():
				if string(m.Value) != string(msgs[i].Value.(sarama.StringEncoder)) || m.Offset != int64(i) {
					pc.Close()
					cons.Close()
					fail(check, start, "%s: offset %d holds %q", cc, m.Offset, m.Value)
					return
				}
			case <-time.After(10 * time.Second):
				pc.Close()
				cons.Close()
				fail(check, start, "%s: read %d of %d", cc, i, n)
				return
			}
		}
		pc.Close()
		cons.Close()
		done = append(done, cc.String())
	}
	pass(check, start, fmt.Sprintf("%v: %d messages each, intact", done, n))
}

// Kafka (2.1 through 4.x) refuses zstd below the versions that announce it (KIP-110):
// ProduceRequest.validateRecords answers UNSUPPORTED_COMPRESSION_TYPE for a zstd batch in
// Produce < v7, and KafkaApis answers it for Fetch < v10 on a topic with compression.type=zstd.
// Sarama 1.22 speaks at most Produce v3 and Fetch v4, so on Kafka it cannot use zstd at all.
func checkZstdOldVersions() {
	start := time.Now()
	conf := config("sarama-zstd")
	conf.Producer.Compression = sarama.CompressionZSTD
	conf.Producer.Retry.Max = 0
	if p, err := sarama.NewSyncProducer([]string{bootstrap}, conf); err != nil {
		fail("zstd-produce-v3-refused", start, "NewSyncProducer: %v", err)
	} else {
		part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: "sarama-zstd-produce", Value: sarama.StringEncoder("zstd in Produce v3")})
		p.Close()
		if err == sarama.ErrUnsupportedCompressionType {
			pass("zstd-produce-v3-refused", start, fmt.Sprintf("SendMessage: %v", err))
		} else if proxyMode && err == nil {
			// the proxy forwards Produce as it is; the mock stores any batch it is given
			skip("zstd-produce-v3-refused", fmt.Sprintf("the upstream, librdkafka's mock cluster, does not refuse zstd below Produce v7 as Kafka does (KIP-110): it stored the zstd batch sent in Produce v3 at partition %d offset %d", part, off))
		} else {
			fail("zstd-produce-v3-refused", start, "a zstd batch in Produce v3 got %v (partition %d offset %d); Kafka answers UNSUPPORTED_COMPRESSION_TYPE (76) below Produce v7", err, part, off)
		}
	}

	start = time.Now()
	const check, topic = "zstd-topic-fetch-v4-refused", "sarama-zstd-topic"
	if proxyMode {
		skip(check, upstreamLacks("CreateTopics (nor topic configs): no topic with compression.type=zstd can be made"))
		return
	}
	admin, err := newAdmin("sarama-zstd")
	if err != nil {
		fail(check, start, "NewClusterAdmin: %v", err)
		return
	}
	z := "zstd"
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: map[string]*string{"compression.type": &z}}, false)
	admin.Close()
	if err != nil {
		fail(check, start, "CreateTopic with compression.type=zstd: %v", err)
		return
	}
	if err := produceTo(topic, map[int32][]string{0: {"uncompressed, stored as zstd by Kafka"}}); err != nil {
		fail(check, start, "uncompressed Produce v3: %v", err)
		return
	}
	cconf := config("sarama-zstd")
	cconf.Consumer.Return.Errors = true
	cons, err := sarama.NewConsumer([]string{bootstrap}, cconf)
	if err != nil {
		fail(check, start, "NewConsumer: %v", err)
		return
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		fail(check, start, "ConsumePartition: %v", err)
		return
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		fail(check, start, "Fetch v4 read %q at offset %d from a topic with compression.type=zstd; Kafka answers UNSUPPORTED_COMPRESSION_TYPE (76) below Fetch v10", m.Value, m.Offset)
	case e := <-pc.Errors():
		// Kafka answers an error partition with null records (FetchResponse.partitionResponse
		// sets none), and Sarama 1.22 cannot decode a null records field: against Kafka 4 it
		// reports this decode error rather than the code. Either shows the refusal.
		if e.Err == sarama.ErrUnsupportedCompressionType {
			pass(check, start, fmt.Sprintf("consumer error: %v", e))
		} else if strings.Contains(e.Error(), "invalid byteslice length") {
			pass(check, start, fmt.Sprintf("refused; Sarama 1.22 cannot decode the error partition's null records, as with Kafka 4: %v", e))
		} else {
			fail(check, start, "consumer error %v, want UNSUPPORTED_COMPRESSION_TYPE", e)
		}
	case <-time.After(10 * time.Second):
		fail(check, start, "no message and no error in 10 s")
	}
}
