package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Scenarios S11–S19 and S24–S26 of docs/reliability.md: reads, leases,
// PreVote and CheckQuorum, removal and snapshots. S18 and S20–S23 are in
// membership_test.go.

func TestReadIndexBeforeNoopCommitsIsDeferred(t *testing.T) {
	TestReadIndexDeferredUntilLeaderCommitsInItsTerm(t)
}

func TestReadIndexOnIsolatedOldLeaderNeverAnswered(t *testing.T) {
	// Without CheckQuorum the old leader keeps believing it leads.
	nw := newCluster(t, 3, func(c *Config) { c.DisableCheckQuorum = true })
	nw.electLeader(1)
	nw.isolate(1)
	for range 30 {
		nw.tickAll()
	}
	require.Equal(t, StateLeader, nw.raft(1).state, "the old leader does not know it was deposed")
	lead := nw.leader()
	require.NotEqual(t, uint64(1), lead)
	require.NoError(t, nw.propose(lead, "newer"))
	nw.read(1, "stale?")
	for range 30 {
		nw.tickAll()
	}
	assert.Empty(t, nw.reads[1], "an isolated old leader never answers a read")
}

func TestReadIndexRightAfterTransferIsNotStale(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "x"))
	written := nw.raft(1).raftLog.lastIndex()
	require.NoError(t, nw.node(1).TransferLeader(2))
	nw.handleReady(1)
	// Read at the new leader as soon as it has won, before anything else
	// is delivered.
	for nw.raft(2).state != StateLeader && nw.deliverOne() {
	}
	require.Equal(t, StateLeader, nw.raft(2).state)
	nw.node(2).ReadIndex([]byte("at-2"))
	nw.handleReady(2)
	nw.stabilize()
	require.Equal(t, []string{"at-2"}, nw.readCtxs(2))
	// The old leader, now a follower of 2, forwards its reads to 2.
	require.Equal(t, uint64(2), nw.raft(1).lead)
	nw.read(1, "at-old-leader")
	require.Equal(t, []string{"at-old-leader"}, nw.readCtxs(1))
	assert.GreaterOrEqual(t, nw.reads[2][0].Index, written, "the read sees the write made before the transfer")
	assert.GreaterOrEqual(t, nw.reads[1][0].Index, written)
}

// TestLeaseReadUnderTickDrift runs an isolated lease-holding leader
// against followers whose clocks run faster. Within the documented bound
// (10%), every lease read the old leader serves happens before the new
// leader commits anything; far beyond it (followers three times as fast), the old
// leader serves a stale read — the documented limit of lease reads.
func TestLeaseReadUnderTickDrift(t *testing.T) {
	tests := []struct {
		name      string
		drift     float64 // followers' ticks per leader tick
		wantStale bool
	}{
		{name: "within the bound", drift: 1.09, wantStale: false},
		{name: "no drift", drift: 1.0, wantStale: false},
		{name: "far beyond the bound", drift: 3.0, wantStale: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			staleSeeds := 0
			for seed := uint64(1); seed <= 20; seed++ {
				if runLeaseDrift(t, tt.drift, seed) {
					staleSeeds++
				}
			}
			if tt.wantStale {
				assert.Positive(t, staleSeeds, "beyond the bound a stale lease read is possible")
			} else {
				assert.Zero(t, staleSeeds, "within the bound no lease read is stale")
			}
		})
	}
}

// runLeaseDrift reports whether the old leader answered a lease read after
// the new leader had committed an entry of its own term.
func runLeaseDrift(t *testing.T, drift float64, seed uint64) bool {
	t.Helper()
	nw := newCluster(t, 3, func(c *Config) {
		c.ReadOnlyOption = ReadOnlyLeaseBased
		c.Seed = seed*10 + c.ID
	})
	nw.electLeader(1)
	nw.tickAll() // a heartbeat round: the lease starts
	nw.isolate(1)
	var followerClock float64
	newLeaderCommitted := false
	stale := false
	for step := 0; step < 60; step++ {
		// Real time advances by one leader tick.
		nw.tick(1, 1)
		followerClock += drift
		for followerClock >= 1 {
			followerClock--
			nw.tick(2, 1)
			nw.tick(3, 1)
		}
		nw.stabilize()
		for _, id := range []uint64{2, 3} {
			r := nw.raft(id)
			if r.state == StateLeader && r.committedEntryInCurrentTerm() {
				newLeaderCommitted = true
			}
		}
		before := len(nw.reads[1])
		nw.read(1, "r")
		if len(nw.reads[1]) > before && newLeaderCommitted {
			stale = true
		}
	}
	require.True(t, newLeaderCommitted, "seed %d: the majority elected a new leader", seed)
	return stale
}

func TestMinorityLeaderStepsDownWithinOneElectionTimeout(t *testing.T) {
	nw := newCluster(t, 5)
	nw.electLeader(1)
	nw.tickAll()
	nw.partition([]uint64{1, 2}, []uint64{3, 4, 5})
	steps := 0
	for nw.raft(1).state == StateLeader {
		nw.tick(1, 1)
		nw.stabilize()
		steps++
		require.LessOrEqual(t, steps, nw.raft(1).electionTimeout, "still leading after an election timeout")
	}
}

func TestPreVoteRejoiningNodeDoesNotDisruptLeader(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	term := nw.raft(1).Term
	nw.isolate(3)
	// Node 3 times out again and again while cut off.
	for range 10 {
		nw.tick(3, 25)
		nw.stabilize()
	}
	assert.Equal(t, term, nw.raft(3).Term, "pre-vote: an isolated node does not raise its term")
	nw.heal()
	for range 40 {
		nw.tickAll()
	}
	assert.Equal(t, StateLeader, nw.raft(1).state)
	assert.Equal(t, term, nw.raft(1).Term, "the leader keeps its term")
}

func TestPreVoteSmallerTermNodeStillElectsLeader(t *testing.T) {
	// hashicorp/raft #606: with pre-vote, a 2-of-3 cluster whose live
	// members have different terms must still elect a leader.
	nw := newCluster(t, 3)
	nw.electLeader(1)
	nw.isolate(3)
	// 1 and 2 move to a higher term while 3 is away.
	require.NoError(t, nw.node(2).TransferLeader(2))
	nw.handleReady(2)
	nw.stabilize()
	require.Equal(t, StateLeader, nw.raft(2).state)
	require.Greater(t, nw.raft(2).Term, nw.raft(3).Term)
	// The leader dies; 3 rejoins with its smaller term.
	nw.heal()
	nw.isolate(2)
	for i := 0; i < 100 && (nw.leader() == None || nw.leader() == 2); i++ {
		nw.tickAll()
	}
	lead := nw.leader()
	assert.Contains(t, []uint64{1, 3}, lead, "a leader is still elected")
}

func TestPeerStrandedAtHigherTermRecovers(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	// Node 3 restarts with a much higher durable term (as after elections
	// it lost while pre-vote was off), and a shorter log.
	nw.isolate(3)
	require.NoError(t, nw.propose(1, "b"))
	hs := nw.nodes[3].storage.HardState()
	hs.Term += 5
	hs.Vote = None
	require.NoError(t, nw.nodes[3].storage.SetHardState(hs))
	nw.crash(3)
	nw.heal()
	for range 60 {
		nw.tickAll()
	}
	lead := nw.leader()
	require.NotEqual(t, None, lead, "no permanent unavailability")
	assert.GreaterOrEqual(t, nw.raft(lead).Term, hs.Term, "the cluster moved past the stranded term")
	require.NoError(t, nw.propose(lead, "c"))
	nw.tickAll()
	assert.Equal(t, []string{"a", "b", "c"}, nw.appliedData(3))
}

func TestSnapshotToFollowerBehindCompaction(t *testing.T) {
	TestSnapshotSentToFollowerBehindCompaction(t)
	TestSnapshotTemporarilyUnavailableIsRetried(t)
}

func TestStaleOrDuplicateSnapshotIgnored(t *testing.T) {
	TestStaleSnapshotIgnored(t)
}

// gapStorage hides a range of entries after the snapshot, as a storage that
// lost a segment would.
type gapStorage struct {
	*MemoryStorage
	gapLo, gapHi uint64
}

func (s *gapStorage) Term(i uint64) (uint64, error) {
	if i >= s.gapLo && i < s.gapHi {
		return 0, ErrUnavailable
	}
	return s.MemoryStorage.Term(i)
}

func TestRestartWithGapBetweenSnapshotAndLog(t *testing.T) {
	ms := NewMemoryStorage()
	require.NoError(t, ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 5, Term: 2, ConfState: ConfState{Voters: []uint64{1}}}}))
	require.NoError(t, ms.Append([]Entry{{Index: 6, Term: 2}, {Index: 7, Term: 2}, {Index: 8, Term: 3}}))
	require.NoError(t, ms.SetHardState(HardState{Term: 3, Commit: 8}))
	_, err := NewRawNode(testConfig(1, &gapStorage{MemoryStorage: ms, gapLo: 6, gapHi: 8}))
	require.Error(t, err, "a clean error, no panic")
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "index 6")
}
