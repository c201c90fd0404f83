package raft_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

func TestProposeEntriesOnTheLeaderSaysWhereTheyLand(t *testing.T) {
	rn, storage := startRawNode(t, 1, []uint64{1})
	require.NoError(t, rn.Campaign())
	persistReady(t, rn, storage)
	require.Equal(t, raft.StateLeader, rn.BasicStatus().RaftState)
	last, err := storage.LastIndex()
	require.NoError(t, err)

	first, term, err := rn.ProposeEntries([]raft.Entry{{Data: []byte("a")}, {Data: []byte("b")}})
	require.NoError(t, err)
	assert.Equal(t, last+1, first)
	assert.Equal(t, rn.BasicStatus().Term, term)

	rd := rn.Ready()
	require.Len(t, rd.Entries, 2)
	for i, want := range []string{"a", "b"} {
		assert.Equal(t, first+uint64(i), rd.Entries[i].Index)
		assert.Equal(t, term, rd.Entries[i].Term)
		assert.Equal(t, want, string(rd.Entries[i].Data))
	}
}

func TestProposeEntriesAppendsNothingOnAnError(t *testing.T) {
	cc := raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfChangeAddNode, NodeID: 2}}}
	data := cc.Marshal()
	tests := []struct {
		name string
		ents []raft.Entry
		want error
	}{
		{"no entries", nil, raft.ErrProposalDropped},
		{"two configuration changes", []raft.Entry{
			{Type: raft.EntryConfChange, Data: data},
			{Type: raft.EntryConfChange, Data: data},
		}, raft.ErrPendingConfChange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn, storage := startRawNode(t, 1, []uint64{1})
			require.NoError(t, rn.Campaign())
			persistReady(t, rn, storage)
			first, term, err := rn.ProposeEntries(tt.ents)
			require.ErrorIs(t, err, tt.want)
			assert.Zero(t, first)
			assert.Zero(t, term)
			assert.False(t, rn.HasReady(), "nothing was appended")
		})
	}
}

func TestProposeEntriesOnAFollowerForwardsThem(t *testing.T) {
	rn, storage := startRawNode(t, 2, []uint64{1, 2, 3})
	// A heartbeat of leader 1 in term 1 tells node 2 who leads.
	require.NoError(t, rn.Step(raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 1}))
	persistReady(t, rn, storage)
	require.Equal(t, uint64(1), rn.BasicStatus().Lead)

	first, term, err := rn.ProposeEntries([]raft.Entry{{Data: []byte("a")}})
	require.NoError(t, err)
	assert.Zero(t, first, "a follower cannot know where the entries land")
	assert.Zero(t, term)
	msgs := persistReady(t, rn, storage)
	require.Len(t, msgs, 1)
	assert.Equal(t, raft.MsgProp, msgs[0].Type)
	assert.Equal(t, uint64(1), msgs[0].To)
	require.Len(t, msgs[0].Entries, 1)
	assert.Equal(t, "a", string(msgs[0].Entries[0].Data))
}
