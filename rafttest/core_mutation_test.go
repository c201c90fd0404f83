//go:build keelmutations

package rafttest

import (
	"flag"
	"testing"

	"github.com/keelraft/raft"
	"github.com/stretchr/testify/assert"
)

// coreMutation is a fix of the core that a keelmutations build can switch
// off, and a run configuration whose checks must catch the bug the fix
// prevents.
type coreMutation struct {
	name string
	cfg  Config
	// maxSeeds bounds the seeds the bug may take to be caught.
	maxSeeds int
	// notCaught, if set, says why the simulator does not catch the bug yet.
	notCaught string
}

var coreMutations = []coreMutation{
	{
		// Every append of a window lost in a burst, the follower stays
		// behind for good: the catch-up check after healing fails.
		name:     "stalled-window",
		cfg:      Config{Nodes: 3, Faults: Faults{Bursts: true}, MaxInflightMsgs: 2, Liveness: true},
		maxSeeds: 100,
	},
	{
		// A restart from a snapshot over a log that still holds the
		// changes before it: the restarted node's configuration differs
		// from its snapshot's.
		name:     "reapply-snapshot-conf",
		cfg:      Config{Nodes: 3, Faults: Faults{Crashes: true, Membership: true, Snapshots: true}, MinVoters: 1, SnapshotKeep: -1},
		maxSeeds: 100,
	},
	{
		// The leader hands over to the voter a committing change removes
		// or demotes, whose host is slow to apply it.
		name:     "transfer-ignores-conf-changes",
		cfg:      Config{Nodes: 3, Faults: Faults{Membership: true, Transfers: true, Stalls: true}, Pipelined: true, MinVoters: 1},
		maxSeeds: 300,
	},
	{
		// A single voter loses its unsynced commit index to a power loss
		// and, back as leader, answers reads from it before it commits an
		// entry of its new term: reads miss writes acknowledged before.
		name: "single-voter-read-shortcut",
		cfg: Config{Nodes: 1, Faults: Faults{PowerLoss: true, Crashes: true}, Pipelined: true,
			Clients: 8, Keys: 2, Linearizability: true},
		maxSeeds: 300,
	},
	{
		// A single voter in pipelined mode leads before its vote is
		// durable, loses it to a power loss and leads the same term again
		// with other entries, which its learners see.
		name: "vote-before-durable",
		cfg: Config{Nodes: 1, Faults: Faults{PowerLoss: true, Membership: true, Crashes: true}, Pipelined: true, MinVoters: 1,
			Clients: 8},
		maxSeeds: 300,
	},
	{
		// A forged message at term 2^62: no election ever succeeds again.
		name:     "term-ceiling",
		cfg:      Config{Nodes: 3, Faults: Faults{ExtremeTerms: true, Crashes: true}, Liveness: true},
		maxSeeds: 100,
	},
	{
		// A follower's log goes back below its Match: it is never brought
		// up to date while the leader lasts.
		name:     "ignore-log-regression",
		cfg:      Config{Nodes: 3, Faults: Faults{LogRegression: true}, Liveness: true},
		maxSeeds: 100,
	},
	{
		// A follower that helped commit entries loses them (its log cut,
		// its snapshot lost, an old backup restored), and the nodes that
		// hold them are cut off: recovering nodes that vote anyway elect
		// a leader without committed entries.
		name:     "ignore-recovering",
		cfg:      Config{Nodes: 3, Faults: Faults{StorageFaults: true, Crashes: true}, Linearizability: true},
		maxSeeds: 300,
	},
	{
		// A wiped follower that helped commit entries comes back empty
		// under a new incarnation: accepted as its old self, it votes for
		// a node without committed entries.
		name:     "ignore-incarnation",
		cfg:      Config{Nodes: 3, Faults: Faults{StorageFaults: true, Crashes: true}, Linearizability: true},
		maxSeeds: 300,
	},
	{
		// A node whose acknowledgement of its own removal reaches the
		// leader after the leader applied it never learns it was removed.
		name:     "silent-to-removed",
		cfg:      Config{Nodes: 3, Faults: Faults{Network: true, Membership: true, Bursts: true}, MinVoters: 1, Liveness: true},
		maxSeeds: 300,
		notCaught: "the liveness check looks at the members only: a removed node that never applies its " +
			"removal is outside what it checks (TestFixesAreNeeded's scenario in the root package catches it)",
	},
	{
		// The leader, briefly cut off, steps down and campaigns; its
		// followers, still in its lease, refuse it.
		name:     "lease-vote-from-leader",
		cfg:      Config{Nodes: 3, Faults: Faults{Partitions: true, TickSkew: true, Bursts: true}, Liveness: true},
		maxSeeds: 300,
		notCaught: "the followers' own election timeouts end the outage within the liveness bound " +
			"(three election timeouts after healing): the bug only delays an election",
	},
}

// TestCoreMutations switches off each fault fix of the core in turn and
// checks that the simulator catches the bug within a bounded number of
// seeds. It is not parallel: the switch is global to the process.
func TestCoreMutations(t *testing.T) {
	for _, m := range coreMutations {
		t.Run(m.name, func(t *testing.T) {
			if m.notCaught != "" {
				t.Skip("not caught yet: " + m.notCaught)
			}
			restore := raft.SetMutationsForTesting(m.name)
			defer restore()
			for seed := uint64(1); seed <= uint64(m.maxSeeds); seed++ {
				cfg := m.cfg
				cfg.Seed = seed
				res := Run(cfg)
				if res.Failed() {
					t.Logf("caught at seed %d: %s", seed, res.Violations[0])
					return
				}
			}
			assert.Failf(t, "bug not caught", "with the fix %q switched off, no violation within %d seeds", m.name, m.maxSeeds)
		})
	}
}

var (
	flagMutation = flag.String("rafttest.mutation", "", "with -rafttest.seeds: measure only this mutation's catch rate")
	flagBaseline = flag.Bool("rafttest.baseline", false, "with -rafttest.seeds: run the mutations' configurations with every fix in (expect no violation)")
)

// TestCoreMutationCatchRate reports how often each switched-off fix is
// caught, for tuning; it runs only with -rafttest.seeds.
func TestCoreMutationCatchRate(t *testing.T) {
	if *flagSeeds == 0 {
		t.Skip("set -rafttest.seeds to measure catch rates")
	}
	for _, m := range coreMutations {
		if *flagMutation != "" && m.name != *flagMutation {
			continue
		}
		names := []string{m.name}
		if *flagBaseline {
			names = nil
		}
		restore := raft.SetMutationsForTesting(names...)
		caught, first := map[string]int{}, uint64(0)
		for seed := uint64(1); seed <= uint64(*flagSeeds); seed++ {
			cfg := m.cfg
			cfg.Seed = seed
			if res := Run(cfg); res.Failed() {
				caught[res.Violations[0].Property]++
				if first == 0 {
					first = seed
				}
			}
		}
		restore()
		t.Logf("%s: first caught at seed %d; caught %v of %d seeds", m.name, first, caught, *flagSeeds)
	}
}

// TestCaretakerIsNeeded switches off caretaker campaigns and checks that the
// cluster then stays leaderless in the runs that need one.
func TestCaretakerIsNeeded(t *testing.T) {
	restore := raft.SetMutationsForTesting("no-caretaker")
	defer restore()
	stuck := 0
	for _, rs := range removedVoterSeeds {
		if res := runRegressionSeed(rs); res.Failed() {
			stuck++
			t.Logf("%s/%d seed %d without caretakers: %s", rs.mode, rs.nodes, rs.seed, res.Violations[0])
		}
	}
	if stuck == 0 {
		t.Fatal("every run elected a leader without caretakers: the runs no longer exercise the case")
	}
}
