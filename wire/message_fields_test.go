package wire

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// TestDefaultMaxEntrySizeFitsTheDefaultFrame checks that the core's default
// entry limit leaves room in a default-sized frame for the message that
// carries the entry.
func TestDefaultMaxEntrySizeFitsTheDefaultFrame(t *testing.T) {
	c, err := NewCodec(CodecOptions{})
	require.NoError(t, err)
	assert.Equal(t, DefaultMaxFrameSize-1<<20, raft.DefaultMaxEntrySize)
	m := raft.Message{
		Type: raft.MsgApp, From: 1, To: 2, Term: 1 << 62, LogTerm: 1 << 62, Index: 1 << 62, Commit: 1 << 62,
		Entries: []raft.Entry{{Term: 1 << 62, Index: 1<<62 + 1, Data: make([]byte, raft.DefaultMaxEntrySize)}},
	}
	frame, err := c.AppendFrame(nil, &m)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(frame)-FrameHeaderSize, int(c.MaxFrameSize()))
}

// TestMessageRecoveryFieldsRoundTrip checks that frames carry the fields of
// storage-fault recovery: incarnations, the recovery token, and a
// snapshot's recorded incarnations.
func TestMessageRecoveryFieldsRoundTrip(t *testing.T) {
	m := raft.Message{Type: raft.MsgAppResp, From: 1, To: 2, Term: 3, Incarnation: 0xA01, ToIncarnation: 0xA02, Recovery: 0x5EED}
	c := codecTestNew(t, CodecOptions{})
	frame, err := c.AppendFrame(nil, &m)
	require.NoError(t, err)
	h, p, _, err := c.SplitFrame(frame)
	require.NoError(t, err)
	var got raft.Message
	require.NoError(t, c.Decode(h.Type, p, &got))
	assert.Equal(t, m, got)

	snap := raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 5, Term: 2, ConfState: raft.ConfState{
		Voters: []uint64{1, 2}, Incarnations: map[uint64]uint64{1: 7, 2: 9}}}}
	m = raft.Message{Type: raft.MsgSnap, From: 1, To: 2, Term: 2, Snapshot: &snap}
	frame, err = c.AppendFrame(nil, &m)
	require.NoError(t, err)
	h, p, _, err = c.SplitFrame(frame)
	require.NoError(t, err)
	got = raft.Message{}
	require.NoError(t, c.Decode(h.Type, p, &got))
	assert.Equal(t, snap.Metadata.ConfState, got.Snapshot.Metadata.ConfState)
}
