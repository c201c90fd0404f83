package wal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keelraft/raft"
)

// openObserved opens dir with a logger whose entries at level and above
// the test can read.
func openObserved(dir string, opts Options, level zapcore.Level) (*Log, *observer.ObservedLogs, error) {
	core, logs := observer.New(level)
	opts.Logger = zap.New(core)
	l, err := Open(dir, opts)
	return l, logs, err
}

// requireSalvaged checks what a salvaging Open left: the Recovering flag,
// the report, one WARN naming the file, and a log that reopens without
// Salvage to the same state.
func requireSalvaged(t *testing.T, dir, file string, l *Log, logs *observer.ObservedLogs) *SalvageReport {
	t.Helper()
	hs, _, err := l.InitialState()
	require.NoError(t, err)
	assert.True(t, hs.Recovering, "the node must not vote until repaired")
	last, err := l.LastIndex()
	require.NoError(t, err)
	assert.LessOrEqual(t, hs.Commit, last)
	rep := l.Salvaged()
	require.NotNil(t, rep)
	assert.Equal(t, file, rep.File)
	assert.ErrorIs(t, rep.Reason, ErrCorrupt)
	assert.Equal(t, last, rep.LastIndexKept)
	assert.Equal(t, last+1, rep.LostFrom)
	warns := logs.FilterLevelExact(zap.WarnLevel).All()
	require.Len(t, warns, 1)
	assert.Equal(t, file, warns[0].ContextMap()["file"])
	assert.Equal(t, rep.Offset, warns[0].ContextMap()["offset"])
	want := walState(t, l)
	require.NoError(t, l.Close())

	l, err = Open(dir, Options{SegmentSize: 4096, KeepSnapshots: 5})
	require.NoError(t, err, "a salvaged log reopens without Salvage")
	assert.Nil(t, l.Salvaged())
	assert.Equal(t, want, walState(t, l))
	require.NoError(t, l.Save(raft.HardState{Term: 7, Commit: hs.Commit}, []raft.Entry{{Index: last + 1, Term: 7}}, raft.Snapshot{}))
	require.NoError(t, l.Close())
	return rep
}

// walState is what reads return, for comparisons.
func walState(t *testing.T, l *Log) []any {
	t.Helper()
	hs, cs, err := l.InitialState()
	require.NoError(t, err)
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	ents, err := l.Entries(first, last+1, ^uint64(0))
	require.NoError(t, err)
	snap, _ := l.Snapshot()
	return []any{hs, cs, first, last, len(ents), snap.Metadata.Index, snap.Metadata.Term, string(snap.Data)}
}

// TestSalvageFlippedByte: a flipped byte in the last, a middle or the
// first record of the log is detected; with Salvage, the prefix before it
// is kept and the node marked Recovering.
func TestSalvageFlippedByte(t *testing.T) {
	tests := []struct {
		name string
		// damage flips a byte and returns the damaged file.
		damage   func(t *testing.T, segs []string) string
		wantLast func(full uint64) uint64
	}{
		{"last record", func(t *testing.T, segs []string) string {
			last := segs[len(segs)-1]
			offs := recordOffsets(t, last)
			flipByte(t, last, offs[len(offs)-2]+recHeaderSize+1)
			return last
		}, func(full uint64) uint64 { return full }},
		{"middle record", func(t *testing.T, segs []string) string {
			offs := recordOffsets(t, segs[2])
			flipByte(t, segs[2], offs[1]+recHeaderSize+30)
			return segs[2]
		}, nil},
		{"first record", func(t *testing.T, segs []string) string {
			offs := recordOffsets(t, segs[0])
			flipByte(t, segs[0], offs[1]+recHeaderSize+1)
			return segs[0]
		}, func(uint64) uint64 { return 50 }}, // the newest intact snapshot
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, segs, _, _ := corruptFixture(t)
			full := uint64(121)
			file := tt.damage(t, segs)
			_, err := Open(dir, Options{SegmentSize: 4096, KeepSnapshots: 5})
			require.ErrorIs(t, err, ErrCorrupt, "without Salvage, damage is an error")
			assert.Contains(t, err.Error(), file)

			l, logs, err := openObserved(dir, Options{SegmentSize: 4096, KeepSnapshots: 5, Salvage: true}, zap.WarnLevel)
			require.NoError(t, err)
			last, _ := l.LastIndex()
			if tt.wantLast != nil {
				assert.Equal(t, tt.wantLast(full), last)
			} else {
				assert.Greater(t, last, uint64(1))
				assert.Less(t, last, full)
			}
			hs := l.HardState()
			if tt.name != "first record" {
				assert.Equal(t, uint64(2), hs.Term, "term and vote are kept")
				assert.Equal(t, uint64(1), hs.Vote)
			}
			rep := requireSalvaged(t, dir, file, l, logs)
			if tt.wantLast == nil {
				assert.GreaterOrEqual(t, rep.LostTo, rep.LostFrom, "entries were lost")
			}
			moved, _ := filepath.Glob(filepath.Join(dir, "*"+damagedSuffix))
			assert.NotEmpty(t, moved, "the damaged segments are kept aside")
		})
	}
}

// TestSalvageTruncatedLastSegment: a last segment cut short keeps the
// records before the cut.
func TestSalvageTruncatedLastSegment(t *testing.T) {
	dir, segs, _, _ := corruptFixture(t)
	last := segs[len(segs)-1]
	offs := recordOffsets(t, last)
	cut := offs[len(offs)-3] // inside the last records
	require.NoError(t, os.Truncate(last, int64(cut)+5))
	_, err := Open(dir, Options{SegmentSize: 4096})
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "truncated")

	l, logs, err := openObserved(dir, Options{SegmentSize: 4096, KeepSnapshots: 5, Salvage: true}, zap.WarnLevel)
	require.NoError(t, err)
	rep := requireSalvaged(t, dir, last, l, logs)
	assert.Equal(t, uint64(121), rep.LastIndexKept, "the entries before the cut are kept")
}

// TestSalvageLostSnapshot: a deleted or corrupted snapshot file is
// replaced by the older intact one (the entries after it are all there).
func TestSalvageLostSnapshot(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		t.Run(map[bool]string{false: "deleted", true: "corrupted"}[corrupt], func(t *testing.T) {
			dir, _, snaps, _ := corruptFixture(t)
			if corrupt {
				flipByte(t, snaps[1], snapHeaderSize+3)
			} else {
				require.NoError(t, os.Remove(snaps[1]))
			}
			_, err := Open(dir, Options{SegmentSize: 4096, KeepSnapshots: 5})
			require.ErrorIs(t, err, ErrCorrupt)

			l, logs, err := openObserved(dir, Options{SegmentSize: 4096, KeepSnapshots: 5, Salvage: true}, zap.WarnLevel)
			require.NoError(t, err)
			snap, err := l.Snapshot()
			require.NoError(t, err)
			assert.Equal(t, uint64(1), snap.Metadata.Index, "the bootstrap snapshot")
			assert.Equal(t, []uint64{1}, snap.Metadata.ConfState.Voters)
			first, _ := l.FirstIndex()
			assert.Equal(t, uint64(2), first)
			requireSalvaged(t, dir, snaps[1], l, logs)
			if corrupt {
				assert.FileExists(t, snaps[1]+damagedSuffix)
			}
		})
	}
}

// TestCommitBeyondLog: a hard state committing entries the log held when
// it was written, and no longer holds, is a lost promise.
func TestCommitBeyondLog(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentSize: 4096})
	require.NoError(t, err)
	var ents []raft.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, raft.Entry{Index: i, Term: 1})
	}
	require.NoError(t, l.Save(raft.HardState{Term: 1, Commit: 10}, ents, raft.Snapshot{}))
	// Only a broken writer (or a broken disk) takes committed entries away.
	require.NoError(t, l.Append([]raft.Entry{{Index: 5, Term: 2}}))
	require.NoError(t, l.Close())

	_, err = Open(dir, Options{SegmentSize: 4096})
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "commits index 10 but the log ends at 5")

	l, logs, err := openObserved(dir, Options{SegmentSize: 4096, Salvage: true}, zap.WarnLevel)
	require.NoError(t, err)
	assert.Equal(t, raft.HardState{Term: 1, Commit: 5, Recovering: true}, l.HardState())
	rep := requireSalvaged(t, dir, filepath.Join(dir, segName(1)), l, logs)
	assert.Equal(t, uint64(10), rep.LostTo)
}

// TestSegmentDeletedUnderLog: removing the data directory while the Log
// runs fails the next Save (it went to a file no Open will read) and
// poisons the log.
func TestSegmentDeletedUnderLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l, err := Open(dir, Options{SegmentSize: 1 << 20})
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Save(raft.HardState{Term: 1}, []raft.Entry{{Index: 1, Term: 1}}, raft.Snapshot{}))
	require.NoError(t, os.RemoveAll(dir))
	err = l.Save(raft.HardState{Term: 1, Commit: 1}, []raft.Entry{{Index: 2, Term: 1}}, raft.Snapshot{})
	require.ErrorIs(t, err, ErrUnlinked)
	assert.Contains(t, err.Error(), dir)
	assert.ErrorIs(t, l.SetHardState(raft.HardState{Term: 2}), ErrUnlinked, "poisoned")
	last, _ := l.LastIndex()
	assert.Equal(t, uint64(1), last, "the failed write is not visible")
}

// TestSalvageLostInstalledSnapshot: when the snapshot the log starts from
// is lost and no older one can stand in for it, the salvaged log is empty
// (index 0), keeping the term and vote, marked Recovering.
func TestSalvageLostInstalledSnapshot(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentSize: 4096})
	require.NoError(t, err)
	snap := raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 10, Term: 3, ConfState: raft.ConfState{Voters: []uint64{1}}}, Data: []byte("x")}
	require.NoError(t, l.Save(raft.HardState{Term: 3, Vote: 2, Commit: 10}, nil, snap))
	require.NoError(t, l.Append([]raft.Entry{{Index: 11, Term: 3}, {Index: 12, Term: 3}}))
	require.NoError(t, l.Close())
	name := filepath.Join(dir, snapName(10, 3))
	require.NoError(t, os.Remove(name))

	l, logs, err := openObserved(dir, Options{SegmentSize: 4096, Salvage: true}, zap.WarnLevel)
	require.NoError(t, err)
	assert.Equal(t, raft.HardState{Term: 3, Vote: 2, Recovering: true}, l.HardState())
	rep := requireSalvaged(t, dir, name, l, logs)
	assert.Equal(t, uint64(0), rep.LastIndexKept)
	assert.Equal(t, uint64(12), rep.LostTo)
}
