package raftnode

import (
	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// nodePeers is what the Node told its transport. It belongs to the loop
// goroutine (and to Start, before the loop runs).
type nodePeers struct {
	// addrs holds the address the Node gave each peer with AddPeer.
	addrs map[uint64]string
	// leaving holds, for each of those peers that left the configuration,
	// the tick (Node.ticks) from which the Node calls RemovePeer.
	leaving map[uint64]uint64
}

// followConf has the transport follow the configuration cs now in force:
// AddPeer for every other member whose recorded address the transport was
// not given yet, or was given another one, and RemovePeer, an election
// timeout later (see removeLeftPeers), for every node it was given that is
// no longer a member. Members without an address in cs are left to the
// host, as are transport peers the Node never added.
func (n *Node) followConf(cs raft.ConfState) {
	p := &n.peers
	if p.addrs == nil {
		p.addrs, p.leaving = map[uint64]string{}, map[uint64]uint64{}
	}
	members := map[uint64]bool{}
	for _, ids := range [][]uint64{cs.Voters, cs.VotersOutgoing, cs.Learners, cs.LearnersNext} {
		for _, id := range ids {
			members[id] = true
		}
	}
	for id := range p.addrs {
		_, leaving := p.leaving[id]
		switch {
		case members[id] && leaving:
			delete(p.leaving, id) // back before it was removed
		case !members[id] && !leaving:
			p.leaving[id] = n.ticks + uint64(n.cfg.Raft.ElectionTick)
		}
	}
	for id, addr := range cs.Addresses {
		if id == n.id || !members[id] || addr == "" || p.addrs[id] == addr {
			continue
		}
		// A member's arrival is the core's news (an applied change); a
		// moved address is this line's.
		lvl := zap.DebugLevel
		if old, ok := p.addrs[id]; ok && old != addr {
			lvl = zap.InfoLevel
		}
		n.logger.Log(lvl, "transport: following the configuration's address for a member", zap.Uint64("peer", id), zap.String("address", addr))
		n.transport.AddPeer(id, addr)
		p.addrs[id] = addr
	}
}

// removeLeftPeers calls RemovePeer for the peers that left the
// configuration an election timeout ago or more. Removing them at once
// would drop what the transport still holds for them, among which, on the
// leader, the commit of their removal: a removed node that never learns
// of it cannot tell that it was removed (ErrRemoved).
func (n *Node) removeLeftPeers() {
	for id, at := range n.peers.leaving {
		if n.ticks < at {
			continue
		}
		n.logger.Info("transport: removing a node that left the configuration", zap.Uint64("peer", id))
		n.transport.RemovePeer(id)
		delete(n.peers.leaving, id)
		delete(n.peers.addrs, id)
	}
}
