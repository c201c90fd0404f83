package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// compact snapshots node id's storage at its applied index and discards the
// log up to it.
func compact(t *testing.T, nw *testCluster, id uint64, data string) Snapshot {
	t.Helper()
	n := nw.nodes[id]
	cs := n.rn.raft.trk.confState()
	snap, err := n.storage.CreateSnapshot(n.lastApplied, &cs, []byte(data))
	require.NoError(t, err)
	require.NoError(t, n.storage.Compact(n.lastApplied))
	return snap
}

func TestSnapshotSentToFollowerBehindCompaction(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	nw.isolate(3)
	for _, d := range []string{"a", "b", "c"} {
		require.NoError(t, nw.propose(1, d))
	}
	snap := compact(t, nw, 1, "state-abc")
	nw.heal()
	var sent []Message
	nw.onReady = func(n *testNode, rd *Ready) {
		for _, m := range rd.Messages {
			if m.Type == MsgSnap {
				sent = append(sent, m)
			}
		}
	}
	// Node 3 answers a heartbeat first (it must be recently active to be
	// sent a snapshot), then gets the snapshot.
	for range 3 {
		nw.tickAll()
	}
	require.Len(t, sent, 1, "exactly one snapshot is sent")
	assert.Equal(t, snap.Metadata, sent[0].Snapshot.Metadata)
	st, err := nw.nodes[3].storage.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, "state-abc", string(st.Data))
	assert.Equal(t, nw.raft(1).raftLog.committed, nw.raft(3).raftLog.committed)

	// Replication resumes with entries after the snapshot.
	require.NoError(t, nw.propose(1, "d"))
	nw.tickAll()
	assert.Equal(t, []string{"d"}, nw.appliedData(3), "node 3 applies only what follows the snapshot")
	assert.Equal(t, ProgressStateReplicate, nw.node(1).Status().Progress[3].State)
}

func TestSnapshotTemporarilyUnavailableIsRetried(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	nw.isolate(3)
	require.NoError(t, nw.propose(1, "a"))
	compact(t, nw, 1, "s")
	unavailable := &flakySnapshotStorage{MemoryStorage: nw.nodes[1].storage, failures: 2}
	nw.raft(1).raftLog.storage = unavailable
	nw.heal()
	for range 6 {
		nw.tickAll()
	}
	assert.Equal(t, 0, unavailable.failures, "the leader kept asking for the snapshot")
	assert.Equal(t, nw.raft(1).raftLog.committed, nw.raft(3).raftLog.committed, "S24: sent after retries")
}

// flakySnapshotStorage answers Snapshot with
// ErrSnapshotTemporarilyUnavailable a number of times.
type flakySnapshotStorage struct {
	*MemoryStorage
	failures int
}

func (s *flakySnapshotStorage) Snapshot() (Snapshot, error) {
	if s.failures > 0 {
		s.failures--
		return Snapshot{}, ErrSnapshotTemporarilyUnavailable
	}
	return s.MemoryStorage.Snapshot()
}

func TestStaleSnapshotIgnored(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	for _, d := range []string{"a", "b"} {
		require.NoError(t, nw.propose(1, d))
	}
	nw.tickAll()
	r := nw.raft(2)
	commit, applied := r.raftLog.committed, r.raftLog.applied
	old := Snapshot{Metadata: SnapshotMetadata{Index: 2, Term: 1, ConfState: ConfState{Voters: []uint64{1, 2, 3}}}}
	for range 2 { // stale, then duplicate
		require.NoError(t, nw.node(2).Step(Message{Type: MsgSnap, From: 1, To: 2, Term: r.Term, Snapshot: &old}))
		assert.Equal(t, commit, r.raftLog.committed, "S25: commit never regresses")
		assert.Equal(t, applied, r.raftLog.applied, "S25: applied never regresses")
		assert.False(t, nw.node(2).Ready().Snapshot.Metadata.Index != 0, "a stale snapshot is not handed to the host")
	}
}

func TestSnapshotRestoresMembershipAndLog(t *testing.T) {
	storage := NewMemoryStorage()
	rn, err := NewRawNode(testConfig(2, storage))
	require.NoError(t, err)
	snap := Snapshot{
		Metadata: SnapshotMetadata{Index: 10, Term: 3, ConfState: ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}},
		Data:     []byte("state"),
	}
	require.NoError(t, rn.Step(Message{Type: MsgSnap, From: 1, To: 2, Term: 3, Snapshot: &snap}))
	rd := rn.Ready()
	assert.Equal(t, snap, rd.Snapshot)
	assert.Equal(t, uint64(10), rd.HardState.Commit)
	require.Len(t, rd.MessagesAfterPersist, 1)
	assert.Equal(t, MsgAppResp, rd.MessagesAfterPersist[0].Type)
	assert.Equal(t, uint64(10), rd.MessagesAfterPersist[0].Index)
	require.NoError(t, storage.ApplySnapshot(rd.Snapshot))
	require.NoError(t, storage.SetHardState(rd.HardState))
	rn.Advance(rd)
	st := rn.Status()
	assert.Equal(t, []uint64{1, 2, 3}, st.Config.Voters)
	assert.Equal(t, []uint64{4}, st.Config.Learners)
	assert.Equal(t, uint64(10), st.Applied)

	// A restart from that storage knows the membership too.
	rn2, err := NewRawNode(testConfig(2, storage))
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2, 3}, rn2.Status().Config.Voters)
}

func TestReportSnapshotAndUnreachable(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	pr := nw.raft(1).trk.progress[2]
	require.Equal(t, ProgressStateReplicate, pr.State)
	nw.node(1).ReportUnreachable(2)
	assert.Equal(t, ProgressStateProbe, pr.State, "an unreachable peer is probed again")

	pr.becomeSnapshot(5)
	nw.node(1).ReportSnapshot(2, SnapshotFailure)
	assert.Equal(t, ProgressStateProbe, pr.State)
	assert.True(t, pr.MsgAppFlowPaused, "wait for a heartbeat response before retrying")

	pr.becomeSnapshot(5)
	nw.node(1).ReportSnapshot(2, SnapshotFinish)
	assert.Equal(t, ProgressStateProbe, pr.State)
	assert.Equal(t, uint64(6), pr.Next, "probe from after the snapshot")
}
