//go:build keelmutations

package raftnode

import "github.com/keelraft/raft"

// leaseMissedTicksMutated reports whether the fix that counts the ticks a
// paused loop missed against the leader lease is switched off (see
// raft.SetMutationsForTesting).
func leaseMissedTicksMutated() bool { return raft.MutatedForTesting("lease-missed-ticks") }
