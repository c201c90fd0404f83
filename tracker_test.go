package raft

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unitAcked returns an acked function over a map; absent IDs acked 0.
func unitAcked(m map[uint64]uint64) func(uint64) uint64 {
	return func(id uint64) uint64 { return m[id] }
}

// unitAckedFor maps voters 1..len(idx) to the given indexes.
func unitAckedFor(idx ...uint64) (majorityConfig, map[uint64]uint64) {
	c := make(majorityConfig, len(idx))
	m := map[uint64]uint64{}
	for i, v := range idx {
		c[i] = uint64(i + 1)
		m[uint64(i+1)] = v
	}
	return c, m
}

func TestMajorityConfigCommittedIndex(t *testing.T) {
	tests := []struct {
		name  string
		acked []uint64 // voter i+1 acked acked[i]
		want  uint64
	}{
		{name: "1 voter", acked: []uint64{5}, want: 5},
		{name: "1 voter, nothing acked", acked: []uint64{0}, want: 0},
		{name: "2 voters need both", acked: []uint64{5, 3}, want: 3},
		{name: "3 voters", acked: []uint64{5, 3, 1}, want: 3},
		{name: "3 voters, unsorted", acked: []uint64{1, 9, 4}, want: 4},
		{name: "3 voters, two equal low", acked: []uint64{1, 1, 9}, want: 1},
		{name: "4 voters need 3", acked: []uint64{4, 3, 2, 1}, want: 2},
		{name: "5 voters need 3", acked: []uint64{1, 5, 2, 4, 3}, want: 3},
		{name: "5 voters, two silent", acked: []uint64{7, 0, 7, 0, 7}, want: 7},
		{name: "5 voters, three silent", acked: []uint64{7, 0, 7, 0, 0}, want: 0},
		{name: "6 voters need 4", acked: []uint64{6, 5, 4, 3, 2, 1}, want: 3},
		{name: "7 voters need 4", acked: []uint64{7, 1, 6, 2, 5, 3, 4}, want: 4},
		{name: "8 voters need 5", acked: []uint64{8, 7, 6, 5, 4, 3, 2, 1}, want: 4},
		{name: "9 voters need 5", acked: []uint64{9, 8, 7, 6, 5, 4, 3, 2, 1}, want: 5},
		{name: "9 voters, equal", acked: []uint64{3, 3, 3, 3, 3, 3, 3, 3, 3}, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, m := unitAckedFor(tt.acked...)
			assert.Equal(t, tt.want, c.committedIndex(unitAcked(m)))
		})
	}
}

func TestMajorityConfigCommittedIndexEmpty(t *testing.T) {
	var c majorityConfig
	assert.Equal(t, ^uint64(0), c.committedIndex(func(uint64) uint64 { return 0 }),
		"an empty half never constrains a joint configuration")
}

// TestMajorityConfigCommittedIndexRandom checks committedIndex against its
// definition on random acks for 1..9 voters: the result is acked by a
// majority, and the next index is not.
func TestMajorityConfigCommittedIndexRandom(t *testing.T) {
	seed := uint64(7)
	rnd := rand.New(rand.NewPCG(seed, seed))
	for n := 1; n <= 9; n++ {
		for round := range 200 {
			acked := make([]uint64, n)
			for i := range acked {
				acked[i] = rnd.Uint64N(6)
			}
			c, m := unitAckedFor(acked...)
			got := c.committedIndex(unitAcked(m))
			atLeast := func(idx uint64) int {
				k := 0
				for _, a := range acked {
					if a >= idx {
						k++
					}
				}
				return k
			}
			q := n/2 + 1
			if !assert.GreaterOrEqual(t, atLeast(got), q, "seed %d n %d round %d acked %v", seed, n, round, acked) ||
				!assert.Less(t, atLeast(got+1), q, "seed %d n %d round %d acked %v", seed, n, round, acked) {
				return
			}
		}
	}
}

func TestMajorityConfigCommittedIndexAllocs(t *testing.T) {
	for _, n := range []int{3, 7} {
		c, m := unitAckedFor(make([]uint64, n)...)
		acked := unitAcked(m)
		assert.Zero(t, testing.AllocsPerRun(100, func() { _ = c.committedIndex(acked) }), "%d voters", n)
	}
}

func TestMajorityConfigVoteResult(t *testing.T) {
	tests := []struct {
		name   string
		voters majorityConfig
		votes  map[uint64]bool
		want   voteResult
	}{
		{name: "empty config wins", voters: nil, votes: nil, want: voteWon},
		{name: "single voter, no vote", voters: majorityConfig{1}, votes: nil, want: votePending},
		{name: "single voter, yes", voters: majorityConfig{1}, votes: map[uint64]bool{1: true}, want: voteWon},
		{name: "single voter, no", voters: majorityConfig{1}, votes: map[uint64]bool{1: false}, want: voteLost},
		{name: "3: nothing yet", voters: majorityConfig{1, 2, 3}, votes: map[uint64]bool{}, want: votePending},
		{name: "3: one yes", voters: majorityConfig{1, 2, 3}, votes: map[uint64]bool{1: true}, want: votePending},
		{name: "3: two yes", voters: majorityConfig{1, 2, 3}, votes: map[uint64]bool{1: true, 3: true}, want: voteWon},
		{name: "3: one yes one no", voters: majorityConfig{1, 2, 3}, votes: map[uint64]bool{1: true, 2: false}, want: votePending},
		{name: "3: two no", voters: majorityConfig{1, 2, 3}, votes: map[uint64]bool{1: false, 2: false}, want: voteLost},
		{name: "3: outsiders do not count", voters: majorityConfig{1, 2, 3}, votes: map[uint64]bool{1: true, 4: true, 5: true}, want: votePending},
		{name: "4: two yes pending", voters: majorityConfig{1, 2, 3, 4}, votes: map[uint64]bool{1: true, 2: true}, want: votePending},
		{name: "4: two yes two no", voters: majorityConfig{1, 2, 3, 4}, votes: map[uint64]bool{1: true, 2: true, 3: false, 4: false}, want: voteLost},
		{name: "4: three yes", voters: majorityConfig{1, 2, 3, 4}, votes: map[uint64]bool{1: true, 2: true, 4: true}, want: voteWon},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.voters.voteResult(tt.votes))
		})
	}
}

// unitTracker returns a tracker configured with cs; progress starts at next.
func unitTracker(cs ConfState, next uint64) *progressTracker {
	trk := newProgressTracker(16, 0)
	trk.applyConfState(cs, next)
	return &trk
}

func TestProgressTrackerApplyConfState(t *testing.T) {
	trk := unitTracker(ConfState{Voters: []uint64{3, 1, 2, 1}, Learners: []uint64{4}}, 5)
	assert.Equal(t, []uint64{1, 2, 3, 4}, trk.memberIDs())
	assert.Equal(t, []uint64{1, 2, 3}, trk.voterIDs())
	require.Len(t, trk.progress, 4)
	for id, pr := range trk.progress {
		assert.Equal(t, uint64(5), pr.Next, "next of %d", id)
		assert.Equal(t, id == 4, pr.IsLearner, "learner flag of %d", id)
	}
	assert.Equal(t, ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}, trk.confState(), "deduplicated and sorted")

	// Remove 4, demote 3 to learner, add voter 5; existing progress is kept.
	trk.progress[1].maybeUpdate(7)
	trk.applyConfState(ConfState{Voters: []uint64{1, 2, 5}, Learners: []uint64{3}}, 9)
	assert.Equal(t, []uint64{1, 2, 3, 5}, trk.memberIDs())
	assert.Equal(t, []uint64{1, 2, 5}, trk.voterIDs())
	assert.NotContains(t, trk.progress, uint64(4))
	assert.Equal(t, uint64(7), trk.progress[1].Match, "kept")
	assert.True(t, trk.progress[3].IsLearner, "demoted")
	assert.False(t, trk.progress[5].IsLearner)
	assert.Equal(t, uint64(9), trk.progress[5].Next, "new member starts at next")
	assert.False(t, trk.isVoter(3))
	assert.False(t, trk.isVoter(4))

	// Promote 3 again.
	trk.applyConfState(ConfState{Voters: []uint64{1, 2, 3, 5}}, 9)
	assert.False(t, trk.progress[3].IsLearner, "promoted")
	assert.Equal(t, []uint64{1, 2, 3, 5}, trk.memberIDs())

	// An empty configuration drops everyone.
	trk.applyConfState(ConfState{}, 9)
	assert.Empty(t, trk.progress)
	assert.Empty(t, trk.memberIDs())
	assert.Equal(t, ConfState{}, trk.confState())
}

func TestProgressTrackerJointConfig(t *testing.T) {
	cs := ConfState{
		Voters:         []uint64{1, 2, 3},
		VotersOutgoing: []uint64{3, 4, 5},
		LearnersNext:   []uint64{4},
		AutoLeave:      true,
	}
	trk := unitTracker(cs, 1)
	assert.True(t, trk.isJoint())
	assert.Equal(t, []uint64{1, 2, 3, 4, 5}, trk.voterIDs(), "union without duplicates")
	assert.Equal(t, []uint64{1, 2, 3, 4, 5}, trk.memberIDs())
	assert.False(t, trk.progress[4].IsLearner, "4 still votes in the outgoing half")
	assert.False(t, trk.isSingleton(1))
	got := trk.confState()
	assert.Equal(t, cs, got)
	// confState returns copies.
	got.Voters[0] = 99
	assert.Equal(t, []uint64{1, 2, 3}, trk.confState().Voters)
}

func TestProgressTrackerCommittedJoint(t *testing.T) {
	cs := ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{3, 4, 5}}
	tests := []struct {
		name  string
		match map[uint64]uint64
		want  uint64
	}{
		{name: "nothing acked", match: map[uint64]uint64{}, want: 0},
		{name: "incoming majority only", match: map[uint64]uint64{1: 9, 2: 9}, want: 0},
		{name: "outgoing majority only", match: map[uint64]uint64{4: 9, 5: 9}, want: 0},
		{name: "both majorities", match: map[uint64]uint64{1: 9, 2: 9, 4: 8, 5: 8}, want: 8},
		{name: "the shared voter counts in both", match: map[uint64]uint64{1: 6, 3: 7, 5: 9}, want: 6},
		{name: "min of the two", match: map[uint64]uint64{1: 4, 2: 5, 3: 6, 4: 7, 5: 8}, want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trk := unitTracker(cs, 1)
			for id, m := range tt.match {
				trk.progress[id].maybeUpdate(m)
			}
			assert.Equal(t, tt.want, trk.committed())
		})
	}
}

func TestProgressTrackerCommittedSimple(t *testing.T) {
	trk := unitTracker(ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4, 5}}, 1)
	trk.progress[1].maybeUpdate(5)
	trk.progress[4].maybeUpdate(9)
	trk.progress[5].maybeUpdate(9)
	assert.Equal(t, uint64(0), trk.committed(), "learners do not count")
	trk.progress[2].maybeUpdate(3)
	assert.Equal(t, uint64(3), trk.committed())
}

func TestProgressTrackerTallyVotes(t *testing.T) {
	simple := ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{9}}
	joint := ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{3, 4, 5}}
	tests := []struct {
		name         string
		cs           ConfState
		votes        map[uint64]bool
		wantGranted  int
		wantRejected int
		want         voteResult
	}{
		{name: "simple: majority", cs: simple, votes: map[uint64]bool{1: true, 2: true}, wantGranted: 2, want: voteWon},
		{name: "simple: learner vote ignored", cs: simple, votes: map[uint64]bool{1: true, 9: true}, wantGranted: 1, want: votePending},
		{name: "simple: lost", cs: simple, votes: map[uint64]bool{1: true, 2: false, 3: false}, wantGranted: 1, wantRejected: 2, want: voteLost},
		{name: "joint: incoming only", cs: joint, votes: map[uint64]bool{1: true, 2: true}, wantGranted: 2, want: votePending},
		{name: "joint: outgoing only", cs: joint, votes: map[uint64]bool{4: true, 5: true}, wantGranted: 2, want: votePending},
		{name: "joint: both", cs: joint, votes: map[uint64]bool{1: true, 2: true, 4: true, 5: true}, wantGranted: 4, want: voteWon},
		{name: "joint: shared voter tips both", cs: joint, votes: map[uint64]bool{1: true, 3: true, 4: true}, wantGranted: 3, want: voteWon},
		{name: "joint: incoming won, outgoing lost", cs: joint, votes: map[uint64]bool{1: true, 2: true, 4: false, 5: false}, wantGranted: 2, wantRejected: 2, want: voteLost},
		{name: "joint: incoming lost, outgoing pending", cs: joint, votes: map[uint64]bool{1: false, 2: false}, wantRejected: 2, want: voteLost},
		{name: "joint: incoming pending, outgoing won", cs: joint, votes: map[uint64]bool{3: true, 4: true}, wantGranted: 2, want: votePending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trk := unitTracker(tt.cs, 1)
			// Record in a fixed order so that the test is reproducible.
			ids := make([]uint64, 0, len(tt.votes))
			for id := range tt.votes {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				trk.recordVote(id, tt.votes[id])
			}
			granted, rejected, res := trk.tallyVotes()
			assert.Equal(t, tt.wantGranted, granted, "granted")
			assert.Equal(t, tt.wantRejected, rejected, "rejected")
			assert.Equal(t, tt.want, res)
		})
	}
}

func TestProgressTrackerRecordVoteOnce(t *testing.T) {
	trk := unitTracker(ConfState{Voters: []uint64{1, 2, 3}}, 1)
	trk.recordVote(2, false)
	trk.recordVote(2, true) // a second answer from the same voter is ignored
	trk.recordVote(1, true)
	granted, rejected, res := trk.tallyVotes()
	assert.Equal(t, 1, granted)
	assert.Equal(t, 1, rejected)
	assert.Equal(t, votePending, res)
	trk.resetVotes()
	granted, rejected, res = trk.tallyVotes()
	assert.Zero(t, granted)
	assert.Zero(t, rejected)
	assert.Equal(t, votePending, res)
}

func TestProgressTrackerQuorumActive(t *testing.T) {
	simple := ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}
	joint := ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{1, 4, 5}}
	tests := []struct {
		name   string
		cs     ConfState
		active []uint64
		want   bool
	}{
		{name: "self alone", cs: simple, active: nil, want: false},
		{name: "self and one", cs: simple, active: []uint64{3}, want: true},
		{name: "learner does not count", cs: simple, active: []uint64{4}, want: false},
		{name: "single voter", cs: ConfState{Voters: []uint64{1}}, active: nil, want: true},
		{name: "joint: incoming only", cs: joint, active: []uint64{2}, want: false},
		{name: "joint: outgoing only", cs: joint, active: []uint64{4}, want: false},
		{name: "joint: both", cs: joint, active: []uint64{2, 4}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trk := unitTracker(tt.cs, 1)
			// Every member was heard from at tick 0; at tick 20 only those
			// heard from since tick 11 are within a 10-tick window.
			trk.now = 20
			for _, id := range tt.active {
				trk.progress[id].markActive(15)
			}
			trk.recordVote(2, true) // ongoing vote counting is not disturbed
			assert.Equal(t, tt.want, trk.quorumActive(1, 10))
			assert.Equal(t, map[uint64]bool{2: true}, trk.votes)
			// The window is exclusive: heard 10 ticks ago is too long ago.
			trk.now = 25
			assert.False(t, trk.quorumActive(1, 10) && len(tt.cs.Voters) > 1, "stale activity must not count")
		})
	}
}

func TestProgressTrackerIsSingleton(t *testing.T) {
	tests := []struct {
		name string
		cs   ConfState
		want bool
	}{
		{name: "single voter", cs: ConfState{Voters: []uint64{1}}, want: true},
		{name: "single voter with learners", cs: ConfState{Voters: []uint64{1}, Learners: []uint64{2}}, want: true},
		{name: "another single voter", cs: ConfState{Voters: []uint64{2}}, want: false},
		{name: "two voters", cs: ConfState{Voters: []uint64{1, 2}}, want: false},
		{name: "joint", cs: ConfState{Voters: []uint64{1}, VotersOutgoing: []uint64{1, 2}}, want: false},
		{name: "empty", cs: ConfState{}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, unitTracker(tt.cs, 1).isSingleton(1))
		})
	}
}

func TestSortedIDs(t *testing.T) {
	tests := []struct {
		name string
		in   []uint64
		want []uint64
	}{
		{name: "nil", in: nil, want: nil},
		{name: "empty", in: []uint64{}, want: nil},
		{name: "sorted", in: []uint64{1, 2}, want: []uint64{1, 2}},
		{name: "unsorted with duplicates", in: []uint64{3, 1, 3, 2, 1}, want: []uint64{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			assert.Equal(t, tt.want, sortedIDs(in))
			assert.Equal(t, tt.in, in, "the input is not modified")
		})
	}
}

func TestProgressTrackerCommittedWithoutProgress(t *testing.T) {
	// A voter whose progress is missing counts as having acknowledged
	// nothing; it never makes the commit index jump.
	trk := unitTracker(ConfState{Voters: []uint64{1, 2, 3}}, 1)
	trk.progress[1].maybeUpdate(5)
	trk.progress[2].maybeUpdate(5)
	delete(trk.progress, 2)
	assert.Equal(t, uint64(0), trk.committed())
	trk.progress[3] = newProgress(1, 4, 0, false)
	trk.progress[3].maybeUpdate(4)
	assert.Equal(t, uint64(4), trk.committed())
}
