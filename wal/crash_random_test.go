package wal_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wal/memfs"
)

// walRandomScript generates n valid writes from seed: appends (some
// replacing an uncommitted tail), commits, snapshots with compaction and
// installed snapshots, as a raft host would issue them. It returns the
// operations and the model's observation before and after each.
func walRandomScript(t testing.TB, seed uint64, n int) ([]walOp, []walObs) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	m := walModel{raft.NewMemoryStorage()}
	var ops []walOp
	states := []walObs{walObserve(t, m)}
	add := func(op walOp) {
		require.NoError(t, op.do(m), "seed %d: model rejected %s", seed, op.name)
		ops = append(ops, op)
		states = append(states, walObserve(t, m))
	}
	add(walOp{"bootstrap", func(s walTarget) error { return s.Save(raft.HardState{}, nil, walSnap(1, 1, "")) }})
	term, vote := uint64(1), uint64(0)
	for len(ops) < n {
		o := states[len(states)-1]
		hs := o.HS
		switch k := rng.IntN(10); {
		case k < 6: // entries, maybe replacing the uncommitted tail
			lo := o.Last + 1
			if o.Last > hs.Commit && rng.IntN(3) == 0 {
				lo = hs.Commit + 1 + rng.Uint64N(o.Last-hs.Commit)
				term++
			}
			cnt := 1 + rng.Uint64N(20)
			size := 1 + rng.IntN(400)
			if rng.IntN(4) == 0 {
				vote = 1 + rng.Uint64N(3)
			}
			newHS := raft.HardState{Term: term, Vote: vote, Commit: min(lo+cnt-1, hs.Commit+rng.Uint64N(10))}
			ents := walEnts(lo, lo+cnt-1, term, size)
			add(walOp{fmt.Sprintf("save %d..%d", lo, lo+cnt-1), func(s walTarget) error {
				return s.Save(newHS, ents, raft.Snapshot{})
			}})
		case k < 7: // commit only
			newHS := hs
			newHS.Commit = o.Last
			add(walOp{"commit", func(s walTarget) error { return s.SetHardState(newHS) }})
		case k < 9: // snapshot and compact
			if hs.Commit <= o.Snap.Metadata.Index || hs.Commit < o.First {
				continue
			}
			at := hs.Commit
			data := []byte(fmt.Sprintf("app@%d", at))
			add(walOp{fmt.Sprintf("snapshot %d", at), func(s walTarget) error {
				_, err := s.CreateSnapshot(at, nil, data)
				return err
			}})
			if keep := rng.Uint64N(5); at > keep && at-keep >= o.First {
				c := at - keep
				add(walOp{fmt.Sprintf("compact %d", c), func(s walTarget) error { return s.Compact(c) }})
			}
		default: // a leader's snapshot replaces the log
			term++
			at := o.Last + 1 + rng.Uint64N(30)
			snap := walSnap(at, term, fmt.Sprintf("leader@%d", at))
			newHS := raft.HardState{Term: term, Vote: vote, Commit: at}
			add(walOp{fmt.Sprintf("install %d", at), func(s walTarget) error { return s.Save(newHS, nil, snap) }})
		}
	}
	return ops, states
}

// TestCrashAtEveryPointRandom runs the crash-at-every-point check on
// seeded random scripts, tearing unsynced writes on every other crash.
func TestCrashAtEveryPointRandom(t *testing.T) {
	seeds := uint64(8)
	if testing.Short() {
		seeds = 3
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		ops, states := walRandomScript(t, seed, 40)
		run := func(fs *memfs.FS) (int, error) {
			l, err := wal.Open(walCrashDir, walCrashOpts(fs))
			if err != nil {
				return 0, err
			}
			defer l.Close()
			for i, op := range ops {
				if err := op.do(l); err != nil {
					return i, err
				}
			}
			return len(ops), nil
		}
		fs0 := memfs.New()
		_, err := run(fs0)
		require.NoError(t, err, "seed %d", seed)
		total := fs0.Ops()
		t.Logf("seed %d: %d operations, %d file system calls, %d files at the end", seed, len(ops), total, len(fs0.Names()))
		for n := 0; n < total; n++ {
			fs := memfs.New()
			fs.CrashAfter(n)
			acked, err := run(fs)
			require.ErrorIs(t, err, memfs.ErrCrashed, "seed %d crash %d", seed, n)
			var rng *rand.Rand
			if n%2 == 1 {
				rng = rand.New(rand.NewPCG(seed, uint64(n)))
			}
			fs.Restart(rng)
			l, err := wal.Open(walCrashDir, walCrashOpts(fs))
			require.NoError(t, err, "seed %d crash %d: recovery failed", seed, n)
			got := walObserve(t, l)
			require.NoError(t, l.Close())
			if acked+1 < len(states) && got.String() == states[acked+1].String() {
				require.Equal(t, states[acked+1], got, "seed %d crash %d", seed, n)
				continue
			}
			require.Equal(t, states[acked], got, "seed %d crash %d after %q: recovered %v, want %v or the in-flight %v",
				seed, n, ops[acked].name, got, states[acked], states[min(acked+1, len(states)-1)])
		}
	}
}
