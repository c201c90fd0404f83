package raft

// Scenarios of network faults on the test cluster: crashes, partitions, a
// badly diverged follower and lossy links. The cluster itself checks
// election safety, state-machine safety and the Ready contract throughout.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// paperNewNetwork builds a cluster whose node i+1 starts from the durable
// state logs[i] (see paperLog) instead of a fresh bootstrap. Everything up
// to the bootstrap snapshot counts as applied; committed entries after it
// are handed out again and applied in order.
func paperNewNetwork(t testing.TB, logs []paperLog, opts ...configOption) *testCluster {
	t.Helper()
	ids := clusterIDs(len(logs))
	return buildCluster(t, clusterSpec{
		ids:     ids,
		storage: func(id uint64) *MemoryStorage { return paperStorage(t, ids, logs[id-1]) },
		opts:    opts,
	})
}

// paperDeliver delivers queued messages until none is left, like
// stabilize, but passes each through keep first: keep may change the
// message, or return false to drop it. A nil keep keeps everything.
func paperDeliver(nw *testCluster, keep func(m *Message) bool) {
	nw.t.Helper()
	for _, id := range nw.ids {
		nw.handleReady(id)
	}
	for i := 0; len(nw.queue) > 0; i++ {
		if i > 100000 {
			nw.t.Fatal("network did not stabilize after 100000 messages")
		}
		if keep != nil && !keep(&nw.queue[0]) {
			nw.queue = nw.queue[1:]
			continue
		}
		nw.deliverOne()
	}
}

// paperLeaderAmong returns a node of ids that leads, or None.
func paperLeaderAmong(nw *testCluster, ids []uint64) uint64 {
	for _, id := range ids {
		if nw.raft(id).state == StateLeader {
			return id
		}
	}
	return None
}

// paperTickUntil ticks the whole network until done reports true, at most
// limit times, and returns the ticks it took.
func paperTickUntil(nw *testCluster, limit int, done func() bool) int {
	for ticks := 0; ticks < limit; ticks++ {
		if done() {
			return ticks
		}
		nw.tickAll()
	}
	if done() {
		return limit
	}
	return limit + 1
}

// A leader crashes (is cut off); the others elect a new leader by ticks
// alone, and it commits. The old leader steps down, and on its return it
// follows the new leader without disturbing it and catches up.
func TestNetworkLeaderCrashReelection(t *testing.T) {
	const electionTick = 10
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("voters=%d", size), func(t *testing.T) {
			nw := newCluster(t, size)
			nw.electLeader(1)
			require.NoError(t, nw.propose(1, "before"))
			oldTerm := nw.raft(1).Term

			nw.isolate(1)
			others := nw.ids[1:]
			// done runs before every tick: calls counts the ticks so far.
			stepDown, calls := -1, 0
			ticks := paperTickUntil(nw, 4*electionTick, func() bool {
				if stepDown < 0 && nw.raft(1).state != StateLeader {
					stepDown = calls
				}
				calls++
				return paperLeaderAmong(nw, others) != None && stepDown >= 0
			})
			require.LessOrEqual(t, ticks, 4*electionTick, "no new leader")
			lead := paperLeaderAmong(nw, others)
			assert.Greater(t, nw.raft(lead).Term, oldTerm)
			t.Logf("node %d elected at term %d after %d ticks; node 1 stepped down after %d", lead, nw.raft(lead).Term, ticks, stepDown)

			// CheckQuorum (S15): within one election timeout of being cut
			// off.
			assert.LessOrEqual(t, stepDown, electionTick, "the cut-off leader did not step down")

			require.NoError(t, nw.propose(lead, "after"))
			for _, id := range others {
				assert.Equal(t, []string{"before", "after"}, nw.appliedData(id), "node %d", id)
			}
			assert.Equal(t, []string{"before"}, nw.appliedData(1))

			nw.heal()
			leadTerm := nw.raft(lead).Term
			paperTickUntil(nw, 4*electionTick, func() bool { return len(nw.appliedData(1)) == 2 })
			assert.Equal(t, []string{"before", "after"}, nw.appliedData(1), "the old leader caught up")
			assert.Equal(t, StateLeader, nw.raft(lead).state, "the returning node did not depose the leader")
			assert.Equal(t, leadTerm, nw.raft(lead).Term)
		})
	}
}

// A leader cut off with a minority cannot commit; CheckQuorum makes it step
// down; the majority elects a leader and commits; after the partition heals
// the minority's uncommitted entries are replaced by the majority's.
func TestNetworkMinorityLeaderStepsDownAndIsRepaired(t *testing.T) {
	const electionTick = 10
	nw := newCluster(t, 5)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "before"))
	committedBefore := nw.raft(1).raftLog.committed

	minority, majority := []uint64{1, 2}, []uint64{3, 4, 5}
	nw.partition(minority, majority)
	require.NoError(t, nw.propose(1, "lost"), "the leader still accepts proposals")
	lostIndex := nw.raft(1).raftLog.lastIndex()
	require.True(t, nw.raft(2).raftLog.matchTerm(lostIndex, nw.raft(1).Term), "node 2 holds the entry")
	assert.Equal(t, committedBefore, nw.raft(1).raftLog.committed, "two of five cannot commit")

	ticks := paperTickUntil(nw, 2*electionTick, func() bool { return nw.raft(1).state != StateLeader })
	assert.LessOrEqual(t, ticks, electionTick, "S15: the minority leader steps down within one election timeout")
	ticks = paperTickUntil(nw, 4*electionTick, func() bool { return paperLeaderAmong(nw, majority) != None })
	require.LessOrEqual(t, ticks, 4*electionTick, "the majority elected no leader")
	lead := paperLeaderAmong(nw, majority)
	require.NoError(t, nw.propose(lead, "kept"))
	for _, id := range majority {
		assert.Equal(t, []string{"before", "kept"}, nw.appliedData(id), "node %d", id)
	}
	for _, id := range minority {
		assert.Equal(t, []string{"before"}, nw.appliedData(id), "node %d committed nothing more", id)
		assert.NotEqual(t, StateLeader, nw.raft(id).state)
	}

	nw.heal()
	paperTickUntil(nw, 4*electionTick, func() bool {
		return len(nw.appliedData(1)) == 2 && len(nw.appliedData(2)) == 2
	})
	want := nw.raft(lead).raftLog.allEntries()
	for _, id := range nw.ids {
		assert.Equal(t, []string{"before", "kept"}, nw.appliedData(id), "node %d", id)
		assert.Equal(t, want, nw.raft(id).raftLog.allEntries(), "node %d has the majority's log", id)
		assert.False(t, slices.ContainsFunc(nw.raft(id).raftLog.allEntries(), func(e Entry) bool { return string(e.Data) == "lost" }),
			"node %d still holds the lost entry", id)
	}
	assert.Equal(t, StateLeader, nw.raft(lead).state)
}

// A follower whose log diverges from the leader's over many terms and many
// entries is repaired in a few round trips: each rejection carries a hint
// that lets the leader skip a whole term, not one entry.
func TestNetworkFastBacktracking(t *testing.T) {
	// termRun returns n entries' terms, all equal to term.
	termRun := func(term uint64, n int) []uint64 { return slices.Repeat([]uint64{term}, n) }
	concat := func(runs ...[]uint64) []uint64 { return slices.Concat(runs...) }
	tests := []struct {
		name     string
		leader   []uint64
		follower []uint64
		// maxRejections bounds the rejected appends it may take.
		maxRejections int
	}{
		{
			name:          "follower far behind",
			leader:        concat(termRun(2, 20), termRun(3, 20), termRun(4, 20), termRun(5, 20), termRun(6, 20)),
			follower:      termRun(2, 1),
			maxRejections: 1,
		},
		{
			name:          "5 terms x 20 entries the leader never saw, of earlier terms",
			leader:        concat(termRun(1, 5), termRun(7, 5)),
			follower:      concat(termRun(1, 5), termRun(2, 20), termRun(3, 20), termRun(4, 20), termRun(5, 20), termRun(6, 20)),
			maxRejections: 1,
		},
		{
			name:          "5 terms x 20 entries the leader never saw, of later terms",
			leader:        concat(termRun(1, 5), termRun(2, 110)),
			follower:      concat(termRun(1, 5), termRun(3, 20), termRun(4, 20), termRun(5, 20), termRun(6, 20), termRun(7, 20)),
			maxRejections: 1,
		},
		{
			// Leader and follower alternated: each holds 5 runs of 20
			// entries of terms the other never saw.
			name:          "interleaved terms, 5 x 20 each",
			leader:        concat(termRun(2, 20), termRun(4, 20), termRun(6, 20), termRun(8, 20), termRun(10, 20)),
			follower:      concat(termRun(2, 20), termRun(3, 20), termRun(5, 20), termRun(7, 20), termRun(9, 20), termRun(11, 20)),
			maxRejections: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Node 3 holds the leader's log, so that node 1 wins even when
			// the follower's last term is later than its own.
			top := max(slices.Max(tt.leader), slices.Max(tt.follower))
			nw := paperNewNetwork(t, []paperLog{
				{terms: tt.leader, term: top},
				{terms: tt.follower}, // at the term of its last entry
				{terms: tt.leader, term: top},
			})
			rejections, appends := 0, 0
			count := func(m *Message) bool {
				switch {
				case m.Type == MsgAppResp && m.From == 2 && m.Reject:
					rejections++
				case m.Type == MsgApp && m.To == 2:
					appends++
				}
				return true
			}
			paperCampaignUntil(nw, 1, 2, count)
			require.Equal(t, StateLeader, nw.raft(1).state)
			want := nw.raft(1).raftLog.allEntries()
			assert.Equal(t, want, nw.raft(2).raftLog.allEntries(), "the follower's log is repaired")
			nw.tickAll() // a heartbeat carries the final commit index
			assert.Equal(t, nw.raft(1).raftLog.committed, nw.raft(2).raftLog.committed)
			t.Logf("%d rejections, %d appends to repair a follower log of %d entries (leader: %d)",
				rejections, appends, len(tt.follower), len(tt.leader))
			assert.LessOrEqual(t, rejections, tt.maxRejections, "rejections")
			assert.LessOrEqual(t, appends, tt.maxRejections+2, "appends")
		})
	}
}

// Lossy links: with a fraction of all messages dropped and a node cut off
// now and then, nodes elect, lose leaders and propose through it all; once
// the network heals, every node applies the same entries.
func TestNetworkRandomDrops(t *testing.T) {
	const electionTick = 10
	for seed := uint64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		size := 3 + 2*rng.IntN(2)
		dropRate := 0.1 + 0.2*rng.Float64()
		t.Run(fmt.Sprintf("seed=%d/voters=%d/drop=%.2f", seed, size, dropRate), func(t *testing.T) {
			nw := newCluster(t, size, func(c *Config) { c.Seed = seed*1000 + c.ID })
			nw.rand = rand.New(rand.NewPCG(seed, 11))
			nw.dropRate = dropRate

			proposed, accepted := 0, 0
			for step := range 300 {
				// Drops alone rarely cost a leader its office (it sends a
				// heartbeat every tick), so now and then cut off the
				// leader (a random node if there is none) for three
				// election timeouts.
				switch step % 60 {
				case 0:
					victim := nw.leader()
					if victim == None {
						victim = nw.ids[rng.IntN(len(nw.ids))]
					}
					nw.isolate(victim)
				case 30:
					nw.heal()
				}
				nw.tickAll()
				if step%3 != 0 {
					continue
				}
				// Propose at a random node: a follower forwards (the
				// forward may be dropped too), a node without leader drops.
				id := nw.ids[rng.IntN(len(nw.ids))]
				proposed++
				if nw.propose(id, fmt.Sprintf("s%d-p%d", seed, step)) == nil {
					accepted++
				}
			}
			nw.dropRate = 0
			nw.heal()
			ticks := paperTickUntil(nw, 6*electionTick, func() bool { return nw.leader() != None })
			require.LessOrEqual(t, ticks, 6*electionTick, "seed %d: no leader after healing", seed)
			lead := nw.leader()
			require.NoError(t, nw.propose(lead, "final"), "seed %d", seed)
			paperTickUntil(nw, 4*electionTick, func() bool {
				for _, id := range nw.ids {
					if d := nw.appliedData(id); len(d) == 0 || d[len(d)-1] != "final" {
						return false
					}
				}
				return true
			})

			want := nw.nodes[lead].applied
			for _, id := range nw.ids {
				d := nw.appliedData(id)
				require.NotEmpty(t, d, "seed %d: node %d applied nothing", seed, id)
				assert.Equal(t, "final", d[len(d)-1], "seed %d: node %d did not catch up", seed, id)
				assert.Equal(t, want, nw.nodes[id].applied, "seed %d: node %d applied different entries", seed, id)
			}
			committed := len(nw.appliedData(lead)) - 1
			t.Logf("seed %d: %d leaders over %d terms, %d/%d proposals accepted, %d committed",
				seed, len(nw.leaders), nw.raft(lead).Term, accepted, proposed, committed)
			// The faults must have happened and the cluster still worked.
			assert.Greater(t, len(nw.leaders), 2, "seed %d: too few leader changes", seed)
			assert.Positive(t, committed, "seed %d: nothing committed under drops", seed)
		})
	}
}
