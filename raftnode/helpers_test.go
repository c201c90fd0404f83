package raftnode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/memtransport"
	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wire"
)

// nodeWaitTimeout bounds every wait of the Node tests. Only tests that
// expect a wait to fail shorten it.
var nodeWaitTimeout = 10 * time.Second

// nodeTestSM is a state machine that records the data of every applied
// entry; Apply returns each entry's index.
type nodeTestSM struct {
	mu       sync.Mutex
	data     []string
	restores int
	// countOnly keeps no data and returns no results (for benchmarks, so
	// that they measure the Node rather than this state machine's
	// allocations); applied counts entries.
	countOnly bool
	applied   int
	// beforeApply, if set before the node starts, is called with each
	// batch before it is applied, without the lock held; it may block.
	beforeApply func([]raft.Entry)
}

func (sm *nodeTestSM) Apply(ents []raft.Entry) []any {
	if sm.beforeApply != nil {
		sm.beforeApply(ents)
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.countOnly {
		sm.applied += len(ents)
		return nil
	}
	out := make([]any, len(ents))
	for i, e := range ents {
		sm.data = append(sm.data, string(e.Data))
		sm.applied++
		out[i] = e.Index
	}
	return out
}

func (sm *nodeTestSM) Snapshot() (io.ReadCloser, error) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	b, err := json.Marshal(sm.data)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (sm *nodeTestSM) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	var data []string
	if len(b) > 0 {
		if err := json.Unmarshal(b, &data); err != nil {
			return err
		}
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.data = data
	sm.restores++
	return nil
}

func (sm *nodeTestSM) snapshot() []string {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return slices.Clone(sm.data)
}

func (sm *nodeTestSM) restoreCount() int {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.restores
}

// nodeFaultyStorage is a MemoryStorage whose Save fails from the first
// write of an entry whose data is failOn on, once armed.
type nodeFaultyStorage struct {
	*raft.MemoryStorage
	failOn  string
	armed   atomic.Bool
	failing atomic.Bool
}

var errNodeInjected = errors.New("injected disk failure")

func (s *nodeFaultyStorage) Save(hs raft.HardState, ents []raft.Entry, snap raft.Snapshot) error {
	if s.armed.Load() && slices.ContainsFunc(ents, func(e raft.Entry) bool { return string(e.Data) == s.failOn }) {
		s.failing.Store(true)
	}
	if s.failing.Load() {
		return errNodeInjected
	}
	return s.MemoryStorage.Save(hs, ents, snap)
}

// nodeMember is one node of a nodeCluster with what survives a restart.
type nodeMember struct {
	node    *raftnode.Node
	tr      *memtransport.Transport
	sm      *nodeTestSM
	storage raft.LogStorage
	leaders chan [2]uint64 // OnLeaderChange calls, if anyone listens
}

// nodeCluster is a cluster of Nodes on one memtransport network.
type nodeCluster struct {
	tb      testing.TB
	net     *memtransport.Network
	ids     []uint64 // every ID a transport knows as a peer
	members map[uint64]*nodeMember
	tune    func(*raftnode.Config)
	// countOnly makes the state machines keep no data.
	countOnly bool
	// trOpts are the options of every node's transport.
	trOpts memtransport.Options
	// prepare, if set, is called with each node (its node and transport
	// set) after New and before Start.
	prepare func(id uint64, m *nodeMember)
	// dirs holds each node's wal directory in a cluster on wal; nil for
	// a cluster in memory.
	dirs map[uint64]string
	// addresses bootstraps the members with addresses ("mem:<id>"), which
	// the configuration then carries.
	addresses bool
}

// clusterOption adjusts a nodeCluster before its nodes start.
type clusterOption func(*nodeCluster)

// withConfig has tune adjust each node's config.
func withConfig(tune func(*raftnode.Config)) clusterOption {
	return func(c *nodeCluster) { c.tune = tune }
}

// withCountingStateMachines gives the nodes state machines that count
// entries and keep no data (for benchmarks).
func withCountingStateMachines() clusterOption {
	return func(c *nodeCluster) { c.countOnly = true }
}

// withTransportOptions opens the nodes' transports with opts.
func withTransportOptions(opts memtransport.Options) clusterOption {
	return func(c *nodeCluster) { c.trOpts = opts }
}

// withPrepare calls prepare with each node after New and before Start (see
// nodeCluster.prepare).
func withPrepare(prepare func(id uint64, m *nodeMember)) clusterOption {
	return func(c *nodeCluster) { c.prepare = prepare }
}

// withAddresses bootstraps the members with addresses in the
// configuration, as a cluster over a real network is.
func withAddresses() clusterOption {
	return func(c *nodeCluster) { c.addresses = true }
}

// onWAL keeps each node's state in a wal directory of its own under a
// temporary directory, instead of in memory.
func onWAL() clusterOption {
	return func(c *nodeCluster) { c.dirs = map[uint64]string{} }
}

// newNodeCluster starts n bootstrapped Nodes with fast ticks. Cleanup stops
// everything (and closes the logs of a cluster on wal) and then checks that
// no goroutine leaked.
func newNodeCluster(tb testing.TB, n int, opts ...clusterOption) *nodeCluster {
	tb.Helper()
	before := goleak.IgnoreCurrent() // goroutines of earlier tests
	tb.Cleanup(func() { goleak.VerifyNone(tb, before) })
	net, err := memtransport.NewNetwork(wire.CodecOptions{})
	require.NoError(tb, err)
	c := &nodeCluster{tb: tb, net: net, members: map[uint64]*nodeMember{}}
	for _, opt := range opts {
		opt(c)
	}
	for id := uint64(1); id <= uint64(n); id++ {
		c.ids = append(c.ids, id)
	}
	tb.Cleanup(c.stopAll)
	for _, id := range c.ids {
		c.start(id, c.newStorage(id), c.ids)
	}
	return c
}

// newStorage returns fresh storage for node id: a wal directory of its own
// for a cluster on wal, else memory.
func (c *nodeCluster) newStorage(id uint64) raft.LogStorage {
	if c.dirs == nil {
		return raft.NewMemoryStorage()
	}
	c.dirs[id] = filepath.Join(c.tb.TempDir(), fmt.Sprintf("node%d", id))
	return c.openWAL(id)
}

// openWAL opens node id's log directory (a cluster on wal).
func (c *nodeCluster) openWAL(id uint64) *wal.Log {
	l, err := wal.Open(c.dirs[id], wal.Options{SegmentSize: 1 << 16})
	require.NoError(c.tb, err)
	return l
}

// start starts node id on storage (bootstrapping voters if the storage is
// empty) with a fresh state machine, which restores from the storage.
func (c *nodeCluster) start(id uint64, storage raft.LogStorage, voters []uint64) *nodeMember {
	c.tb.Helper()
	m := &nodeMember{sm: &nodeTestSM{countOnly: c.countOnly}, storage: storage, leaders: make(chan [2]uint64, 1024)}
	cfg := raftnode.Config{
		Raft:         raft.Config{ID: id, ElectionTick: 20, HeartbeatTick: 1},
		Storage:      storage,
		StateMachine: m.sm,
		TickInterval: 5 * time.Millisecond,
		OnLeaderChange: func(leader, term uint64) {
			select {
			case m.leaders <- [2]uint64{leader, term}:
			default:
			}
		},
	}
	if os.Getenv("NODE_DEBUG") != "" {
		cfg.Raft.Logger = zaptest.NewLogger(c.tb).With(zap.Uint64("node", id))
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	node, err := raftnode.New(cfg)
	require.NoError(c.tb, err)
	tr, err := c.net.NewTransport(id, c.ids, node, c.trOpts)
	require.NoError(c.tb, err)
	node.SetTransport(tr)
	m.node, m.tr = node, tr
	if c.prepare != nil {
		c.prepare(id, m)
	}
	peers := nodePeers(voters)
	if c.addresses {
		for i := range peers {
			peers[i].Address = fmt.Sprintf("mem:%d", peers[i].ID)
		}
	}
	require.NoError(c.tb, node.Start(peers))
	c.members[id] = m
	return m
}

// stop stops node id and closes its transport; its storage stays.
func (c *nodeCluster) stop(id uint64) {
	m := c.members[id]
	m.node.Stop()
	require.NoError(c.tb, m.tr.Close())
}

// stopAll stops every member and closes its transport, and its log on wal.
func (c *nodeCluster) stopAll() {
	for id, m := range c.members {
		m.node.Stop()
		_ = m.tr.Close()
		if l, ok := m.storage.(*wal.Log); ok {
			require.NoError(c.tb, l.Close())
		}
		delete(c.members, id)
	}
}

// addPeer makes id known to every open transport (and to the list new
// transports start with).
func (c *nodeCluster) addPeer(id uint64) {
	c.ids = append(c.ids, id)
	for _, m := range c.members {
		m.tr.AddPeer(id, "")
	}
}

// waitLeader waits until every running node in among agrees on one leader
// from among, and returns it.
func (c *nodeCluster) waitLeader(among ...uint64) uint64 {
	c.tb.Helper()
	if len(among) == 0 {
		among = slices.Sorted(maps.Keys(c.members))
	}
	var lead uint64
	nodeWaitFor(c.tb, "a leader all agree on", func() bool {
		lead = 0
		for _, id := range among {
			l, _ := c.members[id].node.LeaderID()
			if l == raft.None || (lead != 0 && l != lead) || !slices.Contains(among, l) {
				return false
			}
			lead = l
		}
		return true
	})
	return lead
}

// propose proposes on whichever node leads, as proposeAmong.
func (c *nodeCluster) propose(data string) uint64 {
	c.tb.Helper()
	return c.proposeAmong(slices.Sorted(maps.Keys(c.members)), data)
}

// nodeWaitFor polls cond until it holds or nodeWaitTimeout passes.
func nodeWaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(nodeWaitTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", nodeWaitTimeout, what)
		}
		<-tick.C
	}
}

func nodeCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// proposeAmong proposes on whichever of ids leads, as propose.
func (c *nodeCluster) proposeAmong(ids []uint64, data string) uint64 {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitTimeout)
	defer cancel()
	for {
		lead := c.waitLeader(ids...)
		res, err := c.members[lead].node.Propose(ctx, []byte(data))
		if err == nil {
			return res.(uint64)
		}
		require.NoError(c.tb, ctx.Err(), "proposing %q: last error %v", data, err)
		require.True(c.tb, errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrProposalDropped),
			"proposing %q: %v", data, err)
	}
}

// nodeDropTransport is a memtransport Transport that silently drops the
// messages drop selects, as a lossy network does (no unreachable report).
type nodeDropTransport struct {
	*memtransport.Transport
	drop atomic.Pointer[func(raft.Message) bool]
}

func (t *nodeDropTransport) Send(msgs []raft.Message) {
	if f := t.drop.Load(); f != nil {
		kept := make([]raft.Message, 0, len(msgs))
		for _, m := range msgs {
			if !(*f)(m) {
				kept = append(kept, m)
			}
		}
		msgs = kept
	}
	t.Transport.Send(msgs)
}

// setDrop makes the transport drop the messages drop picks (nil: none).
func (t *nodeDropTransport) setDrop(drop func(raft.Message) bool) {
	if drop == nil {
		t.drop.Store(nil)
		return
	}
	t.drop.Store(&drop)
}

// withDropTransports gives every node a nodeDropTransport over its
// memtransport, recorded in drops.
func withDropTransports(drops map[uint64]*nodeDropTransport) clusterOption {
	var mu sync.Mutex
	return withPrepare(func(id uint64, m *nodeMember) {
		w := &nodeDropTransport{Transport: m.tr}
		m.node.SetTransport(w)
		mu.Lock()
		drops[id] = w
		mu.Unlock()
	})
}
