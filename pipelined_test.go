package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pipeHost drives one node in pipelined mode: Readies pile up unpersisted
// until the host "syncs", which persists all of them at once (one fsync for
// many Readies) and acknowledges them in order.
type pipeHost struct {
	id      uint64
	rn      *RawNode
	storage *MemoryStorage
	pending []Ready // taken, not yet durable
	applied []Entry
	outbox  []Message
}

func newPipeCluster(t *testing.T, n int) map[uint64]*pipeHost {
	t.Helper()
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	hosts := map[uint64]*pipeHost{}
	for _, id := range ids {
		s := NewMemoryStorage()
		cfg := testConfig(id, s)
		cfg.PipelinedAcks = true
		rn, err := NewRawNode(cfg)
		require.NoError(t, err)
		require.NoError(t, rn.Bootstrap(ids))
		hosts[id] = &pipeHost{id: id, rn: rn, storage: s}
	}
	return hosts
}

// collect takes every available Ready: leader messages leave at once,
// committed entries are applied at once (they are durable already).
func (h *pipeHost) collect(t *testing.T) {
	t.Helper()
	for h.rn.HasReady() {
		rd := h.rn.Ready()
		h.outbox = append(h.outbox, rd.Messages...)
		persisted, _ := h.storage.LastIndex()
		for _, e := range rd.CommittedEntries {
			require.LessOrEqual(t, e.Index, persisted, "node %d: pipelined mode hands out only durable entries", h.id)
			h.applied = append(h.applied, e)
		}
		if n := len(rd.CommittedEntries); n > 0 {
			h.rn.AckApplied(rd.CommittedEntries[n-1].Index)
		}
		h.pending = append(h.pending, rd)
	}
}

// sync persists every pending Ready with one "fsync", then sends their
// MessagesAfterPersist and acknowledges them in order.
func (h *pipeHost) sync(t *testing.T) {
	t.Helper()
	batch := h.pending
	h.pending = nil
	for _, rd := range batch {
		if !rd.Snapshot.IsEmpty() {
			require.NoError(t, h.storage.ApplySnapshot(rd.Snapshot))
		}
		require.NoError(t, h.storage.Append(rd.Entries))
		if !rd.HardState.IsEmpty() {
			require.NoError(t, h.storage.SetHardState(rd.HardState))
		}
	}
	for _, rd := range batch {
		for _, m := range rd.MessagesAfterPersist {
			require.NoError(t, checkDurable(h.storage, m))
		}
		h.outbox = append(h.outbox, rd.MessagesAfterPersist...)
		h.rn.AckPersisted(rd)
		if !rd.Snapshot.IsEmpty() {
			h.rn.AckApplied(rd.Snapshot.Metadata.Index)
		}
	}
}

func TestPipelinedAcksReplicateAndCommit(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runPipelined(t, seed)
		})
	}
}

func runPipelined(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	hosts := newPipeCluster(t, 3)
	ids := []uint64{1, 2, 3}
	hosts[1].collect(t)
	hosts[1].sync(t) // the bootstrap configuration is durable and applied
	require.NoError(t, hosts[1].rn.Campaign())
	proposed := 0
	for step := 0; step < 3000; step++ {
		h := hosts[ids[rng.IntN(3)]]
		switch k := rng.IntN(10); {
		case k < 3:
			h.collect(t)
		case k < 5:
			h.collect(t)
			h.sync(t)
		case k < 8:
			// Deliver one message from h's outbox.
			if len(h.outbox) > 0 {
				m := h.outbox[0]
				h.outbox = h.outbox[1:]
				_ = hosts[m.To].rn.Step(m)
			}
		case k < 9:
			if proposed < 30 && h.rn.raft.state == StateLeader {
				if h.rn.Propose(fmt.Appendf(nil, "v%d", proposed)) == nil {
					proposed++
				}
			}
		default:
			h.rn.Tick()
		}
	}
	// Drain: sync and deliver everything.
	for range 200 {
		for _, id := range ids {
			h := hosts[id]
			h.collect(t)
			h.sync(t)
			for _, m := range h.outbox {
				_ = hosts[m.To].rn.Step(m)
			}
			h.outbox = nil
		}
		for _, id := range ids {
			hosts[id].rn.Tick()
		}
	}
	require.Positive(t, proposed, "seed %d: nothing was proposed", seed)
	want := hosts[1].applied
	for _, id := range ids[1:] {
		got := hosts[id].applied
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
	s := NewMemoryStorage()
	cfg := testConfig(1, s)
	cfg.PipelinedAcks = true
	rn, err := NewRawNode(cfg)
	require.NoError(t, err)
	require.NoError(t, rn.Bootstrap([]uint64{1}))
	h := &pipeHost{id: 1, rn: rn, storage: s}
	h.collect(t)
	h.sync(t)
	require.NoError(t, rn.Campaign())
	// The candidate leads once its vote is durable.
	h.collect(t)
	assert.Equal(t, StateCandidate, rn.raft.state)
	h.sync(t)
	require.Equal(t, StateLeader, rn.raft.state)
	require.NoError(t, rn.Propose([]byte("x")))
	h.collect(t)
	h.collect(t)
	assert.Empty(t, h.applied, "S07: nothing applies before it is durable")
	assert.Equal(t, uint64(1), rn.raft.raftLog.committed)
	h.sync(t)
	h.collect(t)
	require.Len(t, h.applied, 2)
	assert.Equal(t, "x", string(h.applied[1].Data))
}
