package raftnode_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/memtransport"
	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/tcptransport"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wire"
)

// nodePeers returns the voters ids without addresses, for clusters whose
// transports are told their peers by the test.
func nodePeers(ids []uint64) []raft.Peer {
	peers := make([]raft.Peer, len(ids))
	for i, id := range ids {
		peers[i] = raft.Peer{ID: id}
	}
	return peers
}

// addrRecorder is a transport that records the peers the Node gives it
// (AddPeer, RemovePeer) before passing the calls on.
type addrRecorder struct {
	raft.Transport
	mu      sync.Mutex
	peers   map[uint64]string
	removed []uint64
}

func (r *addrRecorder) AddPeer(id uint64, addr string) {
	r.mu.Lock()
	r.peers[id] = addr
	r.mu.Unlock()
	r.Transport.AddPeer(id, addr)
}

func (r *addrRecorder) RemovePeer(id uint64) {
	r.mu.Lock()
	delete(r.peers, id)
	r.removed = append(r.removed, id)
	r.mu.Unlock()
	r.Transport.RemovePeer(id)
}

// known returns the peers the Node gave the transport and has not removed.
func (r *addrRecorder) known() map[uint64]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.peers)
}

// wasRemoved reports whether the Node called RemovePeer(id).
func (r *addrRecorder) wasRemoved(id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.removed, id)
}

// addrMember is one Node of an addrCluster.
type addrMember struct {
	node    *raftnode.Node
	tr      raft.Transport // closed on stop
	rec     *addrRecorder
	sm      *nodeTestSM
	storage raft.LogStorage
}

// addrCluster runs Nodes whose transports start knowing only the peers a
// test names: every other peer they reach, they were told by the
// configuration. The address of node id on the memtransport network is
// "mem-<id>" (memtransport ignores it; the recorders check it).
type addrCluster struct {
	t       *testing.T
	net     *memtransport.Network
	members map[uint64]*addrMember
	dirs    map[uint64]string // wal directories, for nodes on wal
	tune    func(*raftnode.Config)
}

func memAddr(id uint64) string { return fmt.Sprintf("mem-%d", id) }

// memPeers returns the voters ids with their memtransport addresses.
func memPeers(ids ...uint64) []raft.Peer {
	peers := make([]raft.Peer, len(ids))
	for i, id := range ids {
		peers[i] = raft.Peer{ID: id, Address: memAddr(id)}
	}
	return peers
}

func memAddrs(ids ...uint64) map[uint64]string {
	m := map[uint64]string{}
	for _, id := range ids {
		m[id] = memAddr(id)
	}
	return m
}

func newAddrCluster(t *testing.T, tune func(*raftnode.Config)) *addrCluster {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	net, err := memtransport.NewNetwork(wire.CodecOptions{})
	require.NoError(t, err)
	c := &addrCluster{t: t, net: net, members: map[uint64]*addrMember{}, dirs: map[uint64]string{}, tune: tune}
	t.Cleanup(func() {
		for id := range c.members {
			c.stop(id)
		}
	})
	return c
}

// start starts node id on storage with a transport that knows trPeers
// only, bootstrapping peers if the storage is empty and peers are given.
func (c *addrCluster) start(id uint64, storage raft.LogStorage, trPeers []uint64, peers []raft.Peer) *addrMember {
	c.t.Helper()
	m := &addrMember{sm: &nodeTestSM{}, storage: storage}
	cfg := raftnode.Config{
		Raft:         raft.Config{ID: id, ElectionTick: 20, HeartbeatTick: 1},
		Storage:      storage,
		StateMachine: m.sm,
		TickInterval: 5 * time.Millisecond,
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	node, err := raftnode.New(cfg)
	require.NoError(c.t, err)
	tr, err := c.net.NewTransport(id, trPeers, node, memtransport.Options{})
	require.NoError(c.t, err)
	m.node, m.tr, m.rec = node, tr, &addrRecorder{Transport: tr, peers: map[uint64]string{}}
	node.SetTransport(m.rec)
	require.NoError(c.t, node.Start(peers))
	c.members[id] = m
	return m
}

// openWAL opens node id's wal directory, creating it the first time.
func (c *addrCluster) openWAL(id uint64) *wal.Log {
	c.t.Helper()
	if c.dirs[id] == "" {
		c.dirs[id] = filepath.Join(c.t.TempDir(), fmt.Sprintf("node%d", id))
	}
	l, err := wal.Open(c.dirs[id], wal.Options{SegmentSize: 1 << 16})
	require.NoError(c.t, err)
	return l
}

// stop stops node id and closes its transport and its wal.
func (c *addrCluster) stop(id uint64) {
	m := c.members[id]
	m.node.Stop()
	require.NoError(c.t, m.tr.Close())
	if l, ok := m.storage.(*wal.Log); ok {
		require.NoError(c.t, l.Close())
	}
	delete(c.members, id)
}

// waitLeader waits until the running nodes agree on a leader.
func (c *addrCluster) waitLeader() uint64 {
	c.t.Helper()
	var lead uint64
	nodeWaitFor(c.t, "a leader all agree on", func() bool {
		lead = 0
		for _, m := range c.members {
			l, _ := m.node.LeaderID()
			if l == raft.None || (lead != 0 && l != lead) || c.members[l] == nil {
				return false
			}
			lead = l
		}
		return true
	})
	return lead
}

// propose proposes data on node id, which must lead, and returns its index.
func (c *addrCluster) propose(ctx context.Context, id uint64, data string) uint64 {
	c.t.Helper()
	res, err := c.members[id].node.Propose(ctx, []byte(data))
	require.NoError(c.t, err, "proposing %q on %d", data, id)
	return res.(uint64)
}

// waitKnown waits until node id's transport was given exactly want.
func (c *addrCluster) waitKnown(id uint64, want map[uint64]string) {
	c.t.Helper()
	nodeWaitFor(c.t, fmt.Sprintf("node %d's transport to know %v", id, want), func() bool {
		return maps.Equal(c.members[id].rec.known(), want)
	})
}

// TestNodeMemberAddedAtLeaderReachableByLaterLeader is the failing
// scenario of the tracker: node 4 is added, with its address, on leader A
// only; A hands leadership over and stops. The new leader must replicate
// to node 4 (with A gone, no quorum of the four voters forms without it).
// No transport is told a peer by the test besides node 4's seed, A: the
// three first nodes learn each other from the bootstrap configuration,
// and the others learn node 4, and node 4 learns them, from the log.
func TestNodeMemberAddedAtLeaderReachableByLaterLeader(t *testing.T) {
	c := newAddrCluster(t, nil)
	for _, id := range []uint64{1, 2, 3} {
		c.start(id, raft.NewMemoryStorage(), nil, memPeers(1, 2, 3))
	}
	for _, id := range []uint64{1, 2, 3} {
		assert.Equal(t, memAddrs(slices.DeleteFunc([]uint64{1, 2, 3}, func(p uint64) bool { return p == id })...),
			c.members[id].rec.known(), "node %d's transport knows the bootstrap voters", id)
	}
	a := c.waitLeader()
	ctx := nodeCtx(t)
	c.propose(ctx, a, "before")

	n4 := c.start(4, raft.NewMemoryStorage(), []uint64{a}, nil) // joins; knows its seed only
	cs, err := c.members[a].node.AddVoter(ctx, 4, memAddr(4))
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2, 3, 4}, cs.Voters)
	assert.Equal(t, memAddrs(1, 2, 3, 4), cs.Addresses)
	joined := c.propose(ctx, a, "joined")
	for id := range c.members {
		// A transfer target must have applied the change (it does not
		// campaign with a committed change unapplied).
		require.NoError(t, c.members[id].node.WaitApplied(ctx, joined))
		others := slices.DeleteFunc([]uint64{1, 2, 3, 4}, func(p uint64) bool { return p == id })
		c.waitKnown(id, memAddrs(others...))
	}

	b := a%3 + 1
	require.NoError(t, c.members[a].node.TransferLeadership(ctx, b))
	c.stop(a)
	idx := c.propose(ctx, b, "after A left") // commits only with node 4
	require.NoError(t, n4.node.WaitApplied(ctx, idx))
	assert.Equal(t, []string{"before", "joined", "after A left"}, slices.DeleteFunc(n4.sm.snapshot(), func(s string) bool { return s == "" }))

	// Removing node 4 has every transport forget it, though not before
	// node 4 learned that it was removed.
	_, err = c.members[b].node.Remove(ctx, 4)
	require.NoError(t, err)
	nodeWaitFor(t, "node 4 to learn that it was removed", func() bool {
		return errors.Is(n4.node.Read(ctx), raftnode.ErrRemoved)
	})
	for id := range c.members {
		if id != 4 {
			nodeWaitFor(t, "node 4 removed from the transports", func() bool {
				_, known := c.members[id].rec.known()[4]
				return !known && c.members[id].rec.wasRemoved(4)
			})
		}
	}
}

// TestNodeAddressesFromSnapshotAndRestart: a node that joins from a
// snapshot learns every member's address from it, and after a restart
// from its wal, with a transport that knows nobody, it has its transport
// reach every member again from the stored configuration. A member moved
// to another address (AddVoter again) is followed too.
func TestNodeAddressesFromSnapshotAndRestart(t *testing.T) {
	c := newAddrCluster(t, func(cfg *raftnode.Config) {
		cfg.SnapshotEvery = 5
		cfg.CompactKeep = 2
	})
	for _, id := range []uint64{1, 2, 3} {
		c.start(id, c.openWAL(id), nil, memPeers(1, 2, 3))
	}
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	cs, err := c.members[lead].node.AddLearner(ctx, 4, memAddr(4)) // node 4 does not run yet
	require.NoError(t, err)
	addIndex := c.propose(ctx, lead, "added")
	for i := range 20 {
		c.propose(ctx, lead, fmt.Sprintf("v%d", i))
	}
	nodeWaitFor(t, "the leader to compact the change away", func() bool {
		first, err := c.members[lead].storage.FirstIndex()
		return err == nil && first > addIndex
	})

	n4 := c.start(4, c.openWAL(4), []uint64{lead}, nil)
	last := c.propose(ctx, lead, "last")
	require.NoError(t, n4.node.WaitApplied(ctx, last))
	assert.Positive(t, n4.sm.restoreCount(), "node 4 started from a snapshot")
	snap, err := n4.storage.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, memAddrs(1, 2, 3, 4), snap.Metadata.ConfState.Addresses, "the snapshot carried every address")
	assert.Equal(t, cs.Addresses, snap.Metadata.ConfState.Addresses)
	c.waitKnown(4, memAddrs(1, 2, 3))

	// Node 2 moves: a new address, recorded like an addition.
	cs, err = c.members[lead].node.AddVoter(ctx, 2, "mem-2-moved")
	require.NoError(t, err)
	assert.Equal(t, "mem-2-moved", cs.Addresses[2])
	for i := range 10 {
		c.propose(ctx, lead, fmt.Sprintf("w%d", i)) // node 4 snapshots past the move
	}
	want := map[uint64]string{1: memAddr(1), 2: "mem-2-moved", 3: memAddr(3)}
	c.waitKnown(4, want)
	nodeWaitFor(t, "node 4 to snapshot past the move", func() bool {
		s, err := n4.storage.Snapshot()
		return err == nil && s.Metadata.ConfState.Addresses[2] == "mem-2-moved"
	})

	c.stop(4)
	n4 = c.start(4, c.openWAL(4), nil, nil) // a transport that knows nobody
	assert.Equal(t, want, n4.rec.known(), "at Start, from the stored configuration")
	last = c.propose(ctx, c.waitLeader(), "after the restart")
	require.NoError(t, n4.node.WaitApplied(ctx, last), "the restarted node is reached again")
}

// TestNodeRefusesMalformedAddresses: Start and AddVoter refuse an address
// the core would not record, and nothing changes.
func TestNodeRefusesMalformedAddresses(t *testing.T) {
	c := newAddrCluster(t, nil)
	net := c.net
	node, err := raftnode.New(raftnode.Config{Raft: raft.Config{ID: 9}, Storage: raft.NewMemoryStorage(), StateMachine: &nodeTestSM{}})
	require.NoError(t, err)
	tr, err := net.NewTransport(9, nil, node, memtransport.Options{})
	require.NoError(t, err)
	defer tr.Close()
	node.SetTransport(tr)
	assert.ErrorIs(t, node.Start([]raft.Peer{{ID: 9, Address: "bad\naddress"}}), raft.ErrInvalidConfig)

	m := c.start(1, raft.NewMemoryStorage(), nil, memPeers(1))
	c.waitLeader()
	ctx := nodeCtx(t)
	_, err = m.node.AddVoter(ctx, 2, "bad\x00address")
	assert.ErrorIs(t, err, raft.ErrInvalidConfChange)
	st, err := m.node.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1}, st.Config.Voters)
	assert.Empty(t, m.rec.known())
}

// TestNodeOnTCPTransportAddressesFromConfiguration runs the scenario of
// TestNodeMemberAddedAtLeaderReachableByLaterLeader over tcptransport on
// loopback, with real addresses: the transports start with no peers (node
// 4's with its seed only) and dial what the configuration records.
func TestNodeOnTCPTransportAddressesFromConfiguration(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	lns := map[uint64]net.Listener{}
	var peers []raft.Peer
	for id := uint64(1); id <= 4; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns[id] = ln
		peers = append(peers, raft.Peer{ID: id, Address: ln.Addr().String()})
	}
	nodes := map[uint64]*raftnode.Node{}
	sms := map[uint64]*nodeTestSM{}
	start := func(id uint64, seeds map[uint64]string, bootstrap []raft.Peer) {
		sms[id] = &nodeTestSM{}
		node, err := raftnode.New(raftnode.Config{
			Raft:         raft.Config{ID: id, ElectionTick: 10, HeartbeatTick: 1},
			Storage:      raft.NewMemoryStorage(),
			StateMachine: sms[id],
			TickInterval: 5 * time.Millisecond,
		})
		require.NoError(t, err)
		tr, err := tcptransport.New(tcptransport.Config{ID: id, ClusterID: 7, Listener: lns[id], Peers: seeds, Handler: node,
			PeerSecret: []byte("node tcp test shared secret")})
		require.NoError(t, err)
		node.SetTransport(tr)
		t.Cleanup(func() {
			node.Stop()
			assert.NoError(t, tr.Close())
		})
		require.NoError(t, node.Start(bootstrap))
		nodes[id] = node
	}
	for id := uint64(1); id <= 3; id++ {
		start(id, nil, peers[:3])
	}
	var a uint64
	nodeWaitFor(t, "a leader", func() bool {
		a, _ = nodes[1].LeaderID()
		for id := range nodes {
			if l, _ := nodes[id].LeaderID(); l == raft.None || l != a {
				return false
			}
		}
		return true
	})
	ctx := nodeCtx(t)
	start(4, map[uint64]string{a: peers[a-1].Address}, nil)
	_, err := nodes[a].AddVoter(ctx, 4, peers[3].Address)
	require.NoError(t, err)
	res, err := nodes[a].Propose(ctx, []byte("joined"))
	require.NoError(t, err)
	for _, n := range nodes {
		// A transfer target must have applied the change (it does not
		// campaign with a committed change unapplied).
		require.NoError(t, n.WaitApplied(ctx, res.(uint64)))
	}
	b := a%3 + 1
	require.NoError(t, nodes[a].TransferLeadership(ctx, b))
	nodes[a].Stop() // no quorum of the four without node 4
	res, err = nodes[b].Propose(ctx, []byte("after A left"))
	require.NoError(t, err)
	require.NoError(t, nodes[4].WaitApplied(ctx, res.(uint64)))
	assert.Contains(t, sms[4].snapshot(), "after A left")
}
