package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefusedVoteRequestKeepsElectionTimer checks that a vote request of a
// later term restarts the receiver's election timer only if the vote is
// granted. A follower with a longer log refuses candidates that are behind
// it; if each of their vote requests restarted its timer, it would never
// campaign itself while they keep splitting or losing elections, and the
// cluster would stay leaderless.
func TestRefusedVoteRequestKeepsElectionTimer(t *testing.T) {
	tests := []struct {
		name        string
		candLast    uint64 // the candidate's last index (its last term is 2)
		wantGranted bool
	}{
		{name: "refused: candidate behind", candLast: 1, wantGranted: false},
		{name: "granted: candidate up to date", candLast: 10, wantGranted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nw := newCluster(t, 3, func(c *Config) { c.DisableCheckQuorum = true })
			nw.electLeader(1)
			require.NoError(t, nw.propose(1, "a"))
			r := nw.raft(3)
			nw.tick(3, 4)
			require.Equal(t, 4, r.electionElapsed)
			require.NoError(t, nw.node(3).Step(Message{Type: MsgVote, From: 2, To: 3, Term: r.Term + 1,
				Index: tt.candLast, LogTerm: 2}))
			rd := nw.node(3).Ready()
			var granted bool
			for _, m := range rd.MessagesAfterPersist {
				if m.Type == MsgVoteResp {
					granted = !m.Reject
				}
			}
			require.Equal(t, tt.wantGranted, granted)
			if tt.wantGranted {
				assert.Equal(t, 0, r.electionElapsed, "a granted vote restarts the timer")
			} else {
				assert.Equal(t, 4, r.electionElapsed, "a refused vote leaves the timer running")
			}
		})
	}
}
