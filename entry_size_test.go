package raft

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A leader refuses a proposal carrying an entry larger than MaxEntrySize
// before appending anything, a follower refuses to forward it, and the
// entries of the right size around it still commit everywhere.
func TestProposalOverMaxEntrySizeIsNeitherAppendedNorForwarded(t *testing.T) {
	nw := newCluster(t, 3, func(c *Config) { c.MaxEntrySize = 100 })
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "before"))
	nw.stabilize()
	last := nw.raft(1).raftLog.lastIndex()

	big := strings.Repeat("x", 101)
	err := nw.propose(1, big)
	require.ErrorIs(t, err, ErrProposalTooLarge, "the leader refuses it")
	assert.Equal(t, last, nw.raft(1).raftLog.lastIndex(), "nothing was appended")

	err = nw.propose(2, big)
	require.ErrorIs(t, err, ErrProposalTooLarge, "a follower refuses to forward it")
	assert.Empty(t, nw.raft(2).msgs, "nothing was sent")

	require.NoError(t, nw.propose(2, strings.Repeat("y", 100)), "an entry of exactly the limit is fine")
	nw.stabilize()
	for _, id := range nw.ids {
		assert.Equal(t, []string{"before", strings.Repeat("y", 100)}, nw.appliedData(id), "node %d", id)
	}
}

// A proposal a peer forwards is checked by the leader too: a follower
// configured without a limit cannot get an oversized entry appended.
func TestLeaderRefusesAnOversizedProposalForwardedByAPeer(t *testing.T) {
	nw := newCluster(t, 3, func(c *Config) {
		if c.ID == 1 {
			c.MaxEntrySize = 10
		}
	})
	nw.electLeader(1)
	last := nw.raft(1).raftLog.lastIndex()
	err := nw.node(1).Step(Message{Type: MsgProp, From: 2, To: 1, Entries: []Entry{{Data: []byte(strings.Repeat("z", 11))}}})
	require.True(t, errors.Is(err, ErrProposalTooLarge), "got %v", err)
	assert.Equal(t, last, nw.raft(1).raftLog.lastIndex())
}

// Without MaxEntrySize a RawNode keeps the etcd behaviour: any size goes.
func TestZeroMaxEntrySizeMeansNoLimitForARawNode(t *testing.T) {
	nw := newCluster(t, 1)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, strings.Repeat("x", 1<<20)))
}
