package raftnode_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/tcptransport"
)

// startTCPNodes starts Nodes 1..n over tcptransport on loopback (default
// frame limit, peers authenticated by a shared secret), with the election
// and heartbeat ticks of timing, and returns them with their state machines
// once they agree on a leader. The test checks for leaked goroutines.
func startTCPNodes(t *testing.T, n int, timing raft.Config, tick time.Duration) (map[uint64]*raftnode.Node, map[uint64]*nodeTestSM, uint64) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	var ids []uint64
	lns := map[uint64]net.Listener{}
	addrs := map[uint64]string{}
	for id := uint64(1); id <= uint64(n); id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ids = append(ids, id)
		lns[id], addrs[id] = ln, ln.Addr().String()
	}
	nodes := map[uint64]*raftnode.Node{}
	sms := map[uint64]*nodeTestSM{}
	for _, id := range ids {
		sms[id] = &nodeTestSM{}
		node, err := raftnode.New(raftnode.Config{
			Raft:         raft.Config{ID: id, ElectionTick: timing.ElectionTick, HeartbeatTick: timing.HeartbeatTick},
			Storage:      raft.NewMemoryStorage(),
			StateMachine: sms[id],
			TickInterval: tick,
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
		require.NoError(t, node.Start(nodePeers(ids)))
		nodes[id] = node
	}
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
	return nodes, sms, lead
}

// TestNodeOnTCPTransport runs three Nodes over tcptransport on loopback:
// elect, propose on the leader, read on every node.
func TestNodeOnTCPTransport(t *testing.T) {
	nodes, sms, lead := startTCPNodes(t, 3, raft.Config{ElectionTick: 10, HeartbeatTick: 1}, 5*time.Millisecond)
	ctx := nodeCtx(t)
	for i := range 20 {
		_, err := nodes[lead].Propose(ctx, []byte(fmt.Sprintf("v%d", i)))
		require.NoError(t, err)
	}
	for id := range nodes {
		require.NoError(t, nodes[id].Read(ctx))
		assert.Len(t, sms[id].snapshot(), 20, "node %d", id)
	}
}
