package rafttest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMutationsAreCaught injects known host bugs and checks that the
// simulator catches each within a bounded number of seeds: a checker that
// cannot see these bugs would let real ones through too.
func TestMutationsAreCaught(t *testing.T) {
	storageFaults := Faults{Network: true, TickSkew: true, Partitions: true, Crashes: true, PowerLoss: true}
	netFaults := Faults{Network: true, TickSkew: true, Partitions: true, Crashes: true}
	tests := []struct {
		name   string
		bugs   Bugs
		faults Faults
		// powerLoss is the per-Ready power-loss probability (0: default).
		powerLoss float64
		// clients and keys, if set, fix the workload.
		clients, keys int
		// noRestartAudit relies on the outcome checks only.
		noRestartAudit bool
		maxSeeds       int
	}{
		{name: "send before persist", bugs: Bugs{SendBeforePersist: true}, faults: storageFaults, powerLoss: 0.05, maxSeeds: 100},
		{name: "ack without sync", bugs: Bugs{SkipSync: true}, faults: storageFaults, powerLoss: 0.05, maxSeeds: 100},
		{name: "forget vote on restart", bugs: Bugs{ForgetVote: true}, faults: netFaults, maxSeeds: 100},
		{name: "forget vote on restart, outcome checks only", bugs: Bugs{ForgetVote: true}, faults: netFaults, noRestartAudit: true, maxSeeds: 300},
		{name: "send before persist, outcome checks only", bugs: Bugs{SendBeforePersist: true}, faults: storageFaults, powerLoss: 0.05, noRestartAudit: true, maxSeeds: 300},
		{name: "apply uncommitted entries", bugs: Bugs{ApplyUncommitted: true}, faults: netFaults, maxSeeds: 200},
		{name: "commit without quorum", bugs: Bugs{ForgeCommit: true}, faults: netFaults, maxSeeds: 200},
		{name: "vote without the up-to-date check", bugs: Bugs{ForgeVoteLog: true}, faults: netFaults, maxSeeds: 200},
		{name: "read before applied", bugs: Bugs{ReadBeforeApplied: true}, faults: netFaults, clients: 8, keys: 2, maxSeeds: 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= uint64(tt.maxSeeds); seed++ {
				res := Run(Config{
					Seed: seed, Faults: tt.faults, Bugs: tt.bugs, PowerLossRate: tt.powerLoss,
					Clients: tt.clients, Keys: tt.keys, Linearizability: true,
					skipRestartAudit: tt.noRestartAudit,
				})
				if res.Failed() {
					t.Logf("caught at seed %d: %s", seed, res.Violations[0])
					return
				}
			}
			assert.Failf(t, "bug not caught", "%+v not caught within %d seeds", tt.bugs, tt.maxSeeds)
		})
	}
}

// TestMutationCatchRate reports how often each bug is caught, for tuning; it
// runs only with -rafttest.seeds.
func TestMutationCatchRate(t *testing.T) {
	if *flagSeeds == 0 {
		t.Skip("set -rafttest.seeds to measure catch rates")
	}
	for _, bugs := range []Bugs{
		{SendBeforePersist: true}, {SkipSync: true}, {ForgetVote: true},
		{ApplyUncommitted: true}, {ForgeCommit: true}, {ForgeVoteLog: true}, {ReadBeforeApplied: true},
	} {
		caught := map[string]int{}
		for seed := uint64(1); seed <= uint64(*flagSeeds); seed++ {
			res := Run(Config{Seed: seed, Faults: AllFaults, Bugs: bugs, Linearizability: true, StaleReads: true})
			if res.Failed() {
				caught[res.Violations[0].Property]++
			}
		}
		t.Logf("%+v: %v of %d seeds", bugs, caught, *flagSeeds)
	}
}
