package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadIndexOnLeaderAndFollower(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "x"))
	commit := nw.raft(1).raftLog.committed

	nw.read(1, "leader-read")
	require.Equal(t, []string{"leader-read"}, nw.readCtxs(1))
	assert.Equal(t, commit, nw.reads[1][0].Index)

	nw.read(3, "follower-read")
	require.Equal(t, []string{"follower-read"}, nw.readCtxs(3))
	assert.Equal(t, commit, nw.reads[3][0].Index, "a follower's read index is the leader's commit index")
}

func TestReadIndexWaitsForQuorumRound(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	nw.isolate(1)
	nw.read(1, "isolated")
	assert.Empty(t, nw.reads[1], "an isolated leader must not answer a read (S12)")
	nw.heal()
	// The next read's round also confirms the earlier one.
	nw.read(1, "healed")
	assert.Equal(t, []string{"isolated", "healed"}, nw.readCtxs(1))
}

func TestReadIndexSharesOneHeartbeatRound(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	for _, ctx := range []string{"a", "b", "c", "d"} {
		nw.node(1).ReadIndex([]byte(ctx))
	}
	rd := nw.node(1).Ready()
	heartbeats := 0
	for _, m := range rd.Messages {
		if m.Type == MsgHeartbeat {
			heartbeats++
			assert.Len(t, m.Context, 8, "a read round's heartbeat carries only a sequence number")
		}
	}
	assert.Equal(t, 2, heartbeats, "four reads share one round: one heartbeat per follower")
	nw.processReady(nw.nodes[1], rd)
	nw.node(1).Advance(rd)
	nw.stabilize()
	assert.Equal(t, []string{"a", "b", "c", "d"}, nw.readCtxs(1))
}

func TestReadIndexDeferredUntilLeaderCommitsInItsTerm(t *testing.T) {
	// Without CheckQuorum the followers' lease does not stop node 2 from
	// taking over right away.
	nw := newCluster(t, 3, func(c *Config) { c.DisableCheckQuorum = true })
	nw.electLeader(1)
	// Node 2 becomes leader, but its no-op cannot commit: it is cut off
	// from everyone after winning.
	require.NoError(t, nw.node(2).Campaign())
	nw.handleReady(2)
	// Deliver pre-votes and votes, but not the no-op's appends.
	for len(nw.queue) > 0 && nw.raft(2).state != StateLeader {
		nw.deliverOne()
	}
	require.Equal(t, StateLeader, nw.raft(2).state)
	nw.isolate(2)
	nw.read(2, "early")
	assert.Empty(t, nw.reads[2], "a leader serves no read before an entry of its term commits (S11)")
	nw.heal()
	nw.tickAll()
	nw.read(2, "later")
	assert.Equal(t, []string{"early", "later"}, nw.readCtxs(2))
	for _, rs := range nw.reads[2] {
		assert.Equal(t, nw.raft(2).Term, nw.raft(2).raftLog.zeroTermOnOutOfBounds(nw.raft(2).raftLog.term(rs.Index)))
	}
}

func TestReadIndexLeaseBased(t *testing.T) {
	nw := newCluster(t, 3, func(c *Config) { c.ReadOnlyOption = ReadOnlyLeaseBased })
	nw.electLeader(1)
	nw.isolate(1)
	nw.read(1, "no lease yet")
	assert.Empty(t, nw.reads[1], "no heartbeat acknowledged yet this term: no lease")
	nw.heal()
	nw.tickAll() // a heartbeat round starts the lease
	nw.isolate(1)
	nw.read(1, "lease")
	assert.Equal(t, []string{"no lease yet", "lease"}, nw.readCtxs(1), "a lease read needs no round trip")
	lease := int(nw.raft(1).leaseTicks())
	nw.tick(1, lease)
	nw.read(1, "late")
	assert.Equal(t, []string{"no lease yet", "lease"}, nw.readCtxs(1), "the lease lapsed: no answer without a round")
}

func TestReadIndexLeaseBasedNeedsCheckQuorum(t *testing.T) {
	cfg := testConfig(1, NewMemoryStorage())
	cfg.ReadOnlyOption = ReadOnlyLeaseBased
	cfg.DisableCheckQuorum = true
	_, err := NewRawNode(cfg)
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "CheckQuorum")
}

func TestReadIndexSingleVoter(t *testing.T) {
	nw := newCluster(t, 1)
	nw.electLeader(1)
	nw.read(1, "solo")
	assert.Equal(t, []string{"solo"}, nw.readCtxs(1))
}

func TestReadIndexHeartbeatSizeIsConstant(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	sizeOfHeartbeat := func() int {
		nw.node(1).ReadIndex([]byte("r"))
		rd := nw.node(1).Ready()
		defer func() { nw.processReady(nw.nodes[1], rd); nw.node(1).Advance(rd); nw.stabilize() }()
		for _, m := range rd.Messages {
			if m.Type == MsgHeartbeat {
				return len(m.Context) + len(m.Entries)
			}
		}
		t.Fatal("no heartbeat")
		return 0
	}
	before := sizeOfHeartbeat()
	for i := range 200 {
		require.NoError(t, nw.propose(1, string(rune('a'+i%26))))
	}
	assert.Equal(t, before, sizeOfHeartbeat())
}

// TestReadIndexSingleVoterWaitsForCommitInItsTerm restarts a single voter
// whose last commit-index update was lost (a hard state change that needs no
// sync), so that it comes back with entries it had committed and applied
// beyond its durable commit index. Elected again, it must not answer a read
// below those entries: like any leader, it answers only once an entry of its
// own term is committed.
func TestReadIndexSingleVoterWaitsForCommitInItsTerm(t *testing.T) {
	readIndexSingleVoterWaitsForCommitInItsTerm(t)
}

func readIndexSingleVoterWaitsForCommitInItsTerm(t testing.TB) {
	nw := newCluster(t, 1)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	require.NoError(t, nw.propose(1, "b"))
	acked := nw.raft(1).raftLog.committed
	require.Equal(t, []string{"a", "b"}, nw.appliedData(1))

	s := nw.nodes[1].storage
	hs := s.HardState()
	hs.Commit = acked - 1
	require.NoError(t, s.SetHardState(hs))
	nw.crash(1)

	require.NoError(t, nw.node(1).Campaign())
	for nw.raft(1).state != StateLeader {
		require.True(t, nw.node(1).HasReady(), "the single voter should win once its vote is durable")
		rd := nw.node(1).Ready()
		nw.processReady(nw.nodes[1], rd)
		nw.node(1).Advance(rd)
	}
	// Elected; its empty entry is not yet durable, so not committed.
	nw.node(1).ReadIndex([]byte("r"))
	nw.stabilize()
	require.Len(t, nw.reads[1], 1)
	assert.GreaterOrEqual(t, nw.reads[1][0].Index, acked, "a read answered below an acknowledged write")
}
