package rafttest

import (
	"fmt"
	"testing"
	"time"
)

// storageFaultMode is one way of running the cluster with damaged storage.
type storageFaultMode struct {
	name       string
	nodes      int
	membership bool
	pipelined  bool
}

var storageFaultModes = []storageFaultMode{
	{name: "plain/3", nodes: 3},
	{name: "plain/5", nodes: 5},
	{name: "membership/5", nodes: 5, membership: true},
	{name: "pipelined/3", nodes: 3, pipelined: true},
}

// storageFaultConfig is the run of seed in mode m: every other fault too,
// with membership changes down to three voters (so that one damaged node
// stays a minority), liveness and catch-up checked after healing.
func storageFaultConfig(m storageFaultMode, seed uint64) Config {
	faults := with(everyFaultButMembership, func(f *Faults) { f.StorageFaults = true })
	minVoters := 0
	if m.membership {
		faults.Membership, minVoters = true, 3
	}
	return checkedConfig(seed, m.nodes, faults, m.pipelined, minVoters)
}

// TestStorageFaults damages nodes' storage under every other fault — wiped
// (rejoining or bootstrapping again), a cut log, a lost snapshot, an old
// backup restored — a minority at a time, and requires the safety checks to
// hold, every damaged node to be repaired and every member to catch up after
// healing.
func TestStorageFaults(t *testing.T) {
	for i, m := range storageFaultModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			runStorageFaults(t, m, uint64(60+i)*1_000_000)
		})
	}
}

func runStorageFaults(t *testing.T, m storageFaultMode, base uint64) {
	var total Counts
	start := time.Now()
	list := seeds(base)
	if *flagSeeds == 0 && *flagSeed == 0 {
		list = list[:len(list)/2]
	}
	missed, failed := 0, 0
	for _, seed := range list {
		cfg := storageFaultConfig(m, seed)
		res := Run(cfg)
		if res.Failed() {
			res = runTraced(t, cfg, "TestStorageFaults", m.name)
		}
		total.Add(res.Counts)
		if res.Failed() {
			failed++
			continue
		}
		if err := res.CheckInjected(); err != nil {
			missed++
			t.Logf("%s: %v", m.name, err)
		}
	}
	t.Logf("%s: %d seeds in %v, %d failed, %d injected not every kind: %s",
		m.name, len(list), time.Since(start).Round(time.Millisecond), failed, missed, total)
	assertFewMissed(t, missed, len(list))
	if *flagSeed != 0 {
		return
	}
	for _, c := range []struct {
		n    int
		what string
	}{
		{total.Wipes, "wiped node rejoining"},
		{total.WipeBootstraps, "wiped node bootstrapping again"},
		{total.Truncations, "log cut"},
		{total.LostSnapshots, "snapshot lost"},
		{total.BackupRestores, "backup restored"},
		{total.Repairs, "damaged node repaired"},
		{total.IncarnationRecords, "incarnation recorded"},
	} {
		assertCovered(t, c.n, fmt.Sprintf("%s: no %s", m.name, c.what))
	}
}
