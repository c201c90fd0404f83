package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keelraft/raft"
)

// corruptFixture builds a closed log in a temporary directory: a bootstrap
// snapshot, several segments of entries, a snapshot file at 50, and two
// small records at the end of the last segment. It returns the directory,
// the segment paths and the snapshot paths, oldest first, and the state
// after the last write but one.
func corruptFixture(t *testing.T) (dir string, segs, snaps []string, beforeLast raft.HardState) {
	t.Helper()
	dir = t.TempDir()
	l, err := Open(dir, Options{SegmentSize: 4096, KeepSnapshots: 5})
	require.NoError(t, err)
	boot := raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 1, Term: 1, ConfState: raft.ConfState{Voters: []uint64{1}}}}
	require.NoError(t, l.Save(raft.HardState{}, nil, boot))
	next := uint64(2)
	for range 12 {
		var ents []raft.Entry
		for range 10 {
			ents = append(ents, raft.Entry{Index: next, Term: 2, Data: []byte(strings.Repeat("d", 150))})
			next++
		}
		require.NoError(t, l.Save(raft.HardState{Term: 2, Vote: 1, Commit: next - 5}, ents, raft.Snapshot{}))
	}
	_, err = l.CreateSnapshot(50, nil, []byte("state at 50"))
	require.NoError(t, err)
	beforeLast = raft.HardState{Term: 2, Vote: 1, Commit: next - 2}
	require.NoError(t, l.SetHardState(beforeLast))
	require.NoError(t, l.SetHardState(raft.HardState{Term: 2, Vote: 1, Commit: next - 1}))
	require.NoError(t, l.Close())
	segs, _ = filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	snaps, _ = filepath.Glob(filepath.Join(dir, "*"+snapSuffix))
	sort.Strings(segs)
	sort.Strings(snaps)
	require.GreaterOrEqual(t, len(segs), 4, "the fixture should span several segments")
	require.Len(t, snaps, 2)
	return dir, segs, snaps, beforeLast
}

// recordOffsets returns the offsets of the valid records of a segment.
func recordOffsets(t testing.TB, path string) []int {
	t.Helper()
	buf, err := os.ReadFile(path)
	require.NoError(t, err)
	var offs []int
	for off := 0; ; {
		_, _, next, ok := parseRecord(buf, off)
		if !ok {
			return offs
		}
		offs = append(offs, off)
		off = next
	}
}

func flipByte(t testing.TB, path string, off int) {
	t.Helper()
	buf, err := os.ReadFile(path)
	require.NoError(t, err)
	buf[off] ^= 0x40
	require.NoError(t, os.WriteFile(path, buf, 0o644))
}

func TestCorruption(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the directory and returns the file the error
		// must name.
		damage  func(t *testing.T, segs, snaps []string) string
		wantMsg string
	}{
		{
			name: "flipped byte mid-segment",
			damage: func(t *testing.T, segs, _ []string) string {
				offs := recordOffsets(t, segs[1])
				flipByte(t, segs[1], offs[1]+40)
				return segs[1]
			},
			wantMsg: "followed by a valid record",
		},
		{
			name: "flipped byte in the last segment before a valid record",
			damage: func(t *testing.T, segs, _ []string) string {
				last := segs[len(segs)-1]
				offs := recordOffsets(t, last)
				require.GreaterOrEqual(t, len(offs), 3)
				flipByte(t, last, offs[len(offs)-2]+recHeaderSize)
				return last
			},
			wantMsg: "followed by a valid record",
		},
		{
			name: "flipped header byte in the last segment before a valid record",
			damage: func(t *testing.T, segs, _ []string) string {
				last := segs[len(segs)-1]
				offs := recordOffsets(t, last)
				flipByte(t, last, offs[len(offs)-2])
				return last
			},
			wantMsg: "followed by a valid record",
		},
		{
			name: "truncated segment",
			damage: func(t *testing.T, segs, _ []string) string {
				require.NoError(t, os.Truncate(segs[1], 1000))
				return segs[1]
			},
			wantMsg: "truncated",
		},
		{
			name: "last segment truncated at a record boundary",
			damage: func(t *testing.T, segs, _ []string) string {
				last := segs[len(segs)-1]
				offs := recordOffsets(t, last)
				require.NoError(t, os.Truncate(last, int64(offs[len(offs)-1])))
				return last
			},
			wantMsg: "truncated",
		},
		{
			name: "deleted middle segment",
			damage: func(t *testing.T, segs, _ []string) string {
				require.NoError(t, os.Remove(segs[2]))
				return filepath.Base(segs[2]) + " is missing"
			},
			wantMsg: "missing",
		},
		{
			name: "segment lost its last record but is still sealed",
			damage: func(t *testing.T, segs, _ []string) string {
				buf, err := os.ReadFile(segs[1])
				require.NoError(t, err)
				offs := recordOffsets(t, segs[1])
				require.GreaterOrEqual(t, len(offs), 4, "header, updates and their markers, seal")
				// Drop the last update and its marker; keep the seal right
				// after the rest.
				lastUpdate, seal := offs[len(offs)-3], offs[len(offs)-1]
				out := append([]byte(nil), buf[:lastUpdate]...)
				out = append(out, buf[seal:]...)
				out = append(out, make([]byte, len(buf)-len(out))...)
				require.NoError(t, os.WriteFile(segs[1], out, 0o644))
				return segs[2]
			},
			wantMsg: "but the previous segments end at",
		},
		{
			name: "segment replaced by a copy of another",
			damage: func(t *testing.T, segs, _ []string) string {
				buf, err := os.ReadFile(segs[2])
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(segs[1], buf, 0o644))
				return segs[1]
			},
			wantMsg: "names sequence 3",
		},
		{
			name: "deleted last segment",
			damage: func(t *testing.T, segs, _ []string) string {
				require.NoError(t, os.Remove(segs[len(segs)-1]))
				return segs[len(segs)-2]
			},
			wantMsg: "is missing",
		},
		{
			name: "deleted first segment",
			damage: func(t *testing.T, segs, _ []string) string {
				require.NoError(t, os.Remove(segs[0]))
				return segs[1]
			},
			wantMsg: "not in any segment",
		},
		{
			name: "corrupted snapshot",
			damage: func(t *testing.T, _, snaps []string) string {
				flipByte(t, snaps[1], snapHeaderSize+3)
				return snaps[1]
			},
			wantMsg: "checksum mismatch",
		},
		{
			name: "truncated snapshot",
			damage: func(t *testing.T, _, snaps []string) string {
				require.NoError(t, os.Truncate(snaps[1], 30))
				return snaps[1]
			},
			wantMsg: "body bytes",
		},
		{
			name: "deleted snapshot",
			damage: func(t *testing.T, _, snaps []string) string {
				require.NoError(t, os.Remove(snaps[1]))
				return snaps[1]
			},
			wantMsg: "cannot be read",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, segs, snaps, _ := corruptFixture(t)
			names := tt.damage(t, segs, snaps)
			l, err := Open(dir, Options{SegmentSize: 4096})
			if err == nil {
				_ = l.Close()
			}
			require.ErrorIs(t, err, ErrCorrupt)
			msg := err.Error()
			assert.Contains(t, msg, names, "the error names the file")
			assert.Contains(t, msg, "at offset", "the error names the offset")
			assert.Contains(t, msg, tt.wantMsg)
		})
	}
}

// TestTornLastRecord: damage confined to the last record of the last
// segment, with no synced marker after it, is what a crash in the middle of
// its write leaves (the marker is written only once the sync returned), so
// it is cut away, logged at INFO, and the log recovers to the write before
// it, without the Recovering flag.
func TestTornLastRecord(t *testing.T) {
	for _, where := range []int{0, 5, recHeaderSize, recHeaderSize + 3} {
		t.Run(fmt.Sprint("byte ", where), func(t *testing.T) {
			dir, segs, _, beforeLast := corruptFixture(t)
			last := segs[len(segs)-1]
			offs := recordOffsets(t, last)
			marker := offs[len(offs)-1]
			require.Equal(t, recSynced, recordType(t, last, marker))
			zeroBytes(t, last, marker, markerSize)
			flipByte(t, last, offs[len(offs)-2]+where)
			core, logs := observer.New(zap.InfoLevel)
			l, err := Open(dir, Options{SegmentSize: 4096, Logger: zap.New(core)})
			require.NoError(t, err)
			assert.Equal(t, beforeLast, l.HardState())
			assert.Nil(t, l.Salvaged())
			torn := logs.FilterMessageSnippet("torn write").All()
			require.Len(t, torn, 1)
			assert.Equal(t, zap.InfoLevel, torn[0].Level)
			assert.Equal(t, last, torn[0].ContextMap()["file"])
			// The torn bytes are cleared: a short write in their place
			// reopens cleanly.
			require.NoError(t, l.SetHardState(raft.HardState{Term: 3}))
			require.NoError(t, l.Close())
			l, err = Open(dir, Options{SegmentSize: 4096})
			require.NoError(t, err)
			assert.Equal(t, raft.HardState{Term: 3}, l.HardState())
			require.NoError(t, l.Close())
		})
	}
}

// TestDamagedLastRecord: a flipped byte in the last record of the log,
// which its synced marker vouches for, is damage, not a torn write: it was
// acknowledged, so Open refuses instead of silently dropping it.
func TestDamagedLastRecord(t *testing.T) {
	for _, where := range []int{0, 5, recHeaderSize, recHeaderSize + 3} {
		t.Run(fmt.Sprint("byte ", where), func(t *testing.T) {
			dir, segs, _, _ := corruptFixture(t)
			last := segs[len(segs)-1]
			offs := recordOffsets(t, last)
			upd := offs[len(offs)-1]
			for recordType(t, last, upd) != recUpdate {
				upd = offs[slices.Index(offs, upd)-1]
			}
			flipByte(t, last, upd+where)
			_, err := Open(dir, Options{SegmentSize: 4096})
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), last)
			assert.Contains(t, err.Error(), fmt.Sprintf("at offset %d", upd))
			assert.Contains(t, err.Error(), "a synced record was damaged")
		})
	}
}

// TestLostMarkerOfLastRecord: a crash between the sync of the last record
// and the write of its marker leaves the record unmarked but whole: it is
// kept (it may have been acknowledged just before the crash... or not:
// either is allowed), and Open writes its marker so that later damage to
// it is detected.
func TestLostMarkerOfLastRecord(t *testing.T) {
	dir, segs, _, _ := corruptFixture(t)
	last := segs[len(segs)-1]
	offs := recordOffsets(t, last)
	zeroBytes(t, last, offs[len(offs)-1], markerSize)
	l, err := Open(dir, Options{SegmentSize: 4096})
	require.NoError(t, err)
	want := l.HardState()
	require.NoError(t, l.Close())
	assert.Equal(t, offs, recordOffsets(t, last), "the marker is back")
	l, err = Open(dir, Options{SegmentSize: 4096})
	require.NoError(t, err)
	assert.Equal(t, want, l.HardState())
	require.NoError(t, l.Close())
}

func recordType(t testing.TB, path string, off int) uint8 {
	t.Helper()
	buf, err := os.ReadFile(path)
	require.NoError(t, err)
	typ, _, _, ok := parseRecord(buf, off)
	require.True(t, ok)
	return typ
}

func zeroBytes(t testing.TB, path string, off, n int) {
	t.Helper()
	buf, err := os.ReadFile(path)
	require.NoError(t, err)
	clear(buf[off : off+n])
	require.NoError(t, os.WriteFile(path, buf, 0o644))
}

// TestOpenRemovesUnfinishedFiles: temporary files left by a crash while a
// segment or snapshot was being written are removed, and the log opens.
func TestOpenRemovesUnfinishedFiles(t *testing.T) {
	dir, _, _, _ := corruptFixture(t)
	for _, name := range []string{"00000000000000ff.wal.tmp", snapName(999, 9) + tmpSuffix} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o644))
	}
	l, err := Open(dir, Options{SegmentSize: 4096, KeepSnapshots: 5})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	tmps, err := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix))
	require.NoError(t, err)
	assert.Empty(t, tmps)
}

// TestOpenRemovesOrphanSnapshot: a snapshot file newer than the one the
// log refers to was written before a crash lost its record; it is removed.
func TestOpenRemovesOrphanSnapshot(t *testing.T) {
	dir, _, snaps, _ := corruptFixture(t)
	orphan := filepath.Join(dir, snapName(999, 9))
	buf, err := os.ReadFile(snaps[1])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(orphan, buf, 0o644))
	l, err := Open(dir, Options{SegmentSize: 4096, KeepSnapshots: 5})
	require.NoError(t, err)
	snap, err := l.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, uint64(50), snap.Metadata.Index)
	require.NoError(t, l.Close())
	assert.NoFileExists(t, orphan)
}
