package raftnode

import (
	"errors"
	"fmt"

	"github.com/keelraft/raft"
)

// The errors of a Node's calls beyond those of the core (package raft),
// which its calls return as they are.
var (
	// ErrStopped is returned by the calls of a Node that was stopped (or
	// never started). A proposal that fails with ErrStopped alone was never
	// appended; one that was appended before the stop fails with
	// ErrProposalUnknown as well.
	ErrStopped = errors.New("raftnode: node stopped")

	// ErrProposalUnknown is returned by Node.Propose when the outcome is
	// unknown: the entry was appended to the leader's log (or forwarded to
	// the leader, whose answer did not arrive), but the leader lost office
	// before the node saw it applied, the context expired, or the node
	// stopped. The entry may or may not apply later; a client that retries
	// must make its command idempotent.
	ErrProposalUnknown = errors.New("raftnode: proposal outcome unknown")

	// ErrRemoved is returned by the calls of a node that applied a
	// configuration that no longer includes it: it belongs to the cluster
	// no more, and does nothing it is asked until a later configuration
	// adds it back (see Config.StopWhenRemoved and OnRemoved).
	ErrRemoved = errors.New("raftnode: this node was removed from the cluster")

	// ErrTransferAbandoned is returned by TransferLeadership on the leader
	// when the leader gave the transfer up: the target did not take over
	// within an election timeout. The leader leads on and accepts
	// proposals again.
	ErrTransferAbandoned = errors.New("raftnode: leadership transfer abandoned")
)

// NotLeaderError is returned by Node calls that only the leader can serve
// when this node is not the leader. errors.Is(err, raft.ErrNotLeader)
// holds. The call certainly had no effect; retry at Leader (raft.None if no
// leader is known).
type NotLeaderError struct {
	Leader uint64
}

// Error describes the error and the leader hint.
func (e *NotLeaderError) Error() string {
	if e.Leader == raft.None {
		return raft.ErrNotLeader.Error() + " (no leader known)"
	}
	return fmt.Sprintf("%s (leader is %d)", raft.ErrNotLeader.Error(), e.Leader)
}

// Unwrap returns ErrNotLeader.
func (e *NotLeaderError) Unwrap() error { return raft.ErrNotLeader }
