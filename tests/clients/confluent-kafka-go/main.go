// confluent-kafka-go (Debian golang-github-confluentinc-confluent-kafka-go-dev 0.11.6, cgo over
// Debian's librdkafka 2.0.2) against corral.
//
//	ckgo-check BOOTSTRAP                       run every check
//	ckgo-check member BOOTSTRAP GROUP TOPIC    one consumer-group member (the group-kill child)
//
// Prints "PASS confluent-kafka-go <check>" / "FAIL confluent-kafka-go <check>: <why>" on
// stdout, and "N/A ..." for the checks this old Go API has no call for; timings ("# ...") go
// to stderr. Exit status 1 if any check failed.
//
// The wire protocol is librdkafka 2.0.2's (it negotiates versions with ApiVersions); the Go
// layer 0.11.6 predates the group admin API (ListConsumerGroups, DescribeConsumerGroups,
// DeleteConsumerGroups came with confluent-kafka-go 2.x), so list-groups, describe-group and
// delete-group have no client call here. Committed offsets are listed with
// Consumer.Committed and reset with Consumer.CommitOffsets outside the group (assign mode).
//
// In proxy mode (CORRAL_MODE=proxy, see ../run.sh) the bootstrap is a corral proxy in front of
// librdkafka's mock cluster: topics are made through the mock's control port
// (CORRAL_MOCK_CONTROL) and create-topic prints "SKIP confluent-kafka-go create-topic: <why>"
// (the mock has no CreateTopics).
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/confluentinc/confluent-kafka-go/kafka"
)

const family = "confluent-kafka-go"

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

func notApplicable(check, why string) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("N/A %s %s: %s\n", family, check, why)
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

func conf(clientID string, extra kafka.ConfigMap) *kafka.ConfigMap {
	c := kafka.ConfigMap{
		"bootstrap.servers": bootstrap,
		"client.id":         clientID,
	}
	for k, v := range extra {
		c[k] = v
	}
	return &c
}

// group members: 6 s session, 1 s heartbeat, commits every 200 ms
func groupConf(clientID, group string) *kafka.ConfigMap {
	return conf(clientID, kafka.ConfigMap{
		"group.id":                        group,
		"session.timeout.ms":              6000,
		"heartbeat.interval.ms":           1000,
		"auto.offset.reset":               "earliest",
		"enable.auto.commit":              true,
		"auto.commit.interval.ms":         200,
		"fetch.wait.max.ms":               100,
		"go.application.rebalance.enable": true,
	})
}

func main() {
	if len(os.Args) == 5 && os.Args[1] == "member" {
		childMember(os.Args[2], os.Args[3], os.Args[4])
		return
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: ckgo-check BOOTSTRAP")
		os.Exit(2)
	}
	bootstrap = os.Args[1]
	_, lib := kafka.LibraryVersion()
	note("confluent-kafka-go 0.11.6 (Debian), librdkafka %s", lib)
	all := time.Now()

	checkMetadata()
	if checkCreateTopic() {
		checkProduceConsume10k()
		checkGroups()
		checkCommitResume()
		checkIdempotent()
		checkCompression()
	}
	for _, c := range []string{"list-groups", "describe-group", "delete-group"} {
		notApplicable(c, "confluent-kafka-go 0.11.6 has no group admin API (ListConsumerGroups/DescribeConsumerGroups/DeleteConsumerGroups came in 2.x)")
	}

	note("all checks took %.1f s", time.Since(all).Seconds())
	for _, f := range failures {
		note("FAILED %s", f)
	}
	if failed {
		os.Exit(1)
	}
}

// ---------------------------------------------------------------- metadata, create-topic

func checkMetadata() {
	start := time.Now()
	a, err := kafka.NewAdminClient(conf("ckgo-metadata", nil))
	if err != nil {
		fail("metadata", start, "NewAdminClient: %v", err)
		return
	}
	defer a.Close()
	md, err := a.GetMetadata(nil, true, 10000)
	if err != nil {
		fail("metadata", start, "GetMetadata: %v", err)
		return
	}
	if proxyMode {
		// the upstream's brokers at corral listeners, corral's own node at the bootstrap address
		me := ""
		for _, b := range md.Brokers {
			if b.ID == corralNodeID {
				me = fmt.Sprintf("%s:%d", b.Host, b.Port)
			}
		}
		if len(md.Brokers) != expectBrokers || me != bootstrap {
			fail("metadata", start, "brokers %+v, want %d with node %d at %s", md.Brokers, expectBrokers, corralNodeID, bootstrap)
			return
		}
		pass("metadata", start, fmt.Sprintf("brokers %+v, %d topics", md.Brokers, len(md.Topics)))
		return
	}
	if len(md.Brokers) != 1 || fmt.Sprintf("%s:%d", md.Brokers[0].Host, md.Brokers[0].Port) != bootstrap {
		fail("metadata", start, "brokers %+v, want one at %s", md.Brokers, bootstrap)
		return
	}
	pass("metadata", start, fmt.Sprintf("broker %+v, %d topics", md.Brokers[0], len(md.Topics)))
}

var topics = map[string]int{
	"ckgo-10k":    3,
	"ckgo-group":  6,
	"ckgo-resume": 3,
	"ckgo-idem":   3,
}

func checkCreateTopic() bool {
	start := time.Now()
	if proxyMode {
		for t, n := range topics {
			if err := mockCreate(t, n); err != nil {
				fail("create-topic", start, "%s; and creating the topics through the mock failed: %v", upstreamLacks("CreateTopics"), err)
				return false
			}
		}
		skip("create-topic", upstreamLacks("CreateTopics"))
		return true
	}
	a, err := kafka.NewAdminClient(conf("ckgo-admin", nil))
	if err != nil {
		fail("create-topic", start, "NewAdminClient: %v", err)
		return false
	}
	defer a.Close()
	var specs []kafka.TopicSpecification
	for t, n := range topics {
		specs = append(specs, kafka.TopicSpecification{Topic: t, NumPartitions: n, ReplicationFactor: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := a.CreateTopics(ctx, specs, kafka.SetAdminOperationTimeout(5*time.Second))
	if err != nil {
		fail("create-topic", start, "CreateTopics: %v", err)
		return false
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError {
			fail("create-topic", start, "CreateTopics: %v", res)
			return false
		}
	}
	md, err := a.GetMetadata(nil, true, 10000)
	if err != nil {
		fail("create-topic", start, "GetMetadata: %v", err)
		return false
	}
	for t, n := range topics {
		if tm, ok := md.Topics[t]; !ok || len(tm.Partitions) != n || tm.Error.Code() != kafka.ErrNoError {
			fail("create-topic", start, "topic %s in metadata: %+v", t, md.Topics[t])
			return false
		}
	}
	res, err = a.CreateTopics(ctx, specs[:1])
	if err != nil || len(res) != 1 || res[0].Error.Code() != kafka.ErrTopicAlreadyExists {
		fail("create-topic", start, "creating %s again: want TOPIC_ALREADY_EXISTS, got %v %v", specs[0].Topic, res, err)
		return false
	}
	pass("create-topic", start, fmt.Sprintf("%v; again: %v", topics, res[0].Error))
	return true
}

// ---------------------------------------------------------------- produce-consume-10k

type pos struct {
	partition int32
	offset    kafka.Offset
}

// produce sends msgs and waits for every delivery report: value -> where it landed.
func produce(p *kafka.Producer, msgs []*kafka.Message) (map[string]pos, error) {
	where := make(map[string]pos, len(msgs))
	dr := make(chan kafka.Event, 1000)
	var firstErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < len(msgs); got++ {
			select {
			case ev := <-dr:
				m := ev.(*kafka.Message)
				if m.TopicPartition.Error != nil {
					if firstErr == nil {
						firstErr = m.TopicPartition.Error
					}
					continue
				}
				where[string(m.Value)] = pos{m.TopicPartition.Partition, m.TopicPartition.Offset}
			case <-time.After(30 * time.Second):
				firstErr = fmt.Errorf("timed out after %d delivery reports", got)
				return
			}
		}
	}()
	for _, m := range msgs {
		for {
			err := p.Produce(m, dr)
			if err == nil {
				break
			}
			if e, ok := err.(kafka.Error); ok && e.Code() == kafka.ErrQueueFull {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return where, err
		}
	}
	<-done
	if firstErr == nil && len(where) != len(msgs) {
		firstErr = fmt.Errorf("%d distinct deliveries for %d messages", len(where), len(msgs))
	}
	return where, firstErr
}

// readAll reads every partition of topic from the beginning to its high watermark.
func readAll(topic string, nparts int, each func(m *kafka.Message) error) (int, error) {
	c, err := kafka.NewConsumer(conf("ckgo-reader", kafka.ConfigMap{
		"group.id":           "ckgo-reader-unused",
		"enable.auto.commit": false,
		"fetch.wait.max.ms":  100,
	}))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	hwm := map[int32]int64{}
	var tps []kafka.TopicPartition
	for p := int32(0); p < int32(nparts); p++ {
		_, h, err := c.QueryWatermarkOffsets(topic, p, 10000)
		if err != nil {
			return 0, err
		}
		hwm[p] = h
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.OffsetBeginning})
	}
	if err := c.Assign(tps); err != nil {
		return 0, err
	}
	next := map[int32]int64{}
	total := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := true
		for p, h := range hwm {
			done = done && next[p] >= h
		}
		if done {
			return total, nil
		}
		if time.Now().After(deadline) {
			return total, fmt.Errorf("timed out: read up to %v of %v", next, hwm)
		}
		switch ev := c.Poll(100).(type) {
		case *kafka.Message:
			p := ev.TopicPartition.Partition
			if int64(ev.TopicPartition.Offset) != next[p] {
				return total, fmt.Errorf("partition %d: offset %d where %d was next", p, ev.TopicPartition.Offset, next[p])
			}
			next[p]++
			total++
			if err := each(ev); err != nil {
				return total, err
			}
		case kafka.Error:
			return total, ev
		}
	}
}

func checkProduceConsume10k() {
	const check, topic, n, nkeys = "produce-consume-10k", "ckgo-10k", 10000, 97
	start := time.Now()
	p, err := kafka.NewProducer(conf("ckgo-10k", kafka.ConfigMap{"linger.ms": 5, "acks": "all"}))
	if err != nil {
		fail(check, start, "NewProducer: %v", err)
		return
	}
	t := topic
	msgs := make([]*kafka.Message, n)
	for i := range msgs {
		msgs[i] = &kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &t, Partition: kafka.PartitionAny},
			Key:            []byte(fmt.Sprintf("key-%d", i%nkeys)),
			Value:          []byte(fmt.Sprintf("%d:%d", i%nkeys, i)),
		}
	}
	where, err := produce(p, msgs)
	p.Close()
	if err != nil {
		fail(check, start, "produce: %v", err)
		return
	}
	tProduce := time.Since(start)
	lastOfKey := map[string]int{}
	total, err := readAll(topic, 3, func(m *kafka.Message) error {
		var k, i int
		if _, err := fmt.Sscanf(string(m.Value), "%d:%d", &k, &i); err != nil || string(m.Key) != fmt.Sprintf("key-%d", k) || k != i%nkeys {
			return fmt.Errorf("%v: key %q value %q do not match", m.TopicPartition, m.Key, m.Value)
		}
		if w, ok := where[string(m.Value)]; !ok || w.partition != m.TopicPartition.Partition || w.offset != m.TopicPartition.Offset {
			return fmt.Errorf("value %q read at %v, delivered to %v", m.Value, m.TopicPartition, w)
		}
		if last, ok := lastOfKey[string(m.Key)]; ok && last >= i {
			return fmt.Errorf("key %s: value %d after %d (out of order)", m.Key, i, last)
		}
		lastOfKey[string(m.Key)] = i
		return nil
	})
	if err != nil || total != n {
		fail(check, start, "read %d of %d: %v", total, n, err)
		return
	}
	pass(check, start, fmt.Sprintf("(produce %.1f s) %d keyed messages over 3 partitions, intact and in order", tProduce.Seconds(), n))
}

func produceTo(topic string, msgs map[int32][]string) error {
	p, err := kafka.NewProducer(conf("ckgo-feeder", kafka.ConfigMap{"linger.ms": 5, "acks": "all"}))
	if err != nil {
		return err
	}
	defer p.Close()
	var ms []*kafka.Message
	t := topic
	for part, vs := range msgs {
		for _, v := range vs {
			ms = append(ms, &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &t, Partition: part}, Key: []byte(v), Value: []byte(v)})
		}
	}
	_, err = produce(p, ms)
	return err
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

// ---------------------------------------------------------------- consumer groups

type seenSet struct {
	mu    sync.Mutex
	count map[string]int
	by    map[string]string
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

// member is a subscribed Consumer polled by its own goroutine, or (cmd != nil) a child process.
type member struct {
	name     string
	seen     *seenSet
	stopc    chan struct{}
	done     chan struct{}
	cmd      *exec.Cmd
	closeErr error
	closeDur time.Duration

	mu      sync.Mutex
	claims  []int32
	assigns int // assignments received so far
}

func (m *member) setClaims(ps []kafka.TopicPartition) {
	var c []int32
	for _, p := range ps {
		c = append(c, p.Partition)
	}
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	m.mu.Lock()
	m.claims = c
	if c != nil {
		m.assigns++
	}
	m.mu.Unlock()
}

func (m *member) view() (int, []int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.assigns, m.claims
}

func startMember(name, group, topic string, seen *seenSet) (*member, error) {
	c, err := kafka.NewConsumer(groupConf("ckgo-"+name, group))
	if err != nil {
		return nil, err
	}
	if err := c.SubscribeTopics([]string{topic}, nil); err != nil {
		c.Close()
		return nil, err
	}
	m := &member{name: name, seen: seen, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			select {
			case <-m.stopc:
				t := time.Now()
				m.closeErr = c.Close() // commits, then LeaveGroup
				m.closeDur = time.Since(t)
				return
			default:
			}
			switch ev := c.Poll(50).(type) {
			case kafka.AssignedPartitions:
				c.Assign(ev.Partitions)
				m.setClaims(ev.Partitions)
				note("member %s: assigned %v", name, ev.Partitions)
			case kafka.RevokedPartitions:
				c.Unassign()
				m.setClaims(nil)
				note("member %s: revoked", name)
			case *kafka.Message:
				seen.add(string(ev.Value), name, ev.TopicPartition.Partition)
			case kafka.Error:
				note("member %s: %v", name, ev)
			}
		}
	}()
	return m, nil
}

func (m *member) stop() error {
	if m.cmd != nil {
		return nil
	}
	select {
	case <-m.stopc:
	default:
		close(m.stopc)
	}
	<-m.done
	return m.closeErr
}

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
	m := &member{name: name, seen: seen, cmd: cmd, done: make(chan struct{})}
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
	case len(f) >= 1 && f[0] == "ASSIGNED":
		var tps []kafka.TopicPartition
		if len(f) > 1 {
			for _, s := range strings.Split(f[1], ",") {
				var p int32
				fmt.Sscanf(s, "%d", &p)
				tps = append(tps, kafka.TopicPartition{Partition: p})
			}
		}
		m.setClaims(tps)
		note("member %s (child pid %d): assigned %v", m.name, m.cmd.Process.Pid, f[1:])
	case len(f) == 1 && f[0] == "REVOKED":
		m.setClaims(nil)
	case len(f) == 3 && f[0] == "GOT":
		var p int32
		fmt.Sscanf(f[2], "%d", &p)
		m.seen.add(f[1], m.name, p)
	}
}

func childMember(bs, group, topic string) {
	bootstrap = bs
	c, err := kafka.NewConsumer(groupConf("ckgo-child", group))
	if err == nil {
		err = c.SubscribeTopics([]string{topic}, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	for {
		switch ev := c.Poll(50).(type) {
		case kafka.AssignedPartitions:
			c.Assign(ev.Partitions)
			var ps []string
			for _, p := range ev.Partitions {
				ps = append(ps, fmt.Sprint(p.Partition))
			}
			fmt.Printf("ASSIGNED %s\n", strings.Join(ps, ","))
		case kafka.RevokedPartitions:
			c.Unassign()
			fmt.Println("REVOKED")
		case *kafka.Message:
			fmt.Printf("GOT %s %d\n", ev.Value, ev.TopicPartition.Partition)
		case kafka.Error:
			fmt.Fprintln(os.Stderr, "child:", ev)
		}
	}
}

// waitBalanced waits until every member holds per partitions, all nparts together, each with
// more assignments than in before (a new generation).
func waitBalanced(ms []*member, per, nparts int, before map[string]int, timeout time.Duration) (bool, string) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok := true
		union := map[int32]bool{}
		var desc []string
		for _, m := range ms {
			n, c := m.view()
			desc = append(desc, fmt.Sprintf("%s:%v", m.name, c))
			if len(c) != per || n <= before[m.name] {
				ok = false
			}
			for _, p := range c {
				union[p] = true
			}
		}
		last = strings.Join(desc, " ")
		if ok && len(union) == nparts {
			return true, last
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false, last
}

func assignCounts(ms []*member) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[m.name], _ = m.view()
	}
	return out
}

func checkGroups() {
	const group, topic, nparts = "ckgo-group", "ckgo-group", 6
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
			fail("group-balance", start, "NewConsumer %s: %v", name, err)
			return
		}
		ms = append(ms, m)
	}
	ok, desc := waitBalanced(ms, 2, nparts, nil, 40*time.Second)
	if !ok {
		fail("group-balance", start, "three members never held 2 partitions each: %s", desc)
		for _, c := range []string{"group-leave", "group-kill", "list-group-offsets", "reset-offsets"} {
			fail(c, start, "not run: group-balance never balanced")
		}
		return
	}
	tBalanced := time.Since(start)
	batch1, vals1 := values("g1", nparts, 100)
	if err := produceTo(topic, batch1); err != nil {
		fail("group-balance", start, "produce: %v", err)
		return
	}
	missing, dups, fm := waitConsumed(seen, vals1, 20*time.Second)
	wrong := 0
	seen.mu.Lock()
	for _, v := range vals1 {
		for _, m := range ms {
			if m.name == seen.by[v] {
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
	seen.mu.Unlock()
	if missing > 0 || dups > 0 || wrong > 0 {
		fail("group-balance", start, "%d messages: %d never consumed (first %s), %d twice, %d by a member not owning the partition; %s", len(vals1), missing, fm, dups, wrong, desc)
	} else {
		pass("group-balance", start, fmt.Sprintf("balanced after %.1f s (%s); %d messages each consumed once", tBalanced.Seconds(), desc, len(vals1)))
	}

	// group-leave: c closes (commit + LeaveGroup)
	t0 := time.Now()
	before := assignCounts(ms)
	c := ms[2]
	if err := c.stop(); err != nil {
		note("member c Close: %v", err)
	}
	ms = ms[:2]
	ok, desc = waitBalanced(ms, 3, nparts, before, 20*time.Second)
	tLeave := time.Since(t0)
	if !ok {
		fail("group-leave", t0, "after c left, a and b never held 3 partitions each: %s", desc)
	} else {
		batch2, vals2 := values("g2", nparts, 10)
		if err := produceTo(topic, batch2); err != nil {
			fail("group-leave", t0, "produce: %v", err)
		} else if missing, dups, fm := waitConsumed(seen, append(vals1, vals2...), 20*time.Second); missing > 0 || dups > 0 {
			fail("group-leave", t0, "%d never consumed (first %s), %d consumed twice", missing, fm, dups)
		} else if tLeave > 5*time.Second {
			fail("group-leave", t0, "partitions moved %.1f s after the clean leave (want < 5 s)", tLeave.Seconds())
		} else {
			pass("group-leave", t0, fmt.Sprintf("Close took %.2f s; a and b had 3 partitions each %.2f s after it began (%s); later messages consumed once", c.closeDur.Seconds(), tLeave.Seconds(), desc))
		}
	}

	// group-kill: child d joins, then SIGKILL
	t1 := time.Now()
	before = assignCounts(ms)
	d, err := startChild("d", group, topic, seen)
	if err != nil {
		fail("group-kill", t1, "start child: %v", err)
	} else {
		ms = append(ms, d)
		ok, desc = waitBalanced(ms, 2, nparts, before, 40*time.Second)
		if !ok {
			fail("group-kill", t1, "with child d the group never balanced 2/2/2: %s", desc)
		} else {
			batch3, vals3 := values("g3", nparts, 10)
			produceTo(topic, batch3)
			missing, _, fm := waitConsumed(seen, vals3, 20*time.Second)
			time.Sleep(600 * time.Millisecond) // let d auto-commit (every 200 ms)
			note("group-kill: balanced 2/2/2 (%s); missing %d %s; SIGKILL child %d", desc, missing, fm, d.cmd.Process.Pid)
			before = assignCounts(ms[:2])
			tk := time.Now()
			d.cmd.Process.Signal(syscall.SIGKILL)
			d.cmd.Wait()
			<-d.done
			ms = ms[:2]
			ok4, desc4 := waitBalanced(ms, 3, nparts, before, 30*time.Second)
			tKill := time.Since(tk)
			batch4, vals4 := values("g4", nparts, 10)
			produceTo(topic, batch4)
			missing4, dups4, fm4 := waitConsumed(seen, vals4, 20*time.Second)
			switch {
			case !ok4:
				fail("group-kill", t1, "after SIGKILL of d, a and b never held 3 partitions each within 30 s: %s", desc4)
			case tKill < 4*time.Second:
				fail("group-kill", t1, "partitions moved %.1f s after SIGKILL: before the 6 s session timeout", tKill.Seconds())
			case tKill > 16*time.Second:
				fail("group-kill", t1, "partitions moved only %.1f s after SIGKILL (session timeout 6 s)", tKill.Seconds())
			case missing4 > 0 || dups4 > 0:
				fail("group-kill", t1, "after reassignment: %d never consumed (first %s), %d twice", missing4, fm4, dups4)
			default:
				pass("group-kill", t1, fmt.Sprintf("a and b had 3 partitions each %.1f s after SIGKILL (session timeout 6 s): %s", tKill.Seconds(), desc4))
			}
		}
	}
	for _, m := range ms {
		m.stop()
	}
	ms = nil
	checkGroupOffsets(group, topic, nparts)
}

// committed lists a group's committed offsets with a consumer that never joins it.
func committed(group, topic string, nparts int) (map[int32]int64, error) {
	c, err := kafka.NewConsumer(conf("ckgo-offsets", kafka.ConfigMap{"group.id": group, "enable.auto.commit": false}))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var tps []kafka.TopicPartition
	for p := int32(0); p < int32(nparts); p++ {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p})
	}
	res, err := c.Committed(tps, 10000)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, tp := range res {
		if tp.Error != nil {
			return nil, fmt.Errorf("partition %d: %v", tp.Partition, tp.Error)
		}
		out[tp.Partition] = int64(tp.Offset)
	}
	return out, nil
}

func checkGroupOffsets(group, topic string, nparts int) {
	start := time.Now()
	got, err := committed(group, topic, nparts)
	want := map[int32]int64{}
	if c, cerr := kafka.NewConsumer(conf("ckgo-wm", kafka.ConfigMap{"group.id": "ckgo-wm-unused"})); cerr == nil {
		for p := int32(0); p < int32(nparts); p++ {
			_, want[p], _ = c.QueryWatermarkOffsets(topic, p, 10000)
		}
		c.Close()
	}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		fail("list-group-offsets", start, "Committed: %v (err %v), want the high watermarks %v", got, err, want)
	} else {
		pass("list-group-offsets", start, fmt.Sprintf("Committed = high watermarks %v", got))
	}

	// reset-offsets: the group is empty; commit from outside it (assign mode, generation -1)
	start = time.Now()
	c, err := kafka.NewConsumer(conf("ckgo-reset", kafka.ConfigMap{"group.id": group, "enable.auto.commit": false}))
	if err != nil {
		fail("reset-offsets", start, "NewConsumer: %v", err)
		return
	}
	var tps []kafka.TopicPartition
	for p := int32(0); p < int32(nparts); p++ {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: 5})
	}
	res, err := c.CommitOffsets(tps)
	c.Close()
	if err == nil {
		for _, tp := range res {
			if tp.Error != nil {
				err = fmt.Errorf("partition %d: %v", tp.Partition, tp.Error)
			}
		}
	}
	if err != nil {
		fail("reset-offsets", start, "CommitOffsets to 5: %v", err)
		return
	}
	got, err = committed(group, topic, nparts)
	okAll := err == nil && len(got) == nparts
	for _, o := range got {
		okAll = okAll && o == 5
	}
	if !okAll {
		fail("reset-offsets", start, "after CommitOffsets(5): %v (err %v)", got, err)
		return
	}
	pass("reset-offsets", start, fmt.Sprintf("offsets now %v", got))
}

// ---------------------------------------------------------------- commit-resume

// runResume subscribes, reads until every partition reached offset until-1, commits commitAt
// (if >= 0) for every partition, and closes. It returns the first offset read per partition.
func runResume(group, topic string, nparts int, until, commitAt int64) (map[int32]int64, error) {
	c, err := kafka.NewConsumer(conf("ckgo-resume", kafka.ConfigMap{
		"group.id":              group,
		"session.timeout.ms":    6000,
		"heartbeat.interval.ms": 1000,
		"auto.offset.reset":     "earliest",
		"enable.auto.commit":    false,
		"fetch.wait.max.ms":     100,
	}))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SubscribeTopics([]string{topic}, nil); err != nil {
		return nil, err
	}
	first := map[int32]int64{}
	max := map[int32]int64{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := len(max) == nparts
		for _, m := range max {
			done = done && m >= until-1
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			return first, fmt.Errorf("timed out: read up to %v", max)
		}
		switch ev := c.Poll(100).(type) {
		case *kafka.Message:
			p, o := ev.TopicPartition.Partition, int64(ev.TopicPartition.Offset)
			if _, ok := first[p]; !ok {
				first[p] = o
			}
			if o > max[p] {
				max[p] = o
			}
		case kafka.Error:
			return first, ev
		}
	}
	if commitAt >= 0 {
		var tps []kafka.TopicPartition
		for p := int32(0); p < int32(nparts); p++ {
			tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.Offset(commitAt)})
		}
		if _, err := c.CommitOffsets(tps); err != nil {
			return first, fmt.Errorf("CommitOffsets: %v", err)
		}
	}
	return first, nil
}

func checkCommitResume() {
	const check, group, topic, nparts, per, cut = "commit-resume", "ckgo-resume", "ckgo-resume", 3, 60, 30
	start := time.Now()
	batch, _ := values("r", nparts, per)
	if err := produceTo(topic, batch); err != nil {
		fail(check, start, "produce: %v", err)
		return
	}
	if _, err := runResume(group, topic, nparts, cut, cut); err != nil {
		fail(check, start, "first run: %v", err)
		return
	}
	c1, err := committed(group, topic, nparts)
	if err != nil {
		fail(check, start, "Committed after the first run: %v", err)
		return
	}
	for p, o := range c1 {
		if o != cut {
			fail(check, start, "after the first run partition %d committed %d, want %d", p, o, cut)
			return
		}
	}
	first, err := runResume(group, topic, nparts, per, per)
	if err != nil {
		fail(check, start, "second run: %v", err)
		return
	}
	for p := int32(0); p < nparts; p++ {
		if first[p] != cut {
			fail(check, start, "second run: partition %d started at %d, want the committed %d (%v)", p, first[p], cut, first)
			return
		}
	}
	c2, err := committed(group, topic, nparts)
	for p, o := range c2 {
		if o != per {
			err = fmt.Errorf("partition %d committed %d, want %d", p, o, per)
		}
	}
	if err != nil {
		fail(check, start, "after the second run: %v", err)
		return
	}
	pass(check, start, fmt.Sprintf("committed %v; the restarted consumer began at %v; then %v", c1, first, c2))
}

// ---------------------------------------------------------------- idempotent-producer

func checkIdempotent() {
	const check, topic, n, nkeys = "idempotent-producer", "ckgo-idem", 3000, 31
	start := time.Now()
	p, err := kafka.NewProducer(conf("ckgo-idem", kafka.ConfigMap{"enable.idempotence": true, "linger.ms": 5}))
	if err != nil {
		fail(check, start, "NewProducer: %v", err)
		return
	}
	t := topic
	msgs := make([]*kafka.Message, n)
	for i := range msgs {
		msgs[i] = &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &t, Partition: kafka.PartitionAny},
			Key: []byte(fmt.Sprintf("key-%d", i%nkeys)), Value: []byte(fmt.Sprintf("%d:%d", i%nkeys, i))}
	}
	where, err := produce(p, msgs)
	p.Close()
	if err != nil {
		fail(check, start, "produce: %v", err)
		return
	}
	seen := map[string]int{}
	last := map[string]int{}
	total, err := readAll(topic, 3, func(m *kafka.Message) error {
		var k, i int
		fmt.Sscanf(string(m.Value), "%d:%d", &k, &i)
		if l, ok := last[string(m.Key)]; ok && l >= i {
			return fmt.Errorf("key %s: %d after %d", m.Key, i, l)
		}
		last[string(m.Key)] = i
		seen[string(m.Value)]++
		if w := where[string(m.Value)]; w.offset != m.TopicPartition.Offset {
			return fmt.Errorf("%q at %v, delivered at %v", m.Value, m.TopicPartition, w)
		}
		return nil
	})
	if err != nil || total != n || len(seen) != n {
		fail(check, start, "log has %d records, %d distinct, want %d once each: %v", total, len(seen), n, err)
		return
	}
	pass(check, start, fmt.Sprintf("enable.idempotence: %d messages, each exactly once and in order", n))
}

// ---------------------------------------------------------------- compression

// checkCompression round-trips every codec; librdkafka 2.0.2 sends Produce v7 and Fetch v11,
// the versions that may carry zstd.
func checkCompression() {
	const check, n = "compression", 200
	start := time.Now()
	var done []string
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		topic := "ckgo-comp-" + codec
		if proxyMode { // one partition, as corral auto-creates it (the mock would make four)
			if err := mockCreate(topic, 1); err != nil {
				fail(check, start, "%s: %v", codec, err)
				return
			}
		}
		p, err := kafka.NewProducer(conf("ckgo-compression", kafka.ConfigMap{"compression.codec": codec, "linger.ms": 20, "acks": "all"}))
		if err != nil {
			fail(check, start, "%s: NewProducer: %v", codec, err)
			return
		}
		t := topic
		msgs := make([]*kafka.Message, n)
		for i := range msgs {
			msgs[i] = &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &t, Partition: 0},
				Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("%s value %d %s", codec, i, strings.Repeat("x", 100)))}
		}
		_, err = produce(p, msgs)
		p.Close()
		if err != nil {
			fail(check, start, "%s: produce: %v", codec, err)
			return
		}
		i := 0
		total, err := readAll(topic, 1, func(m *kafka.Message) error {
			if string(m.Value) != string(msgs[i].Value) {
				return fmt.Errorf("offset %v holds %q", m.TopicPartition.Offset, m.Value)
			}
			i++
			return nil
		})
		if err != nil || total != n {
			fail(check, start, "%s: read %d of %d: %v", codec, total, n, err)
			return
		}
		done = append(done, codec)
	}
	pass(check, start, fmt.Sprintf("%v: %d messages each, intact", done, n))
}
