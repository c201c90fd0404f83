package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// proposeConfChange proposes cc at node id, delivers everything and returns
// the index of the change.
func (nw *testCluster) proposeConfChange(id uint64, cc ConfChange) uint64 {
	nw.t.Helper()
	require.NoError(nw.t, nw.node(id).ProposeConfChange(cc))
	index := nw.raft(id).raftLog.lastIndex()
	nw.handleReady(id)
	nw.stabilize()
	return index
}

// TestRestartKeepsConfigurationOfSnapshot restarts a node with
// Config.Applied at its snapshot's index while its log still holds the
// configuration changes below the snapshot (a leave-joint, then an
// enter-joint). The snapshot's configuration already includes them: the node
// must come back with exactly the configuration committed at that index, not
// one made by applying them a second time.
func TestRestartKeepsConfigurationOfSnapshot(t *testing.T) { restartKeepsConfigurationOfSnapshot(t) }

func restartKeepsConfigurationOfSnapshot(t testing.TB) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	nw.addNode(4, nil)
	nw.proposeConfChange(1, ConfChange{Transition: ConfChangeTransitionJointExplicit,
		Changes: []ConfChangeSingle{{Type: ConfChangeAddNode, NodeID: 4}}})
	leave := nw.proposeConfChange(1, ConfChange{})
	nw.proposeConfChange(1, ConfChange{Transition: ConfChangeTransitionJointExplicit,
		Changes: []ConfChangeSingle{{Type: ConfChangeRemoveNode, NodeID: 3}}})

	n := nw.nodes[2]
	want := n.confState
	require.Equal(t, []uint64{1, 2, 4}, want.Voters)
	require.Equal(t, []uint64{1, 2, 3, 4}, want.VotersOutgoing)
	// Snapshot at the applied index and keep the log from the leave-joint
	// on, as MemoryStorage, wal and Node keep entries below a snapshot.
	snap, err := n.storage.CreateSnapshot(n.lastApplied, &want, nil)
	require.NoError(t, err)
	require.NoError(t, n.storage.Compact(leave-1))
	first, err := n.storage.FirstIndex()
	require.NoError(t, err)
	require.Equal(t, leave, first)

	n.cfg.Applied = snap.Metadata.Index
	nw.crash(2)
	assert.Equal(t, want, nw.raft(2).trk.confState(), "the configuration committed at the applied index")
	assert.True(t, nw.raft(2).trk.isJoint())
}

// TestRestartWithoutAppliedSkipsEntriesInSnapshot restarts a node without
// Config.Applied whose log holds entries below its snapshot: the entries the
// snapshot covers must not be handed out to be applied again.
func TestRestartWithoutAppliedSkipsEntriesInSnapshot(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	require.NoError(t, nw.propose(1, "b"))
	n := nw.nodes[2]
	cs := n.confState
	if len(cs.Voters) == 0 {
		cs = ConfState{Voters: []uint64{1, 2, 3}}
	}
	snap, err := n.storage.CreateSnapshot(n.lastApplied, &cs, nil)
	require.NoError(t, err)
	nw.crash(2)
	rd := nw.node(2).Ready()
	for _, e := range rd.CommittedEntries {
		assert.Greater(t, e.Index, snap.Metadata.Index, "entry %d is inside the snapshot", e.Index)
	}
	nw.node(2).Advance(rd)
}
