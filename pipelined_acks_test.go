package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Hosts in pipelined mode (Config.PipelinedAcks) on the test cluster of
// newPipelinedCluster: Readies pile up unpersisted until the host syncs,
// which persists all of them at once (one fsync for many Readies) and
// acknowledges them in order.

func TestPipelinedAcksReplicateAndCommit(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runPipelined(t, seed)
		})
	}
}

// runPipelined drives a pipelined cluster of three from seed: each step
// one host collects its Readies, collects and syncs, delivers the oldest
// message it sent, proposes (if it leads) or ticks.
func runPipelined(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	c := newPipelinedCluster(t, 3)
	ids := []uint64{1, 2, 3}
	c.collect(1)
	c.sync(1) // the bootstrap configuration is durable and applied
	require.NoError(t, c.node(1).Campaign())
	proposed := 0
	for step := 0; step < 3000; step++ {
		id := ids[rng.IntN(3)]
		switch k := rng.IntN(10); {
		case k < 3:
			c.collect(id)
		case k < 5:
			c.collect(id)
			c.sync(id)
		case k < 8:
			// Deliver the oldest message id sent.
			if i := slices.IndexFunc(c.queue, func(m Message) bool { return m.From == id }); i >= 0 {
				m := c.queue[i]
				c.queue = slices.Delete(c.queue, i, i+1)
				c.deliverMsg(m)
			}
		case k < 9:
			if proposed < 30 && c.raft(id).state == StateLeader {
				if c.node(id).Propose(fmt.Appendf(nil, "v%d", proposed)) == nil {
					proposed++
				}
			}
		default:
			c.node(id).Tick()
		}
	}
	// Drain: sync and deliver everything.
	for range 200 {
		for _, id := range ids {
			c.collect(id)
			c.sync(id)
			c.deliver(func(m Message) bool { return m.From == id })
		}
		for _, id := range ids {
			c.node(id).Tick()
		}
	}
	require.Positive(t, proposed, "seed %d: nothing was proposed", seed)
	want := c.nodes[1].applied
	for _, id := range ids[1:] {
		got := c.nodes[id].applied
		n := min(len(want), len(got))
		require.True(t, slices.EqualFunc(want[:n], got[:n], func(a, b Entry) bool {
			return a.Index == b.Index && a.Term == b.Term && string(a.Data) == string(b.Data)
		}), "seed %d: nodes 1 and %d applied different entries", seed, id)
	}
	data := 0
	for _, e := range want {
		if len(e.Data) > 0 {
			data++
		}
	}
	assert.Equal(t, proposed, data, "seed %d: every accepted proposal commits once the cluster is quiet", seed)
}

func TestPipelinedLeaderCountsOwnEntryOnlyWhenDurable(t *testing.T) {
	c := newPipelinedCluster(t, 1)
	rn, h := c.node(1), c.nodes[1]
	c.collect(1)
	c.sync(1)
	require.NoError(t, rn.Campaign())
	// The candidate leads once its vote is durable.
	c.collect(1)
	assert.Equal(t, StateCandidate, rn.raft.state)
	c.sync(1)
	require.Equal(t, StateLeader, rn.raft.state)
	require.NoError(t, rn.Propose([]byte("x")))
	c.collect(1)
	c.collect(1)
	assert.Empty(t, h.applied, "S07: nothing applies before it is durable")
	assert.Equal(t, uint64(1), rn.raft.raftLog.committed)
	c.sync(1)
	c.collect(1)
	require.Len(t, h.applied, 2)
	assert.Equal(t, "x", string(h.applied[1].Data))
}
