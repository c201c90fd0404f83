package raft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unitStorageEntries returns every entry storage holds after its snapshot.
func unitStorageEntries(t testing.TB, ms *MemoryStorage) []Entry {
	t.Helper()
	first, err := ms.FirstIndex()
	require.NoError(t, err)
	last, err := ms.LastIndex()
	require.NoError(t, err)
	ents, err := ms.Entries(first, last+1, noLimit)
	require.NoError(t, err)
	return ents
}

func TestMemoryStorageInitialState(t *testing.T) {
	cs := ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}
	tests := []struct {
		name   string
		setup  func(t *testing.T, ms *MemoryStorage)
		wantHS HardState
		wantCS ConfState
	}{
		{
			name:  "empty",
			setup: func(*testing.T, *MemoryStorage) {},
		},
		{
			name: "hard state only",
			setup: func(t *testing.T, ms *MemoryStorage) {
				require.NoError(t, ms.SetHardState(HardState{Term: 3, Vote: 2, Commit: 0}))
			},
			wantHS: HardState{Term: 3, Vote: 2},
		},
		{
			name: "snapshot raises term and commit of an older hard state",
			setup: func(t *testing.T, ms *MemoryStorage) {
				require.NoError(t, ms.SetHardState(HardState{Term: 2, Vote: 1, Commit: 1}))
				require.NoError(t, ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 5, Term: 4, ConfState: cs}}))
			},
			wantHS: HardState{Term: 4, Vote: 1, Commit: 5},
			wantCS: cs,
		},
		{
			name: "snapshot keeps a newer hard state",
			setup: func(t *testing.T, ms *MemoryStorage) {
				require.NoError(t, ms.SetHardState(HardState{Term: 9, Vote: 3, Commit: 7}))
				require.NoError(t, ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 5, Term: 4, ConfState: cs}}))
			},
			wantHS: HardState{Term: 9, Vote: 3, Commit: 7},
			wantCS: cs,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := NewMemoryStorage()
			tt.setup(t, ms)
			hs, gotCS, err := ms.InitialState()
			require.NoError(t, err)
			assert.Equal(t, tt.wantHS, hs)
			assert.Equal(t, tt.wantCS, gotCS)
			assert.Equal(t, tt.wantHS, ms.HardState())
		})
	}
}

func TestMemoryStorageSetHardState(t *testing.T) {
	ms := NewMemoryStorage()
	for _, hs := range []HardState{{Term: 1}, {Term: 2, Vote: 3, Commit: 0}, {Term: 2, Vote: 3, Commit: 9}, {}} {
		require.NoError(t, ms.SetHardState(hs))
		got, _, err := ms.InitialState()
		require.NoError(t, err)
		assert.Equal(t, hs, got)
	}
}

func TestMemoryStorageEntries(t *testing.T) {
	// Snapshot at 3 (term 3), then entries 4, 5, 6 with payloads of
	// different sizes.
	ents := unitEnts(4, 3, 4, 5)
	ents[1].Data = make([]byte, 100)
	s4, s5, s6 := ents[0].size(), ents[1].size(), ents[2].size()
	tests := []struct {
		name    string
		lo, hi  uint64
		maxSize uint64
		want    []uint64
		wantErr error
	}{
		{name: "below snapshot", lo: 2, hi: 6, maxSize: noLimit, wantErr: ErrCompacted},
		{name: "at snapshot index", lo: 3, hi: 5, maxSize: noLimit, wantErr: ErrCompacted},
		{name: "one entry", lo: 4, hi: 5, maxSize: noLimit, want: []uint64{4}},
		{name: "all", lo: 4, hi: 7, maxSize: noLimit, want: []uint64{4, 5, 6}},
		{name: "middle", lo: 5, hi: 6, maxSize: noLimit, want: []uint64{5}},
		{name: "empty range", lo: 5, hi: 5, maxSize: noLimit, want: nil},
		{name: "beyond last index", lo: 4, hi: 8, maxSize: noLimit, wantErr: ErrUnavailable},
		{name: "entirely beyond last index", lo: 8, hi: 9, maxSize: noLimit, wantErr: ErrUnavailable},
		{name: "zero limit still returns one entry", lo: 4, hi: 7, maxSize: 0, want: []uint64{4}},
		{name: "limit below the first entry returns one entry", lo: 5, hi: 7, maxSize: s5 - 1, want: []uint64{5}},
		{name: "limit of exactly two entries", lo: 4, hi: 7, maxSize: s4 + s5, want: []uint64{4, 5}},
		{name: "limit one byte short of three entries", lo: 4, hi: 7, maxSize: s4 + s5 + s6 - 1, want: []uint64{4, 5}},
		{name: "limit of exactly three entries", lo: 4, hi: 7, maxSize: s4 + s5 + s6, want: []uint64{4, 5, 6}},
		{name: "limit between first and second", lo: 4, hi: 7, maxSize: s4 + 1, want: []uint64{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := unitStorage(t, 3, 3, ents)
			got, err := ms.Entries(tt.lo, tt.hi, tt.maxSize)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, unitIndexes(got))
			for i := range got {
				assert.Equal(t, ents[got[i].Index-4], got[i])
			}
		})
	}
}

func TestMemoryStorageEntriesCapped(t *testing.T) {
	ms := unitStorage(t, 0, 0, unitEnts(1, 1, 1, 2, 2))
	tests := []struct {
		name    string
		lo, hi  uint64
		maxSize uint64
	}{
		{name: "whole log", lo: 1, hi: 5, maxSize: noLimit},
		{name: "prefix", lo: 1, hi: 3, maxSize: noLimit},
		{name: "cut by size", lo: 1, hi: 5, maxSize: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ms.Entries(tt.lo, tt.hi, tt.maxSize)
			require.NoError(t, err)
			require.NotEmpty(t, got)
			assert.Equal(t, len(got), cap(got), "returned slice must be capped")
			// Appending to the returned slice must not change the log.
			_ = append(got, Entry{Index: 99, Term: 99})
			assert.Equal(t, unitEnts(1, 1, 1, 2, 2), unitStorageEntries(t, ms))
		})
	}
}

func TestMemoryStorageTerm(t *testing.T) {
	ms := unitStorage(t, 3, 3, unitEnts(4, 4, 5, 5))
	tests := []struct {
		name    string
		index   uint64
		want    uint64
		wantErr error
	}{
		{name: "zero", index: 0, wantErr: ErrCompacted},
		{name: "compacted", index: 2, wantErr: ErrCompacted},
		{name: "snapshot index", index: 3, want: 3},
		{name: "first entry", index: 4, want: 4},
		{name: "middle", index: 5, want: 5},
		{name: "last", index: 6, want: 5},
		{name: "beyond last", index: 7, wantErr: ErrUnavailable},
		{name: "far beyond last", index: 1 << 40, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ms.Term(tt.index)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestMemoryStorageFirstLastIndex(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, ms *MemoryStorage)
		wantFirst uint64
		wantLast  uint64
	}{
		{name: "empty", setup: func(*testing.T, *MemoryStorage) {}, wantFirst: 1, wantLast: 0},
		{
			name:      "entries from 1",
			setup:     func(t *testing.T, ms *MemoryStorage) { require.NoError(t, ms.Append(unitEnts(1, 1, 1))) },
			wantFirst: 1, wantLast: 2,
		},
		{
			name: "snapshot only",
			setup: func(t *testing.T, ms *MemoryStorage) {
				require.NoError(t, ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 5, Term: 2}}))
			},
			wantFirst: 6, wantLast: 5,
		},
		{
			name: "snapshot then entries",
			setup: func(t *testing.T, ms *MemoryStorage) {
				require.NoError(t, ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 5, Term: 2}}))
				require.NoError(t, ms.Append(unitEnts(6, 2, 3, 3)))
			},
			wantFirst: 6, wantLast: 8,
		},
		{
			name: "compacted",
			setup: func(t *testing.T, ms *MemoryStorage) {
				require.NoError(t, ms.Append(unitEnts(1, 1, 1, 2, 2)))
				require.NoError(t, ms.Compact(3))
			},
			wantFirst: 4, wantLast: 4,
		},
		{
			name: "compacted to the last entry",
			setup: func(t *testing.T, ms *MemoryStorage) {
				require.NoError(t, ms.Append(unitEnts(1, 1, 1, 2, 2)))
				require.NoError(t, ms.Compact(4))
			},
			wantFirst: 5, wantLast: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := NewMemoryStorage()
			tt.setup(t, ms)
			first, err := ms.FirstIndex()
			require.NoError(t, err)
			last, err := ms.LastIndex()
			require.NoError(t, err)
			assert.Equal(t, tt.wantFirst, first, "first index")
			assert.Equal(t, tt.wantLast, last, "last index")
		})
	}
}

func TestMemoryStorageAppend(t *testing.T) {
	// The log before each append: snapshot at 3 (term 3), entries 4..5.
	base := unitEnts(4, 4, 5)
	tests := []struct {
		name    string
		append  []Entry
		want    []Entry
		wantErr error
	}{
		{name: "nothing", append: nil, want: base},
		{name: "the same entries", append: unitEnts(4, 4, 5), want: base},
		{name: "extends", append: unitEnts(6, 5, 6), want: unitEnts(4, 4, 5, 5, 6)},
		{
			name:   "replaces a conflicting tail",
			append: unitEnts(5, 6, 6),
			want:   append(unitEnts(4, 4), unitEnts(5, 6, 6)...),
		},
		{
			name:   "replaces the whole log",
			append: unitEnts(4, 6),
			want:   unitEnts(4, 6),
		},
		{
			name:   "a shorter same-term prefix truncates what follows",
			append: unitEnts(4, 4),
			want:   unitEnts(4, 4),
		},
		{
			name:   "skips compacted entries and replaces the rest",
			append: unitEnts(2, 2, 3, 6, 6),
			want:   unitEnts(4, 6, 6),
		},
		{
			name:   "skips compacted entries and extends",
			append: append(unitEnts(3, 3), unitEnts(4, 4, 5, 5)...),
			want:   unitEnts(4, 4, 5, 5),
		},
		{name: "entirely compacted", append: unitEnts(1, 1, 2, 3), want: base},
		{name: "gap after the last index", append: unitEnts(7, 5), want: base, wantErr: ErrLogGap},
		{name: "non-consecutive", append: []Entry{{Index: 6, Term: 5}, {Index: 8, Term: 5}}, want: base, wantErr: ErrLogGap},
		{name: "repeated index", append: []Entry{{Index: 5, Term: 5}, {Index: 5, Term: 6}}, want: base, wantErr: ErrLogGap},
		{name: "decreasing index", append: []Entry{{Index: 5, Term: 5}, {Index: 4, Term: 6}}, want: base, wantErr: ErrLogGap},
		{name: "non-consecutive and compacted", append: []Entry{{Index: 1, Term: 1}, {Index: 3, Term: 1}}, want: base, wantErr: ErrLogGap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := unitStorage(t, 3, 3, base)
			err := ms.Append(tt.append)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.want, unitStorageEntries(t, ms))
			term, err := ms.Term(3)
			require.NoError(t, err)
			assert.Equal(t, uint64(3), term, "snapshot term survives")
		})
	}
}

func TestMemoryStorageAppendKeepsReturnedSlices(t *testing.T) {
	tests := []struct {
		name   string
		append []Entry
	}{
		{name: "truncate the tail", append: unitEnts(4, 9, 9, 9)},
		{name: "truncate everything", append: unitEnts(1, 9)},
		{name: "extend", append: unitEnts(6, 3, 3)},
		{name: "same entries", append: unitEnts(2, 1, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := unitEnts(1, 1, 1, 2, 2, 3)
			ms := NewMemoryStorage()
			require.NoError(t, ms.Append(orig))
			before, err := ms.Entries(1, 6, noLimit)
			require.NoError(t, err)
			require.Equal(t, orig, before)

			input := append([]Entry(nil), tt.append...)
			require.NoError(t, ms.Append(input))
			assert.Equal(t, unitEnts(1, 1, 1, 2, 2, 3), before, "a slice returned before the append changed")

			// The storage must not keep the caller's slice either.
			after := unitStorageEntries(t, ms)
			for i := range input {
				input[i].Term = 77
			}
			assert.Equal(t, after, unitStorageEntries(t, ms), "storage aliases the appended slice")
		})
	}
}

func TestMemoryStorageApplySnapshot(t *testing.T) {
	cs := ConfState{Voters: []uint64{1, 2}}
	tests := []struct {
		name      string
		index     uint64
		term      uint64
		wantErr   error
		wantFirst uint64
		wantLast  uint64
	}{
		{name: "newer, within the log", index: 5, term: 2, wantFirst: 6, wantLast: 5},
		{name: "newer, beyond the log", index: 20, term: 7, wantFirst: 21, wantLast: 20},
		{name: "same index", index: 3, term: 2, wantErr: ErrSnapOutOfDate, wantFirst: 4, wantLast: 7},
		{name: "older", index: 2, term: 1, wantErr: ErrSnapOutOfDate, wantFirst: 4, wantLast: 7},
		{name: "zero", index: 0, term: 0, wantErr: ErrSnapOutOfDate, wantFirst: 4, wantLast: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := unitStorage(t, 3, 1, unitEnts(4, 1, 2, 2, 2))
			snap := Snapshot{Metadata: SnapshotMetadata{Index: tt.index, Term: tt.term, ConfState: cs}, Data: []byte("app")}
			err := ms.ApplySnapshot(snap)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
				got, err := ms.Snapshot()
				require.NoError(t, err)
				assert.Equal(t, snap, got)
				term, err := ms.Term(tt.index)
				require.NoError(t, err)
				assert.Equal(t, tt.term, term)
				_, gotCS, err := ms.InitialState()
				require.NoError(t, err)
				assert.Equal(t, cs, gotCS)
				assert.Empty(t, unitStorageEntries(t, ms), "the log restarts after the snapshot")
			}
			first, _ := ms.FirstIndex()
			last, _ := ms.LastIndex()
			assert.Equal(t, tt.wantFirst, first, "first index")
			assert.Equal(t, tt.wantLast, last, "last index")
		})
	}
}

func TestMemoryStorageCreateSnapshot(t *testing.T) {
	oldCS := ConfState{Voters: []uint64{1}}
	newCS := ConfState{Voters: []uint64{1, 2, 3}}
	tests := []struct {
		name     string
		index    uint64
		cs       *ConfState
		wantErr  error
		wantTerm uint64
		wantCS   ConfState
	}{
		{name: "first entry", index: 4, cs: &newCS, wantTerm: 4, wantCS: newCS},
		{name: "last entry", index: 6, cs: &newCS, wantTerm: 5, wantCS: newCS},
		{name: "nil conf state keeps the old one", index: 5, wantTerm: 5, wantCS: oldCS},
		{name: "at the current snapshot", index: 3, cs: &newCS, wantErr: ErrSnapOutOfDate},
		{name: "older than the current snapshot", index: 2, cs: &newCS, wantErr: ErrSnapOutOfDate},
		{name: "beyond the last index", index: 7, cs: &newCS, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := NewMemoryStorage()
			require.NoError(t, ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 3, Term: 3, ConfState: oldCS}}))
			require.NoError(t, ms.Append(unitEnts(4, 4, 5, 5)))
			snap, err := ms.CreateSnapshot(tt.index, tt.cs, []byte("data"))
			held, herr := ms.Snapshot()
			require.NoError(t, herr)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Equal(t, uint64(3), held.Metadata.Index, "held snapshot unchanged")
				return
			}
			require.NoError(t, err)
			want := Snapshot{
				Metadata: SnapshotMetadata{Index: tt.index, Term: tt.wantTerm, ConfState: tt.wantCS},
				Data:     []byte("data"),
			}
			assert.Equal(t, want, snap)
			assert.Equal(t, want, held)
			// The log is not compacted by CreateSnapshot.
			first, _ := ms.FirstIndex()
			assert.Equal(t, uint64(4), first)
			assert.Equal(t, unitEnts(4, 4, 5, 5), unitStorageEntries(t, ms))
		})
	}
}

func TestMemoryStorageCompact(t *testing.T) {
	tests := []struct {
		name      string
		index     uint64
		wantErr   error
		wantFirst uint64
		wantTerm  uint64 // term of wantFirst-1
		want      []Entry
	}{
		{name: "below the snapshot", index: 2, wantErr: ErrCompacted, wantFirst: 4, wantTerm: 3, want: unitEnts(4, 4, 5, 5)},
		{name: "at the snapshot", index: 3, wantErr: ErrCompacted, wantFirst: 4, wantTerm: 3, want: unitEnts(4, 4, 5, 5)},
		{name: "first entry", index: 4, wantFirst: 5, wantTerm: 4, want: unitEnts(5, 5, 5)},
		{name: "middle", index: 5, wantFirst: 6, wantTerm: 5, want: unitEnts(6, 5)},
		{name: "last entry", index: 6, wantFirst: 7, wantTerm: 5, want: nil},
		{name: "beyond the last entry", index: 7, wantErr: ErrUnavailable, wantFirst: 4, wantTerm: 3, want: unitEnts(4, 4, 5, 5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := unitStorage(t, 3, 3, unitEnts(4, 4, 5, 5))
			before, err := ms.Entries(4, 7, noLimit)
			require.NoError(t, err)
			err = ms.Compact(tt.index)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			first, _ := ms.FirstIndex()
			assert.Equal(t, tt.wantFirst, first)
			term, err := ms.Term(first - 1)
			require.NoError(t, err)
			assert.Equal(t, tt.wantTerm, term, "term of the compaction point is kept")
			_, err = ms.Term(first - 2)
			assert.ErrorIs(t, err, ErrCompacted)
			got := unitStorageEntries(t, ms)
			if len(tt.want) == 0 {
				assert.Empty(t, got)
			} else {
				assert.Equal(t, tt.want, got)
			}
			assert.Equal(t, unitEnts(4, 4, 5, 5), before, "slices returned before Compact must not change")
		})
	}
}

// TestMemoryStorageConcurrent runs readers against a writer that appends,
// replaces tails and compacts. Run it with -race; the readers also check
// that every answer is internally consistent.
func TestMemoryStorageConcurrent(t *testing.T) {
	const (
		readers = 4
		writes  = 400
	)
	seed := uint64(20240601)
	t.Logf("seed %d", seed)
	ms := NewMemoryStorage()
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, readers)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					if i > 0 {
						return
					}
				default:
				}
				if err := unitCheckStorageRead(ms, uint64(i*readers+r)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	rnd := rand.New(rand.NewPCG(seed, seed))
	term := uint64(1)
	for range writes {
		last, err := ms.LastIndex()
		require.NoError(t, err)
		first, err := ms.FirstIndex()
		require.NoError(t, err)
		switch op := rnd.IntN(10); {
		case op < 6: // extend
			require.NoError(t, ms.Append(unitEnts(last+1, term, term)))
		case op < 8 && last >= first+2: // replace a tail with a newer term
			term++
			require.NoError(t, ms.Append(unitEnts(last-1, term, term, term)))
		case last > first+4: // compact half of the log
			require.NoError(t, ms.Compact(first+(last-first)/2))
		default:
			require.NoError(t, ms.SetHardState(HardState{Term: term, Commit: last}))
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMemoryStorageConcurrentTerm checks that the answers MemoryStorage
// gives without its mutex (LastIndex, FirstIndex, Term of the last and of
// the compacted index) are consistent while a writer extends, truncates,
// compacts and replaces the log. Every entry the writer stores, and every
// snapshot, has its index as its term, so any term read must equal the
// index asked for: a read that mixed two states of the log (the last index
// of one, the last term of another) would give a different number. Small
// chunks make the writer cross chunks often. Such a mix-up is a matter of
// nanoseconds: the test catches one far more reliably under -race, which
// widens the window.
func TestMemoryStorageConcurrentTerm(t *testing.T) {
	const readers = 2
	ms := &MemoryStorage{chunkShift: 2}
	ents := func(first, n uint64) []Entry {
		out := make([]Entry, n)
		for i := range out {
			idx := first + uint64(i)
			out[i] = Entry{Index: idx, Term: idx}
		}
		return out
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, readers)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			check := func(i uint64) error {
				term, err := ms.Term(i)
				if err == nil && term != i {
					return fmt.Errorf("Term(%d) = %d", i, term)
				}
				if err != nil && !errors.Is(err, ErrCompacted) && !errors.Is(err, ErrUnavailable) {
					return err
				}
				return nil
			}
			for i := uint64(r); ; i++ {
				select {
				case <-done:
					return
				default:
				}
				last, _ := ms.LastIndex()
				first, _ := ms.FirstIndex()
				for _, j := range []uint64{last, first - 1, first + i%8} {
					if err := check(j); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	for range 20000 {
		last, _ := ms.LastIndex()
		first, _ := ms.FirstIndex()
		switch op := rnd.IntN(10); {
		case op < 5:
			require.NoError(t, ms.Append(ents(last+1, 1+rnd.Uint64N(3))))
		case op < 7 && last > first:
			// Replace the last one or two entries by one: the last index
			// goes down.
			from := max(first, last-1)
			require.NoError(t, ms.Append(ents(from, 1)))
		case op < 9 && last > first:
			require.NoError(t, ms.Compact(first+rnd.Uint64N(last-first)))
		case op == 9:
			i := last + rnd.Uint64N(3)
			snap := Snapshot{Metadata: SnapshotMetadata{Index: i, Term: i}}
			if err := ms.ApplySnapshot(snap); err != nil {
				require.ErrorIs(t, err, ErrSnapOutOfDate)
			}
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// unitCheckStorageRead reads from ms while a writer changes it and checks
// that what it got could have been a state of the log.
func unitCheckStorageRead(ms *MemoryStorage, salt uint64) error {
	first, err := ms.FirstIndex()
	if err != nil {
		return err
	}
	last, err := ms.LastIndex()
	if err != nil {
		return err
	}
	if last+1 < first {
		// The writer never shortens the log, so the last index read after
		// the first index can never be below it.
		return fmt.Errorf("first index %d is beyond last index %d + 1", first, last)
	}
	lo := first + salt%(last+2-first)
	ents, err := ms.Entries(lo, last+1, 64+salt%200)
	switch {
	case errors.Is(err, ErrCompacted), errors.Is(err, ErrUnavailable):
		return nil // the log moved between the calls
	case err != nil:
		return err
	}
	for i := range ents {
		if ents[i].Index != lo+uint64(i) {
			return fmt.Errorf("entries from %d: position %d has index %d", lo, i, ents[i].Index)
		}
		if i > 0 && ents[i].Term < ents[i-1].Term {
			return fmt.Errorf("entries from %d: term decreases at index %d", lo, ents[i].Index)
		}
		if want := fmt.Sprintf("i%d-t%d", ents[i].Index, ents[i].Term); string(ents[i].Data) != want {
			return fmt.Errorf("entry %d carries %q, want %q", ents[i].Index, ents[i].Data, want)
		}
	}
	if _, err := ms.Term(lo); err != nil && !errors.Is(err, ErrCompacted) && !errors.Is(err, ErrUnavailable) {
		return err
	}
	_ = ms.HardState()
	_, _, _ = ms.InitialState()
	return nil
}

func TestMemoryStorageErrorsIs(t *testing.T) {
	tests := []struct {
		name string
		call func(ms *MemoryStorage) error
		want error
	}{
		{
			name: "Entries compacted",
			call: func(ms *MemoryStorage) error { _, err := ms.Entries(2, 4, noLimit); return err },
			want: ErrCompacted,
		},
		{
			name: "Entries unavailable",
			call: func(ms *MemoryStorage) error { _, err := ms.Entries(4, 9, noLimit); return err },
			want: ErrUnavailable,
		},
		{
			name: "Term compacted",
			call: func(ms *MemoryStorage) error { _, err := ms.Term(1); return err },
			want: ErrCompacted,
		},
		{
			name: "Term unavailable",
			call: func(ms *MemoryStorage) error { _, err := ms.Term(9); return err },
			want: ErrUnavailable,
		},
		{
			name: "Append gap",
			call: func(ms *MemoryStorage) error { return ms.Append(unitEnts(9, 9)) },
			want: ErrLogGap,
		},
		{
			name: "Compact compacted",
			call: func(ms *MemoryStorage) error { return ms.Compact(2) },
			want: ErrCompacted,
		},
		{
			name: "Compact unavailable",
			call: func(ms *MemoryStorage) error { return ms.Compact(9) },
			want: ErrUnavailable,
		},
		{
			name: "ApplySnapshot out of date",
			call: func(ms *MemoryStorage) error {
				return ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 2, Term: 1}})
			},
			want: ErrSnapOutOfDate,
		},
		{
			name: "CreateSnapshot out of date",
			call: func(ms *MemoryStorage) error { _, err := ms.CreateSnapshot(3, nil, nil); return err },
			want: ErrSnapOutOfDate,
		},
		{
			name: "CreateSnapshot unavailable",
			call: func(ms *MemoryStorage) error { _, err := ms.CreateSnapshot(9, nil, nil); return err },
			want: ErrUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := unitStorage(t, 3, 3, unitEnts(4, 3, 3))
			err := tt.call(ms)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			wrapped := fmt.Errorf("host layer: %w", err)
			assert.ErrorIs(t, wrapped, tt.want, "recognised through a wrapper")
			assert.Contains(t, err.Error(), "raft: ", "errors are prefixed")
			for _, other := range []error{ErrCompacted, ErrUnavailable, ErrLogGap, ErrSnapOutOfDate} {
				if other != tt.want {
					assert.NotErrorIs(t, err, other)
				}
			}
		})
	}
}

func TestLimitSize(t *testing.T) {
	ents := unitEnts(1, 1, 1, 1)
	one := ents[0].size()
	tests := []struct {
		name    string
		ents    []Entry
		maxSize uint64
		want    int
	}{
		{name: "empty", ents: nil, maxSize: 0, want: 0},
		{name: "zero keeps one", ents: ents, maxSize: 0, want: 1},
		{name: "exact two", ents: ents, maxSize: 2 * one, want: 2},
		{name: "just under three", ents: ents, maxSize: 3*one - 1, want: 2},
		{name: "no limit", ents: ents, maxSize: noLimit, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Len(t, limitSize(tt.ents, tt.maxSize), tt.want)
		})
	}
}

func TestMemoryStorageZeroValue(t *testing.T) {
	tests := []struct {
		name string
		call func(t *testing.T, ms *MemoryStorage)
	}{
		{name: "FirstIndex", call: func(t *testing.T, ms *MemoryStorage) {
			first, err := ms.FirstIndex()
			require.NoError(t, err)
			assert.Equal(t, uint64(1), first)
		}},
		{name: "LastIndex", call: func(t *testing.T, ms *MemoryStorage) {
			last, err := ms.LastIndex()
			require.NoError(t, err)
			assert.Equal(t, uint64(0), last)
		}},
		{name: "Term", call: func(t *testing.T, ms *MemoryStorage) {
			term, err := ms.Term(0)
			require.NoError(t, err)
			assert.Zero(t, term)
		}},
		{name: "Entries", call: func(t *testing.T, ms *MemoryStorage) {
			_, err := ms.Entries(1, 2, noLimit)
			assert.ErrorIs(t, err, ErrUnavailable)
		}},
		{name: "Append", call: func(t *testing.T, ms *MemoryStorage) {
			require.NoError(t, ms.Append(unitEnts(1, 1, 1)))
			assert.Equal(t, unitEnts(1, 1, 1), unitStorageEntries(t, ms))
		}},
		{name: "Compact", call: func(t *testing.T, ms *MemoryStorage) {
			assert.ErrorIs(t, ms.Compact(0), ErrCompacted)
		}},
		{name: "ApplySnapshot", call: func(t *testing.T, ms *MemoryStorage) {
			require.NoError(t, ms.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 3, Term: 1}}))
			last, _ := ms.LastIndex()
			assert.Equal(t, uint64(3), last)
		}},
		{name: "InitialState", call: func(t *testing.T, ms *MemoryStorage) {
			hs, cs, err := ms.InitialState()
			require.NoError(t, err)
			assert.Zero(t, hs)
			assert.Zero(t, cs)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ms MemoryStorage
			require.NotPanics(t, func() { tt.call(t, &ms) })
		})
	}
}
