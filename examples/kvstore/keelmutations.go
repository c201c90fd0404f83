//go:build keelmutations

package main

// In a build with the tag keelmutations, KEEL_MUTATIONS=name,... switches
// off the named fixes of the core (raft.MutationNames), so that one can
// check that an end-to-end test catches the bug a fix prevents, e.g.
//
//	KEEL_MUTATIONS=ignore-recovering,ignore-incarnation \
//	    go test -run TestE2EWipedNodeLosesNoWrite ./examples/kvstore
//
// (the test helpers then build the nodes with the tag).

import (
	"os"
	"strings"

	"github.com/keelraft/raft"
)

func init() {
	if m := os.Getenv("KEEL_MUTATIONS"); m != "" {
		raft.SetMutationsForTesting(strings.Split(m, ",")...)
	}
}
