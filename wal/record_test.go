package wal

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

func TestParseRecord(t *testing.T) {
	rec := appendRecord(nil, recUpdate, []byte("hello"))
	require.Len(t, rec, recordSize(5))
	require.Equal(t, 24, len(rec), "16-byte header, payload padded to 8")
	tests := []struct {
		name   string
		buf    []byte
		wantOK bool
	}{
		{name: "valid", buf: rec, wantOK: true},
		{name: "valid without its padding", buf: rec[:recHeaderSize+5], wantOK: true},
		{name: "payload cut", buf: rec[:recHeaderSize+4]},
		{name: "header cut", buf: rec[:10]},
		{name: "zeros", buf: make([]byte, 64)},
		{name: "payload flipped", buf: flipped(rec, recHeaderSize+1)},
		{name: "length flipped", buf: flipped(rec, 0)},
		{name: "type flipped", buf: flipped(rec, 4)},
		{name: "reserved byte set", buf: flipped(rec, 6)},
		{name: "header check flipped", buf: flipped(rec, 13)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, payload, next, ok := parseRecord(tt.buf, 0)
			require.Equal(t, tt.wantOK, ok)
			if ok {
				assert.Equal(t, recUpdate, typ)
				assert.Equal(t, []byte("hello"), payload)
				assert.Equal(t, len(tt.buf), next)
			}
		})
	}
}

func flipped(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x01
	return out
}

func TestUpdateRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		u    update
	}{
		{name: "hard state only", u: update{hasHard: true, hs: raft.HardState{Term: 3, Vote: 2, Commit: 1 << 40}}},
		{name: "entries", u: update{ents: []raft.Entry{
			{Index: 7, Term: 2, Data: []byte("a")},
			{Index: 8, Term: 3, Type: raft.EntryConfChange, Data: []byte("cc")},
			{Index: 9, Term: 3},
		}}},
		{name: "everything", u: update{
			snapKind: snapApply,
			snap: raft.SnapshotMetadata{Index: 10, Term: 4, ConfState: raft.ConfState{
				Voters: []uint64{1, 2}, Learners: []uint64{3}, VotersOutgoing: []uint64{1, 4}, LearnersNext: []uint64{4}, AutoLeave: true,
			}},
			hasCompact: true, compactIndex: 10, compactTerm: 4,
			ents:    []raft.Entry{{Index: 11, Term: 4, Data: []byte("x")}},
			hasHard: true, hs: raft.HardState{Term: 4, Commit: 11},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeUpdate(tt.u.encode(nil))
			require.NoError(t, err)
			assert.Equal(t, tt.u, got)
		})
	}
}

func TestDecodeUpdateRejectsGarbage(t *testing.T) {
	full := (&update{ents: []raft.Entry{{Index: 1, Term: 1, Data: make([]byte, 100)}}}).encode(nil)
	tests := []struct {
		name    string
		payload []byte
	}{
		{name: "empty", payload: nil},
		{name: "cut entry data", payload: full[:len(full)-1]},
		{name: "trailing bytes", payload: append(append([]byte(nil), full...), 0)},
		{name: "huge entry count", payload: []byte{flagEntries, 0xff, 0xff, 0xff, 0xff, 0x0f, 1}},
		{name: "unknown snapshot kind", payload: []byte{flagSnap, 9, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeUpdate(tt.payload)
			assert.Error(t, err)
		})
	}
}

func TestSaveRejectsTermZero(t *testing.T) {
	l, err := Open(t.TempDir(), Options{SegmentSize: 1 << 20})
	require.NoError(t, err)
	defer l.Close()
	err = l.Append([]raft.Entry{{Index: 1, Term: 0}})
	require.ErrorIs(t, err, ErrInvalidEntry)
	last, err := l.LastIndex()
	require.NoError(t, err)
	assert.Equal(t, uint64(0), last)
	require.NoError(t, l.Append([]raft.Entry{{Index: 1, Term: 1}}), "the log is not poisoned")
}

// TestRecoveringAndIncarnationsRoundTrip: HardState.Recovering and
// ConfState.Incarnations survive the update record, the segment header,
// the snapshot file and a reopen; an empty map comes back as nil.
func TestRecoveringAndIncarnationsRoundTrip(t *testing.T) {
	cs := raft.ConfState{Voters: []uint64{1, 2, 3}, Incarnations: map[uint64]uint64{3: 9, 1: 7, 2: 1 << 60}}
	u := update{
		snapKind: snapApply, snap: raft.SnapshotMetadata{Index: 5, Term: 2, ConfState: cs},
		hasHard: true, hs: raft.HardState{Term: 2, Vote: 1, Commit: 5, Recovering: true},
	}
	got, err := decodeUpdate(u.encode(nil))
	require.NoError(t, err)
	assert.True(t, reflect.DeepEqual(u, got), "got %+v", got)
	// Map order does not change the bytes.
	again := u
	again.snap.ConfState.Incarnations = map[uint64]uint64{2: 1 << 60, 1: 7, 3: 9}
	assert.Equal(t, u.encode(nil), again.encode(nil))

	empty := update{snapKind: snapApply, snap: raft.SnapshotMetadata{Index: 1, Term: 1,
		ConfState: raft.ConfState{Voters: []uint64{1}, Incarnations: map[uint64]uint64{}}}}
	got, err = decodeUpdate(empty.encode(nil))
	require.NoError(t, err)
	assert.Nil(t, got.snap.ConfState.Incarnations)

	h := segHeader{seq: 3, size: 4096, summ: summary{snap: u.snap, hs: u.hs}, id: Identity{ClusterID: 1, NodeID: 2, Incarnation: 3}}
	gotH, err := decodeSegHeader(h.encode())
	require.NoError(t, err)
	assert.True(t, reflect.DeepEqual(h, gotH), "got %+v", gotH)

	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentSize: 1 << 20})
	require.NoError(t, err)
	require.NoError(t, l.Save(u.hs, nil, raft.Snapshot{Metadata: u.snap, Data: []byte("s")}))
	require.NoError(t, l.Close())
	l, err = Open(dir, Options{SegmentSize: 1 << 20})
	require.NoError(t, err)
	defer l.Close()
	hs, gotCS, err := l.InitialState()
	require.NoError(t, err)
	assert.Equal(t, u.hs, hs)
	assert.True(t, reflect.DeepEqual(cs, gotCS), "got %+v", gotCS)
}

func TestMarkerRecord(t *testing.T) {
	var m [markerSize]byte
	putMarker(&m, 4242)
	typ, payload, next, ok := parseRecord(m[:], 0)
	require.True(t, ok)
	assert.Equal(t, recSynced, typ)
	assert.Equal(t, markerSize, next)
	at, ok := decodeMarker(payload)
	require.True(t, ok)
	assert.Equal(t, int64(4242), at)
}
