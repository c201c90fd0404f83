package raft

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// unitLogLayouts names the ways a test log's entries may be split between
// storage and the unstable part: every behaviour of raftLog must be the
// same whatever the split.
func unitLogLayouts(n int) map[string]int {
	layouts := map[string]int{"all stored": n, "all unstable": 0}
	if n > 1 {
		layouts["split in the middle"] = n / 2
	}
	return layouts
}

func TestLogMaybeAppend(t *testing.T) {
	// The log before each call: 1(t1) 2(t2) 3(t3).
	base := unitEnts(1, 1, 2, 3)
	tests := []struct {
		name      string
		committed uint64
		index     uint64
		logTerm   uint64
		ents      []Entry
		wantOK    bool
		wantLast  uint64 // the returned last new index
		wantErr   error
		want      []Entry // the log afterwards
	}{
		{name: "term mismatch", index: 3, logTerm: 2, ents: unitEnts(4, 4), want: base},
		{name: "index beyond the log", index: 4, logTerm: 3, ents: unitEnts(5, 4), want: base},
		{name: "match, no entries", index: 3, logTerm: 3, wantOK: true, wantLast: 3, want: base},
		{name: "match in the middle, no entries", index: 1, logTerm: 1, wantOK: true, wantLast: 1, want: base},
		{name: "match at zero", index: 0, logTerm: 0, ents: unitEnts(1, 1), wantOK: true, wantLast: 1, want: base},
		{name: "extends", index: 3, logTerm: 3, ents: unitEnts(4, 4, 4), wantOK: true, wantLast: 5, want: unitEnts(1, 1, 2, 3, 4, 4)},
		{name: "already present", index: 1, logTerm: 1, ents: unitEnts(2, 2), wantOK: true, wantLast: 2, want: base},
		{name: "already present then new", index: 1, logTerm: 1, ents: unitEnts(2, 2, 3, 3), wantOK: true, wantLast: 4, want: unitEnts(1, 1, 2, 3, 3)},
		{name: "conflict replaced", index: 1, logTerm: 1, ents: unitEnts(2, 4), wantOK: true, wantLast: 2, want: unitEnts(1, 1, 4)},
		{name: "conflict replaced by a longer tail", index: 2, logTerm: 2, ents: unitEnts(3, 4, 4, 4), wantOK: true, wantLast: 5, want: unitEnts(1, 1, 2, 4, 4, 4)},
		{name: "conflict just above commit", committed: 2, index: 1, logTerm: 1, ents: unitEnts(2, 2, 5), wantOK: true, wantLast: 3, want: unitEnts(1, 1, 2, 5)},
		{name: "conflict with a committed entry", committed: 2, index: 1, logTerm: 1, ents: unitEnts(2, 5, 5), wantErr: errLogConflict, want: base},
		{name: "conflict with the whole committed log", committed: 3, index: 0, logTerm: 0, ents: unitEnts(1, 7), wantErr: errLogConflict, want: base},
	}
	for _, tt := range tests {
		for layout, nStored := range unitLogLayouts(len(base)) {
			t.Run(tt.name+"/"+layout, func(t *testing.T) {
				l := unitSplitLog(t, 0, 0, base, nStored)
				l.committed = tt.committed
				unstableBefore := append([]Entry(nil), l.nextUnstableEntries()...)
				last, ok, err := l.maybeAppend(tt.index, tt.logTerm, append([]Entry(nil), tt.ents...))
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					assert.Equal(t, unstableBefore, l.nextUnstableEntries(), "nothing may change on error")
				} else {
					require.NoError(t, err)
				}
				assert.Equal(t, tt.wantOK, ok, "ok")
				assert.Equal(t, tt.wantLast, last, "last new index")
				assert.Equal(t, tt.want, l.allEntries())
				assert.Equal(t, tt.committed, l.committed, "maybeAppend never commits")
			})
		}
	}
}

func TestLogFindConflict(t *testing.T) {
	base := unitEnts(1, 1, 2, 3)
	tests := []struct {
		name string
		ents []Entry
		want uint64
	}{
		{name: "empty", ents: nil, want: 0},
		{name: "identical", ents: unitEnts(1, 1, 2, 3), want: 0},
		{name: "suffix", ents: unitEnts(2, 2, 3), want: 0},
		{name: "last", ents: unitEnts(3, 3), want: 0},
		{name: "identical then new", ents: unitEnts(1, 1, 2, 3, 4, 4), want: 4},
		{name: "suffix then new", ents: unitEnts(2, 2, 3, 4), want: 4},
		{name: "only new", ents: unitEnts(4, 4), want: 4},
		{name: "new far beyond", ents: unitEnts(9, 4), want: 9},
		{name: "conflict at first", ents: unitEnts(1, 4, 4), want: 1},
		{name: "conflict in the middle", ents: unitEnts(2, 1, 4), want: 2},
		{name: "conflict at last", ents: unitEnts(3, 1, 4), want: 3},
	}
	for _, tt := range tests {
		for layout, nStored := range unitLogLayouts(len(base)) {
			t.Run(tt.name+"/"+layout, func(t *testing.T) {
				l := unitSplitLog(t, 0, 0, base, nStored)
				assert.Equal(t, tt.want, l.findConflict(tt.ents))
			})
		}
	}
}

func TestLogFindConflictByTerm(t *testing.T) {
	// Snapshot at 3 (term 2), then 4(t2) 5(t3) 6(t3) 7(t5) 8(t5) 9(t6).
	ents := unitEnts(4, 2, 3, 3, 5, 5, 6)
	tests := []struct {
		name      string
		index     uint64
		term      uint64
		wantIndex uint64
		wantTerm  uint64
	}{
		{name: "same term at the last index", index: 9, term: 6, wantIndex: 9, wantTerm: 6},
		{name: "higher term", index: 9, term: 8, wantIndex: 9, wantTerm: 6},
		{name: "skips a term", index: 9, term: 5, wantIndex: 8, wantTerm: 5},
		{name: "term absent from the log", index: 9, term: 4, wantIndex: 6, wantTerm: 3},
		{name: "skips several terms", index: 9, term: 3, wantIndex: 6, wantTerm: 3},
		{name: "down to the first entry", index: 9, term: 2, wantIndex: 4, wantTerm: 2},
		{name: "from the middle", index: 7, term: 4, wantIndex: 6, wantTerm: 3},
		{name: "matching in the middle", index: 5, term: 3, wantIndex: 5, wantTerm: 3},
		{name: "at the snapshot", index: 3, term: 2, wantIndex: 3, wantTerm: 2},
		{name: "past the snapshot: cannot tell", index: 9, term: 1, wantIndex: 2, wantTerm: 0},
		{name: "beyond the last index", index: 20, term: 9, wantIndex: 20, wantTerm: 0},
		{name: "zero index", index: 0, term: 4, wantIndex: 0, wantTerm: 0},
	}
	for _, tt := range tests {
		for layout, nStored := range unitLogLayouts(len(ents)) {
			t.Run(tt.name+"/"+layout, func(t *testing.T) {
				l := unitSplitLog(t, 3, 2, ents, nStored)
				index, term := l.findConflictByTerm(tt.index, tt.term)
				assert.Equal(t, tt.wantIndex, index, "index")
				assert.Equal(t, tt.wantTerm, term, "term")
			})
		}
	}
}

func TestLogFindConflictByTermFromZero(t *testing.T) {
	// A log without a snapshot: index 0 has term 0, so every search ends
	// at 0 at the latest.
	l := unitLog(t, NewMemoryStorage(), unitEnts(1, 2, 2, 3))
	for _, tt := range []struct {
		name            string
		index, term     uint64
		wantIdx, wantTm uint64
	}{
		{name: "below every term", index: 3, term: 1, wantIdx: 0, wantTm: 0},
		{name: "first term", index: 3, term: 2, wantIdx: 2, wantTm: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			i, term := l.findConflictByTerm(tt.index, tt.term)
			assert.Equal(t, tt.wantIdx, i)
			assert.Equal(t, tt.wantTm, term)
		})
	}
}

func TestLogIsUpToDate(t *testing.T) {
	// Last entry: index 3, term 3.
	base := unitEnts(1, 1, 2, 3)
	tests := []struct {
		name  string
		lasti uint64
		term  uint64
		want  bool
	}{
		{name: "higher term, shorter log", lasti: 1, term: 4, want: true},
		{name: "higher term, longer log", lasti: 5, term: 4, want: true},
		{name: "lower term, longer log", lasti: 9, term: 2, want: false},
		{name: "lower term, same length", lasti: 3, term: 2, want: false},
		{name: "same term, shorter", lasti: 2, term: 3, want: false},
		{name: "same term, same length", lasti: 3, term: 3, want: true},
		{name: "same term, longer", lasti: 4, term: 3, want: true},
		{name: "empty log", lasti: 0, term: 0, want: false},
	}
	for _, tt := range tests {
		for layout, nStored := range unitLogLayouts(len(base)) {
			t.Run(tt.name+"/"+layout, func(t *testing.T) {
				l := unitSplitLog(t, 0, 0, base, nStored)
				assert.Equal(t, tt.want, l.isUpToDate(tt.lasti, tt.term))
			})
		}
	}
}

func TestLogTerm(t *testing.T) {
	// Snapshot 3(t3) in storage, storage 4(t4) 5(t5), unstable 6(t6) 7(t6).
	l := unitLog(t, unitStorage(t, 3, 3, unitEnts(4, 4, 5)), unitEnts(6, 6, 6))
	// The same log behind a storage that wraps its errors.
	wrapped := unitLog(t, unitWrapStorage{unitStorage(t, 3, 3, unitEnts(4, 4, 5))}, unitEnts(6, 6, 6))
	tests := []struct {
		name    string
		index   uint64
		want    uint64
		wantErr error
	}{
		{name: "zero", index: 0, wantErr: ErrCompacted},
		{name: "compacted", index: 2, wantErr: ErrCompacted},
		{name: "snapshot", index: 3, want: 3},
		{name: "first stored", index: 4, want: 4},
		{name: "last stored", index: 5, want: 5},
		{name: "first unstable", index: 6, want: 6},
		{name: "last unstable", index: 7, want: 6},
		{name: "beyond the last", index: 8, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		for name, l := range map[string]*raftLog{"memory": l, "wrapping storage": wrapped} {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				got, err := l.term(tt.index)
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					assert.Zero(t, l.zeroTermOnOutOfBounds(got, err))
					assert.False(t, l.matchTerm(tt.index, 0))
					return
				}
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				assert.True(t, l.matchTerm(tt.index, tt.want))
				assert.False(t, l.matchTerm(tt.index, tt.want+1))
			})
		}
	}
}

func TestLogTermWithPendingSnapshot(t *testing.T) {
	l := unitLog(t, unitStorage(t, 3, 3, unitEnts(4, 4, 5)), unitEnts(6, 6))
	l.restore(Snapshot{Metadata: SnapshotMetadata{Index: 10, Term: 8}})
	tests := []struct {
		name    string
		index   uint64
		want    uint64
		wantErr error
	}{
		{name: "stored entry now hidden", index: 5, wantErr: ErrCompacted},
		{name: "just below the snapshot", index: 9, wantErr: ErrCompacted},
		{name: "snapshot", index: 10, want: 8},
		{name: "beyond the snapshot", index: 11, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.term(tt.index)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, uint64(11), l.firstIndex())
	assert.Equal(t, uint64(10), l.lastIndex())
	assert.Equal(t, uint64(8), l.lastTerm())
}

func TestLogSlice(t *testing.T) {
	// Snapshot at 3 (term 1), storage 4..6, unstable 7..9; sizes differ.
	ents := unitEnts(4, 1, 1, 2, 2, 3, 3)
	for i := range ents {
		ents[i].Data = append(ents[i].Data, make([]byte, 10*i)...)
	}
	size := func(lo, hi uint64) uint64 { return entriesSize(ents[lo-4 : hi-4]) }
	tests := []struct {
		name      string
		lo, hi    uint64
		maxSize   uint64
		want      []uint64
		wantErr   error
		wantPanic bool
	}{
		{name: "below the snapshot", lo: 2, hi: 5, maxSize: noLimit, wantErr: ErrCompacted},
		{name: "at the snapshot", lo: 3, hi: 5, maxSize: noLimit, wantErr: ErrCompacted},
		{name: "empty", lo: 5, hi: 5, maxSize: noLimit},
		{name: "empty at the end", lo: 10, hi: 10, maxSize: noLimit},
		{name: "stored only", lo: 4, hi: 7, maxSize: noLimit, want: unitSeq(4, 6)},
		{name: "unstable only", lo: 7, hi: 10, maxSize: noLimit, want: unitSeq(7, 9)},
		{name: "across the boundary", lo: 5, hi: 9, maxSize: noLimit, want: unitSeq(5, 8)},
		{name: "everything", lo: 4, hi: 10, maxSize: noLimit, want: unitSeq(4, 9)},
		{name: "limit inside storage", lo: 4, hi: 10, maxSize: size(4, 6), want: unitSeq(4, 5)},
		{name: "limit at the boundary", lo: 4, hi: 10, maxSize: size(4, 7), want: unitSeq(4, 6)},
		{name: "limit inside unstable", lo: 4, hi: 10, maxSize: size(4, 9), want: unitSeq(4, 8)},
		{name: "limit one byte short", lo: 5, hi: 10, maxSize: size(5, 9) - 1, want: unitSeq(5, 7)},
		{name: "limit inside unstable only", lo: 7, hi: 10, maxSize: size(7, 9), want: unitSeq(7, 8)},
		{name: "zero limit in storage", lo: 4, hi: 10, maxSize: 0, want: []uint64{4}},
		{name: "zero limit in unstable", lo: 8, hi: 10, maxSize: 0, want: []uint64{8}},
		{name: "zero limit across the boundary", lo: 6, hi: 8, maxSize: 0, want: []uint64{6}},
		{name: "beyond the last index", lo: 4, hi: 11, maxSize: noLimit, wantPanic: true},
		{name: "inverted", lo: 6, hi: 5, maxSize: noLimit, wantPanic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := unitSplitLog(t, 3, 1, ents, 3)
			require.Equal(t, uint64(7), l.unstable.offset)
			if tt.wantPanic {
				assert.Panics(t, func() { _, _ = l.slice(tt.lo, tt.hi, tt.maxSize) })
				return
			}
			got, err := l.slice(tt.lo, tt.hi, tt.maxSize)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, unitIndexes(got))
			for i := range got {
				assert.Equal(t, ents[got[i].Index-4], got[i])
			}
			// Appending to the result must not change the log.
			if len(got) > 0 {
				_ = append(got, Entry{Index: 99, Term: 99})
			}
			assert.Equal(t, ents, l.allEntries(), "appending to a slice changed the log")
		})
	}
}

func TestLogEntries(t *testing.T) {
	l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 2, 2), 2)
	tests := []struct {
		name    string
		from    uint64
		want    []uint64
		wantErr error
	}{
		{name: "from the start", from: 1, want: unitSeq(1, 4)},
		{name: "from the unstable part", from: 3, want: unitSeq(3, 4)},
		{name: "past the end", from: 5},
		{name: "compacted", from: 0, wantErr: ErrCompacted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.entries(tt.from, noLimit)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, unitIndexes(got))
		})
	}
}

func TestLogCommitTo(t *testing.T) {
	tests := []struct {
		name      string
		commit    uint64
		want      uint64
		wantPanic bool
	}{
		{name: "raise", commit: 3, want: 3},
		{name: "raise to the last index", commit: 4, want: 4},
		{name: "never lower", commit: 1, want: 2},
		{name: "same", commit: 2, want: 2},
		{name: "zero", commit: 0, want: 2},
		{name: "beyond the last index", commit: 5, wantPanic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 2, 2), 2)
			l.commitTo(2)
			if tt.wantPanic {
				assert.Panics(t, func() { l.commitTo(tt.commit) })
				assert.Equal(t, uint64(2), l.committed)
				return
			}
			l.commitTo(tt.commit)
			assert.Equal(t, tt.want, l.committed)
		})
	}
}

func TestLogMaybeCommit(t *testing.T) {
	// 1(t1) 2(t1) 3(t2) 4(t2); committed 1.
	tests := []struct {
		name       string
		maxIndex   uint64
		term       uint64
		want       bool
		wantCommit uint64
	}{
		{name: "current term entry", maxIndex: 3, term: 2, want: true, wantCommit: 3},
		{name: "old term entry is not committed by counting", maxIndex: 2, term: 2, want: false, wantCommit: 1},
		{name: "not above the commit index", maxIndex: 1, term: 1, want: false, wantCommit: 1},
		{name: "beyond the log", maxIndex: 9, term: 2, want: false, wantCommit: 1},
		{name: "unknown index of an empty config", maxIndex: ^uint64(0), term: 2, want: false, wantCommit: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 2, 2), 2)
			l.commitTo(1)
			assert.Equal(t, tt.want, l.maybeCommit(tt.maxIndex, tt.term))
			assert.Equal(t, tt.wantCommit, l.committed)
		})
	}
}

func TestLogAppliedTo(t *testing.T) {
	// committed 4, applying 3, applied 2.
	tests := []struct {
		name      string
		applied   uint64
		want      uint64
		wantPanic bool
	}{
		{name: "advance", applied: 3, want: 3},
		{name: "same", applied: 2, want: 2},
		{name: "zero is ignored", applied: 0, want: 2},
		{name: "lower is ignored", applied: 1, want: 2},
		{name: "beyond applying", applied: 4, wantPanic: true},
		{name: "beyond committed", applied: 5, wantPanic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 2, 2, 2), 5)
			l.commitTo(4)
			l.acceptApplying(3)
			l.appliedTo(2)
			if tt.wantPanic {
				assert.Panics(t, func() { l.appliedTo(tt.applied) })
				assert.Equal(t, uint64(2), l.applied)
				return
			}
			l.appliedTo(tt.applied)
			assert.Equal(t, tt.want, l.applied)
		})
	}
}

func TestLogAcceptApplying(t *testing.T) {
	l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 2), 2)
	l.commitTo(2)
	l.acceptApplying(2)
	assert.Equal(t, uint64(2), l.applying)
	l.acceptApplying(1)
	assert.Equal(t, uint64(2), l.applying, "applying never decreases")
	assert.Panics(t, func() { l.acceptApplying(3) }, "applying beyond committed")
}

func TestLogNextCommittedEnts(t *testing.T) {
	// Storage 1..3, unstable 4..6.
	ents := unitEnts(1, 1, 1, 1, 2, 2, 2)
	tests := []struct {
		name          string
		committed     uint64
		applying      uint64
		allowUnstable bool
		want          []uint64
	}{
		{name: "unstable allowed", committed: 5, allowUnstable: true, want: unitSeq(1, 5)},
		{name: "durable only", committed: 5, allowUnstable: false, want: unitSeq(1, 3)},
		{name: "durable only, below the unstable part", committed: 2, allowUnstable: false, want: unitSeq(1, 2)},
		{name: "all handed out, durable only", committed: 5, applying: 3, allowUnstable: false},
		{name: "rest of the committed entries", committed: 5, applying: 3, allowUnstable: true, want: unitSeq(4, 5)},
		{name: "nothing committed beyond applying", committed: 2, applying: 2, allowUnstable: true},
		{name: "everything applying", committed: 6, applying: 6, allowUnstable: true},
		{name: "everything committed", committed: 6, applying: 1, allowUnstable: true, want: unitSeq(2, 6)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := unitSplitLog(t, 0, 0, ents, 3)
			l.commitTo(tt.committed)
			l.acceptApplying(tt.applying)
			got := l.nextCommittedEnts(tt.allowUnstable)
			assert.Equal(t, tt.want, unitIndexes(got))
			assert.Equal(t, len(tt.want) > 0, l.hasNextCommittedEnts(tt.allowUnstable))
		})
	}
}

func TestLogNextCommittedEntsPendingSnapshot(t *testing.T) {
	l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 1), 3)
	l.restore(Snapshot{Metadata: SnapshotMetadata{Index: 5, Term: 2}})
	require.Equal(t, uint64(5), l.committed)
	for _, allow := range []bool{true, false} {
		assert.Nil(t, l.nextCommittedEnts(allow), "allowUnstable=%v", allow)
		assert.False(t, l.hasNextCommittedEnts(allow), "allowUnstable=%v", allow)
	}
	// Once the snapshot is durable and applied, later entries flow again.
	l.unstable.acceptInProgress()
	l.acceptApplying(5)
	require.True(t, l.stableSnapTo(5))
	l.appliedTo(5)
	l.append(unitEnts(6, 2, 2)...)
	l.commitTo(7)
	assert.Equal(t, unitSeq(6, 7), unitIndexes(l.nextCommittedEnts(true)))
	assert.Nil(t, l.nextCommittedEnts(false), "entries 6, 7 are not durable")
}

func TestLogMaxApplyingSize(t *testing.T) {
	ents := unitEnts(1, 1, 1, 1, 1, 1)
	one := ents[0].size()
	tests := []struct {
		name    string
		maxSize uint64
		want    []uint64
	}{
		{name: "no limit", maxSize: noLimit, want: unitSeq(1, 5)},
		{name: "two entries", maxSize: 2 * one, want: unitSeq(1, 2)},
		{name: "just under three", maxSize: 3*one - 1, want: unitSeq(1, 2)},
		{name: "zero still hands out one", maxSize: 0, want: []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := newLog(unitStorage(t, 0, 0, ents[:3]), zap.NewNop(), tt.maxSize)
			require.NoError(t, err)
			l.append(ents[3:]...)
			l.commitTo(5)
			got := l.nextCommittedEnts(true)
			assert.Equal(t, tt.want, unitIndexes(got))
			// Handing the batch out moves on to the next one.
			l.acceptApplying(got[len(got)-1].Index)
			next := l.nextCommittedEnts(true)
			if last := got[len(got)-1].Index; last < 5 {
				require.NotEmpty(t, next)
				assert.Equal(t, last+1, next[0].Index)
			} else {
				assert.Empty(t, next)
			}
		})
	}
}

func TestLogStableTo(t *testing.T) {
	// Storage 1..2 (t1), unstable 3(t1) 4(t2) 5(t2).
	tests := []struct {
		name        string
		index, term uint64
		want        bool
		wantOffset  uint64
	}{
		{name: "first unstable", index: 3, term: 1, want: true, wantOffset: 4},
		{name: "all", index: 5, term: 2, want: true, wantOffset: 6},
		{name: "stale term is ignored", index: 4, term: 1, wantOffset: 3},
		{name: "stale term at the last index", index: 5, term: 3, wantOffset: 3},
		{name: "already stable", index: 2, term: 1, wantOffset: 3},
		{name: "beyond the log", index: 6, term: 2, wantOffset: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ents := unitEnts(1, 1, 1, 1, 2, 2)
			ms := unitStorage(t, 0, 0, ents[:2])
			l := unitLog(t, ms, ents[2:])
			// The host persists what was handed out, then acknowledges.
			require.NoError(t, ms.Append(l.nextUnstableEntries()))
			l.unstable.acceptInProgress()
			assert.Equal(t, tt.want, l.stableTo(tt.index, tt.term))
			assert.Equal(t, tt.wantOffset, l.unstable.offset)
			assert.Equal(t, tt.wantOffset-1, l.lastPersistedIndex())
			assert.Equal(t, uint64(5), l.lastIndex(), "stableTo never drops entries from the log")
			assert.Equal(t, ents, l.allEntries())
		})
	}
}

func TestLogStableToAfterReplacement(t *testing.T) {
	// An acknowledgement of entries that were replaced meanwhile must not
	// mark the replacements durable.
	l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 1), 1)
	l.unstable.acceptInProgress()
	_, ok, err := l.maybeAppend(1, 1, unitEnts(2, 3, 3))
	require.NoError(t, err)
	require.True(t, ok)
	assert.False(t, l.stableTo(3, 1), "ack for the replaced entry 3 of term 1")
	assert.Equal(t, uint64(1), l.lastPersistedIndex())
	assert.Equal(t, unitSeq(2, 3), unitIndexes(l.nextUnstableEntries()), "the replacements are handed out again")
	assert.True(t, l.stableTo(3, 3))
	assert.Equal(t, uint64(3), l.lastPersistedIndex())
}

func TestLogRestore(t *testing.T) {
	l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 2, 2), 2)
	l.commitTo(2)
	snap := Snapshot{Metadata: SnapshotMetadata{Index: 10, Term: 3, ConfState: ConfState{Voters: []uint64{1}}}}
	l.restore(snap)
	assert.Equal(t, uint64(10), l.committed)
	assert.Equal(t, uint64(11), l.firstIndex())
	assert.Equal(t, uint64(10), l.lastIndex())
	assert.Equal(t, uint64(0), l.lastPersistedIndex(), "nothing is persisted while the snapshot is pending")
	assert.True(t, l.hasNextOrInProgressSnapshot())
	assert.False(t, l.hasNextOrInProgressUnstableEntries())
	got, err := l.snapshot()
	require.NoError(t, err)
	assert.Equal(t, snap, got)
	require.NotNil(t, l.nextUnstableSnapshot())
	assert.Equal(t, snap, *l.nextUnstableSnapshot())

	l.unstable.acceptInProgress()
	assert.Nil(t, l.nextUnstableSnapshot(), "not handed out twice")
	assert.False(t, l.stableSnapTo(9), "a different snapshot index")
	assert.True(t, l.stableSnapTo(10))
	assert.Equal(t, uint64(10), l.lastPersistedIndex())
	assert.False(t, l.hasNextOrInProgressSnapshot())
}

func TestLogSnapshotFromStorage(t *testing.T) {
	ms := unitStorage(t, 4, 2, nil)
	l := unitLog(t, ms, nil)
	got, err := l.snapshot()
	require.NoError(t, err)
	assert.Equal(t, uint64(4), got.Metadata.Index)
	assert.Equal(t, uint64(4), l.committed, "a new log starts committed at the snapshot")
	assert.Equal(t, uint64(4), l.applied)
}

func TestLogLastPersistedIndex(t *testing.T) {
	l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1), 1)
	assert.Equal(t, uint64(1), l.lastPersistedIndex())
	l.append(unitEnts(3, 2)...)
	assert.Equal(t, uint64(1), l.lastPersistedIndex(), "appending does not persist")
	l.unstable.acceptInProgress()
	assert.Equal(t, uint64(1), l.lastPersistedIndex(), "handing out does not persist")
	require.True(t, l.stableTo(2, 1))
	assert.Equal(t, uint64(2), l.lastPersistedIndex())
	require.True(t, l.stableTo(3, 2))
	assert.Equal(t, uint64(3), l.lastPersistedIndex())
}

func TestLogNextUnstableEntriesNotReemitted(t *testing.T) {
	l := unitLog(t, NewMemoryStorage(), nil)
	assert.False(t, l.hasNextUnstableEntries())
	assert.False(t, l.hasNextOrInProgressUnstableEntries())

	l.append(unitEnts(1, 1, 1, 1)...)
	assert.Equal(t, unitSeq(1, 3), unitIndexes(l.nextUnstableEntries()))
	l.unstable.acceptInProgress()
	assert.Empty(t, l.nextUnstableEntries(), "handed-out entries are not emitted again")
	assert.False(t, l.hasNextUnstableEntries())
	assert.True(t, l.hasNextOrInProgressUnstableEntries())

	l.append(unitEnts(4, 1, 1)...)
	assert.Equal(t, unitSeq(4, 5), unitIndexes(l.nextUnstableEntries()), "only the new entries")
	l.unstable.acceptInProgress()

	// A replacement inside the handed-out range is emitted again.
	l.append(unitEnts(3, 2)...)
	assert.Equal(t, []uint64{3}, unitIndexes(l.nextUnstableEntries()))
	assert.Equal(t, uint64(3), l.lastIndex())
	l.unstable.acceptInProgress()
	assert.Empty(t, l.nextUnstableEntries())

	require.True(t, l.stableTo(3, 2))
	assert.False(t, l.hasNextOrInProgressUnstableEntries())
}

func TestLogAppendBelowCommitPanics(t *testing.T) {
	l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 1), 1)
	l.commitTo(2)
	assert.Panics(t, func() { l.append(unitEnts(2, 2)...) })
	assert.Equal(t, uint64(3), l.append(), "appending nothing returns the last index")
	assert.Equal(t, uint64(4), l.append(unitEnts(3, 2, 2)...))
}

func TestNewLogErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	tests := []struct {
		name    string
		storage *unitFakeStorage
		wantErr error
		wantMsg string
	}{
		{name: "first index fails", storage: &unitFakeStorage{first: 1, firstErr: boom}, wantErr: boom, wantMsg: "first index"},
		{name: "last index fails", storage: &unitFakeStorage{first: 1, lastErr: boom}, wantErr: boom, wantMsg: "last index"},
		{name: "first index zero", storage: &unitFakeStorage{first: 0, last: 0}, wantMsg: "first index 0"},
		{name: "last index below first index - 1", storage: &unitFakeStorage{first: 5, last: 2}, wantMsg: "first index 5 and last index 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := newLog(tt.storage, zap.NewNop(), noLimit)
			require.Error(t, err)
			assert.Nil(t, l)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.Contains(t, err.Error(), tt.wantMsg)
		})
	}
}

func TestLogString(t *testing.T) {
	l := unitSplitLog(t, 0, 0, unitEnts(1, 1, 1, 1), 2)
	l.commitTo(2)
	l.acceptApplying(2)
	l.appliedTo(1)
	assert.Equal(t, "committed=2 applied=1 applying=2 unstable.offset=3 len(unstable)=1", l.String())
}

func TestLogStorageFailurePanics(t *testing.T) {
	// A storage that fails with an error other than ErrCompacted or
	// ErrUnavailable is a broken disk: the log panics with the error.
	boom := fmt.Errorf("disk on fire")
	fake := &unitFakeStorage{first: 1, last: 0}
	l, err := newLog(fake, zap.NewNop(), noLimit)
	require.NoError(t, err)
	fake.lastErr = boom
	assert.Panics(t, func() { l.lastIndex() })
	fake.lastErr = nil
	fake.firstErr = boom
	assert.Panics(t, func() { l.firstIndex() })
	assert.Panics(t, func() { l.zeroTermOnOutOfBounds(0, boom) })
}

// unitFailingStorage is a MemoryStorage whose Term and Entries fail with
// the given errors (when set), as a storage racing with compaction or a
// broken disk would.
type unitFailingStorage struct {
	*MemoryStorage
	termErr, entriesErr error
}

func (s *unitFailingStorage) Term(i uint64) (uint64, error) {
	if s.termErr != nil {
		return 0, s.termErr
	}
	return s.MemoryStorage.Term(i)
}

func (s *unitFailingStorage) Entries(lo, hi, maxSize uint64) ([]Entry, error) {
	if s.entriesErr != nil {
		return nil, s.entriesErr
	}
	return s.MemoryStorage.Entries(lo, hi, maxSize)
}

func TestLogStorageErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	compacted := fmt.Errorf("racing compaction: %w", ErrCompacted)
	unavailable := fmt.Errorf("racing truncation: %w", ErrUnavailable)
	tests := []struct {
		name       string
		termErr    error
		entriesErr error
		call       func(l *raftLog) error
		wantErr    error // returned by call
		wantPanic  bool
	}{
		{
			name: "term: compacted in storage", termErr: compacted,
			call: func(l *raftLog) error { _, err := l.term(2); return err }, wantErr: ErrCompacted,
		},
		{
			name: "term: unavailable in storage", termErr: unavailable,
			call: func(l *raftLog) error { _, err := l.term(2); return err }, wantErr: ErrUnavailable,
		},
		{
			name: "term: broken storage", termErr: boom,
			call: func(l *raftLog) error { _, err := l.term(2); return err }, wantPanic: true,
		},
		{
			name: "lastTerm: broken storage", termErr: boom,
			call: func(l *raftLog) error { l.lastTerm(); return nil }, wantPanic: true,
		},
		{
			name: "lastTerm: compacted in storage", termErr: compacted,
			call: func(l *raftLog) error { l.lastTerm(); return nil }, wantPanic: true,
		},
		{
			name: "slice: compacted in storage", entriesErr: compacted,
			call: func(l *raftLog) error { _, err := l.slice(1, 3, noLimit); return err }, wantErr: ErrCompacted,
		},
		{
			name: "slice: broken storage", entriesErr: boom,
			call: func(l *raftLog) error { _, err := l.slice(1, 3, noLimit); return err }, wantPanic: true,
		},
		{
			name: "allEntries: compacted in storage", entriesErr: compacted,
			call: func(l *raftLog) error { l.allEntries(); return nil }, wantPanic: true,
		},
		{
			name: "nextCommittedEnts: compacted in storage", entriesErr: compacted,
			call: func(l *raftLog) error { l.nextCommittedEnts(true); return nil }, wantPanic: true,
		},
		{
			name: "matchTerm: broken storage", termErr: boom,
			call: func(l *raftLog) error { l.matchTerm(2, 1); return nil }, wantPanic: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &unitFailingStorage{MemoryStorage: unitStorage(t, 0, 0, unitEnts(1, 1, 1, 1))}
			l := unitLog(t, fs, nil)
			l.commitTo(3)
			fs.termErr, fs.entriesErr = tt.termErr, tt.entriesErr
			if tt.wantPanic {
				assert.Panics(t, func() { _ = tt.call(l) })
				return
			}
			var err error
			require.NotPanics(t, func() { err = tt.call(l) })
			assert.ErrorIs(t, err, tt.wantErr)
		})
	}
}
