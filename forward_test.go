package raft

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fwdNetwork is a 3-node network led by node 1 whose Readies' proposal
// placements are collected per node.
func fwdNetwork(t *testing.T, opts ...configOption) (*testCluster, map[uint64][]ProposalPlacement) {
	t.Helper()
	nw := newCluster(t, 3, opts...)
	got := map[uint64][]ProposalPlacement{}
	nw.onReady = func(n *testNode, rd *Ready) {
		got[n.id] = append(got[n.id], rd.ProposalPlacements...)
	}
	nw.electLeader(1)
	return nw, got
}

// fwdPropose proposes data as one tracked batch on node id and delivers
// everything.
func fwdPropose(t *testing.T, nw *testCluster, id, reqID uint64, data ...string) (first, term uint64, err error) {
	t.Helper()
	ents := make([]Entry, len(data))
	for i, d := range data {
		ents[i].Data = []byte(d)
	}
	first, term, err = nw.node(id).ProposeTracked(reqID, ents)
	nw.handleReady(id)
	nw.stabilize()
	return first, term, err
}

// TestProposeTrackedFromFollower: a follower's tracked proposal is answered
// with where the leader appended it, and the entries at those indexes, in
// that term, are the proposed ones.
func TestProposeTrackedFromFollower(t *testing.T) {
	nw, got := fwdNetwork(t)
	first, term, err := fwdPropose(t, nw, 2, 77, "a", "b")
	require.NoError(t, err)
	assert.Zero(t, first, "a follower does not know where its proposal lands")
	assert.Zero(t, term)
	require.Len(t, got[2], 1)
	p := got[2][0]
	require.NoError(t, p.Err)
	assert.Equal(t, uint64(77), p.ID)
	assert.Equal(t, uint64(1), p.From)
	assert.Equal(t, nw.raft(1).Term, p.Term)
	for i, want := range []string{"a", "b"} {
		e := nw.committed[p.Index+uint64(i)]
		assert.Equal(t, want, string(e.Data))
		assert.Equal(t, p.Term, e.Term)
	}
	assert.Empty(t, got[1], "the leader gets no placement")
	assert.Empty(t, got[3])

	// On the leader, ProposeTracked is ProposeEntries.
	first, term, err = fwdPropose(t, nw, 1, 78, "c")
	require.NoError(t, err)
	assert.Equal(t, "c", string(nw.committed[first].Data))
	assert.Equal(t, nw.raft(1).Term, term)
	assert.Empty(t, got[1])

	_, _, err = nw.node(2).ProposeTracked(0, []Entry{{Data: []byte("x")}})
	assert.ErrorIs(t, err, ErrProposalDropped, "request ID 0")
}

// TestProposeTrackedRefused: a node that does not append a tracked
// proposal says why, and a follower that receives one does not forward it
// again.
func TestProposeTrackedRefused(t *testing.T) {
	t.Run("transfer in progress", func(t *testing.T) {
		nw, got := fwdNetwork(t)
		nw.isolate(3)
		require.NoError(t, nw.node(1).TransferLeader(3))
		nw.handleReady(1)
		nw.queue = nil
		nw.heal()
		nw.cut[[2]uint64{1, 3}] = true // the transfer stays pending
		last := nw.raft(1).raftLog.lastIndex()
		_, _, err := fwdPropose(t, nw, 2, 5, "x")
		require.NoError(t, err)
		require.Len(t, got[2], 1)
		assert.ErrorIs(t, got[2][0].Err, ErrTransferInProgress)
		assert.ErrorIs(t, got[2][0].Err, ErrProposalDropped)
		assert.Zero(t, got[2][0].Index)
		assert.Equal(t, last, nw.raft(1).raftLog.lastIndex(), "nothing appended")
	})
	t.Run("too large for the leader", func(t *testing.T) {
		nw, got := fwdNetwork(t, func(c *Config) {
			if c.ID == 1 {
				c.MaxEntrySize = 4
			}
		})
		last := nw.raft(1).raftLog.lastIndex()
		_, _, err := fwdPropose(t, nw, 2, 6, "too large")
		require.NoError(t, err)
		require.Len(t, got[2], 1)
		assert.ErrorIs(t, got[2][0].Err, ErrProposalTooLarge)
		assert.Equal(t, last, nw.raft(1).raftLog.lastIndex(), "nothing appended")
	})
	t.Run("received by a follower", func(t *testing.T) {
		nw, got := fwdNetwork(t)
		last := nw.raft(1).raftLog.lastIndex()
		// Node 2 forwards to node 3 as if it led.
		err := nw.node(3).Step(Message{Type: MsgProp, From: 2, To: 3,
			Entries: []Entry{{Data: []byte("x")}}, Context: encodePropID(9)})
		require.ErrorIs(t, err, ErrProposalDropped)
		sent := nw.raft(3).msgs
		require.Len(t, sent, 1, "answered, not forwarded")
		assert.Equal(t, MsgPropResp, sent[0].Type)
		assert.Equal(t, uint64(2), sent[0].To)
		nw.handleReady(3)
		nw.stabilize()
		require.Len(t, got[2], 1)
		assert.ErrorIs(t, got[2][0].Err, ErrProposalDropped)
		assert.Equal(t, uint64(3), got[2][0].From)
		assert.Equal(t, last, nw.raft(1).raftLog.lastIndex(), "nothing appended")
	})
}

// TestProposeTrackedLateAnswer: an answer from a leader that lost office
// since is still handed to the host: where it appended stays true.
func TestProposeTrackedLateAnswer(t *testing.T) {
	nw, _ := fwdNetwork(t)
	require.NoError(t, nw.node(2).Step(Message{Type: MsgPropResp, From: 1, To: 2, Term: 1,
		Index: 3, LogTerm: 1, Context: encodePropID(4)}))
	require.True(t, nw.node(2).HasReady())
	rd := nw.node(2).Ready()
	assert.Equal(t, []ProposalPlacement{{ID: 4, From: 1, Index: 3, Term: 1}}, rd.ProposalPlacements)
	assert.True(t, rd.HasUpdates())
	nw.node(2).Advance(rd)
	assert.False(t, nw.node(2).HasReady(), "handed out once")
}

// TestProposeTrackedBadAnswers: malformed or forged answers and request IDs
// from the network are refused with ErrInvalidMessage and change nothing.
func TestProposeTrackedBadAnswers(t *testing.T) {
	const maxU = uint64(math.MaxUint64)
	ok := Message{Type: MsgPropResp, From: 1, To: 3, Term: badTerm, Index: 6, LogTerm: badTerm, Context: encodePropID(1)}
	with := func(edit func(*Message)) Message { m := ok; edit(&m); return m }
	tests := []struct {
		name string
		msg  Message
	}{
		{"no request ID", with(func(m *Message) { m.Context = nil })},
		{"short request ID", with(func(m *Message) { m.Context = []byte{1, 2, 3} })},
		{"long request ID", with(func(m *Message) { m.Context = make([]byte, 9) })},
		{"index 0", with(func(m *Message) { m.Index = 0 })},
		{"index beyond 2^62", with(func(m *Message) { m.Index = maxIndex + 1 })},
		{"index MaxUint64", with(func(m *Message) { m.Index = maxU })},
		{"term 0", with(func(m *Message) { m.LogTerm = 0 })},
		{"placement term below the message term", with(func(m *Message) { m.LogTerm = badTerm - 1 })},
		{"placement term above the message term", with(func(m *Message) { m.LogTerm = badTerm + 1 })},
		{"message term 0", with(func(m *Message) { m.Term = 0; m.LogTerm = 0 })},
		{"placement with a reject hint", with(func(m *Message) { m.RejectHint = 2 })},
		{"entries", with(func(m *Message) { m.Entries = []Entry{{Data: []byte("x")}} })},
		{"refusal with an index", with(func(m *Message) { m.Reject = true; m.LogTerm = 0 })},
		{"refusal with a term", with(func(m *Message) { m.Reject = true; m.Index = 0 })},
		{"refusal with an unknown reason", with(func(m *Message) {
			m.Reject, m.Index, m.LogTerm, m.RejectHint = true, 0, 0, numPropRejectReasons
		})},
		{"proposal with a short request ID", Message{Type: MsgProp, From: 2, To: 3,
			Entries: []Entry{{Data: []byte("x")}}, Context: []byte{1}}},
	}
	for _, tt := range tests {
		for _, role := range []badRole{badFollower, badLeader} {
			t.Run(tt.name+"/"+role.String(), func(t *testing.T) {
				f := newBadFixture(t, role)
				m := tt.msg
				m.To = f.id
				if m.From == f.id {
					m.From = 2
				}
				before := captureBadState(f.rn)
				err := f.rn.Step(m)
				require.ErrorIs(t, err, ErrInvalidMessage)
				assert.Equal(t, before, captureBadState(f.rn))
				assert.Empty(t, f.rn.raft.placements)
				assert.True(t, f.warned())
			})
		}
	}
	// The well-formed answer is taken.
	f := newBadFixture(t, badFollower)
	require.NoError(t, f.rn.Step(ok))
	assert.Equal(t, []ProposalPlacement{{ID: 1, From: 1, Index: 6, Term: badTerm}}, f.rn.raft.placements)
}
