//go:build keelmutations

package raft_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// The pause test must catch the bug the tick catch-up fixes: with the fix
// switched off, the woken leader answers the reads from its lease.
func TestNodeLeasePauseTestCatchesMissedTicksMutation(t *testing.T) {
	restore := raft.SetMutationsForTesting("lease-missed-ticks")
	defer restore()
	out := runNodeLeasePause(t)
	require.NotZero(t, out.stale, "no stale read with the lease-missed-ticks mutation: %+v", out)
}
