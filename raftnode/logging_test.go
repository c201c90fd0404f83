package raftnode_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keelraft/raft/raftnode"
)

// A quiet start logs at Info only what an operator needs: each node's
// start and the leader it learns. Every line names the node with one
// field, raft_id.
func TestNodeQuietStartLogsOnlyWhatChanged(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	c := newNodeCluster(t, 3, withAddresses(), withConfig(func(cfg *raftnode.Config) { cfg.Raft.Logger = zap.New(core) }))
	lead := c.waitLeader()
	c.propose("x")
	for _, id := range c.ids {
		_, _, err := c.members[id].node.WaitLeader(nodeCtx(t))
		assert.NoError(t, err)
	}
	allowed := map[string]bool{"raft node started": true, "leader changed": true}
	leaderLines := 0
	for _, e := range logs.All() {
		assert.True(t, allowed[e.Message], "unexpected Info line %q %v", e.Message, e.ContextMap())
		fields := e.ContextMap()
		assert.Contains(t, fields, "raft_id", "line %q", e.Message)
		assert.NotContains(t, fields, "node", "line %q", e.Message)
		assert.NotContains(t, fields, "id", "line %q", e.Message)
		if e.Message == "leader changed" && fields["leader"] == lead {
			leaderLines++
		}
	}
	assert.GreaterOrEqual(t, leaderLines, 1, "the leader is announced")
}
