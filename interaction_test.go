package raft

import (
	"path/filepath"
	"testing"

	"github.com/keelraft/raft/internal/script"
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
