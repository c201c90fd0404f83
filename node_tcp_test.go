package raft_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/tcptransport"
)

// TestNodeOnTCPTransport runs three Nodes over tcptransport on loopback:
// elect, propose on the leader, read on every node.
func TestNodeOnTCPTransport(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	ids := []uint64{1, 2, 3}
	lns := map[uint64]net.Listener{}
	addrs := map[uint64]string{}
	for _, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns[id], addrs[id] = ln, ln.Addr().String()
	}
	nodes := map[uint64]*raft.Node{}
	sms := map[uint64]*nodeTestSM{}
	for _, id := range ids {
		sms[id] = &nodeTestSM{}
		node, err := raft.NewNode(raft.NodeConfig{
			Raft:         raft.Config{ID: id, ElectionTick: 10, HeartbeatTick: 1},
			Storage:      raft.NewMemoryStorage(),
			StateMachine: sms[id],
			TickInterval: 5 * time.Millisecond,
		})
		require.NoError(t, err)
		peers := map[uint64]string{}
		for _, p := range ids {
			if p != id {
				peers[p] = addrs[p]
			}
		}
		tr, err := tcptransport.New(tcptransport.Config{ID: id, ClusterID: 7, Listener: lns[id], Peers: peers, Handler: node,
			PeerSecret: []byte("node tcp test shared secret")})
		require.NoError(t, err)
		node.SetTransport(tr)
		t.Cleanup(func() {
			node.Stop()
			assert.NoError(t, tr.Close())
		})
		require.NoError(t, node.Start(ids))
		nodes[id] = node
	}
	ctx := nodeCtx(t)
	var lead uint64
	nodeWaitFor(t, "a leader", func() bool {
		l1, _ := nodes[1].LeaderID()
		for _, id := range ids {
			if l, _ := nodes[id].LeaderID(); l == raft.None || l != l1 {
				return false
			}
		}
		lead = l1
		return true
	})
	for i := range 20 {
		_, err := nodes[lead].Propose(ctx, []byte(fmt.Sprintf("v%d", i)))
		require.NoError(t, err)
	}
	for _, id := range ids {
		require.NoError(t, nodes[id].Read(ctx))
		assert.Len(t, sms[id].snapshot(), 20, "node %d", id)
	}
}
