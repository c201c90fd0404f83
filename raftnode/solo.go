package raftnode

import (
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// soloTransport is the transport of a Node started without one, which is
// allowed only for a single voter that is this node: such a node sends no
// message. Should its membership grow, every message is dropped, with one
// error line per peer saying why.
type soloTransport struct {
	logger *zap.Logger
	mu     sync.Mutex
	warned map[uint64]bool
}

func (t *soloTransport) Send(msgs []raft.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		if !t.warned[m.To] {
			t.warned[m.To] = true
			t.logger.Error("this node has no transport (Config.Transport is nil, for a single voter): it cannot reach a peer; give it a transport before adding members",
				zap.Uint64("peer", m.To))
		}
	}
}

func (t *soloTransport) AddPeer(uint64, string) {}
func (t *soloTransport) RemovePeer(uint64)      {}
func (t *soloTransport) Close() error           { return nil }

// soloVoter reports whether cs, or the bootstrap voters when cs is empty,
// make id the single voter of a configuration without learners.
func soloVoter(cs raft.ConfState, bootstrap []uint64, id uint64) bool {
	if len(cs.Voters) == 0 && len(cs.Learners) == 0 {
		return slices.Equal(bootstrap, []uint64{id})
	}
	return slices.Equal(cs.Voters, []uint64{id}) && len(cs.Learners) == 0 &&
		len(cs.VotersOutgoing) == 0 && len(cs.LearnersNext) == 0
}
