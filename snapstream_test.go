package raft

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type testStringSource string

func (s testStringSource) Size() int64 { return int64(len(s)) }
func (s testStringSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(s))), nil
}

// TestSnapshotOpenData checks that OpenData reads Source when it is set and
// Data otherwise.
func TestSnapshotOpenData(t *testing.T) {
	for _, tt := range []struct {
		snap Snapshot
		want string
	}{
		{Snapshot{Data: []byte("in memory")}, "in memory"},
		{Snapshot{Source: testStringSource("streamed")}, "streamed"},
		{Snapshot{}, ""},
	} {
		rc, size, err := tt.snap.OpenData()
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		assert.Equal(t, tt.want, string(got))
		assert.Equal(t, int64(len(tt.want)), size)
	}
}

// TestSnapshotSourceTravelsToReady checks that the core carries a received
// snapshot's Source, untouched, into the Ready that asks to persist it.
func TestSnapshotSourceTravelsToReady(t *testing.T) {
	s := NewMemoryStorage()
	rn, err := NewRawNode(Config{ID: 2, ElectionTick: 10, HeartbeatTick: 1, Storage: s, MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16})
	require.NoError(t, err)
	src := testStringSource("image")
	snap := Snapshot{Metadata: SnapshotMetadata{Index: 10, Term: 3, ConfState: ConfState{Voters: []uint64{1, 2}}}, Source: src}
	require.NoError(t, rn.Step(Message{Type: MsgSnap, From: 1, To: 2, Term: 3, Snapshot: &snap}))
	require.True(t, rn.HasReady())
	rd := rn.Ready()
	assert.Equal(t, uint64(10), rd.Snapshot.Metadata.Index)
	assert.Equal(t, SnapshotSource(src), rd.Snapshot.Source)
}
