package memfs_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wal/memfs"
)

func writeFile(t *testing.T, fs *memfs.FS, name, data string, syncFile, syncDir bool) {
	t.Helper()
	f, err := fs.Create(name)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(data), 0)
	require.NoError(t, err)
	if syncFile {
		require.NoError(t, f.Sync())
	}
	if syncDir {
		require.NoError(t, fs.SyncDir("/d"))
	}
}

func TestRestartKeepsOnlySynced(t *testing.T) {
	tests := []struct {
		name     string
		syncFile bool
		syncDir  bool
		want     string
		wantGone bool
	}{
		{name: "nothing synced", wantGone: true},
		{name: "file synced, directory not", syncFile: true, wantGone: true},
		{name: "directory synced, file not", syncDir: true, want: ""},
		{name: "both synced", syncFile: true, syncDir: true, want: "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			writeFile(t, fs, "/d/f", "data", tt.syncFile, tt.syncDir)
			fs.Restart(nil)
			got, err := fs.ReadFile("/d/f")
			if tt.wantGone {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestRenameAndRemoveNeedDirectorySync(t *testing.T) {
	fs := memfs.New()
	writeFile(t, fs, "/d/a", "A", true, true)
	require.NoError(t, fs.Rename("/d/a", "/d/b"))
	writeFile(t, fs, "/d/c", "C", true, true) // syncs the rename too
	require.NoError(t, fs.Remove("/d/c"))
	fs.Restart(nil)
	assert.Equal(t, []string{"b", "c"}, mustReadDir(t, fs))
}

func mustReadDir(t *testing.T, fs *memfs.FS) []string {
	t.Helper()
	names, err := fs.ReadDir("/d")
	require.NoError(t, err)
	return names
}

func TestUnsyncedOverwriteReverts(t *testing.T) {
	fs := memfs.New()
	writeFile(t, fs, "/d/f", "old!", true, true)
	f, err := fs.OpenRW("/d/f")
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("new"), 0)
	require.NoError(t, err)
	fs.Restart(nil)
	got, err := fs.ReadFile("/d/f")
	require.NoError(t, err)
	assert.Equal(t, "old!", string(got))
}

func TestTornRestartMixesSectors(t *testing.T) {
	// Over many seeds, a torn restart keeps some unsynced sectors and
	// reverts others, sector by sector, never inventing bytes.
	kept, reverted := 0, 0
	for seed := range uint64(20) {
		fs := memfs.New()
		old := make([]byte, 4*memfs.SectorSize)
		writeFile(t, fs, "/d/f", string(old), true, true)
		f, err := fs.OpenRW("/d/f")
		require.NoError(t, err)
		neu := make([]byte, len(old))
		for i := range neu {
			neu[i] = 0xAA
		}
		_, err = f.WriteAt(neu, 0)
		require.NoError(t, err)
		fs.Restart(rand.New(rand.NewPCG(seed, 1)))
		got, err := fs.ReadFile("/d/f")
		require.NoError(t, err)
		require.Len(t, got, len(old))
		for s := 0; s < len(got); s += memfs.SectorSize {
			sec := got[s : s+memfs.SectorSize]
			switch {
			case string(sec) == string(neu[s:s+memfs.SectorSize]):
				kept++
			case string(sec) == string(old[s:s+memfs.SectorSize]):
				reverted++
			default:
				t.Fatalf("seed %d: sector at %d is neither old nor new", seed, s)
			}
		}
	}
	assert.Positive(t, kept)
	assert.Positive(t, reverted)
}

func TestFaultInjection(t *testing.T) {
	errBoom := errors.New("boom")
	fs := memfs.New()
	fs.FailAt(2, errBoom)
	f, err := fs.Create("/d/f") // call 1
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("x"), 0) // call 2 fails
	require.ErrorIs(t, err, errBoom)
	_, err = f.WriteAt([]byte("x"), 0) // call 3 works
	require.NoError(t, err)

	fs.CrashAfter(1)
	require.NoError(t, f.Sync(), "the call the crash follows takes effect")
	assert.True(t, fs.Crashed())
	_, err = f.WriteAt([]byte("y"), 0)
	require.ErrorIs(t, err, memfs.ErrCrashed)
	_, err = fs.ReadFile("/d/f")
	require.ErrorIs(t, err, memfs.ErrCrashed)
}

func TestLock(t *testing.T) {
	fs := memfs.New()
	l1, err := fs.Lock("/d/LOCK")
	require.NoError(t, err)
	_, err = fs.Lock("/d/LOCK")
	require.ErrorIs(t, err, wal.ErrLocked)
	fs.Restart(nil)
	l2, err := fs.Lock("/d/LOCK")
	require.NoError(t, err, "a restart releases locks")
	require.NoError(t, l1.Close())
	_, err = fs.Lock("/d/LOCK")
	require.ErrorIs(t, err, wal.ErrLocked, "a lock from before the restart cannot release the new one")
	require.NoError(t, l2.Close())
}
