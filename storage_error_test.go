package raft

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failingStorage answers like its MemoryStorage until fail is set, then
// fails every read with a disk error.
type failingStorage struct {
	*MemoryStorage
	fail bool
}

var errDisk = errors.New("disk on fire")

func (s *failingStorage) Term(i uint64) (uint64, error) {
	if s.fail {
		return 0, errDisk
	}
	return s.MemoryStorage.Term(i)
}

func (s *failingStorage) Entries(lo, hi, maxSize uint64) ([]Entry, error) {
	if s.fail {
		return nil, errDisk
	}
	return s.MemoryStorage.Entries(lo, hi, maxSize)
}

func (s *failingStorage) LastIndex() (uint64, error) {
	if s.fail {
		return 0, errDisk
	}
	return s.MemoryStorage.LastIndex()
}

// TestStorageFailureStopsNode checks that a storage read error stops the
// node with an error wrapping ErrStorage (and the cause), never a panic,
// and that every later call returns that error and does nothing.
func TestStorageFailureStopsNode(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	n := nw.nodes[2]
	fs := &failingStorage{MemoryStorage: n.storage}
	n.rn.raft.raftLog.storage = fs
	fs.fail = true

	var err error
	require.NotPanics(t, func() {
		// An append makes the follower read the term at its index.
		last := n.rn.raft.raftLog.committed
		err = n.rn.Step(Message{Type: MsgApp, From: 1, To: 2, Term: n.rn.raft.Term, Index: last, LogTerm: n.rn.raft.Term})
	})
	require.ErrorIs(t, err, ErrStorage)
	require.ErrorIs(t, err, errDisk)
	assert.Equal(t, err, n.rn.Err())

	// Stopped: every call returns the error or does nothing.
	fs.fail = false
	assert.ErrorIs(t, n.rn.Propose([]byte("x")), ErrStorage)
	assert.ErrorIs(t, n.rn.Campaign(), ErrStorage)
	assert.ErrorIs(t, n.rn.Step(Message{Type: MsgHeartbeat, From: 1, To: 2, Term: n.rn.raft.Term}), ErrStorage)
	assert.NotPanics(t, func() {
		n.rn.Tick()
		n.rn.ReadIndex([]byte("r"))
	})
	assert.False(t, n.rn.HasReady())
	rd := n.rn.Ready()
	assert.False(t, rd.HasUpdates())
}

// TestStorageFailureInReadyStopsNode covers a failure while a Ready is
// assembled (reading committed entries from the storage).
func TestStorageFailureInReadyStopsNode(t *testing.T) {
	nw := newCluster(t, 1)
	nw.electLeader(1)
	n := nw.nodes[1]
	// Entries reach the storage but are not yet applied when it fails.
	require.NoError(t, n.rn.Propose([]byte("x")))
	rd := n.rn.Ready()
	require.NoError(t, n.storage.Append(rd.Entries))
	n.rn.Advance(rd)
	fs := &failingStorage{MemoryStorage: n.storage, fail: true}
	n.rn.raft.raftLog.storage = fs
	require.NotPanics(t, func() {
		rd = n.rn.Ready()
	})
	assert.False(t, rd.HasUpdates(), "a stopped node hands out nothing")
	assert.ErrorIs(t, n.rn.Err(), ErrStorage)
}
