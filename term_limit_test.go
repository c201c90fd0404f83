package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestElectionsAfterMessageWithLargestTerm delivers a forged heartbeat
// carrying the largest term a message may raise a node to, to every node.
// The cluster must still elect leaders afterwards, again and again.
func TestElectionsAfterMessageWithLargestTerm(t *testing.T) { electionsAfterMessageWithLargestTerm(t) }

func electionsAfterMessageWithLargestTerm(t testing.TB) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	for _, to := range []uint64{1, 2} {
		nw.queue = append(nw.queue, Message{Type: MsgHeartbeat, From: 3, To: to, Term: maxTerm})
	}
	nw.queue = append(nw.queue, Message{Type: MsgHeartbeat, From: 1, To: 3, Term: maxTerm})
	nw.stabilize()
	for _, id := range nw.ids {
		require.Equal(t, uint64(maxTerm), nw.raft(id).Term, "node %d adopts the term", id)
	}
	for round := range 3 {
		lead := nw.leader()
		if lead != None && nw.raft(lead).Term == maxTerm {
			lead = None // the forger's term has no leader
		}
		for i := 0; i < 100 && (lead == None || nw.raft(lead).Term <= maxTerm+uint64(round)); i++ {
			nw.tickAll()
			lead = nw.leader()
		}
		require.NotEqual(t, None, lead, "no leader elected after the term reached %d", uint64(maxTerm))
		assert.Greater(t, nw.raft(lead).Term, uint64(maxTerm)+uint64(round))
		require.NoError(t, nw.propose(lead, "b"))
		// Depose it: the next round needs another election.
		nw.isolate(lead)
		for range 30 {
			nw.tickAll()
		}
		nw.heal()
	}
}

// TestMessageTermJumpBeyondLargestTermRefused checks the bound on terms
// beyond maxTerm: a message may carry a term at most termStepLimit above
// max(own term, maxTerm), so that no message can push a node to the end of
// the term space.
func TestMessageTermJumpBeyondLargestTermRefused(t *testing.T) {
	tests := []struct {
		name     string
		own, msg uint64
		ok       bool
	}{
		{name: "up to maxTerm from a low term", own: 5, msg: maxTerm, ok: true},
		{name: "a step beyond maxTerm from a low term", own: 5, msg: maxTerm + termStepLimit, ok: true},
		{name: "too far beyond maxTerm", own: 5, msg: maxTerm + termStepLimit + 1, ok: false},
		{name: "a step beyond a term past maxTerm", own: maxTerm + 1000, msg: maxTerm + 1000 + termStepLimit, ok: true},
		{name: "too far beyond a term past maxTerm", own: maxTerm + 1000, msg: maxTerm + 1001 + termStepLimit, ok: false},
		{name: "the end of the term space", own: maxTerm, msg: ^uint64(0), ok: false},
		{name: "a lower term past maxTerm", own: maxTerm + 1000, msg: maxTerm + 1, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newCluster(t, 3).raft(1)
			r.Term = tt.own
			err := r.validateMessage(&Message{Type: MsgHeartbeat, From: 2, To: 1, Term: tt.msg})
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrInvalidMessage)
			}
		})
	}
}
