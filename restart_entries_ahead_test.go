package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRestartWithEntriesAheadOfHardState: a crash between appending a
// Ready's entries and writing its hard state (which doc.go allows) leaves
// entries of a term the hard state never reached. The node promised nothing
// in that term, so it restarts in it with no vote, keeping the invariant
// that its last log term never exceeds its term (found by rafttest's
// power-loss runs under -tags invariants).
func TestRestartWithEntriesAheadOfHardState(t *testing.T) {
	tests := []struct {
		name string
		hs   HardState
	}{
		{name: "hard state of an earlier term", hs: HardState{Term: 3, Vote: 2, Commit: 3}},
		{name: "hard state of the snapshot only", hs: HardState{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemoryStorage()
			require.NoError(t, s.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 1, Term: 1, ConfState: ConfState{Voters: []uint64{1, 2, 3}}}}))
			require.NoError(t, s.Append([]Entry{{Index: 2, Term: 2}, {Index: 3, Term: 3}, {Index: 4, Term: 4}, {Index: 5, Term: 4}}))
			hs := tt.hs
			if hs.IsEmpty() {
				hs.Commit = 1 // what ApplySnapshot left
				hs.Term = 1
			}
			require.NoError(t, s.SetHardState(hs))
			rn, err := NewRawNode(testConfig(1, s))
			require.NoError(t, err)
			st := rn.BasicStatus()
			assert.Equal(t, uint64(4), st.Term, "the term of the last entry")
			assert.Equal(t, None, st.Vote, "no vote was promised in that term")
			assert.Equal(t, hs.Commit, st.Commit)
			// Drive the node through an election: every step checks the
			// invariants under -tags invariants.
			for i := 0; i < 30 && rn.BasicStatus().RaftState == StateFollower; i++ {
				rn.Tick()
				if rn.HasReady() {
					rd := rn.Ready()
					require.NoError(t, s.Append(rd.Entries))
					if !rd.HardState.IsEmpty() {
						require.NoError(t, s.SetHardState(rd.HardState))
					}
					rn.Advance(rd)
				}
			}
			assert.NotEqual(t, StateFollower, rn.BasicStatus().RaftState, "the node campaigns")
			assert.GreaterOrEqual(t, rn.BasicStatus().Term, uint64(4))
		})
	}
}
