//go:build keelmutations

package raft

import (
	"path/filepath"
	"testing"

	"github.com/keelraft/raft/internal/failrecord"
	"github.com/keelraft/raft/internal/script"
)

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
			"removal":  scriptScenario("transfer_target_unapplied_removal"),
			"demotion": scriptScenario("transfer_target_unapplied_demotion"),
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
		{"silent-to-removed", map[string]func(testing.TB){
			"acknowledgement after the leader applied the removal": removedNodeLearnsItsRemoval,
		}},
		{"ignore-log-regression", map[string]func(testing.TB){
			"below commit":        leaderRepairsFollowerWhoseLogWentBackwards,
			"uncommitted entries": leaderRepairsFollowerThatLostUncommittedAcks,
		}},
	}
	for _, tt := range tests {
		for name, scenario := range tt.scenarios {
			t.Run(tt.mutation+"/"+name, func(t *testing.T) {
				if f := failrecord.Run(t, scenario); len(f) > 0 {
					t.Fatalf("fails with the fix on: %v", f)
				}
				restore := SetMutationsForTesting(tt.mutation)
				f := failrecord.Run(t, scenario)
				restore()
				if len(f) == 0 {
					t.Fatalf("passes with %s switched off: it cannot catch the bug", tt.mutation)
				}
				t.Logf("with %s switched off: %s", tt.mutation, failrecord.Summary(f[0]))
			})
		}
	}
}

// scriptScenario returns a scenario that runs testdata/name.txt against its
// recording.
func scriptScenario(name string) func(testing.TB) {
	return func(t testing.TB) {
		script.RunFile(t, filepath.Join("testdata", name+".txt"), newScenEnv(t).run)
	}
}
