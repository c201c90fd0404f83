package raftnode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/memtransport"
	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/wire"
)

func TestNodeProposeAndRead(t *testing.T) {
	c := newNodeCluster(t, 3)
	lead := c.waitLeader()
	ctx := nodeCtx(t)

	res, err := c.members[lead].node.Propose(ctx, []byte("x=1"))
	require.NoError(t, err)
	index, ok := res.(uint64)
	require.True(t, ok, "result %T is the state machine's", res)
	assert.Greater(t, index, uint64(2), "the entry follows bootstrap and the leader's empty entry")

	// A linearizable read on every node sees the write.
	for _, id := range c.ids {
		m := c.members[id]
		require.NoError(t, m.node.Read(ctx), "read on %d", id)
		assert.Contains(t, m.sm.snapshot(), "x=1", "node %d after Read", id)
		assert.GreaterOrEqual(t, m.node.AppliedIndex(), index)
	}

	results := c.members[lead].node.ProposeBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	require.Len(t, results, 3)
	for _, r := range results {
		require.NoError(t, r.Err)
	}
	for i := 1; i < 3; i++ {
		assert.Equal(t, results[i-1].Value.(uint64)+1, results[i].Value.(uint64), "batch entries are consecutive")
	}
	last := results[2].Value.(uint64)
	for _, id := range c.ids {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		assert.Equal(t, []string{"x=1", "a", "b", "c"}, c.members[id].sm.snapshot(), "node %d", id)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, c.members[lead].node.WaitApplied(short, last+1000), context.DeadlineExceeded)

	st, err := c.members[lead].node.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, raft.StateLeader, st.RaftState)
	assert.Len(t, st.Progress, 3)
}

func TestNodeRestartFromStorage(t *testing.T) {
	c := newNodeCluster(t, 3)
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	c.propose("before")
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	old := c.members[follower]
	c.stop(follower)
	_, err := old.node.Propose(ctx, []byte("stopped"))
	assert.ErrorIs(t, err, raftnode.ErrStopped)
	assert.NotErrorIs(t, err, raftnode.ErrProposalUnknown, "a stopped node appends nothing")
	assert.ErrorIs(t, old.node.Read(ctx), raftnode.ErrStopped)
	assert.ErrorIs(t, old.node.Err(), raftnode.ErrStopped)

	c.propose("while down")
	last := c.propose("while down 2")

	m := c.start(follower, old.storage, c.ids)
	require.NoError(t, m.node.WaitApplied(ctx, last))
	assert.Equal(t, []string{"before", "while down", "while down 2"}, m.sm.snapshot())
	assert.Equal(t, 1, m.sm.restoreCount(), "restored from the bootstrap snapshot, then replayed")
}

func TestNodeAddVoterFromSnapshot(t *testing.T) {
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) {
		cfg.SnapshotEvery = 8
		cfg.CompactKeep = 2
	}))
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("v%d", i))
		c.propose(want[i])
	}
	// The leader compacted its log: a new node can only get a snapshot.
	nodeWaitFor(t, "the leader to compact its log", func() bool {
		first, err := c.members[lead].storage.FirstIndex()
		return err == nil && first > 10
	})

	c.addPeer(4)
	m := c.start(4, raft.NewMemoryStorage(), nil) // joins: no bootstrap
	cs, err := c.members[lead].node.AddVoter(ctx, 4, "")
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2, 3, 4}, cs.Voters)

	last := c.propose("after join")
	require.NoError(t, m.node.WaitApplied(ctx, last))
	assert.Equal(t, append(want, "after join"), m.sm.snapshot())
	assert.Positive(t, m.sm.restoreCount(), "node 4 started from a snapshot")
	snap, err := m.storage.Snapshot()
	require.NoError(t, err)
	assert.Greater(t, snap.Metadata.Index, uint64(10), "node 4 stored the leader's snapshot")
	st, err := m.node.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2, 3, 4}, st.Config.Voters)
}

func TestNodeRemoveLeader(t *testing.T) {
	var confs = make(chan raft.ConfState, 64)
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) {
		if cfg.Raft.ID == 1 {
			cfg.OnConfChange = func(cs raft.ConfState) { confs <- cs }
		}
	}))
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	c.propose("before")

	cs, err := c.members[lead].node.Remove(ctx, lead)
	require.NoError(t, err)
	assert.NotContains(t, cs.Voters, lead)
	assert.Len(t, cs.Voters, 2)

	var rest []uint64
	for _, id := range c.ids {
		if id != lead {
			rest = append(rest, id)
		}
	}
	newLead := c.waitLeader(rest...)
	assert.NotEqual(t, lead, newLead)
	last := c.proposeAmong(rest, "after")
	for _, id := range rest {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		assert.Equal(t, []string{"before", "after"}, c.members[id].sm.snapshot())
	}
	// Node 1 reported the initial membership, then the change (node 1
	// may be the removed one).
	for _, want := range [][]uint64{c.ids, cs.Voters} {
		select {
		case got := <-confs:
			assert.Equal(t, want, got.Voters)
		case <-ctx.Done():
			t.Fatalf("OnConfChange was not called with %v", want)
		}
	}
}

func TestNodeTransferLeadership(t *testing.T) {
	c := newNodeCluster(t, 3)
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	c.propose("before")
	var target, asker uint64
	for _, id := range c.ids {
		switch {
		case id == lead:
		case target == 0:
			target = id
		default:
			asker = id
		}
	}
	// Ask the follower that is not the target: it forwards the request.
	require.NoError(t, c.members[asker].node.TransferLeadership(ctx, target))
	got, _ := c.members[asker].node.LeaderID()
	assert.Equal(t, target, got)
	assert.Equal(t, target, c.waitLeader())
	res, err := c.members[target].node.Propose(ctx, []byte("after"))
	require.NoError(t, err)
	require.NoError(t, c.members[lead].node.WaitApplied(ctx, res.(uint64)))

	err = c.members[target].node.TransferLeadership(ctx, 99)
	assert.ErrorIs(t, err, raft.ErrInvalidTransfer)
}

func TestNodeStorageErrorStopsNode(t *testing.T) {
	stores := map[uint64]*nodeFaultyStorage{}
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) {
		s := &nodeFaultyStorage{MemoryStorage: raft.NewMemoryStorage(), failOn: "lost"}
		stores[cfg.Raft.ID] = s
		cfg.Storage = s
	}))
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	c.propose("ok")
	stores[lead].armed.Store(true)
	_, err := c.members[lead].node.Propose(ctx, []byte("lost"))
	require.ErrorIs(t, err, errNodeInjected)
	assert.ErrorIs(t, err, raftnode.ErrProposalUnknown, "the entry was appended in memory before the write failed")
	assert.ErrorIs(t, c.members[lead].node.Err(), errNodeInjected)
	_, err = c.members[lead].node.Propose(ctx, []byte("later"))
	assert.ErrorIs(t, err, errNodeInjected)
	assert.NotErrorIs(t, err, raftnode.ErrProposalUnknown)
	assert.ErrorIs(t, c.members[lead].node.Read(ctx), errNodeInjected)
	_, err = c.members[lead].node.Status(ctx)
	assert.ErrorIs(t, err, errNodeInjected)
}

func TestNodeStartErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  raftnode.Config
	}{
		{name: "no storage", cfg: raftnode.Config{Raft: raft.Config{ID: 1}, StateMachine: &nodeTestSM{}}},
		{name: "no state machine", cfg: raftnode.Config{Raft: raft.Config{ID: 1}, Storage: raft.NewMemoryStorage()}},
		{name: "zero ID", cfg: raftnode.Config{Storage: raft.NewMemoryStorage(), StateMachine: &nodeTestSM{}}},
		{name: "negative tick", cfg: raftnode.Config{Raft: raft.Config{ID: 1}, Storage: raft.NewMemoryStorage(),
			StateMachine: &nodeTestSM{}, TickInterval: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := raftnode.New(tt.cfg)
			assert.ErrorIs(t, err, raft.ErrInvalidConfig)
		})
	}
	t.Run("no transport for several voters", func(t *testing.T) {
		n, err := raftnode.New(raftnode.Config{Raft: raft.Config{ID: 1}, Storage: raft.NewMemoryStorage(), StateMachine: &nodeTestSM{}})
		require.NoError(t, err)
		err = n.Start(nodePeers([]uint64{1, 2, 3}))
		assert.ErrorIs(t, err, raft.ErrInvalidConfig)
		assert.ErrorContains(t, err, "Config.Transport must be set")
		n.Stop()
		_, err = n.Propose(context.Background(), []byte("x"))
		assert.ErrorIs(t, err, raftnode.ErrStopped)
	})
	t.Run("voters without this node", func(t *testing.T) {
		net, err := memtransport.NewNetwork(wire.CodecOptions{})
		require.NoError(t, err)
		n, err := raftnode.New(raftnode.Config{Raft: raft.Config{ID: 4}, Storage: raft.NewMemoryStorage(), StateMachine: &nodeTestSM{}})
		require.NoError(t, err)
		tr, err := net.NewTransport(4, []uint64{1, 2, 3}, n, memtransport.Options{})
		require.NoError(t, err)
		defer tr.Close()
		n.SetTransport(tr)
		err = n.Start(nodePeers([]uint64{1, 2, 3}))
		assert.ErrorIs(t, err, raft.ErrInvalidConfig)
		assert.Contains(t, err.Error(), "do not include this node")
		n.Stop()
	})
}

// A transfer to a node that is down fails with ErrTransferAbandoned once
// the leader gives up, not with the caller's deadline; the leader leads on.
func TestNodeTransferToADownNodeIsAbandoned(t *testing.T) {
	c := newNodeCluster(t, 3)
	lead := c.waitLeader()
	target := c.ids[0]
	if target == lead {
		target = c.ids[1]
	}
	c.stop(target)
	ctx := nodeCtx(t)
	err := c.members[lead].node.TransferLeadership(ctx, target)
	require.ErrorIs(t, err, raftnode.ErrTransferAbandoned)
	assert.NoError(t, ctx.Err(), "the error came before the deadline")
	assert.Contains(t, err.Error(), fmt.Sprintf("node %d did not take over", target))
	_, err = c.members[lead].node.Propose(ctx, []byte("after"))
	assert.NoError(t, err, "the leader accepts proposals again")
}
