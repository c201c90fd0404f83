// Package storagetest is a conformance suite for implementations of
// raft.Storage that also offer the write methods of raft.MemoryStorage.
// Every implementation must behave like MemoryStorage: same results, same
// sentinel errors (matched with errors.Is).
//
// Use it from a test:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storagetest.Storage { return newMyStorage(t) })
//	}
package storagetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// Storage is what the suite drives: the read side the node uses and the
// write side of raft.MemoryStorage.
type Storage interface {
	raft.Storage
	Append(ents []raft.Entry) error
	SetHardState(hs raft.HardState) error
	ApplySnapshot(snap raft.Snapshot) error
	CreateSnapshot(i uint64, cs *raft.ConfState, data []byte) (raft.Snapshot, error)
	Compact(compactIndex uint64) error
}

// Saver is implemented by storages that persist a whole Ready in one call
// (snapshot, then entries, then hard state). The suite checks that it
// matches the three separate calls.
type Saver interface {
	Save(hs raft.HardState, ents []raft.Entry, snap raft.Snapshot) error
}

// Reopener is implemented by durable storages: Reopen closes the storage
// and opens it again from what it persisted. After every case the suite
// reopens such a storage and checks that it reads the same.
type Reopener interface {
	Reopen(t *testing.T) Storage
}

// Factory returns a new, empty storage for one test case.
type Factory func(t *testing.T) Storage

// Run runs the suite, one subtest per case.
func Run(t *testing.T, newStorage Factory) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s Storage, newStorage Factory)
	}{
		{"Empty", testEmpty},
		{"Term", testTerm},
		{"Entries", testEntries},
		{"FirstLastIndex", testFirstLastIndex},
		{"Compact", testCompact},
		{"CreateSnapshot", testCreateSnapshot},
		{"CreateSnapshotBelowCompaction", testCreateSnapshotBelowCompaction},
		{"Append", testAppend},
		{"ApplySnapshot", testApplySnapshot},
		{"HardState", testHardState},
		{"EntriesNotOverwritten", testEntriesNotOverwritten},
		{"Save", testSave},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStorage(t)
			c.fn(t, s, newStorage)
			if r, ok := s.(Reopener); ok {
				before := observe(t, s)
				after := observe(t, r.Reopen(t))
				assert.Equal(t, before, after, "state after reopening differs")
			}
		})
	}
}

// observation is everything a node can read from a storage.
type observation struct {
	HardState  raft.HardState
	ConfState  raft.ConfState
	First      uint64
	Last       uint64
	FirstTerm  uint64
	Entries    []raft.Entry
	Snapshot   raft.Snapshot
	FirstError error
}

func observe(t testing.TB, s Storage) observation {
	t.Helper()
	var o observation
	var err error
	o.HardState, o.ConfState, err = s.InitialState()
	require.NoError(t, err)
	o.ConfState = normConf(o.ConfState)
	o.First, err = s.FirstIndex()
	require.NoError(t, err)
	o.Last, err = s.LastIndex()
	require.NoError(t, err)
	o.FirstTerm, err = s.Term(o.First - 1)
	require.NoError(t, err)
	ents, err := s.Entries(o.First, o.Last+1, ^uint64(0))
	require.NoError(t, err)
	o.Entries = norm(ents)
	o.Snapshot, err = s.Snapshot()
	require.NoError(t, err)
	o.Snapshot = normSnap(o.Snapshot)
	return o
}

// norm makes empty Data nil, so that storages that decode empty data as
// nil compare equal to those that keep an empty slice.
func norm(ents []raft.Entry) []raft.Entry {
	if len(ents) == 0 {
		return nil
	}
	out := make([]raft.Entry, len(ents))
	for i, e := range ents {
		if len(e.Data) == 0 {
			e.Data = nil
		}
		out[i] = e
	}
	return out
}

func normConf(cs raft.ConfState) raft.ConfState {
	n := func(ids []uint64) []uint64 {
		if len(ids) == 0 {
			return nil
		}
		return ids
	}
	cs.Voters, cs.Learners = n(cs.Voters), n(cs.Learners)
	cs.VotersOutgoing, cs.LearnersNext = n(cs.VotersOutgoing), n(cs.LearnersNext)
	return cs
}

func normSnap(s raft.Snapshot) raft.Snapshot {
	if len(s.Data) == 0 {
		s.Data = nil
	}
	s.Metadata.ConfState = normConf(s.Metadata.ConfState)
	return s
}

// ents returns entries with the given indexes and terms (pairs).
func ents(pairs ...uint64) []raft.Entry {
	out := make([]raft.Entry, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, raft.Entry{Index: pairs[i], Term: pairs[i+1]})
	}
	return out
}

func snapAt(index, term uint64, voters ...uint64) raft.Snapshot {
	return raft.Snapshot{Metadata: raft.SnapshotMetadata{
		Index: index, Term: term, ConfState: raft.ConfState{Voters: voters},
	}}
}

// seed gives s a snapshot at 3/3 and entries 4/4 and 5/5 (the layout of
// the upstream etcd-raft storage tests).
func seed(t testing.TB, s Storage) {
	t.Helper()
	require.NoError(t, s.ApplySnapshot(snapAt(3, 3, 1, 2, 3)))
	require.NoError(t, s.Append(ents(4, 4, 5, 5)))
}

func testEmpty(t *testing.T, s Storage, _ Factory) {
	hs, cs, err := s.InitialState()
	require.NoError(t, err)
	assert.True(t, hs.IsEmpty())
	assert.Empty(t, cs.Voters)
	first, err := s.FirstIndex()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), first)
	last, err := s.LastIndex()
	require.NoError(t, err)
	assert.Equal(t, uint64(0), last)
	term, err := s.Term(0)
	require.NoError(t, err)
	assert.Equal(t, uint64(0), term)
	_, err = s.Term(1)
	assert.ErrorIs(t, err, raft.ErrUnavailable)
	got, err := s.Entries(1, 1, 100)
	require.NoError(t, err)
	assert.Empty(t, got)
	_, err = s.Entries(1, 2, 100)
	assert.ErrorIs(t, err, raft.ErrUnavailable)
	snap, err := s.Snapshot()
	require.NoError(t, err)
	assert.True(t, snap.IsEmpty())
}

func testTerm(t *testing.T, s Storage, _ Factory) {
	seed(t, s)
	tests := []struct {
		name    string
		index   uint64
		want    uint64
		wantErr error
	}{
		{name: "below the snapshot", index: 2, wantErr: raft.ErrCompacted},
		{name: "the snapshot", index: 3, want: 3},
		{name: "first entry", index: 4, want: 4},
		{name: "last entry", index: 5, want: 5},
		{name: "beyond the log", index: 6, wantErr: raft.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Term(tt.index)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func testEntries(t *testing.T, s Storage, _ Factory) {
	require.NoError(t, s.ApplySnapshot(snapAt(3, 3, 1)))
	all := []raft.Entry{
		{Index: 4, Term: 4, Data: []byte("a")},
		{Index: 5, Term: 5, Data: []byte("bb")},
		{Index: 6, Term: 6, Data: []byte("ccc")},
	}
	require.NoError(t, s.Append(all))
	size := func(e raft.Entry) uint64 { return 24 + uint64(len(e.Data)) }
	tests := []struct {
		name     string
		lo, hi   uint64
		maxSize  uint64
		wantErr  error
		wantEnts []raft.Entry
	}{
		{name: "below the snapshot", lo: 2, hi: 6, maxSize: 1 << 20, wantErr: raft.ErrCompacted},
		{name: "at the snapshot", lo: 3, hi: 4, maxSize: 1 << 20, wantErr: raft.ErrCompacted},
		{name: "one", lo: 4, hi: 5, maxSize: 1 << 20, wantEnts: all[:1]},
		{name: "two", lo: 4, hi: 6, maxSize: 1 << 20, wantEnts: all[:2]},
		{name: "all", lo: 4, hi: 7, maxSize: 1 << 20, wantEnts: all},
		{name: "beyond the log", lo: 4, hi: 8, maxSize: 1 << 20, wantErr: raft.ErrUnavailable},
		{name: "empty range", lo: 5, hi: 5, maxSize: 1 << 20},
		{name: "zero limit gives one", lo: 4, hi: 7, maxSize: 0, wantEnts: all[:1]},
		{name: "limit of one entry", lo: 4, hi: 7, maxSize: size(all[0]), wantEnts: all[:1]},
		{name: "limit just below two", lo: 4, hi: 7, maxSize: size(all[0]) + size(all[1]) - 1, wantEnts: all[:1]},
		{name: "limit of two", lo: 4, hi: 7, maxSize: size(all[0]) + size(all[1]), wantEnts: all[:2]},
		{name: "limit of three", lo: 4, hi: 7, maxSize: size(all[0]) + size(all[1]) + size(all[2]), wantEnts: all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Entries(tt.lo, tt.hi, tt.maxSize)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, norm(tt.wantEnts), norm(got))
			assert.Equal(t, len(got), cap(got), "the returned slice must be capped")
		})
	}
}

func testFirstLastIndex(t *testing.T, s Storage, _ Factory) {
	seed(t, s)
	check := func(wantFirst, wantLast uint64) {
		t.Helper()
		first, err := s.FirstIndex()
		require.NoError(t, err)
		last, err := s.LastIndex()
		require.NoError(t, err)
		assert.Equal(t, wantFirst, first, "first index")
		assert.Equal(t, wantLast, last, "last index")
	}
	check(4, 5)
	require.NoError(t, s.Append(ents(6, 5)))
	check(4, 6)
	require.NoError(t, s.Compact(4))
	check(5, 6)
	require.NoError(t, s.Compact(6))
	check(7, 6)
}

func testCompact(t *testing.T, s Storage, _ Factory) {
	seed(t, s)
	require.NoError(t, s.Append(ents(6, 5, 7, 6)))
	tests := []struct {
		name      string
		index     uint64
		wantErr   error
		wantFirst uint64
		wantTerm  uint64
	}{
		{name: "below the snapshot", index: 2, wantErr: raft.ErrCompacted},
		{name: "at the snapshot", index: 3, wantErr: raft.ErrCompacted},
		{name: "one entry", index: 4, wantFirst: 5, wantTerm: 4},
		{name: "same again", index: 4, wantErr: raft.ErrCompacted},
		{name: "beyond the log", index: 8, wantErr: raft.ErrUnavailable},
		{name: "two more", index: 6, wantFirst: 7, wantTerm: 5},
		{name: "everything", index: 7, wantFirst: 8, wantTerm: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Compact(tt.index)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			first, err := s.FirstIndex()
			require.NoError(t, err)
			assert.Equal(t, tt.wantFirst, first)
			term, err := s.Term(tt.index)
			require.NoError(t, err)
			assert.Equal(t, tt.wantTerm, term)
			_, err = s.Term(tt.index - 1)
			assert.ErrorIs(t, err, raft.ErrCompacted)
		})
	}
}

func testCreateSnapshot(t *testing.T, s Storage, _ Factory) {
	seed(t, s)
	require.NoError(t, s.Append(ents(6, 5)))
	cs := &raft.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}}
	tests := []struct {
		name     string
		index    uint64
		cs       *raft.ConfState
		data     []byte
		wantErr  error
		wantTerm uint64
		wantCS   raft.ConfState
	}{
		{name: "at the held snapshot", index: 3, wantErr: raft.ErrSnapOutOfDate},
		{name: "beyond the log", index: 7, wantErr: raft.ErrUnavailable},
		{name: "with a ConfState", index: 4, cs: cs, data: []byte("s4"), wantTerm: 4, wantCS: *cs},
		{name: "older than the new one", index: 4, wantErr: raft.ErrSnapOutOfDate},
		{name: "keeps the ConfState", index: 6, data: []byte("s6"), wantTerm: 5, wantCS: *cs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := s.CreateSnapshot(tt.index, tt.cs, tt.data)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			want := raft.Snapshot{
				Metadata: raft.SnapshotMetadata{Index: tt.index, Term: tt.wantTerm, ConfState: tt.wantCS},
				Data:     tt.data,
			}
			assert.Equal(t, normSnap(want), normSnap(snap))
			held, err := s.Snapshot()
			require.NoError(t, err)
			assert.Equal(t, normSnap(want), normSnap(held))
			_, gotCS, err := s.InitialState()
			require.NoError(t, err)
			assert.Equal(t, normConf(tt.wantCS), normConf(gotCS))
			// The log is not compacted.
			first, err := s.FirstIndex()
			require.NoError(t, err)
			assert.Equal(t, uint64(4), first)
		})
	}
}

// testCreateSnapshotBelowCompaction covers a snapshot at an index between
// the held snapshot and the compaction point: its term is gone.
func testCreateSnapshotBelowCompaction(t *testing.T, s Storage, _ Factory) {
	seed(t, s)
	require.NoError(t, s.Append(ents(6, 5)))
	require.NoError(t, s.Compact(5))
	_, err := s.CreateSnapshot(4, nil, nil)
	assert.ErrorIs(t, err, raft.ErrCompacted)
	snap, err := s.CreateSnapshot(5, nil, []byte("x"))
	require.NoError(t, err, "the compaction point's term is still known")
	assert.Equal(t, uint64(5), snap.Metadata.Term)
}

func testAppend(t *testing.T, s0 Storage, newStorage Factory) {
	tests := []struct {
		name    string
		append  []raft.Entry
		wantErr error
		want    []raft.Entry // entries after the snapshot at 3
	}{
		{name: "same entries", append: ents(4, 4, 5, 5), want: ents(4, 4, 5, 5)},
		{name: "extend", append: ents(4, 4, 5, 5, 6, 5), want: ents(4, 4, 5, 5, 6, 5)},
		{name: "conflict at the first", append: ents(4, 6, 5, 6), want: ents(4, 6, 5, 6)},
		{name: "conflict and extend", append: ents(4, 4, 5, 5, 6, 5), want: ents(4, 4, 5, 5, 6, 5)},
		{name: "compacted prefix skipped", append: ents(2, 3, 3, 3, 4, 4, 5, 5), want: ents(4, 4, 5, 5)},
		{name: "compacted prefix and conflict", append: ents(3, 3, 4, 5), want: ents(4, 5)},
		{name: "truncate at the last", append: ents(5, 6), want: ents(4, 4, 5, 6)},
		{name: "directly after the last", append: ents(6, 5), want: ents(4, 4, 5, 5, 6, 5)},
		{name: "all compacted", append: ents(1, 1, 2, 2), want: ents(4, 4, 5, 5)},
		{name: "gap after the last", append: ents(7, 5), wantErr: raft.ErrLogGap, want: ents(4, 4, 5, 5)},
		{name: "not consecutive", append: ents(4, 4, 6, 5), wantErr: raft.ErrLogGap, want: ents(4, 4, 5, 5)},
		{name: "empty", append: nil, want: ents(4, 4, 5, 5)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := s0
			if i > 0 {
				// Each case needs a fresh storage; the first reuses the
				// one the suite made (and reopens at the end).
				s = newStorage(t)
			}
			seed(t, s)
			err := s.Append(tt.append)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			last, err := s.LastIndex()
			require.NoError(t, err)
			got, err := s.Entries(4, last+1, ^uint64(0))
			require.NoError(t, err)
			assert.Equal(t, norm(tt.want), norm(got))
		})
	}
}

func testApplySnapshot(t *testing.T, s Storage, _ Factory) {
	seed(t, s)
	require.NoError(t, s.SetHardState(raft.HardState{Term: 5, Vote: 2, Commit: 4}))
	tests := []struct {
		name     string
		snap     raft.Snapshot
		wantErr  error
		wantHS   raft.HardState
		wantLast uint64
	}{
		{name: "older", snap: snapAt(2, 2, 1), wantErr: raft.ErrSnapOutOfDate},
		{name: "same index", snap: snapAt(3, 3, 1), wantErr: raft.ErrSnapOutOfDate},
		{name: "inside the log", snap: snapAt(4, 4, 1, 2), wantHS: raft.HardState{Term: 5, Vote: 2, Commit: 4}, wantLast: 4},
		{name: "beyond the log, newer term", snap: snapAt(10, 7, 1, 2, 3), wantHS: raft.HardState{Term: 7, Vote: 2, Commit: 10}, wantLast: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.ApplySnapshot(tt.snap)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			hs, cs, err := s.InitialState()
			require.NoError(t, err)
			assert.Equal(t, tt.wantHS, hs)
			assert.Equal(t, normConf(tt.snap.Metadata.ConfState), normConf(cs))
			first, err := s.FirstIndex()
			require.NoError(t, err)
			last, err := s.LastIndex()
			require.NoError(t, err)
			assert.Equal(t, tt.snap.Metadata.Index+1, first)
			assert.Equal(t, tt.wantLast, last)
			term, err := s.Term(tt.snap.Metadata.Index)
			require.NoError(t, err)
			assert.Equal(t, tt.snap.Metadata.Term, term)
		})
	}
	require.NoError(t, s.Append(ents(11, 7, 12, 7)), "the log continues after the snapshot")
}

func testHardState(t *testing.T, s Storage, _ Factory) {
	for _, hs := range []raft.HardState{
		{Term: 1, Vote: 1, Commit: 0},
		{Term: 2, Vote: 0, Commit: 0},
		{Term: 2, Vote: 3, Commit: 7},
	} {
		require.NoError(t, s.SetHardState(hs))
		got, _, err := s.InitialState()
		require.NoError(t, err)
		assert.Equal(t, hs, got)
	}
}

// testEntriesNotOverwritten checks that a slice returned by Entries is not
// changed by a later conflicting Append (the node may still hold it).
func testEntriesNotOverwritten(t *testing.T, s Storage, _ Factory) {
	seed(t, s)
	require.NoError(t, s.Append(ents(6, 5, 7, 5)))
	got, err := s.Entries(4, 8, ^uint64(0))
	require.NoError(t, err)
	before := norm(got)
	require.NoError(t, s.Append(ents(5, 6, 6, 6)))
	assert.Equal(t, before, norm(got))
	// Appending to the returned slice must not write into the storage.
	_ = append(got, raft.Entry{Index: 99, Term: 99})
	now, err := s.Entries(4, 7, ^uint64(0))
	require.NoError(t, err)
	assert.Equal(t, ents(4, 4, 5, 6, 6, 6), norm(now))
}

// testSave checks that a Saver's Save matches ApplySnapshot, Append and
// SetHardState in that order; storages without Save skip it.
func testSave(t *testing.T, s Storage, _ Factory) {
	sv, ok := s.(Saver)
	if !ok {
		t.Skip("storage has no Save")
	}
	tests := []struct {
		name    string
		hs      raft.HardState
		ents    []raft.Entry
		snap    raft.Snapshot
		wantErr error
		wantHS  raft.HardState
		first   uint64
		last    uint64
	}{
		{name: "bootstrap snapshot", snap: snapAt(1, 1, 1, 2, 3), wantHS: raft.HardState{Term: 1, Commit: 1}, first: 2, last: 1},
		{name: "entries and hard state", hs: raft.HardState{Term: 2, Vote: 1, Commit: 1}, ents: ents(2, 2, 3, 2), wantHS: raft.HardState{Term: 2, Vote: 1, Commit: 1}, first: 2, last: 3},
		{name: "commit only", hs: raft.HardState{Term: 2, Vote: 1, Commit: 3}, wantHS: raft.HardState{Term: 2, Vote: 1, Commit: 3}, first: 2, last: 3},
		{name: "old snapshot", snap: snapAt(1, 1, 1), wantErr: raft.ErrSnapOutOfDate, wantHS: raft.HardState{Term: 2, Vote: 1, Commit: 3}, first: 2, last: 3},
		{name: "gap", ents: ents(5, 2), wantErr: raft.ErrLogGap, wantHS: raft.HardState{Term: 2, Vote: 1, Commit: 3}, first: 2, last: 3},
		{name: "snapshot, entries after it, hard state", snap: snapAt(10, 3, 1, 2), ents: ents(11, 3, 12, 3), hs: raft.HardState{Term: 3, Vote: 2, Commit: 11}, wantHS: raft.HardState{Term: 3, Vote: 2, Commit: 11}, first: 11, last: 12},
		{name: "nothing", wantHS: raft.HardState{Term: 3, Vote: 2, Commit: 11}, first: 11, last: 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sv.Save(tt.hs, tt.ents, tt.snap)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			hs, _, err := s.InitialState()
			require.NoError(t, err)
			assert.Equal(t, tt.wantHS, hs)
			first, err := s.FirstIndex()
			require.NoError(t, err)
			last, err := s.LastIndex()
			require.NoError(t, err)
			assert.Equal(t, tt.first, first)
			assert.Equal(t, tt.last, last)
		})
	}
}
