package raft

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// unitEnts returns entries with consecutive indexes starting at first and the
// given terms; each carries a small payload naming its index and term so
// that entries of different terms differ in content too.
func unitEnts(first uint64, terms ...uint64) []Entry {
	ents := make([]Entry, len(terms))
	for i, term := range terms {
		idx := first + uint64(i)
		ents[i] = Entry{Index: idx, Term: term, Data: []byte(fmt.Sprintf("i%d-t%d", idx, term))}
	}
	return ents
}

// unitIndexes returns the indexes of ents.
func unitIndexes(ents []Entry) []uint64 {
	if len(ents) == 0 {
		return nil
	}
	out := make([]uint64, len(ents))
	for i := range ents {
		out[i] = ents[i].Index
	}
	return out
}

// unitSeq returns [lo, hi] as a slice, or nil if hi < lo.
func unitSeq(lo, hi uint64) []uint64 {
	if hi < lo {
		return nil
	}
	out := make([]uint64, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

// unitStorage returns a MemoryStorage holding a snapshot at (snapIndex,
// snapTerm) (none if snapIndex is 0) followed by ents.
func unitStorage(t testing.TB, snapIndex, snapTerm uint64, ents []Entry) *MemoryStorage {
	t.Helper()
	ms := NewMemoryStorage()
	if snapIndex > 0 {
		require.NoError(t, ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{
			Index: snapIndex, Term: snapTerm, ConfState: ConfState{Voters: []uint64{1}},
		}}))
	}
	require.NoError(t, ms.Append(ents))
	return ms
}

// unitLog returns a raftLog over storage with unstable appended after what
// storage holds.
func unitLog(t testing.TB, storage Storage, unstable []Entry) *raftLog {
	t.Helper()
	l, err := newLog(storage, zap.NewNop(), noLimit)
	require.NoError(t, err)
	if len(unstable) > 0 {
		l.append(unstable...)
	}
	return l
}

// unitSplitLog builds a log holding a snapshot at (snapIndex, snapTerm) and
// ents, the first nStored of which are in storage and the rest unstable.
func unitSplitLog(t testing.TB, snapIndex, snapTerm uint64, ents []Entry, nStored int) *raftLog {
	t.Helper()
	return unitLog(t, unitStorage(t, snapIndex, snapTerm, ents[:nStored]), ents[nStored:])
}

// unitWrapStorage wraps every error of the Storage it holds, as a storage
// layered over another one might, to check that callers use errors.Is.
type unitWrapStorage struct {
	Storage
}

func (s unitWrapStorage) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("unit wrapper: %w", err)
}

func (s unitWrapStorage) Entries(lo, hi, maxSize uint64) ([]Entry, error) {
	ents, err := s.Storage.Entries(lo, hi, maxSize)
	return ents, s.wrap(err)
}

func (s unitWrapStorage) Term(i uint64) (uint64, error) {
	t, err := s.Storage.Term(i)
	return t, s.wrap(err)
}

// unitFakeStorage is a Storage whose answers are set field by field, to
// build states a MemoryStorage cannot hold.
type unitFakeStorage struct {
	hs                   HardState
	cs                   ConfState
	first, last          uint64
	initErr, firstErr    error
	lastErr, snapshotErr error
}

func (s *unitFakeStorage) InitialState() (HardState, ConfState, error) {
	return s.hs, s.cs, s.initErr
}

func (s *unitFakeStorage) Entries(lo, hi, maxSize uint64) ([]Entry, error) {
	return nil, ErrUnavailable
}

func (s *unitFakeStorage) Term(i uint64) (uint64, error) {
	if i == s.first-1 {
		return 0, nil
	}
	return 0, ErrUnavailable
}

func (s *unitFakeStorage) LastIndex() (uint64, error)  { return s.last, s.lastErr }
func (s *unitFakeStorage) FirstIndex() (uint64, error) { return s.first, s.firstErr }
func (s *unitFakeStorage) Snapshot() (Snapshot, error) { return Snapshot{}, s.snapshotErr }
