package raft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// badStorageModel is the obvious model of a MemoryStorage: a snapshot
// position, a compaction point and the entries after it, by absolute index.
type badStorageModel struct {
	snapIndex          uint64 // the held snapshot's index
	offset, offsetTerm uint64 // the last compacted index and its term
	ents               []Entry
	dataSerial         int
}

func (m *badStorageModel) last() uint64 { return m.offset + uint64(len(m.ents)) }

func (m *badStorageModel) term(i uint64) (uint64, error) {
	switch {
	case i < m.offset:
		return 0, ErrCompacted
	case i > m.last():
		return 0, ErrUnavailable
	case i == m.offset:
		return m.offsetTerm, nil
	}
	return m.ents[i-m.offset-1].Term, nil
}

func (m *badStorageModel) append(ents []Entry) error {
	for i := 1; i < len(ents); i++ {
		if ents[i].Index != ents[i-1].Index+1 {
			return ErrLogGap
		}
	}
	for _, e := range ents {
		switch {
		case e.Index <= m.offset:
			// Already compacted: skipped.
		case e.Index > m.last()+1:
			return ErrLogGap
		default:
			m.ents = append(m.ents[:e.Index-m.offset-1:e.Index-m.offset-1], e)
		}
	}
	return nil
}

// badStorageChecker runs operations on a MemoryStorage and its model side by
// side and compares every answer.
type badStorageChecker struct {
	t     testing.TB
	ms    *MemoryStorage
	model badStorageModel
	// handedOut are slices Entries returned, with a copy of what they held:
	// the storage must never write into them afterwards.
	handedOut [][2][]Entry
}

// sameErr reports whether got is the error want stands for.
func sameErr(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

func (c *badStorageChecker) step(in *badInput) {
	m := &c.model
	near := func() uint64 {
		// An index around the log, including below 0 (clamped) and after
		// its end.
		v := int64(m.offset) + int64(in.intn(int(m.last()-m.offset)+6)) - 3
		return uint64(max(v, 0))
	}
	switch op := in.intn(6); op {
	case 0:
		n := in.intn(5)
		ents := make([]Entry, n)
		start := near() + 1
		for i := range ents {
			m.dataSerial++
			ents[i] = Entry{Index: start + uint64(i), Term: 1 + uint64(in.intn(4)), Data: []byte(fmt.Sprint(m.dataSerial))}
		}
		if n > 1 && in.intn(4) == 0 {
			ents[in.intn(n)].Index += uint64(in.intn(3)) // a gap or a repeat
		}
		want := m.append(slices.Clone(ents))
		if got := c.ms.Append(ents); !sameErr(got, want) {
			c.t.Fatalf("Append(%v) = %v, want %v", ents, got, want)
		}
		if want != nil {
			// A refused append changes nothing in the model; the storage
			// must not have changed either, which compare checks.
			return
		}
	case 1:
		i := near()
		var want error
		switch {
		case i <= m.offset:
			want = ErrCompacted
		case i > m.last():
			want = ErrUnavailable
		}
		if got := c.ms.Compact(i); !sameErr(got, want) {
			c.t.Fatalf("Compact(%d) = %v, want %v", i, got, want)
		}
		if want == nil {
			t, _ := m.term(i)
			m.ents = m.ents[i-m.offset:]
			m.offset, m.offsetTerm = i, t
		}
	case 2:
		s := Snapshot{Metadata: SnapshotMetadata{Index: near(), Term: 1 + uint64(in.intn(4)),
			ConfState: ConfState{Voters: []uint64{1}}}}
		var want error
		if s.Metadata.Index <= m.snapIndex {
			want = ErrSnapOutOfDate
		}
		if got := c.ms.ApplySnapshot(s); !sameErr(got, want) {
			c.t.Fatalf("ApplySnapshot(%+v) = %v, want %v", s.Metadata, got, want)
		}
		if want == nil {
			m.snapIndex, m.offset, m.offsetTerm, m.ents = s.Metadata.Index, s.Metadata.Index, s.Metadata.Term, nil
		}
	case 3:
		i := near()
		var want error
		switch {
		case i <= m.snapIndex:
			want = ErrSnapOutOfDate
		case i < m.offset:
			want = ErrCompacted
		case i > m.last():
			want = ErrUnavailable
		}
		var snap Snapshot
		var got error
		func() {
			defer func() {
				if p := recover(); p != nil {
					c.t.Fatalf("CreateSnapshot(%d) panicked with compacted index %d, snapshot %d: %v", i, m.offset, m.snapIndex, p)
				}
			}()
			snap, got = c.ms.CreateSnapshot(i, nil, []byte("s"))
		}()
		if !sameErr(got, want) {
			c.t.Fatalf("CreateSnapshot(%d) = %v, want %v (compacted %d, snapshot %d)", i, got, want, m.offset, m.snapIndex)
		}
		if want == nil {
			wantTerm, _ := m.term(i)
			if snap.Metadata.Index != i || snap.Metadata.Term != wantTerm {
				c.t.Fatalf("CreateSnapshot(%d) made %+v, want term %d", i, snap.Metadata, wantTerm)
			}
			m.snapIndex = i
		}
	default:
		lo, hi := near(), near()
		maxSize := uint64(in.intn(5)) * entryOverhead * 2
		if maxSize == 4*entryOverhead*2 {
			maxSize = noLimit
		}
		got, err := c.ms.Entries(lo, hi, maxSize)
		var want []Entry
		var wantErr error
		switch {
		case lo <= m.offset:
			wantErr = ErrCompacted
		case hi > m.last()+1:
			wantErr = ErrUnavailable
		case lo < hi:
			want = limitSize(m.ents[lo-m.offset-1:hi-m.offset-1], maxSize)
		}
		if !sameErr(err, wantErr) || !slices.EqualFunc(got, want, badEntryEqual) {
			c.t.Fatalf("Entries(%d, %d, %d) = %v, %v; want %v, %v", lo, hi, maxSize, got, err, want, wantErr)
		}
		if cap(got) != len(got) {
			c.t.Fatalf("Entries(%d, %d, %d) returned a slice of length %d with capacity %d: appending to it could write into the storage", lo, hi, maxSize, len(got), cap(got))
		}
		if len(got) > 0 {
			c.handedOut = append(c.handedOut, [2][]Entry{got, slices.Clone(got)})
		}
	}
}

func badEntryEqual(a, b Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && string(a.Data) == string(b.Data)
}

// compare checks every answer the storage gives against the model.
func (c *badStorageChecker) compare() {
	m := &c.model
	first, _ := c.ms.FirstIndex()
	last, _ := c.ms.LastIndex()
	if first != m.offset+1 || last != m.last() {
		c.t.Fatalf("storage spans [%d, %d], model [%d, %d]", first, last, m.offset+1, m.last())
	}
	for i := uint64(max(int64(m.offset)-1, 0)); i <= m.last()+1; i++ {
		got, err := c.ms.Term(i)
		want, wantErr := m.term(i)
		if got != want || !sameErr(err, wantErr) {
			c.t.Fatalf("Term(%d) = %d, %v; want %d, %v", i, got, err, want, wantErr)
		}
	}
	snap, _ := c.ms.Snapshot()
	if snap.Metadata.Index != m.snapIndex {
		c.t.Fatalf("snapshot index %d, want %d", snap.Metadata.Index, m.snapIndex)
	}
	for _, h := range c.handedOut {
		if !slices.EqualFunc(h[0], h[1], badEntryEqual) {
			c.t.Fatalf("a slice returned by Entries was modified later: %v, was %v", h[0], h[1])
		}
	}
}

// FuzzMemoryStorage runs appends (with gaps, overlaps and compacted
// prefixes), compactions, snapshots and reads on a MemoryStorage and on a
// model, comparing every answer, and checks that the storage never writes
// into a slice it handed out.
func FuzzMemoryStorage(f *testing.F) {
	f.Add([]byte{0, 3, 4, 1, 1, 1, 0, 2, 4, 2, 2, 5, 0, 0})
	f.Add([]byte{0, 0, 4, 0, 0, 0, 0, 1, 4, 3, 2, 0, 0, 3, 2, 5, 1, 3, 0, 4, 2, 1})
	f.Add([]byte{0, 2, 4, 1, 1, 1, 0, 1, 2, 3, 0, 5, 4, 3, 0, 0, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ms := range badStorages() {
			c := &badStorageChecker{t: t, ms: ms}
			in := &badInput{data: data}
			for ops := 0; !in.done() && ops < 300; ops++ {
				c.step(in)
				c.compare()
			}
		}
	})
}

// badStorages returns the MemoryStorages the model tests run on: one as
// NewMemoryStorage makes it, whose chunks the tests' short logs hardly
// ever fill, and one with chunks of 4 entries, so that appends, reads and
// compactions cross chunks all the time.
func badStorages() []*MemoryStorage {
	return []*MemoryStorage{NewMemoryStorage(), {chunkShift: 2}}
}

// TestMemoryStorageRandomOps runs FuzzMemoryStorage's property on inputs
// from fixed seeds.
func TestMemoryStorageRandomOps(t *testing.T) {
	for seed := uint64(1); seed <= 500; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x5707))
		data := make([]byte, 100+rng.IntN(400))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			for _, ms := range badStorages() {
				c := &badStorageChecker{t: t, ms: ms}
				in := &badInput{data: data}
				for ops := 0; !in.done() && ops < 300; ops++ {
					c.step(in)
					c.compare()
				}
			}
		})
	}
}

// TestMemoryStorageCreateSnapshotCompacted is FuzzMemoryStorage's first
// finding: a snapshot at an index compacted away (Compact without a snapshot
// first) made CreateSnapshot index before its array and panic.
func TestMemoryStorageCreateSnapshotCompacted(t *testing.T) {
	ms := NewMemoryStorage()
	require.NoError(t, ms.Append(badEnts([2]uint64{1, 1}, [2]uint64{2, 1}, [2]uint64{3, 2})))
	require.NoError(t, ms.Compact(2))
	for _, tt := range []struct {
		name    string
		index   uint64
		wantErr error
	}{
		{name: "compacted index", index: 1, wantErr: ErrCompacted},
		{name: "the compaction point itself", index: 2},
		{name: "beyond the log", index: 4, wantErr: ErrUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { _, err = ms.CreateSnapshot(tt.index, nil, nil) })
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
		})
	}
}
