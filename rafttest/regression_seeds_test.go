package rafttest

import (
	"testing"
)

// regressionSeed is a run that once broke a property, with what broke, kept
// so that the fix stays in: each runs in its mode as TestChaosModes runs it.
type regressionSeed struct {
	mode  string // "membership" or "both" (pipelined)
	nodes int
	seed  uint64
	// cause says what failed before the fix.
	cause string
}

// removedVoterSeeds are runs in which, after healing, the only voters left
// had not yet applied the change that removed or demoted another node, so
// still needed that node's vote, and that node's log was longer than
// theirs: nobody could be elected until a node that is no longer a voter
// could campaign as a caretaker.
var removedVoterSeeds = []regressionSeed{
	{mode: "membership", nodes: 3, seed: 23002165, cause: "voter of [3] still in [3]&&[2 3]; 2, demoted, has the longer log"},
	{mode: "membership", nodes: 3, seed: 23003816, cause: "voter 2 still in [2 3]; 3, demoted, has the longer log"},
	{mode: "membership", nodes: 3, seed: 23001763, cause: "voter 4 still in [4]&&[2]; 2, removed (inside its snapshot), has the longer log"},
	{mode: "both", nodes: 3, seed: 43000376, cause: "voter 2 still in [2]&&[2 3]; 3, removed, has the longer log"},
}

// runRegressionSeed runs one regression seed as TestChaosModes would.
func runRegressionSeed(rs regressionSeed) *Result {
	return Run(Config{
		Seed:            rs.seed,
		Nodes:           rs.nodes,
		Faults:          AllFaults,
		Pipelined:       rs.mode == "both",
		MinVoters:       1,
		Linearizability: true,
		StaleReads:      true,
		Liveness:        true,
	})
}

// TestRemovedVoterWithLongerLogLetsTheClusterElect replays the runs in
// which a node that is no longer a voter must campaign as a caretaker for
// the cluster to elect a leader again.
func TestRemovedVoterWithLongerLogLetsTheClusterElect(t *testing.T) {
	for _, rs := range removedVoterSeeds {
		if res := runRegressionSeed(rs); res.Failed() {
			t.Errorf("%s/%d seed %d (%s): %s", rs.mode, rs.nodes, rs.seed, rs.cause, res.Violations[0])
		}
	}
}
