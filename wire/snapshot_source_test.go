package wire

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// stringSource is a raft.SnapshotSource over a string.
type stringSource string

func (s stringSource) Size() int64 { return int64(len(s)) }
func (s stringSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(s))), nil
}

// TestSnapshotSourceIsNeverEncoded checks that a snapshot's Source stays in
// the process: the frame carries the metadata and Data alone.
func TestSnapshotSourceIsNeverEncoded(t *testing.T) {
	c := codecTestNew(t, CodecOptions{})
	snap := raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 5, Term: 2}, Source: stringSource("image")}
	m := raft.Message{Type: raft.MsgSnap, From: 1, To: 2, Term: 2, Snapshot: &snap}
	frame, err := c.AppendFrame(nil, &m)
	require.NoError(t, err)
	assert.NotContains(t, string(frame), "image")
	h, p, _, err := c.SplitFrame(frame)
	require.NoError(t, err)
	var got raft.Message
	require.NoError(t, c.Decode(h.Type, p, &got))
	require.NotNil(t, got.Snapshot)
	assert.Nil(t, got.Snapshot.Source)
	assert.Empty(t, got.Snapshot.Data)
	assert.Equal(t, snap.Metadata, got.Snapshot.Metadata)
}
