package raft_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// This file holds the small host of the package's external tests, which
// drive a RawNode through its exported API alone.

// startRawNode returns node id of voters over fresh storage, bootstrapped
// and with its bootstrap Ready persisted.
func startRawNode(t *testing.T, id uint64, voters []uint64) (*raft.RawNode, *raft.MemoryStorage) {
	t.Helper()
	storage := raft.NewMemoryStorage()
	rn, err := raft.NewRawNode(raft.Config{ID: id, Storage: storage})
	require.NoError(t, err)
	require.NoError(t, rn.Bootstrap(voters))
	persistReady(t, rn, storage)
	return rn, storage
}

// persistReady persists and acknowledges every pending Ready and returns
// the messages they carried.
func persistReady(t *testing.T, rn *raft.RawNode, storage *raft.MemoryStorage) []raft.Message {
	t.Helper()
	var msgs []raft.Message
	for rn.HasReady() {
		rd := rn.Ready()
		if !rd.Snapshot.IsEmpty() {
			require.NoError(t, storage.ApplySnapshot(rd.Snapshot))
		}
		require.NoError(t, storage.Append(rd.Entries))
		if !rd.HardState.IsEmpty() {
			require.NoError(t, storage.SetHardState(rd.HardState))
		}
		msgs = append(msgs, rd.Messages...)
		rn.Advance(rd)
	}
	return msgs
}
