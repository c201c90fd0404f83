package wal

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// TestConfStateAddressesRoundTrip: ConfState.Addresses survive the update
// record, the segment header, the snapshot file, CreateSnapshot and a
// reopen.
func TestConfStateAddressesRoundTrip(t *testing.T) {
	cs := raft.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, AutoLeave: true,
		Incarnations: map[uint64]uint64{1: 7},
		Addresses:    map[uint64]string{3: "10.0.0.3:7000", 1: "10.0.0.1:7000", 4: "[::1]:7004"}}
	u := update{snapKind: snapApply, snap: raft.SnapshotMetadata{Index: 5, Term: 2, ConfState: cs}}
	got, err := decodeUpdate(u.encode(nil))
	require.NoError(t, err)
	assert.True(t, reflect.DeepEqual(u, got), "got %+v", got)
	again := u
	again.snap.ConfState.Addresses = map[uint64]string{4: "[::1]:7004", 1: "10.0.0.1:7000", 3: "10.0.0.3:7000"}
	assert.Equal(t, u.encode(nil), again.encode(nil), "map order does not change the bytes")

	h := segHeader{seq: 3, size: 4096, summ: summary{snap: u.snap}, id: Identity{ClusterID: 1, NodeID: 2, Incarnation: 3}}
	gotH, err := decodeSegHeader(h.encode())
	require.NoError(t, err)
	assert.True(t, reflect.DeepEqual(h, gotH), "got %+v", gotH)

	snap := raft.Snapshot{Metadata: u.snap, Data: []byte("image")}
	gotSnap, err := decodeSnapFile("x.snap", encodeSnapFile(&snap))
	require.NoError(t, err)
	assert.Equal(t, snap, gotSnap)

	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentSize: 1 << 20})
	require.NoError(t, err)
	require.NoError(t, l.Save(raft.HardState{Term: 2, Commit: 5}, nil, snap))
	require.NoError(t, l.Append([]raft.Entry{{Index: 6, Term: 2}, {Index: 7, Term: 2}}))
	later := cs
	later.Addresses = map[uint64]string{1: "a1", 2: "a2", 3: "a3"}
	later.Learners = nil
	_, err = l.CreateSnapshot(7, &later, []byte("later"))
	require.NoError(t, err)
	require.NoError(t, l.Close())

	l, err = Open(dir, Options{SegmentSize: 1 << 20})
	require.NoError(t, err)
	defer l.Close()
	_, gotCS, err := l.InitialState()
	require.NoError(t, err)
	assert.Equal(t, later, gotCS, "the configuration of the last snapshot, addresses included, survives a reopen")
	s, err := l.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, later, s.Metadata.ConfState)
}

// TestConfStateWithoutAddressesEncodedAsBefore: a configuration without
// addresses is written byte for byte as before addresses existed, so
// existing logs decode, and a malformed address table is an error.
func TestConfStateWithoutAddressesEncodedAsBefore(t *testing.T) {
	cs := raft.ConfState{Voters: []uint64{1, 2}, AutoLeave: true, Incarnations: map[uint64]uint64{2: 5}}
	// voters, learners, outgoing, learners next, AutoLeave as 0 or 1, incarnations.
	old := []byte{2, 1, 2, 0, 0, 0, 1, 1, 2, 5}
	e := encoder{}
	encodeConfState(&e, &cs)
	assert.Equal(t, old, e.b)
	d := decoder{b: old}
	assert.Equal(t, cs, decodeConfState(&d))
	require.NoError(t, d.err)
	assert.Empty(t, d.b)

	withAddrs := append([]byte{2, 1, 2, 0, 0, 0, 3, 1, 2, 5}, 1, 2, 3, 'a', ':', '1')
	d = decoder{b: withAddrs}
	got := decodeConfState(&d)
	require.NoError(t, d.err)
	assert.Equal(t, map[uint64]string{2: "a:1"}, got.Addresses)
	for name, bad := range map[string][]byte{
		"unknown flag":       {2, 1, 2, 0, 0, 0, 4, 0},
		"addresses missing":  {2, 1, 2, 0, 0, 0, 2, 0},
		"count beyond data":  {2, 1, 2, 0, 0, 0, 2, 0, 9, 1, 0},
		"address cut short":  withAddrs[:len(withAddrs)-1],
		"address length cut": {2, 1, 2, 0, 0, 0, 2, 0, 1, 2, 0x80},
	} {
		d := decoder{b: bad}
		decodeConfState(&d)
		assert.Error(t, d.err, name)
	}
}
