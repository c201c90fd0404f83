package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A host that hands a Ready's messages back with RecycleMessages gets its
// next messages in the same array.
func TestRecycleMessagesReusesTheArray(t *testing.T) {
	c := benchNewCluster(t, 3)
	c.elect(t, 1)
	rn, storage := c.node(1).rn, c.node(1).storage
	require.NoError(t, rn.Propose(benchPayload))
	rd := rn.Ready()
	require.NotEmpty(t, rd.Messages, "the leader sends appends")
	first := &rd.Messages[:1][0]
	rn.RecycleMessages(rd.Messages)
	require.Equal(t, Message{}, *first, "a recycled array is cleared")
	rd.Messages = nil
	require.NoError(t, storage.Append(rd.Entries)) // persisted, as Advance requires
	rn.Advance(rd)

	require.NoError(t, rn.Propose(benchPayload))
	rd = rn.Ready()
	require.NotEmpty(t, rd.Messages)
	require.Same(t, first, &rd.Messages[0], "the next messages reuse the recycled array")
	require.Equal(t, MsgApp, rd.Messages[0].Type)

	// With both buffers in use, the array is left alone.
	other := make([]Message, 1, 4)
	other[0] = Message{Type: MsgHeartbeat}
	rn.raft.msgs = append(rn.raft.msgs, Message{Type: MsgApp})
	rn.raft.msgsAfterPersist = append(rn.raft.msgsAfterPersist, Message{Type: MsgApp})
	rn.RecycleMessages(other)
	require.Equal(t, MsgHeartbeat, other[0].Type)
}
