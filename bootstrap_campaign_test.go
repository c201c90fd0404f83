package raft_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

func TestBootstrapRefusesVotersWithoutThisNode(t *testing.T) {
	rn, err := raft.NewRawNode(raft.Config{ID: 4, Storage: raft.NewMemoryStorage()})
	require.NoError(t, err)
	err = rn.Bootstrap([]uint64{1, 2, 3})
	require.ErrorIs(t, err, raft.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "do not include this node (ID 4)")
	assert.False(t, rn.HasReady(), "nothing was bootstrapped")
	require.NoError(t, rn.Bootstrap([]uint64{1, 2, 3, 4}), "a corrected call still works")
}

func TestCampaignSaysWhyNoElectionCanStart(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T) *raft.RawNode
		reason string
	}{
		{"no configuration", func(t *testing.T) *raft.RawNode {
			rn, err := raft.NewRawNode(raft.Config{ID: 1, Storage: raft.NewMemoryStorage()})
			require.NoError(t, err)
			return rn
		}, "no configuration yet"},
		{"bootstrap Ready not yet handled", func(t *testing.T) *raft.RawNode {
			rn, err := raft.NewRawNode(raft.Config{ID: 1, Storage: raft.NewMemoryStorage()})
			require.NoError(t, err)
			require.NoError(t, rn.Bootstrap([]uint64{1}))
			return rn
		}, "handle the pending Ready first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn := tt.setup(t)
			err := rn.Campaign()
			require.ErrorIs(t, err, raft.ErrCannotCampaign)
			assert.Contains(t, err.Error(), tt.reason)
			assert.Equal(t, raft.StateFollower, rn.BasicStatus().RaftState)
		})
	}
}

func TestCampaignOnceTheBootstrapIsPersistedElects(t *testing.T) {
	rn, storage := startRawNode(t, 1, []uint64{1})
	require.NoError(t, rn.Campaign())
	persistReady(t, rn, storage)
	assert.Equal(t, raft.StateLeader, rn.BasicStatus().RaftState)
	require.NoError(t, rn.Campaign(), "campaigning as the leader does nothing")
	assert.Equal(t, raft.StateLeader, rn.BasicStatus().RaftState)
}
