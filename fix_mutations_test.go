//go:build keelmutations

package raft

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// errFailNow ends a scenario run by failRecorder at its first fatal failure.
var errFailNow = errors.New("scenario failed")

// failRecorder is a testing.TB that records failures instead of reporting
// them, so that a test can assert that a scenario fails.
type failRecorder struct {
	testing.TB
	failures []string
}

func (f *failRecorder) Helper()           {}
func (f *failRecorder) Fail()             { f.failures = append(f.failures, "Fail") }
func (f *failRecorder) Error(args ...any) { f.failures = append(f.failures, fmt.Sprint(args...)) }
func (f *failRecorder) Errorf(s string, a ...any) {
	f.failures = append(f.failures, fmt.Sprintf(s, a...))
}
func (f *failRecorder) FailNow()                  { f.Fail(); panic(errFailNow) }
func (f *failRecorder) Fatal(args ...any)         { f.Error(args...); panic(errFailNow) }
func (f *failRecorder) Fatalf(s string, a ...any) { f.Errorf(s, a...); panic(errFailNow) }
func (f *failRecorder) Failed() bool              { return len(f.failures) > 0 }

// RunScenarioRecorded runs scenario and returns what failed in it, a panic
// included, without failing t. Fatal failures must come from the scenario's
// own goroutine. Exported for the package's external tests (Node).
func RunScenarioRecorded(t *testing.T, scenario func(testing.TB)) (failures []string) {
	rec := &failRecorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != errFailNow {
				rec.failures = append(rec.failures, fmt.Sprintf("panic: %v", p))
			}
		}()
		scenario(rec)
	}()
	return rec.failures
}

// TestFixesAreNeeded switches each fault fix of the core off in turn and
// checks that the deterministic scenario written for its bug then fails, and
// passes with the fix on: the scenarios are the failing-first tests of the
// fixes, and stay able to fail.
func TestFixesAreNeeded(t *testing.T) {
	tests := []struct {
		mutation  string
		scenarios map[string]func(testing.TB)
	}{
		{"stalled-window", map[string]func(testing.TB){
			"lost window": followerCatchesUpAfterLostWindow,
		}},
		{"reapply-snapshot-conf", map[string]func(testing.TB){
			"leave-joint then enter-joint below the snapshot": restartKeepsConfigurationOfSnapshot,
		}},
		{"transfer-ignores-conf-changes", map[string]func(testing.TB){
			"removal":  script("transfer_target_unapplied_removal"),
			"demotion": script("transfer_target_unapplied_demotion"),
		}},
		{"single-voter-read-shortcut", map[string]func(testing.TB){
			"restart with a lost commit update": readIndexSingleVoterWaitsForCommitInItsTerm,
		}},
		{"vote-before-durable", map[string]func(testing.TB){
			"crash before the vote is durable": singleVoterNeverLeadsOneTermTwice,
		}},
		{"term-ceiling", map[string]func(testing.TB){
			"a heartbeat at the largest term": electionsAfterMessageWithLargestTerm,
		}},
		{"lease-vote-from-leader", map[string]func(testing.TB){
			"late heartbeats of the deposed leader": leaseDoesNotRefuseItsOwnLeadersVote,
		}},
		{"snapshot-overtakes-conf-change", map[string]func(testing.TB){
			"pipelined apply behind a snapshot": snapshotWaitsForUnappliedConfChange,
		}},
		{"no-caretaker", map[string]func(testing.TB){
			"removed node with the longer log": removedNodeWithLongerLogCampaignsAsCaretaker,
		}},
		{"ignore-recovering", map[string]func(testing.TB){
			"a follower lost committed entries": recoveringNodeElectsNoLeaderWithoutCommittedEntries,
		}},
		{"ignore-incarnation", map[string]func(testing.TB){
			"a wiped node bootstraps again": wipedNodeThatBootstrapsAgainIsNotCountedAsItsOldSelf,
		}},
		{"ignore-log-regression", map[string]func(testing.TB){
			"below commit":        leaderRepairsFollowerWhoseLogWentBackwards,
			"uncommitted entries": leaderRepairsFollowerThatLostUncommittedAcks,
		}},
	}
	for _, tt := range tests {
		for name, scenario := range tt.scenarios {
			t.Run(tt.mutation+"/"+name, func(t *testing.T) {
				if f := RunScenarioRecorded(t, scenario); len(f) > 0 {
					t.Fatalf("fails with the fix on: %v", f)
				}
				restore := SetMutationsForTesting(tt.mutation)
				f := RunScenarioRecorded(t, scenario)
				restore()
				if len(f) == 0 {
					t.Fatalf("passes with %s switched off: it cannot catch the bug", tt.mutation)
				}
				t.Logf("with %s switched off: %s", tt.mutation, FailureSummary(f[0]))
			})
		}
	}
}

// script returns a scenario that runs testdata/name.txt against its
// recording.
func script(name string) func(testing.TB) {
	return func(t testing.TB) { scenRunFile(t, filepath.Join("testdata", name+".txt")) }
}

// FailureSummary returns the line of a testify failure that says what
// failed: its Messages or Error line, else its first line.
func FailureSummary(failure string) string {
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
