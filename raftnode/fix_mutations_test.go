//go:build keelmutations

package raftnode_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/internal/failrecord"
)

// nodeLeasePauseScenario returns a scenario that fails if the woken leader
// serves a stale read.
func nodeLeasePauseScenario(forwarded bool) func(testing.TB) {
	return func(t testing.TB) {
		out := runNodeLeasePause(t, forwarded)
		require.Zero(t, out.stale, "stale lease reads after the pause: %+v", out)
		require.False(t, out.staleAfterHeal, "the first read after healing missed the write")
	}
}

// TestFixesAreNeededThroughNode switches off, in turn, each fix that a
// Node scenario covers, and checks that the scenario passes with the fix
// and fails without it. Waits are shortened while a fix is off: the
// scenarios then wait for what never comes.
func TestFixesAreNeededThroughNode(t *testing.T) {
	tests := []struct {
		mutation string
		scenario func(testing.TB)
	}{
		{"lease-missed-ticks", nodeLeasePauseScenario(false)},
		{"lease-missed-ticks", nodeLeasePauseScenario(true)},
		{"stalled-window", nodeFollowerCatchesUpAfterLostAppends},
		{"reapply-snapshot-conf", nodeRestartKeepsMembershipOfSnapshot},
		{"transfer-ignores-conf-changes", nodeTransferTargetWaitsForConfChanges},
		{"single-voter-read-shortcut", nodeSingleVoterReadWaitsForCommitInItsTerm},
		{"vote-before-durable", nodeSingleVoterLeadsOnlyOnceTermIsDurable},
		{"term-ceiling", nodeElectsLeadersAfterLargestTerm},
		{"ignore-log-regression", nodeFollowerWhoseLogWentBackwardsCatchesUp},
	}
	for _, tt := range tests {
		t.Run(tt.mutation, func(t *testing.T) {
			if f := failrecord.Run(t, tt.scenario); len(f) > 0 {
				t.Fatalf("fails with the fix on: %v", f)
			}
			restore := raft.SetMutationsForTesting(tt.mutation)
			wait := nodeWaitTimeout
			nodeWaitTimeout = 2 * time.Second
			f := failrecord.Run(t, tt.scenario)
			nodeWaitTimeout = wait
			restore()
			if len(f) == 0 {
				t.Fatalf("passes with %s switched off: it cannot catch the bug", tt.mutation)
			}
			t.Logf("with %s switched off: %s", tt.mutation, failrecord.Summary(f[0]))
		})
	}
}
