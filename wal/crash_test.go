package wal_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wal/memfs"
)

// walTarget is what the scripted operations drive: a Log, or the model.
type walTarget interface {
	Append(ents []raft.Entry) error
	SetHardState(hs raft.HardState) error
	CreateSnapshot(i uint64, cs *raft.ConfState, data []byte) (raft.Snapshot, error)
	Compact(i uint64) error
	Save(hs raft.HardState, ents []raft.Entry, snap raft.Snapshot) error
	raft.Storage
}

// walModel is the reference: a MemoryStorage with Save spelled out as the
// three calls of step 1 of the host loop.
type walModel struct{ *raft.MemoryStorage }

func (m walModel) Save(hs raft.HardState, ents []raft.Entry, snap raft.Snapshot) error {
	if !snap.IsEmpty() {
		if err := m.ApplySnapshot(snap); err != nil {
			return err
		}
	}
	if err := m.Append(ents); err != nil {
		return err
	}
	if !hs.IsEmpty() {
		return m.SetHardState(hs)
	}
	return nil
}

// walObs is everything a node can read from a storage, normalised.
type walObs struct {
	HS      raft.HardState
	CS      raft.ConfState
	First   uint64
	Last    uint64
	Entries []raft.Entry
	Snap    raft.Snapshot
}

func walObserve(t testing.TB, s raft.Storage) walObs {
	t.Helper()
	var o walObs
	var err error
	o.HS, o.CS, err = s.InitialState()
	require.NoError(t, err)
	o.First, err = s.FirstIndex()
	require.NoError(t, err)
	o.Last, err = s.LastIndex()
	require.NoError(t, err)
	ents, err := s.Entries(o.First, o.Last+1, ^uint64(0))
	require.NoError(t, err)
	for _, e := range ents {
		if len(e.Data) == 0 {
			e.Data = nil
		}
		o.Entries = append(o.Entries, e)
	}
	o.Snap, err = s.Snapshot()
	require.NoError(t, err)
	if len(o.Snap.Data) == 0 {
		o.Snap.Data = nil
	}
	return o
}

func (o walObs) String() string {
	return fmt.Sprintf("hs=%+v first=%d last=%d snap=%d/%d ents=%d", o.HS, o.First, o.Last,
		o.Snap.Metadata.Index, o.Snap.Metadata.Term, len(o.Entries))
}

// walEnts returns entries lo..hi of term with recognisable data of size
// bytes.
func walEnts(lo, hi, term uint64, size int) []raft.Entry {
	var out []raft.Entry
	for i := lo; i <= hi; i++ {
		d := fmt.Sprintf("%d/%d:", i, term)
		d += strings.Repeat("x", max(0, size-len(d)))
		out = append(out, raft.Entry{Index: i, Term: term, Data: []byte(d)})
	}
	return out
}

func walSnap(index, term uint64, data string) raft.Snapshot {
	return raft.Snapshot{
		Metadata: raft.SnapshotMetadata{Index: index, Term: term, ConfState: raft.ConfState{Voters: []uint64{1, 2, 3}}},
		Data:     []byte(data),
	}
}

// walOp is one scripted write.
type walOp struct {
	name string
	do   func(s walTarget) error
}

// walScript is a sequence of writes that rolls segments, truncates a
// conflicting tail, snapshots, compacts and installs a snapshot, so that
// a crash can hit every kind of write the Log makes.
func walScript() []walOp {
	hs := func(term, vote, commit uint64) raft.HardState {
		return raft.HardState{Term: term, Vote: vote, Commit: commit}
	}
	return []walOp{
		{"bootstrap", func(s walTarget) error { return s.Save(raft.HardState{}, nil, walSnap(1, 1, "")) }},
		{"first entries", func(s walTarget) error { return s.Save(hs(2, 1, 1), walEnts(2, 6, 2, 100), raft.Snapshot{}) }},
		{"roll", func(s walTarget) error { return s.Save(hs(2, 1, 4), walEnts(7, 20, 2, 300), raft.Snapshot{}) }},
		{"conflict", func(s walTarget) error { return s.Save(hs(3, 2, 4), walEnts(15, 25, 3, 200), raft.Snapshot{}) }},
		{"commit", func(s walTarget) error { return s.SetHardState(hs(3, 2, 20)) }},
		{"snapshot", func(s walTarget) error { _, err := s.CreateSnapshot(18, nil, []byte("app@18")); return err }},
		{"compact", func(s walTarget) error { return s.Compact(18) }},
		{"append", func(s walTarget) error { return s.Append(walEnts(26, 40, 3, 500)) }},
		{"install snapshot", func(s walTarget) error { return s.Save(hs(4, 0, 50), nil, walSnap(50, 4, "app@50")) }},
		{"after install", func(s walTarget) error { return s.Save(hs(4, 0, 50), walEnts(51, 60, 4, 150), raft.Snapshot{}) }},
		{"snapshot 2", func(s walTarget) error { _, err := s.CreateSnapshot(55, nil, []byte("app@55")); return err }},
		{"compact 2", func(s walTarget) error { return s.Compact(55) }},
		{"conflict 2", func(s walTarget) error { return s.Save(hs(5, 3, 55), walEnts(57, 70, 5, 250), raft.Snapshot{}) }},
		{"snapshot 3", func(s walTarget) error { _, err := s.CreateSnapshot(60, nil, []byte("app@60")); return err }},
		{"compact 3", func(s walTarget) error { return s.Compact(60) }},
		{"last", func(s walTarget) error { return s.Save(hs(5, 3, 70), walEnts(71, 72, 5, 10), raft.Snapshot{}) }},
	}
}

// walModelStates returns the model's observation before the script and
// after each operation.
func walModelStates(t testing.TB) []walObs {
	t.Helper()
	m := walModel{raft.NewMemoryStorage()}
	states := []walObs{walObserve(t, m)}
	for _, op := range walScript() {
		require.NoError(t, op.do(m), op.name)
		states = append(states, walObserve(t, m))
	}
	return states
}

const walCrashDir = "/data/wal"

func walCrashOpts(fs *memfs.FS) wal.Options {
	return wal.Options{FS: fs, SegmentSize: 4096, KeepSnapshots: 1}
}

// runWalScript opens a Log on fs and runs the script until an operation
// fails; it returns how many operations succeeded and the failure.
func runWalScript(fs *memfs.FS) (acked int, err error) {
	l, err := wal.Open(walCrashDir, walCrashOpts(fs))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	for _, op := range walScript() {
		if err := op.do(l); err != nil {
			return acked, fmt.Errorf("%s: %w", op.name, err)
		}
		acked++
	}
	return acked, nil
}

// TestCrashAtEveryPoint crashes the file system after each of its calls in
// turn (with unsynced writes lost, or torn at sector granularity), then
// recovers and checks that the log holds exactly the state after the last
// acknowledged write or after the one in flight: nothing synced is lost,
// nothing unwritten appears, the hard state is not older than the last
// synced one. The recovered log must then accept writes and reopen.
func TestCrashAtEveryPoint(t *testing.T) {
	states := walModelStates(t)
	total := func() int {
		fs := memfs.New()
		_, err := runWalScript(fs)
		require.NoError(t, err)
		return fs.Ops()
	}()
	require.Greater(t, total, 50, "the script should make many file system calls")
	for _, torn := range []bool{false, true} {
		crashes := 0
		for n := 0; n <= total; n++ {
			fs := memfs.New()
			fs.CrashAfter(n)
			acked, err := runWalScript(fs)
			if err == nil {
				require.Equal(t, len(states)-1, acked)
				continue
			}
			require.ErrorIs(t, err, memfs.ErrCrashed, "crash %d", n)
			crashes++
			var rng *rand.Rand
			if torn {
				rng = rand.New(rand.NewPCG(uint64(n), 7))
			}
			fs.Restart(rng)
			l, err := wal.Open(walCrashDir, walCrashOpts(fs))
			require.NoError(t, err, "recover after crash %d (torn=%v, %d ops acknowledged)", n, torn, acked)
			got := walObserve(t, l)
			if got.String() != states[acked].String() || !assert.ObjectsAreEqual(states[acked], got) {
				require.Less(t, acked+1, len(states), "crash %d", n)
				require.Equal(t, states[acked+1], got,
					"crash %d (torn=%v): recovered %v, want %v (last acknowledged) or %v (in flight)",
					n, torn, got, states[acked], states[acked+1])
			}
			// The recovered log keeps working.
			next := got.Last + 1
			require.NoError(t, l.Save(raft.HardState{Term: 9, Vote: 1, Commit: got.HS.Commit}, walEnts(next, next+2, 9, 64), raft.Snapshot{}))
			want := walObserve(t, l)
			require.NoError(t, l.Close())
			l, err = wal.Open(walCrashDir, walCrashOpts(fs))
			require.NoError(t, err, "reopen after crash %d", n)
			assert.Equal(t, want, walObserve(t, l), "crash %d", n)
			require.NoError(t, l.Close())
		}
		require.Equal(t, total, crashes, "every call should have been crashed after")
	}
}

var errInjected = errors.New("injected I/O error")

// TestFailurePoisons fails each file system call in turn: the failing
// write returns the error, every later write returns it too, reads show
// no state that was not durable, and a restart recovers a consistent log.
func TestFailurePoisons(t *testing.T) {
	states := walModelStates(t)
	fs0 := memfs.New()
	_, err := runWalScript(fs0)
	require.NoError(t, err)
	total := fs0.Ops()
	for n := 1; n <= total; n++ {
		fs := memfs.New()
		l, err := wal.Open(walCrashDir, walCrashOpts(fs))
		if err != nil {
			continue // n beyond the ops Open makes: counted from here
		}
		fs.FailAt(n, errInjected)
		acked := 0
		var opErr error
		for _, op := range walScript() {
			if opErr = op.do(l); opErr != nil {
				break
			}
			acked++
		}
		if opErr == nil {
			require.NoError(t, l.Close())
			continue
		}
		require.ErrorIs(t, opErr, errInjected, "fail %d", n)
		got := walObserve(t, l)
		if !assert.ObjectsAreEqual(states[acked], got) {
			require.Equal(t, states[acked+1], got, "fail %d: reads show state that is neither acknowledged nor in flight", n)
		}
		// Poisoned: every later write fails with the same error.
		assert.ErrorIs(t, l.Append(walEnts(got.Last+1, got.Last+1, 9, 8)), errInjected)
		assert.ErrorIs(t, l.SetHardState(raft.HardState{Term: 9}), errInjected)
		assert.ErrorIs(t, l.Save(raft.HardState{Term: 9}, nil, raft.Snapshot{}), errInjected)
		assert.ErrorIs(t, l.Compact(got.First), errInjected)
		_, err = l.CreateSnapshot(got.Last, nil, nil)
		assert.ErrorIs(t, err, errInjected)
		assert.ErrorIs(t, l.ApplySnapshot(walSnap(1000, 9, "")), errInjected)
		assert.Equal(t, got, walObserve(t, l), "a failed write changed what reads return")
		require.NoError(t, l.Close())

		fs.Restart(nil)
		l, err = wal.Open(walCrashDir, walCrashOpts(fs))
		require.NoError(t, err, "recover after failure %d", n)
		rec := walObserve(t, l)
		if !assert.ObjectsAreEqual(states[acked], rec) {
			require.Equal(t, states[acked+1], rec, "fail %d", n)
		}
		require.NoError(t, l.Close())
	}
}
