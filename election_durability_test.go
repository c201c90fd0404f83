package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSingleVoterLeadsOnlyOnceItsVoteIsDurable campaigns a single voter and
// checks, in both acknowledgement modes, that it does not lead (and sends no
// append) before the hard state carrying its new term and vote is durable.
func TestSingleVoterLeadsOnlyOnceItsVoteIsDurable(t *testing.T) {
	for _, pipelined := range []bool{false, true} {
		t.Run(map[bool]string{false: "simple", true: "pipelined"}[pipelined], func(t *testing.T) {
			s := NewMemoryStorage()
			cfg := testConfig(1, s)
			cfg.PipelinedAcks = pipelined
			rn, err := NewRawNode(cfg)
			require.NoError(t, err)
			require.NoError(t, rn.Bootstrap([]uint64{1}))
			rd := rn.Ready()
			require.NoError(t, s.Save(rd.HardState, rd.Entries, rd.Snapshot))
			ack := func(rd Ready) {
				if pipelined {
					rn.AckPersisted(rd)
					if !rd.Snapshot.IsEmpty() {
						rn.AckApplied(rd.Snapshot.Metadata.Index)
					}
					if n := len(rd.CommittedEntries); n > 0 {
						rn.AckApplied(rd.CommittedEntries[n-1].Index)
					}
					return
				}
				rn.Advance(rd)
			}
			ack(rd)

			require.NoError(t, rn.Campaign())
			assert.Equal(t, StateCandidate, rn.raft.state, "leading before the vote is durable")
			rd = rn.Ready()
			require.Equal(t, uint64(1), rd.HardState.Vote)
			assert.True(t, rd.MustSync)
			assert.Empty(t, rd.Entries, "no entry of the new term before the vote is durable")
			require.NoError(t, s.Save(rd.HardState, rd.Entries, rd.Snapshot))
			ack(rd)
			assert.Equal(t, StateLeader, rn.raft.state, "the vote is durable: the single voter leads")
		})
	}
}

// TestSingleVoterNeverLeadsOneTermTwice is the crash that the rule above
// prevents: a single voter with a learner campaigns, and its host sends the
// Ready's messages, then loses power before the new term is durable. After
// the restart it campaigns for the same term again. The learner must never
// hold an entry of that term that the leader does not.
func TestSingleVoterNeverLeadsOneTermTwice(t *testing.T) { singleVoterNeverLeadsOneTermTwice(t) }

func singleVoterNeverLeadsOneTermTwice(t testing.TB) {
	nw := newCluster(t, 1)
	nw.electLeader(1)
	nw.addNode(2, nil)
	nw.proposeConfChange(1, ConfChange{Changes: []ConfChangeSingle{{Type: ConfChangeAddLearnerNode, NodeID: 2}}})
	require.NoError(t, nw.propose(1, "a"))
	require.Equal(t, []string{"a"}, nw.appliedData(2))
	nw.crash(1)

	// Campaign; the host sends the Ready's messages, then the power fails
	// before anything of the Ready is written.
	require.NoError(t, nw.node(1).Campaign())
	_ = nw.node(1).Propose([]byte("x")) // refused unless it leads already
	rd := nw.node(1).Ready()
	nw.queue = append(nw.queue, rd.Messages...)
	nw.stabilize()
	nw.crash(1)

	nw.campaign(1)
	require.Equal(t, StateLeader, nw.raft(1).state)
	require.NoError(t, nw.propose(1, "y"))
	nw.tickAll()
	assert.Equal(t, nw.appliedData(1), nw.appliedData(2))
}

// TestRestartPersistsTermTakenFromLog restarts a node whose last entry is of
// a later term than its stored hard state (a crash between appending a
// Ready's entries and writing its hard state). The node takes the entry's
// term; its first Ready must make that term durable in the hard state, since
// the node answers messages in that term: the entry alone may later be cut
// away (a conflicting leader, a damaged tail) and the term must not regress.
func TestRestartPersistsTermTakenFromLog(t *testing.T) {
	s := NewMemoryStorage()
	require.NoError(t, s.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 1, Term: 1,
		ConfState: ConfState{Voters: []uint64{1, 2, 3}}}}))
	require.NoError(t, s.Append([]Entry{{Index: 2, Term: 5}}))
	require.NoError(t, s.SetHardState(HardState{Term: 4, Vote: 2, Commit: 1}))
	rn, err := NewRawNode(testConfig(1, s))
	require.NoError(t, err)
	require.Equal(t, uint64(5), rn.raft.Term)
	require.True(t, rn.HasReady())
	rd := rn.Ready()
	assert.Equal(t, HardState{Term: 5, Vote: None, Commit: 1}, rd.HardState)
	assert.True(t, rd.MustSync)
}
