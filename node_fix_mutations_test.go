//go:build keelmutations

package raft_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// errNodeScenarioFailed unwinds a scenario run by nodeFailures at its first
// fatal failure.
var errNodeScenarioFailed = errors.New("node scenario failed")

// nodeFailures is a testing.TB that collects a scenario's failures instead
// of failing the test. Fatal failures must come from the scenario's own
// goroutine.
type nodeFailures struct {
	testing.TB
	msgs []string
}

func (f *nodeFailures) Helper()                   {}
func (f *nodeFailures) Fail()                     { f.msgs = append(f.msgs, "failed") }
func (f *nodeFailures) Failed() bool              { return len(f.msgs) > 0 }
func (f *nodeFailures) Error(args ...any)         { f.msgs = append(f.msgs, fmt.Sprint(args...)) }
func (f *nodeFailures) Errorf(s string, a ...any) { f.msgs = append(f.msgs, fmt.Sprintf(s, a...)) }
func (f *nodeFailures) FailNow()                  { f.Fail(); panic(errNodeScenarioFailed) }
func (f *nodeFailures) Fatal(args ...any)         { f.Error(args...); panic(errNodeScenarioFailed) }
func (f *nodeFailures) Fatalf(s string, a ...any) { f.Errorf(s, a...); panic(errNodeScenarioFailed) }

// runNodeScenario runs scenario and returns its failures, a panic included.
func runNodeScenario(t *testing.T, scenario func(testing.TB)) []string {
	f := &nodeFailures{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != errNodeScenarioFailed {
				f.msgs = append(f.msgs, fmt.Sprintf("panic: %v", p))
			}
		}()
		scenario(f)
	}()
	return f.msgs
}

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
			if f := runNodeScenario(t, tt.scenario); len(f) > 0 {
				t.Fatalf("fails with the fix on: %v", f)
			}
			restore := raft.SetMutationsForTesting(tt.mutation)
			wait := nodeWaitTimeout
			nodeWaitTimeout = 2 * time.Second
			f := runNodeScenario(t, tt.scenario)
			nodeWaitTimeout = wait
			restore()
			if len(f) == 0 {
				t.Fatalf("passes with %s switched off: it cannot catch the bug", tt.mutation)
			}
			t.Logf("with %s switched off: %s", tt.mutation, nodeFailureLine(f[0]))
		})
	}
}

// nodeFailureLine returns the line of a failure that says what failed: a
// testify failure's Messages or Error line, else its first line.
func nodeFailureLine(failure string) string {
	lines := strings.Split(failure, "\n")
	for _, key := range []string{"Messages:", "Error:"} {
		for _, l := range lines {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, key) && len(l) > len(key)+1 {
				return l
			}
		}
	}
	return strings.TrimSpace(lines[0])
}
