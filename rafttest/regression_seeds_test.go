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
	// Found again once the leaders' incarnation records changed the runs
	// above: without caretakers, no leader within three election timeouts.
	{mode: "membership", nodes: 3, seed: 23002249, cause: "leaderless without a caretaker"},
	{mode: "membership", nodes: 3, seed: 23004718, cause: "leaderless without a caretaker"},
	{mode: "both", nodes: 3, seed: 43000805, cause: "leaderless without a caretaker"},
	{mode: "both", nodes: 3, seed: 43003470, cause: "leaderless without a caretaker"},
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

// storageFaultSeeds are storage-fault runs that broke a property of the core
// before its fix, run as TestStorageFaults runs their mode.
var storageFaultSeeds = []struct {
	mode  storageFaultMode
	seed  uint64
	cause string
}{
	{storageFaultModes[3], 63000540, "safety: a restored backup's overwritten tail committed on a heartbeat and applied"},
	{storageFaultModes[3], 63000039, "liveness: a peer restored from an old backup made healthy nodes recover"},
	{storageFaultModes[0], 60000194, "liveness: a late message of the leader made a repaired node recover again"},
	{storageFaultModes[0], 60000049, "liveness: a lagging node refused the leader's messages by its old record"},
	{storageFaultModes[0], 60000182, "liveness: a leader never recorded a recovering member's new incarnation"},
	{storageFaultModes[3], 63002789, "liveness: a repair left unsynced (MustSync false) was lost, so the node stayed damaged"},
}

// TestStorageFaultRegressionSeeds replays the storage-fault runs that once
// broke the core.
func TestStorageFaultRegressionSeeds(t *testing.T) {
	for _, rs := range storageFaultSeeds {
		if res := Run(storageFaultConfig(rs.mode, rs.seed)); res.Failed() {
			t.Errorf("%s seed %d (%s): %s", rs.mode.name, rs.seed, rs.cause, res.Violations[0])
		}
	}
}
