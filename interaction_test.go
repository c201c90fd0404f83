package raft

import (
	"path/filepath"
	"testing"

	"github.com/keelraft/raft/internal/script"
	"github.com/stretchr/testify/require"
)

// Scripted protocol scenarios.
//
// Every testdata/*.txt file is a script of commands, each followed by the
// output it produced when the script was recorded, in the format of
// internal/script:
//
//	# a comment: lines starting with '#' explain the scenario
//	campaign 1
//	----
//	1 campaigns: StatePreCandidate term=1
//
// TestInteraction runs every script on a fresh scenEnv (interaction_env_test.go)
// and compares each command's output with the recording. With -update
//
//	go test -run TestInteraction -update
//
// it rewrites the recordings instead; review the diff before committing it.
//
// Commands (IDs are node IDs; nothing happens unless a command does it):
//
//	add-nodes N [opt=v...]   bootstrap voters 1..N; options: prevote,
//	                         checkquorum, forwarding, step-down-on-removal
//	                         (true/false), read-only (safe/lease), election,
//	                         heartbeat, max-msg-size, max-inflight,
//	                         max-uncommitted (numbers)
//	campaign ID              start an election (pre-vote first if enabled)
//	propose ID DATA          propose DATA at ID
//	tick ID [N], tick-all [N]  tick N times, printing timers that fired
//	process-ready ID...      print one Ready of each node and carry it out
//	deliver [FROM->TO]       step queued messages ("*" matches any node)
//	drop [FROM->TO]          discard queued messages
//	send FROM->TO TYPE [term=N logterm=N index=N commit=N hint=N reject=true]
//	                         queue a hand-made message
//	partition A.. | B.. [| C..], isolate ID, heal   cut and restore links
//	stabilize                handle Readies and deliver until quiet
//	status [ID...], raft-log [ID...]   print state and logs
//	crash ID, restart ID [opt=v...]    lose a node's memory, restart it
//	                         from its storage (options as in add-nodes)
//
// interaction_ext_test.go adds the commands for leadership transfer, reads,
// snapshots and membership changes (elect, transfer-leader, read-index,
// snapshot, report-snapshot, report-unreachable, propose-conf-change,
// leave-joint, add-node, delay, duplicate, release).

func TestInteraction(t *testing.T) {
	script.RunDir(t, filepath.Join("testdata", "*.txt"), func(t testing.TB) script.Handler {
		return newScenEnv(t).run
	})
}

// scenRunFile runs one script on a fresh scenEnv, reporting every output
// that differs from its recording (or rewriting the recordings with
// -update).
func scenRunFile(t testing.TB, file string) {
	t.Helper()
	script.RunFile(t, file, newScenEnv(t).run)
}

func TestInteractionDurableCheck(t *testing.T) {
	tests := []struct {
		name    string
		durable HardState
		last    uint64
		msg     Message
		wantErr bool
	}{
		{"grant with the vote durable", HardState{Term: 2, Vote: 1}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, false},
		{"grant before the term is durable", HardState{Term: 1}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, true},
		{"grant while another vote is durable", HardState{Term: 2, Vote: 3}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, true},
		{"grant overtaken by a later durable term", HardState{Term: 3, Vote: 3}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, false},
		{"refusal promises nothing", HardState{Term: 1}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2, Reject: true}, false},
		{"request with the own vote durable", HardState{Term: 2, Vote: 1}, 1,
			Message{Type: MsgVote, From: 1, To: 2, Term: 2}, false},
		{"request before the own vote is durable", HardState{Term: 1}, 1,
			Message{Type: MsgVote, From: 1, To: 2, Term: 2}, true},
		{"ack of a durable index", HardState{Term: 2}, 3,
			Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 3}, false},
		{"ack beyond the durable log", HardState{Term: 2}, 2,
			Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemoryStorage()
			require.NoError(t, s.SetHardState(tt.durable))
			for i := uint64(1); i <= tt.last; i++ {
				require.NoError(t, s.Append([]Entry{{Term: 1, Index: i}}))
			}
			err := scenCheckDurable(s, tt.msg)
			if tt.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
		})
	}
}
