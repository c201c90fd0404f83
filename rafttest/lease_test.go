package rafttest

import (
	"testing"

	"github.com/keelraft/raft"
	"github.com/stretchr/testify/assert"
)

// TestLeaseReads runs lease-based reads (docs/reliability.md, S14): linearizable while
// the nodes' clocks agree, and, beyond the drift bound ReadOnlyLeaseBased
// documents (nodes ticking 0.5x to 2x, clocks stopped by pauses), stale
// reads that the checker finds.
func TestLeaseReads(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		seeds  int
		// unsafe: the run breaks the lease's clock assumption, so stale
		// reads may be found; they are counted, not failed.
		unsafe bool
	}{
		{name: "clocks within the bound", faults: Faults{Network: true, Partitions: true, Crashes: true, PowerLoss: true}, seeds: 60},
		{name: "skewed and paused clocks", faults: Faults{Network: true, Partitions: true, Crashes: true, TickSkew: true, Pauses: true}, seeds: 100, unsafe: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			violations := map[string]int{}
			for seed := uint64(1); seed <= uint64(tt.seeds); seed++ {
				res := Run(Config{Seed: seed, Faults: tt.faults, ReadOnlyOption: raft.ReadOnlyLeaseBased,
					Clients: 8, Keys: 3, Linearizability: true})
				if !res.Failed() {
					continue
				}
				violations[res.Violations[0].Property]++
				if !tt.unsafe {
					t.Errorf("seed %d: %s", seed, res.Violations[0])
				}
			}
			t.Logf("%d seeds, violations: %v", tt.seeds, violations)
			if tt.unsafe {
				for p := range violations {
					assert.Equal(t, "linearizability", p, "only reads may suffer from clock drift")
				}
			}
		})
	}
}
