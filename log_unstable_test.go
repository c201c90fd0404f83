package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unitUnstable returns an unstable part holding ents from offset, the first
// inProgress of which were handed to the host, and snap if not nil.
func unitUnstable(offset uint64, ents []Entry, inProgress int, snap *Snapshot) unstable {
	return unstable{
		snapshot:           snap,
		snapshotInProgress: false,
		entries:            ents,
		offset:             offset,
		offsetInProgress:   offset + uint64(inProgress),
	}
}

func unitSnap(index, term uint64) *Snapshot {
	return &Snapshot{Metadata: SnapshotMetadata{Index: index, Term: term}}
}

func TestUnstableMaybeFirstIndex(t *testing.T) {
	tests := []struct {
		name   string
		u      unstable
		want   uint64
		wantOK bool
	}{
		{name: "empty", u: unitUnstable(0, nil, 0, nil)},
		{name: "entries only", u: unitUnstable(5, unitEnts(5, 1), 0, nil)},
		{name: "snapshot and entries", u: unitUnstable(5, unitEnts(5, 1), 0, unitSnap(4, 1)), want: 5, wantOK: true},
		{name: "snapshot only", u: unitUnstable(5, nil, 0, unitSnap(4, 1)), want: 5, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.u.maybeFirstIndex()
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestUnstableMaybeLastIndex(t *testing.T) {
	tests := []struct {
		name   string
		u      unstable
		want   uint64
		wantOK bool
	}{
		{name: "empty", u: unitUnstable(0, nil, 0, nil)},
		{name: "entries only", u: unitUnstable(5, unitEnts(5, 1, 1), 0, nil), want: 6, wantOK: true},
		{name: "snapshot and entries", u: unitUnstable(5, unitEnts(5, 1), 0, unitSnap(4, 1)), want: 5, wantOK: true},
		{name: "snapshot only", u: unitUnstable(5, nil, 0, unitSnap(4, 1)), want: 4, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.u.maybeLastIndex()
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestUnstableMaybeTerm(t *testing.T) {
	tests := []struct {
		name   string
		u      unstable
		index  uint64
		want   uint64
		wantOK bool
	}{
		{name: "entry", u: unitUnstable(5, unitEnts(5, 1, 2), 0, nil), index: 6, want: 2, wantOK: true},
		{name: "first entry", u: unitUnstable(5, unitEnts(5, 1, 2), 0, nil), index: 5, want: 1, wantOK: true},
		{name: "below offset, no snapshot", u: unitUnstable(5, unitEnts(5, 1), 0, nil), index: 4},
		{name: "beyond the last entry", u: unitUnstable(5, unitEnts(5, 1), 0, nil), index: 6},
		{name: "snapshot index", u: unitUnstable(5, unitEnts(5, 1), 0, unitSnap(4, 3)), index: 4, want: 3, wantOK: true},
		{name: "below the snapshot", u: unitUnstable(5, unitEnts(5, 1), 0, unitSnap(4, 3)), index: 3},
		{name: "entry after a snapshot", u: unitUnstable(5, unitEnts(5, 4), 0, unitSnap(4, 3)), index: 5, want: 4, wantOK: true},
		{name: "beyond a lone snapshot", u: unitUnstable(5, nil, 0, unitSnap(4, 3)), index: 5},
		{name: "empty", u: unitUnstable(0, nil, 0, nil), index: 0},
		{name: "empty at offset", u: unitUnstable(3, nil, 0, nil), index: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.u.maybeTerm(tt.index)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestUnstableStableTo(t *testing.T) {
	tests := []struct {
		name           string
		u              unstable
		index, term    uint64
		want           bool
		wantOffset     uint64
		wantInProgress uint64
		wantLen        int
	}{
		{name: "empty", u: unitUnstable(0, nil, 0, nil), index: 5, term: 1, wantOffset: 0, wantInProgress: 0},
		{name: "the only entry", u: unitUnstable(5, unitEnts(5, 1), 1, nil), index: 5, term: 1, want: true, wantOffset: 6, wantInProgress: 6},
		{name: "first of two, both in progress", u: unitUnstable(5, unitEnts(5, 1, 1), 2, nil), index: 5, term: 1, want: true, wantOffset: 6, wantInProgress: 7, wantLen: 1},
		{name: "first of two, none in progress", u: unitUnstable(5, unitEnts(5, 1, 1), 0, nil), index: 5, term: 1, want: true, wantOffset: 6, wantInProgress: 6, wantLen: 1},
		{name: "stale term", u: unitUnstable(6, unitEnts(6, 2), 1, nil), index: 6, term: 1, wantOffset: 6, wantInProgress: 7, wantLen: 1},
		{name: "below offset", u: unitUnstable(6, unitEnts(6, 2), 1, nil), index: 4, term: 1, wantOffset: 6, wantInProgress: 7, wantLen: 1},
		{name: "beyond the last entry", u: unitUnstable(6, unitEnts(6, 2), 1, nil), index: 7, term: 2, wantOffset: 6, wantInProgress: 7, wantLen: 1},
		{
			name: "the snapshot's index is not an entry", u: unitUnstable(5, unitEnts(5, 2), 1, unitSnap(4, 1)),
			index: 4, term: 1, wantOffset: 5, wantInProgress: 6, wantLen: 1,
		},
		{
			name: "entry after a snapshot", u: unitUnstable(5, unitEnts(5, 2), 1, unitSnap(4, 1)),
			index: 5, term: 2, want: true, wantOffset: 6, wantInProgress: 6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.u
			assert.Equal(t, tt.want, u.stableTo(tt.index, tt.term))
			assert.Equal(t, tt.wantOffset, u.offset, "offset")
			assert.Equal(t, tt.wantInProgress, u.offsetInProgress, "offsetInProgress")
			assert.Len(t, u.entries, tt.wantLen)
		})
	}
}

func TestUnstableStableToReleasesArray(t *testing.T) {
	tests := []struct {
		name        string
		n           int
		spare       int // unused capacity after the entries
		stable      uint64
		wantRealloc bool
	}{
		{name: "small array is kept", n: 100, spare: 100, stable: 90},
		{name: "large array mostly used is kept", n: 2000, spare: 0, stable: 1000},
		{name: "large array with a short tail is kept", n: 2000, spare: 0, stable: 1900},
		{name: "large array mostly unused is released", n: 2000, spare: 4000, stable: 1800, wantRealloc: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			terms := make([]uint64, tt.n)
			for i := range terms {
				terms[i] = 1
			}
			ents := append(make([]Entry, 0, tt.n+tt.spare), unitEnts(1, terms...)...)
			u := unitUnstable(1, ents, tt.n, nil)
			oldCap := cap(u.entries)
			require.True(t, u.stableTo(tt.stable, 1))
			assert.Equal(t, unitSeq(tt.stable+1, uint64(tt.n)), unitIndexes(u.entries))
			if tt.wantRealloc {
				assert.Less(t, cap(u.entries), oldCap/4)
			} else {
				assert.Equal(t, oldCap-int(tt.stable), cap(u.entries))
			}
		})
	}
}

func TestUnstableStableSnapTo(t *testing.T) {
	tests := []struct {
		name  string
		snap  *Snapshot
		index uint64
		want  bool
	}{
		{name: "no snapshot", index: 4},
		{name: "matching", snap: unitSnap(4, 1), index: 4, want: true},
		{name: "other index", snap: unitSnap(4, 1), index: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := unitUnstable(5, nil, 0, tt.snap)
			u.acceptInProgress()
			assert.Equal(t, tt.want, u.stableSnapTo(tt.index))
			if tt.want {
				assert.Nil(t, u.snapshot)
				assert.False(t, u.snapshotInProgress)
			} else {
				assert.Equal(t, tt.snap, u.snapshot)
			}
		})
	}
}

func TestUnstableRestore(t *testing.T) {
	u := unitUnstable(5, unitEnts(5, 1, 1, 1), 2, unitSnap(4, 1))
	u.snapshotInProgress = true
	s := Snapshot{Metadata: SnapshotMetadata{Index: 9, Term: 2}}
	u.restore(s)
	assert.Equal(t, uint64(10), u.offset)
	assert.Equal(t, uint64(10), u.offsetInProgress)
	assert.Empty(t, u.entries)
	require.NotNil(t, u.snapshot)
	assert.Equal(t, s, *u.snapshot)
	assert.False(t, u.snapshotInProgress, "the new snapshot must be handed out")
	assert.Equal(t, &s, u.nextSnapshot())
}

func TestUnstableNextEntriesAndSnapshot(t *testing.T) {
	tests := []struct {
		name       string
		u          unstable
		snapInProg bool
		wantEnts   []uint64
		wantSnap   bool
	}{
		{name: "empty", u: unitUnstable(1, nil, 0, nil)},
		{name: "nothing handed out", u: unitUnstable(5, unitEnts(5, 1, 1), 0, nil), wantEnts: unitSeq(5, 6)},
		{name: "some handed out", u: unitUnstable(5, unitEnts(5, 1, 1), 1, nil), wantEnts: []uint64{6}},
		{name: "all handed out", u: unitUnstable(5, unitEnts(5, 1, 1), 2, nil)},
		{name: "snapshot not handed out", u: unitUnstable(5, nil, 0, unitSnap(4, 1)), wantSnap: true},
		{name: "snapshot handed out", u: unitUnstable(5, nil, 0, unitSnap(4, 1)), snapInProg: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.u
			u.snapshotInProgress = tt.snapInProg
			assert.Equal(t, tt.wantEnts, unitIndexes(u.nextEntries()))
			assert.Equal(t, tt.wantSnap, u.nextSnapshot() != nil)

			u.acceptInProgress()
			assert.Empty(t, u.nextEntries(), "nothing is handed out twice")
			assert.Nil(t, u.nextSnapshot(), "the snapshot is not handed out twice")
			assert.Equal(t, u.offset+uint64(len(u.entries)), u.offsetInProgress)
		})
	}
}

func TestUnstableTruncateAndAppend(t *testing.T) {
	// Before each call: offset 5, entries 5(t1) 6(t1) 7(t1), the first
	// inProgress of them handed out.
	tests := []struct {
		name           string
		inProgress     int
		append         []Entry
		wantOffset     uint64
		wantInProgress uint64
		want           []Entry
	}{
		{
			name: "extend", inProgress: 3, append: unitEnts(8, 1, 2),
			wantOffset: 5, wantInProgress: 8, want: unitEnts(5, 1, 1, 1, 1, 2),
		},
		{
			name: "truncate after the handed-out part", inProgress: 1, append: unitEnts(7, 2),
			wantOffset: 5, wantInProgress: 6, want: unitEnts(5, 1, 1, 2),
		},
		{
			name: "truncate inside the handed-out part", inProgress: 3, append: unitEnts(6, 2, 2),
			wantOffset: 5, wantInProgress: 6, want: unitEnts(5, 1, 2, 2),
		},
		{
			name: "replace at the offset", inProgress: 2, append: unitEnts(5, 2, 2),
			wantOffset: 5, wantInProgress: 5, want: unitEnts(5, 2, 2),
		},
		{
			name: "replace from below the offset", inProgress: 3, append: unitEnts(4, 2, 2, 2),
			wantOffset: 4, wantInProgress: 4, want: unitEnts(4, 2, 2, 2),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := unitUnstable(5, unitEnts(5, 1, 1, 1), tt.inProgress, nil)
			handedOut := u.entries[:tt.inProgress]
			handedCopy := append([]Entry(nil), handedOut...)
			u.truncateAndAppend(tt.append)
			assert.Equal(t, tt.want, u.entries)
			assert.Equal(t, tt.wantOffset, u.offset, "offset")
			assert.Equal(t, tt.wantInProgress, u.offsetInProgress, "offsetInProgress")
			assert.Equal(t, handedCopy, handedOut, "entries already handed out were overwritten")
		})
	}
}

func TestUnstableTruncateAndAppendDoesNotAliasInput(t *testing.T) {
	u := unitUnstable(5, unitEnts(5, 1, 1), 0, nil)
	in := unitEnts(5, 2)
	u.truncateAndAppend(in)
	in[0].Term = 9
	assert.Equal(t, uint64(2), u.entries[0].Term)
}

func TestUnstableSlice(t *testing.T) {
	u := unitUnstable(5, unitEnts(5, 1, 1, 2, 2), 0, nil)
	tests := []struct {
		name      string
		lo, hi    uint64
		want      []uint64
		wantPanic bool
	}{
		{name: "all", lo: 5, hi: 9, want: unitSeq(5, 8)},
		{name: "middle", lo: 6, hi: 8, want: unitSeq(6, 7)},
		{name: "empty", lo: 7, hi: 7},
		{name: "below offset", lo: 4, hi: 6, wantPanic: true},
		{name: "beyond the end", lo: 6, hi: 10, wantPanic: true},
		{name: "inverted", lo: 7, hi: 6, wantPanic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantPanic {
				assert.Panics(t, func() { u.slice(tt.lo, tt.hi) })
				return
			}
			got := u.slice(tt.lo, tt.hi)
			assert.Equal(t, tt.want, unitIndexes(got))
			assert.Equal(t, len(got), cap(got), "capped")
		})
	}
}
