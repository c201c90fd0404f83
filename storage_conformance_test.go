package raft_test

import (
	"testing"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storagetest"
)

func TestMemoryStorageConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storagetest.Storage { return raft.NewMemoryStorage() })
}
