package raftnode_test

import (
	"testing"
	"time"

	"github.com/keelraft/raft/memtransport"
	"github.com/keelraft/raft/raftnode"
)

// TestAllocationsPerProposal pins the heap allocations of one proposal
// through a Node, from Propose on the leader to its result, counted over
// the whole process: the three nodes, their goroutines and the transport.
// The state machines return no results. What remains is the request
// itself, the entries' place in each node's unstable log, and each
// follower's copy of the appended entries (without the codec: an entry
// slice and one data buffer per message; with it, what wire.Codec's
// decoder allocates). Measured: 10 with the codec, 8 without; the limits
// leave one allocation of slack for ticks, heartbeats and the odd larger
// batch.
func TestAllocationsPerProposal(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	if testing.Short() {
		t.Skip("runs a 3-node cluster for a thousand proposals")
	}
	for _, tc := range []struct {
		name      string
		opts      memtransport.Options
		maxAllocs float64
	}{
		{"codec", memtransport.Options{}, 11},
		{"SkipCodec", memtransport.Options{SkipCodec: true}, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newNodeCluster(t, 3, withCountingStateMachines(), withTransportOptions(tc.opts),
				withConfig(func(cfg *raftnode.Config) { cfg.TickInterval = 10 * time.Millisecond }))
			leader := c.members[c.waitLeader()].node
			ctx := nodeCtx(t)
			payload := make([]byte, 128)
			propose := func() {
				if _, err := leader.Propose(ctx, payload); err != nil {
					t.Fatalf("proposal failed: %v", err)
				}
			}
			for range 100 { // let the reused buffers and pools reach their size
				propose()
			}
			allocs := testing.AllocsPerRun(1000, propose)
			t.Logf("%.1f allocations per proposal", allocs)
			if allocs > tc.maxAllocs {
				t.Errorf("%.1f allocations per proposal, want at most %v", allocs, tc.maxAllocs)
			}
		})
	}
}
