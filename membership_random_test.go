package raft

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMembershipRandomChurn interleaves random membership changes with
// partitions, message loss and crashes. The network asserts on every step
// that no term has two leaders and that every node applies the same entry
// at each index; after healing, every member must converge.
func TestMembershipRandomChurn(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 10
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			stats := runMembershipChurn(t, uint64(seed), 400)
			t.Logf("seed %d: %+v", seed, stats)
		})
	}
}

// churnStats counts the faults and changes a run actually saw.
type churnStats struct {
	ConfChanges, Refused, Crashes, Partitions, Leaders int
}

func runMembershipChurn(t *testing.T, seed uint64, steps int) churnStats {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	nw := newCluster(t, 3, func(c *Config) { c.Seed = seed*100 + c.ID })
	nw.rand = rand.New(rand.NewPCG(seed, 3))
	var st churnStats
	defer func() {
		if t.Failed() {
			t.Logf("replay: go test -run 'TestMembershipRandomChurn/seed=%d$' .", seed)
		}
	}()
	const maxID = 5
	for step := 0; step < steps; step++ {
		switch k := rng.IntN(100); {
		case k < 40:
			nw.tick(nw.ids[rng.IntN(len(nw.ids))], 1)
		case k < 70:
			for range rng.IntN(10) {
				nw.deliverOne()
			}
		case k < 80:
			id := nw.ids[rng.IntN(len(nw.ids))]
			_ = nw.node(id).Propose(fmt.Appendf(nil, "s%d-%d", seed, step))
			nw.handleReady(id)
		case k < 87:
			lead := nw.leader()
			if lead == None {
				continue
			}
			target := uint64(rng.IntN(maxID) + 1)
			if _, ok := nw.nodes[target]; !ok {
				nw.joinEmpty(target)
			}
			kinds := []ConfChangeType{ConfChangeAddNode, ConfChangeAddLearnerNode, ConfChangeRemoveNode}
			cc := ConfChange{Changes: []ConfChangeSingle{{Type: kinds[rng.IntN(3)], NodeID: target}}}
			if rng.IntN(4) == 0 {
				other := uint64(rng.IntN(maxID) + 1)
				if _, ok := nw.nodes[other]; !ok {
					nw.joinEmpty(other)
				}
				cc.Changes = append(cc.Changes, ConfChangeSingle{Type: kinds[rng.IntN(3)], NodeID: other})
			}
			if nw.node(lead).ProposeConfChange(cc) == nil {
				st.ConfChanges++
			} else {
				st.Refused++
			}
			nw.handleReady(lead)
		case k < 92:
			nw.heal()
			a := nw.ids[rng.IntN(len(nw.ids))]
			nw.isolate(a)
			st.Partitions++
		case k < 95:
			nw.heal()
		case k < 97:
			nw.crash(nw.ids[rng.IntN(len(nw.ids))])
			st.Crashes++
		default:
			nw.dropRate = float64(rng.IntN(30)) / 100
		}
	}
	// Heal and let the cluster converge.
	nw.heal()
	nw.dropRate = 0
	for range 200 {
		nw.tickAll()
	}
	st.Leaders = len(nw.leaders)
	lead := nw.leader()
	if lead == None {
		for _, id := range nw.ids {
			r := nw.raft(id)
			t.Logf("node %d: %v config %+v log %s lastTerm=%d pending=%v", id, nw.node(id).Status(), nw.node(id).Status().Config, r.raftLog, r.raftLog.lastTerm(), r.hasUnappliedConfChanges())
		}
	}
	require.NotEqual(t, None, lead, "seed %d: no leader after healing", seed)
	members := nw.node(lead).Status().Config
	want := nw.raft(lead).raftLog.committed
	for _, id := range append(append([]uint64{}, members.Voters...), members.Learners...) {
		if nw.nodes[id].lastApplied != want {
			t.Logf("leader %d status: %v progress %v", lead, nw.node(lead).Status(), nw.raft(lead).trk.progress[id].String())
			t.Logf("node %d status: %v config %+v log %s", id, nw.node(id).Status(), nw.node(id).Status().Config, nw.raft(id).raftLog)
		}
		require.Equal(t, want, nw.nodes[id].lastApplied, "seed %d: member %d did not converge", seed, id)
	}
	return st
}
