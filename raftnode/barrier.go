package raftnode

import (
	"context"
)

// Barrier waits until every entry the leader appended before the call is
// applied here: once it returns nil, this node's state machine reflects
// every proposal the leader accepted earlier, whether or not its caller
// waited for it. It appends an empty entry (forwarded to the leader from a
// follower) and waits for it to apply here, so it costs one replication
// round. It returns a *NotLeaderError when no leader is known (or a
// follower may not forward, Raft.DisableProposalForwarding), and
// ErrProposalUnknown when the barrier's fate was not seen (a leader change,
// the context): call it again.
func (n *Node) Barrier(ctx context.Context) error {
	req := &nodePropReq{}
	req.ents = req.one.ent[:]
	return n.proposeEach(ctx, req)[0].Err
}
