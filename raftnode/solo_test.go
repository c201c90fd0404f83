package raftnode_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

func TestNodeSingleVoterNeedsNoTransport(t *testing.T) {
	storage := raft.NewMemoryStorage()
	sm := &nodeTestSM{}
	n, err := raftnode.New(raftnode.Config{Raft: raft.Config{ID: 1, ElectionTick: 20, HeartbeatTick: 1},
		Storage: storage, StateMachine: sm, TickInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, n.Start([]raft.Peer{{ID: 1}}))
	defer n.Stop()
	ctx := nodeCtx(t)
	_, _, err = n.WaitLeader(ctx)
	require.NoError(t, err)
	_, err = n.Propose(ctx, []byte("a"))
	require.NoError(t, err)
	require.NoError(t, n.Read(ctx))
	assert.Equal(t, []string{"a"}, sm.snapshot())
}
