package raftnode

import (
	"context"

	"github.com/keelraft/raft"
)

// Barrier waits until every entry the leader appended before the call is
// applied here: once it returns nil, the state machine reflects every
// proposal this leader accepted earlier, whether or not its caller waited
// for it. It appends an empty entry and waits for it to apply, so it costs
// one replication round. Only the leader can append: elsewhere it returns
// a *NotLeaderError. ErrProposalUnknown means the leader lost office before
// the barrier applied; call it again on the new leader.
func (n *Node) Barrier(ctx context.Context) error {
	_, err := n.propose(ctx, []raft.Entry{{}})
	return err
}
