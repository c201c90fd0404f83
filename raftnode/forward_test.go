package raftnode_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

// hasData reports whether m carries an entry whose data is one of data.
func hasData(m raft.Message, data ...string) bool {
	return slices.ContainsFunc(m.Entries, func(e raft.Entry) bool { return slices.Contains(data, string(e.Data)) })
}

// nodeAppliedCount returns how many times node id applied data.
func (c *nodeCluster) appliedCount(id uint64, data string) int {
	n := 0
	for _, d := range c.members[id].sm.snapshot() {
		if d == data {
			n++
		}
	}
	return n
}

// proposeFrom proposes data on node id, again as long as it certainly did
// not apply (a spurious election on a loaded machine: no leader, or the
// proposal reached a node no longer leading), and returns the result.
func (c *nodeCluster) proposeFrom(ctx context.Context, id uint64, data string) (any, error) {
	for {
		res, err := c.members[id].node.Propose(ctx, []byte(data))
		if (!errors.Is(err, raft.ErrProposalDropped) && !errors.Is(err, raft.ErrNotLeader)) || ctx.Err() != nil {
			return res, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A follower's Propose and ProposeBatch are forwarded to the leader and
// return the state machine's results for their own entries; concurrent
// proposals from followers are applied once each.
func TestNodeProposeFromFollower(t *testing.T) {
	c := newNodeCluster(t, 3)
	ctx := nodeCtx(t)
	lead := c.waitLeader()
	c.waitReplicating(lead)
	for _, id := range nodeOthers(c.ids, lead) {
		data := fmt.Sprintf("from %d", id)
		res, err := c.proposeFrom(ctx, id, data)
		require.NoError(t, err, "node %d", id)
		index := res.(uint64)
		// Applied here, so durable here (the leader's own write may lag).
		ents, err := c.members[id].storage.Entries(index, index+1, 1<<20)
		require.NoError(t, err)
		assert.Equal(t, data, string(ents[0].Data), "the result is the proposed entry's")
		assert.Equal(t, 1, c.appliedCount(id, data), "applied at the proposer")

		var batch []raftnode.Result
		for {
			batch = c.members[id].node.ProposeBatch(ctx, [][]byte{[]byte(data + " a"), []byte(data + " b")})
			require.Len(t, batch, 2)
			if !errors.Is(batch[0].Err, raft.ErrProposalDropped) && !errors.Is(batch[0].Err, raft.ErrNotLeader) {
				break // a spurious election refuses the batch whole
			}
		}
		require.NoError(t, batch[0].Err)
		require.NoError(t, batch[1].Err)
		assert.Equal(t, batch[0].Value.(uint64)+1, batch[1].Value.(uint64), "consecutive")
	}

	// Many at once, from both followers: each applies exactly once, at
	// the index its result names.
	var wg sync.WaitGroup
	results := make(chan [2]any, 40)
	for i := range 40 {
		id := nodeOthers(c.ids, lead)[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := fmt.Sprintf("concurrent %d", i)
			res, err := c.proposeFrom(ctx, id, data)
			if err != nil {
				results <- [2]any{data, err}
				return
			}
			results <- [2]any{data, res}
		}()
	}
	wg.Wait()
	close(results)
	last := c.propose("last")
	for _, id := range c.ids {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		for i := range 40 {
			assert.Equal(t, 1, c.appliedCount(id, fmt.Sprintf("concurrent %d", i)), "node %d", id)
		}
	}
	storage := c.members[c.ids[0]].storage // it applied last: it holds the rest
	for r := range results {
		index, ok := r[1].(uint64)
		require.True(t, ok, "%s: %v", r[0], r[1])
		ents, err := storage.Entries(index, index+1, 1<<20)
		require.NoError(t, err)
		assert.Equal(t, r[0], string(ents[0].Data))
	}
}

// With proposal forwarding disabled, a follower's Propose fails with a
// *NotLeaderError naming the leader, and nothing is appended.
func TestNodeProposeFromFollowerForwardingDisabled(t *testing.T) {
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) { cfg.Raft.DisableProposalForwarding = true }))
	ctx := nodeCtx(t)
	lead := c.waitLeader()
	for _, id := range nodeOthers(c.ids, lead) {
		_, err := c.members[id].node.Propose(ctx, []byte("refused"))
		var nle *raftnode.NotLeaderError
		require.ErrorAs(t, err, &nle)
		assert.Equal(t, lead, nle.Leader)
	}
	last := c.propose("after")
	for _, id := range c.ids {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		assert.Equal(t, []string{"after"}, c.members[id].sm.snapshot())
	}
}

// A forwarded proposal that the leader appended and answered, but never
// replicated, is overwritten by the next leader: the follower's Propose
// fails as dropped, and the entry applies nowhere.
func TestNodeForwardedProposalOverwritten(t *testing.T) {
	filters := map[uint64]*nodeDropTransport{}
	c := newNodeCluster(t, 3, withDropTransports(filters))
	ctx := nodeCtx(t)
	c.propose("before")
	lead := c.waitLeader()
	c.waitReplicating(lead)
	follower := nodeOthers(c.ids, lead)[0]
	// The leader's answers to forwarded proposals get through; nothing
	// else it sends does, so the others elect a new leader.
	filters[lead].setDrop(func(m raft.Message) bool { return m.Type != raft.MsgPropResp })
	_, err := c.members[follower].node.Propose(ctx, []byte("doomed"))
	require.ErrorIs(t, err, raft.ErrProposalDropped, "an overwritten entry reported as %v", err)
	assert.NotErrorIs(t, err, raftnode.ErrProposalUnknown)
	assert.Contains(t, err.Error(), "overwritten", "the leader appended it, and a new leader overwrote it")

	filters[lead].setDrop(nil)
	last := c.proposeAmong(nodeOthers(c.ids, lead), "after")
	for _, id := range c.ids {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		assert.Equal(t, []string{"before", "after"}, c.members[id].sm.snapshot(), "node %d", id)
	}
}

// A forwarded proposal whose answer from the leader is lost ends with
// ErrProposalUnknown when the context expires, not with a failure: the
// entry may apply, and here it does.
func TestNodeForwardedProposalAnswerLost(t *testing.T) {
	filters := map[uint64]*nodeDropTransport{}
	c := newNodeCluster(t, 3, withDropTransports(filters))
	lead := c.waitLeader()
	c.waitReplicating(lead)
	follower := nodeOthers(c.ids, lead)[0]
	filters[lead].setDrop(func(m raft.Message) bool { return m.Type == raft.MsgPropResp })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.members[follower].node.Propose(ctx, []byte("unanswered"))
	require.ErrorIs(t, err, raftnode.ErrProposalUnknown)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, raft.ErrProposalDropped)
	nodeWaitFor(t, "the entry to apply at the follower", func() bool { return c.appliedCount(follower, "unanswered") == 1 })
}

// A batch whose first entry committed before a new leader overwrote the
// rest reports per entry: the first applied, with its result, the others
// failed, and a retry of the failed ones applies nothing twice. The split
// is forced by letting the old leader replicate only the first entry
// (one entry per append message).
func TestNodeBatchSplitAcrossLeaderChange(t *testing.T) {
	for _, from := range []string{"leader", "follower"} {
		t.Run(from, func(t *testing.T) {
			filters := map[uint64]*nodeDropTransport{}
			c := newNodeCluster(t, 3, withDropTransports(filters), withConfig(func(cfg *raftnode.Config) {
				cfg.Raft.MaxSizePerMsg = 1
			}))
			ctx := nodeCtx(t)
			c.propose("before")
			lead := c.waitLeader()
			c.waitReplicating(lead)
			proposer := lead
			if from == "follower" {
				proposer = nodeOthers(c.ids, lead)[0]
			}
			filters[lead].setDrop(func(m raft.Message) bool { return hasData(m, "b", "c") })
			out := make(chan []raftnode.Result, 1)
			go func() {
				out <- c.members[proposer].node.ProposeBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
			}()
			for _, id := range c.ids {
				nodeWaitFor(t, "a to apply", func() bool { return c.appliedCount(id, "a") == 1 })
			}
			require.True(t, nodeHasEntry(c.members[lead].storage, "c"), "the leader appended the whole batch")
			// The leader now reaches nobody: another one takes over and
			// overwrites b and c.
			filters[lead].setDrop(func(raft.Message) bool { return true })
			var res []raftnode.Result
			if from == "follower" {
				res = <-out
			}
			newLead := c.waitLeader(nodeOthers(c.ids, lead)...)
			require.NotEqual(t, lead, newLead)
			filters[lead].setDrop(nil)
			if from == "leader" {
				res = <-out
			}

			require.Len(t, res, 3)
			t.Logf("outcomes: %v, %v, %v", res[0], res[1].Err, res[2].Err)
			require.NoError(t, res[0].Err, "the applied entry")
			assert.IsType(t, uint64(0), res[0].Value)
			for i, r := range res[1:] {
				require.Error(t, r.Err, "entry %d was overwritten", i+1)
				if from == "follower" {
					assert.ErrorIs(t, r.Err, raft.ErrProposalDropped, "entry %d", i+1)
				} else {
					// The deposed leader learns the new log only once
					// it hears the new leader, which may come after it
					// gave up waiting.
					assert.True(t, errors.Is(r.Err, raft.ErrProposalDropped) || errors.Is(r.Err, raftnode.ErrProposalUnknown),
						"entry %d: %v", i+1, r.Err)
				}
				assert.Nil(t, r.Value)
			}
			// The client retries what certainly failed.
			var retry [][]byte
			for i, r := range res {
				if errors.Is(r.Err, raft.ErrProposalDropped) {
					retry = append(retry, []byte{"abc"[i]})
				}
			}
			if len(retry) > 0 {
				for _, r := range c.members[newLead].node.ProposeBatch(ctx, retry) {
					require.NoError(t, r.Err)
				}
			}
			last := c.propose("after")
			for _, id := range c.ids {
				require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
				got := c.members[id].sm.snapshot()
				assert.Equal(t, 1, c.appliedCount(id, "a"), "node %d: %v", id, got)
				assert.LessOrEqual(t, c.appliedCount(id, "b"), 1, "node %d: %v", id, got)
				assert.LessOrEqual(t, c.appliedCount(id, "c"), 1, "node %d: %v", id, got)
			}
		})
	}
}
