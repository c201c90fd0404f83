package tcptransport

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keelraft/raft"
)

// waitTimeout bounds every wait in these tests; a healthy run needs far less.
const waitTimeout = 10 * time.Second

// testHandler records what a transport delivers, on buffered channels.
type testHandler struct {
	msgs    chan raft.Message
	unreach chan uint64
	snaps   chan testSnapStatus
	// block, if set, is called before a message is recorded (to stall a
	// stream).
	block func(m raft.Message)
}

type testSnapStatus struct {
	id     uint64
	status raft.SnapshotStatus
}

func newTestHandler() *testHandler {
	return &testHandler{
		msgs:    make(chan raft.Message, 1<<16),
		unreach: make(chan uint64, 1<<16),
		snaps:   make(chan testSnapStatus, 64),
	}
}

func (h *testHandler) HandleMessage(m raft.Message) {
	if h.block != nil {
		h.block(m)
	}
	select {
	case h.msgs <- m:
	default:
		panic("test handler: message channel full")
	}
}

func (h *testHandler) ReportUnreachable(id uint64) {
	select {
	case h.unreach <- id:
	default: // enough reports recorded
	}
}

func (h *testHandler) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	h.snaps <- testSnapStatus{id: id, status: status}
}

// next waits for the next delivered message.
func (h *testHandler) next(tb testing.TB) raft.Message {
	tb.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case m := <-h.msgs:
			if string(m.Context) == testProbe {
				continue
			}
			return m
		case <-deadline:
			tb.Fatalf("no message within %v", waitTimeout)
			return raft.Message{}
		}
	}
}

// expectNone checks that no message is delivered within d.
func (h *testHandler) expectNone(tb testing.TB, d time.Duration) {
	tb.Helper()
	select {
	case m := <-h.msgs:
		if string(m.Context) != testProbe {
			tb.Fatalf("unexpected message %s from %d", m.Type, m.From)
		}
	case <-time.After(d):
	}
}

// waitUnreachable waits for a report that id is unreachable.
func (h *testHandler) waitUnreachable(tb testing.TB, id uint64) {
	tb.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case got := <-h.unreach:
			if got == id {
				return
			}
		case <-deadline:
			tb.Fatalf("node %d not reported unreachable within %v", id, waitTimeout)
		}
	}
}

// waitSnapshot waits for the next snapshot report.
func (h *testHandler) waitSnapshot(tb testing.TB) testSnapStatus {
	tb.Helper()
	select {
	case s := <-h.snaps:
		return s
	case <-time.After(3 * waitTimeout):
		tb.Fatalf("no snapshot report within %v", 3*waitTimeout)
		return testSnapStatus{}
	}
}

// testNode is one transport of a test cluster.
type testNode struct {
	id   uint64
	addr string
	tr   *Transport
	h    *testHandler
	logs *observer.ObservedLogs
	// logged is signalled (capacity 1) after every log entry.
	logged chan struct{}
}

// testCluster holds n transports, IDs 1..n, all listening on 127.0.0.1 and
// knowing each other.
type testCluster struct {
	tb    testing.TB
	nodes map[uint64]*testNode
	peers map[uint64]string
}

// testFastConfig gives short timeouts so that failures are seen quickly.
func testFastConfig(c *Config) {
	c.DialTimeout = time.Second
	c.MinBackoff = 5 * time.Millisecond
	c.MaxBackoff = 50 * time.Millisecond
	c.KeepAliveInterval = 100 * time.Millisecond
	c.ReadTimeout = 2 * time.Second
	c.WriteTimeout = 2 * time.Second
	c.SnapshotBaseTimeout = 5 * time.Second
	c.SnapshotMinThroughput = 16 << 20
	c.HandshakeTimeout = 2 * time.Second
}

func newTestCluster(tb testing.TB, n int, mutate func(id uint64, c *Config)) *testCluster {
	tb.Helper()
	tc := &testCluster{tb: tb, nodes: map[uint64]*testNode{}, peers: map[uint64]string{}}
	lns := map[uint64]net.Listener{}
	for id := uint64(1); id <= uint64(n); id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(tb, err)
		lns[id] = ln
		tc.peers[id] = ln.Addr().String()
	}
	for id := uint64(1); id <= uint64(n); id++ {
		tc.start(id, lns[id], mutate)
	}
	tb.Cleanup(tc.closeAll)
	return tc
}

// start starts node id on ln (or on its old address if ln is nil).
func (tc *testCluster) start(id uint64, ln net.Listener, mutate func(id uint64, c *Config)) *testNode {
	tc.tb.Helper()
	obs, logs := observer.New(zapcore.DebugLevel)
	logged := make(chan struct{}, 1)
	core := zapcore.RegisterHooks(obs, func(zapcore.Entry) error {
		select {
		case logged <- struct{}{}:
		default:
		}
		return nil
	})
	h := newTestHandler()
	peers := map[uint64]string{}
	for pid, addr := range tc.peers {
		if pid != id {
			peers[pid] = addr
		}
	}
	cfg := Config{ID: id, ClusterID: 0xC1, Listener: ln, Peers: peers, Handler: h, Logger: zap.New(core), Insecure: true}
	if ln == nil {
		cfg.ListenAddr = tc.peers[id]
	}
	testFastConfig(&cfg)
	if mutate != nil {
		mutate(id, &cfg)
	}
	tr, err := New(cfg)
	require.NoError(tc.tb, err)
	nd := &testNode{id: id, addr: tc.peers[id], tr: tr, h: h, logs: logs, logged: logged}
	tc.nodes[id] = nd
	return nd
}

func (tc *testCluster) closeAll() {
	for _, nd := range tc.nodes {
		_ = nd.tr.Close()
	}
	if tc.tb.Failed() {
		for id, nd := range tc.nodes {
			for _, e := range nd.logs.All() {
				tc.tb.Logf("node %d: %s %s %v", id, e.Time.Format("15:04:05.000"), e.Message, e.ContextMap())
			}
		}
	}
}

// testProbe marks the messages sendUntilDelivered uses to find out that a
// stream is up; next skips them.
const testProbe = "probe"

// sendUntilDelivered waits until from's stream to m.To delivers (resending
// a probe copy of m every 20 ms: a connection being re-established drops
// messages), then sends m once and returns it as received.
func (tc *testCluster) sendUntilDelivered(from uint64, m raft.Message) raft.Message {
	tc.tb.Helper()
	to := tc.nodes[m.To]
	probe := m
	probe.Context = []byte(testProbe)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	tc.nodes[from].tr.Send([]raft.Message{probe})
	for probing := true; probing; {
		select {
		case got := <-to.h.msgs:
			if string(got.Context) != testProbe {
				tc.tb.Fatalf("unexpected %s from %d while probing", got.Type, got.From)
			}
			probing = false
		case <-tick.C:
			tc.nodes[from].tr.Send([]raft.Message{probe})
		case <-deadline:
			tc.tb.Fatalf("%s from %d to %d not delivered within %v", m.Type, from, m.To, waitTimeout)
		}
	}
	tc.nodes[from].tr.Send([]raft.Message{m})
	return to.h.next(tc.tb)
}

// waitLog waits until node nd logged an entry containing substr (in its
// message or fields), and returns the entry's text.
func waitLog(tb testing.TB, nd *testNode, substr string) string {
	tb.Helper()
	deadline := time.After(waitTimeout)
	for {
		for _, e := range nd.logs.All() {
			text := e.Message
			for k, v := range e.ContextMap() {
				text += fmt.Sprintf(" %s=%v", k, v)
			}
			if strings.Contains(text, substr) {
				return text
			}
		}
		select {
		case <-nd.logged:
		case <-deadline:
			tb.Fatalf("node %d logged nothing containing %q within %v; logs: %v", nd.id, substr, waitTimeout, nd.logs.All())
		}
	}
}

// goroutineBaseline returns a function that fails the test if, after the
// transports were closed, more goroutines run than before (allowing those
// that are still exiting a moment to do so).
func goroutineBaseline(tb testing.TB) func() {
	tb.Helper()
	before := runtime.NumGoroutine()
	return func() {
		tb.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				tb.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:n])
			}
			<-time.After(time.Millisecond) // polling the count: there is no event to wait on
		}
	}
}

// testPhantom is a peer that withPhantom adds to node 1 without running a
// transport for it: a test speaks for it over raw connections.
const testPhantom = 3

// withPhantom makes node 1 know testPhantom, at an address where nothing
// listens.
func withPhantom(id uint64, c *Config) {
	if id == 1 {
		c.Peers[testPhantom] = "127.0.0.1:1"
	}
}
