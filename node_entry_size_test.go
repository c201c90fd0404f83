package raft_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/tcptransport"
)

// startTCPNodes starts Nodes 1..n with default limits over tcptransport
// with its default frame limit, and returns them with their state
// machines once they agree on a leader.
func startTCPNodes(t *testing.T, n int) (map[uint64]*raft.Node, map[uint64]*nodeTestSM, uint64) {
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
	nodes := map[uint64]*raft.Node{}
	sms := map[uint64]*nodeTestSM{}
	for _, id := range ids {
		sms[id] = &nodeTestSM{}
		node, err := raft.NewNode(raft.NodeConfig{
			Raft:         raft.Config{ID: id, ElectionTick: 100, HeartbeatTick: 5},
			Storage:      raft.NewMemoryStorage(),
			StateMachine: sms[id],
			// A one-second election timeout: moving the largest entry
			// (encoding, copying, decoding it on a loaded machine) must
			// not look like a dead leader.
			TickInterval: 10 * time.Millisecond,
		})
		require.NoError(t, err)
		peers := map[uint64]string{}
		for _, p := range ids {
			if p != id {
				peers[p] = addrs[p]
			}
		}
		tr, err := tcptransport.New(tcptransport.Config{ID: id, ClusterID: 7, Listener: lns[id], Peers: peers, Handler: node,
			PeerSecret: []byte("node entry size test secret")})
		require.NoError(t, err)
		node.SetTransport(tr)
		t.Cleanup(func() {
			node.Stop()
			assert.NoError(t, tr.Close())
		})
		require.NoError(t, node.Start(ids))
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

// A 20 MiB proposal, which no default-sized frame can carry, is refused
// with ErrProposalTooLarge and appends nothing; replication goes on, and
// an entry of exactly the default limit reaches every node over TCP.
func TestNodeRefusesAnEntryTheTransportCannotCarry(t *testing.T) {
	nodes, sms, lead := startTCPNodes(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := nodes[lead].Propose(ctx, []byte("first"))
	require.NoError(t, err)
	applied := nodes[lead].AppliedIndex()

	_, err = nodes[lead].Propose(ctx, make([]byte, 20<<20))
	require.ErrorIs(t, err, raft.ErrProposalTooLarge)
	_, err = nodes[lead].ProposeBatch(ctx, [][]byte{[]byte("ok"), make([]byte, raft.DefaultMaxEntrySize+1)})
	require.ErrorIs(t, err, raft.ErrProposalTooLarge, "a batch with one oversized entry is refused whole")
	assert.Equal(t, applied, nodes[lead].AppliedIndex(), "nothing was appended")
	assert.Equal(t, uint64(raft.DefaultMaxEntrySize), nodes[lead].MaxEntrySize())

	largest := bytes.Repeat([]byte{'L'}, raft.DefaultMaxEntrySize)
	_, err = nodes[lead].Propose(ctx, largest)
	require.NoError(t, err, "the largest allowed entry commits, so it reached a quorum")
	_, err = nodes[lead].Propose(ctx, []byte("after"))
	require.NoError(t, err, "later writes are not stuck behind it")
	for id, n := range nodes {
		require.NoError(t, n.Read(ctx))
		got := sms[id].snapshot()
		require.Len(t, got, 3, "node %d", id)
		assert.Equal(t, "first", got[0])
		assert.Len(t, got[1], raft.DefaultMaxEntrySize, "node %d holds the large entry", id)
		assert.Equal(t, "after", got[2])
	}
}

// ProposeUntracked on a follower has the entry forwarded to the leader
// over the transport and applied everywhere; an oversized one is refused.
func TestNodeProposeUntrackedFromAFollowerIsForwardedAndApplied(t *testing.T) {
	c := newNodeCluster(t, 3, nil)
	lead := c.waitLeader()
	follower := lead%3 + 1
	ctx := nodeCtx(t)
	n := c.members[follower].node
	require.ErrorIs(t, n.ProposeUntracked(ctx, make([]byte, raft.DefaultMaxEntrySize+1)), raft.ErrProposalTooLarge)
	require.NoError(t, n.ProposeUntracked(ctx, []byte("from a follower")))
	for _, m := range c.members {
		nodeWaitFor(t, "the forwarded entry applied", func() bool {
			got := m.sm.snapshot()
			return len(got) == 1 && got[0] == "from a follower"
		})
	}
	err := c.members[lead].node.ProposeUntracked(context.Background(), []byte("on the leader"))
	require.NoError(t, err)
	nodeWaitFor(t, "the leader's untracked entry applied", func() bool { return len(c.members[lead].sm.snapshot()) == 2 })
}
