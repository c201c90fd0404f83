//go:build keelmutations

package raft

import (
	"fmt"
	"sync/atomic"
)

// activeMutations holds one bit per mutation that is switched on.
var activeMutations atomic.Uint64

// mutated reports whether the fix that m names is switched off.
func mutated(m mutation) bool { return activeMutations.Load()&(1<<m) != 0 }

// MutationNames lists the fixes a keelmutations build can switch off.
func MutationNames() []string { return mutationNames[:] }

// SetMutationsForTesting switches off the named fixes of the core in every
// node of the process until the returned function is called. It exists only
// in builds with the tag keelmutations, for tests that check that a checker
// catches the bug a fix prevents; tests using it must not run in parallel
// with others. It panics on an unknown name.
func SetMutationsForTesting(names ...string) (restore func()) {
	var bits uint64
	for _, name := range names {
		found := false
		for m := range numMutations {
			if mutationNames[m] == name {
				bits |= 1 << m
				found = true
			}
		}
		if !found {
			panic(fmt.Sprintf("raft: unknown mutation %q", name))
		}
	}
	prev := activeMutations.Swap(bits)
	return func() { activeMutations.Store(prev) }
}

// MutatedForTesting reports whether the named fix is switched off. It lets
// the runner package, whose fixes are listed here too, test its own.
func MutatedForTesting(name string) bool {
	for m := range numMutations {
		if mutationNames[m] == name {
			return mutated(m)
		}
	}
	return false
}
