package wal_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
)

// walNode is one host of the cluster test: a RawNode over a Log in its
// own directory, and a state machine that is a list of applied strings.
type walNode struct {
	id      uint64
	dir     string
	log     *wal.Log
	rn      *raft.RawNode
	applied []string
	// appliedIndex is the index of the last applied entry or snapshot.
	appliedIndex uint64
}

// walCluster runs RawNodes on wal storage with a deterministic in-memory
// network, following the host loop of raft's doc.go with Save as step 1.
type walCluster struct {
	t     *testing.T
	nodes map[uint64]*walNode
	ids   []uint64
	queue []raft.Message
	down  map[uint64]bool // isolated nodes: their traffic is dropped
}

func walConfig(id uint64, s raft.Storage, applied uint64) raft.Config {
	return raft.Config{
		ID: id, ElectionTick: 10, HeartbeatTick: 1, Storage: s, Applied: applied,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 64,
	}
}

func newWalCluster(t *testing.T, n int) *walCluster {
	c := &walCluster{t: t, nodes: map[uint64]*walNode{}, down: map[uint64]bool{}}
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	for _, id := range c.ids {
		nd := &walNode{id: id, dir: t.TempDir()}
		var err error
		nd.log, err = wal.Open(nd.dir, wal.Options{SegmentSize: 16 << 10})
		require.NoError(t, err)
		nd.rn, err = raft.NewRawNode(walConfig(id, nd.log, 0))
		require.NoError(t, err)
		require.NoError(t, nd.rn.Bootstrap(c.ids))
		c.nodes[id] = nd
		c.handle(id)
		t.Cleanup(func() { _ = c.nodes[id].log.Close() })
	}
	return c
}

// handle runs node id's host loop until it has no Ready.
func (c *walCluster) handle(id uint64) {
	nd := c.nodes[id]
	for nd.rn.HasReady() {
		rd := nd.rn.Ready()
		c.queue = append(c.queue, rd.Messages...)
		require.NoError(c.t, nd.log.Save(rd.HardState, rd.Entries, rd.Snapshot))
		if !rd.Snapshot.IsEmpty() {
			nd.applied = walDecodeState(rd.Snapshot.Data)
			nd.appliedIndex = rd.Snapshot.Metadata.Index
		}
		for _, m := range rd.MessagesAfterPersist {
			c.checkDurable(nd, m)
		}
		c.queue = append(c.queue, rd.MessagesAfterPersist...)
		for _, e := range rd.CommittedEntries {
			require.Equal(c.t, nd.appliedIndex+1, e.Index, "node %d applies out of order", id)
			if e.Type == raft.EntryNormal && len(e.Data) > 0 {
				nd.applied = append(nd.applied, string(e.Data))
			}
			nd.appliedIndex = e.Index
		}
		nd.rn.Advance(rd)
	}
}

// checkDurable asserts that m promises only what the Log holds.
func (c *walCluster) checkDurable(nd *walNode, m raft.Message) {
	hs := nd.log.HardState()
	switch {
	case m.Type == raft.MsgVote || (m.Type == raft.MsgVoteResp && !m.Reject):
		require.GreaterOrEqual(c.t, hs.Term, m.Term, "node %d sent %s before its term was durable", nd.id, m.Type)
	case m.Type == raft.MsgAppResp && !m.Reject:
		last, err := nd.log.LastIndex()
		require.NoError(c.t, err)
		require.GreaterOrEqual(c.t, last, m.Index, "node %d acked an entry that is not durable", nd.id)
	}
}

// stabilize delivers messages until none is left.
func (c *walCluster) stabilize() {
	for _, id := range c.ids {
		c.handle(id)
	}
	for i := 0; len(c.queue) > 0; i++ {
		require.Less(c.t, i, 100000, "no quiescence")
		m := c.queue[0]
		c.queue = c.queue[1:]
		if c.down[m.From] || c.down[m.To] {
			continue
		}
		_ = c.nodes[m.To].rn.Step(m)
		c.handle(m.To)
	}
}

func (c *walCluster) tickAll() {
	for _, id := range c.ids {
		c.nodes[id].rn.Tick()
		c.handle(id)
	}
	c.stabilize()
}

func (c *walCluster) leader() uint64 {
	for _, id := range c.ids {
		if !c.down[id] && c.nodes[id].rn.Status().RaftState == raft.StateLeader {
			return id
		}
	}
	return raft.None
}

// waitLeader ticks until some node that is up leads.
func (c *walCluster) waitLeader() uint64 {
	for i := 0; i < 200; i++ {
		if l := c.leader(); l != raft.None {
			return l
		}
		c.tickAll()
	}
	c.t.Fatal("no leader elected")
	return raft.None
}

func (c *walCluster) propose(data string) {
	lead := c.waitLeader()
	require.NoError(c.t, c.nodes[lead].rn.Propose([]byte(data)))
	c.handle(lead)
	c.stabilize()
}

// restart closes node id's Log and starts the node again from its
// directory, as after a process restart (the state machine here is kept,
// so Applied is where it got).
func (c *walCluster) restart(id uint64) {
	nd := c.nodes[id]
	require.NoError(c.t, nd.log.Close())
	var err error
	nd.log, err = wal.Open(nd.dir, wal.Options{SegmentSize: 16 << 10})
	require.NoError(c.t, err)
	hs := nd.log.HardState()
	nd.rn, err = raft.NewRawNode(walConfig(id, nd.log, min(nd.appliedIndex, hs.Commit)))
	require.NoError(c.t, err)
	c.handle(id)
}

// snapshotAndCompact snapshots node id's state machine at its applied
// index and compacts its log there, keeping keep entries.
func (c *walCluster) snapshotAndCompact(id uint64, keep uint64) {
	nd := c.nodes[id]
	_, err := nd.log.CreateSnapshot(nd.appliedIndex, nil, walEncodeState(nd.applied))
	require.NoError(c.t, err)
	if nd.appliedIndex > keep {
		require.NoError(c.t, nd.log.Compact(nd.appliedIndex-keep))
	}
}

func walEncodeState(applied []string) []byte { return []byte(strings.Join(applied, "\n")) }

func walDecodeState(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	return strings.Split(string(data), "\n")
}

func TestClusterOnWal(t *testing.T) {
	c := newWalCluster(t, 3)
	require.NoError(t, c.nodes[1].rn.Campaign())
	c.stabilize()
	require.Equal(t, uint64(1), c.leader())

	var want []string
	propose := func(n int) {
		for range n {
			v := fmt.Sprintf("v%d", len(want))
			want = append(want, v)
			c.propose(v)
		}
	}
	checkAll := func(msg string) {
		t.Helper()
		c.tickAll()
		for _, id := range c.ids {
			assert.Equal(t, want, c.nodes[id].applied, "%s: node %d", msg, id)
		}
	}
	propose(20)
	checkAll("initial commits")

	// A follower restarts from its directory and keeps up.
	c.restart(3)
	propose(10)
	checkAll("after a follower restart")

	// The leader restarts: a new leader is elected, commits continue.
	c.restart(1)
	propose(10)
	checkAll("after a leader restart")

	// Node 2 is cut off while the others commit and compact past its log;
	// on return it gets a snapshot, which its Log installs.
	c.down[2] = true
	if c.leader() == 2 {
		for c.leader() == 2 || c.leader() == raft.None {
			c.tickAll()
		}
	}
	lead := c.waitLeader()
	propose(30)
	for _, id := range c.ids {
		if id != 2 {
			c.snapshotAndCompact(id, 2)
		}
	}
	first, err := c.nodes[lead].log.FirstIndex()
	require.NoError(t, err)
	require.Greater(t, first, c.nodes[2].appliedIndex+1, "the leader compacted past node 2")
	delete(c.down, 2)
	for i := 0; i < 50 && !slices.Equal(c.nodes[2].applied, want); i++ {
		c.tickAll()
	}
	checkAll("after catching up by snapshot")
	snap, err := c.nodes[2].log.Snapshot()
	require.NoError(t, err)
	require.Greater(t, snap.Metadata.Index, uint64(1), "node 2 installed a snapshot")

	// Every node restarts at once and the cluster goes on.
	for _, id := range c.ids {
		c.restart(id)
	}
	propose(5)
	checkAll("after a full restart")
}
