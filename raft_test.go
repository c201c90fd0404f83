package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSmokeElectAndCommit(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		nw := newCluster(t, n)
		nw.electLeader(1)
		require.NoError(t, nw.propose(1, "a"))
		require.NoError(t, nw.propose(2%uint64(n)+1, "b"))
		nw.tickAll()
		for _, id := range nw.ids {
			require.Equal(t, []string{"a", "b"}, nw.appliedData(id), "node %d", id)
		}
	}
}

func TestSmokeElectionByTicks(t *testing.T) {
	nw := newCluster(t, 3)
	for i := 0; i < 30 && nw.leader() == None; i++ {
		nw.tickAll()
	}
	require.NotEqual(t, None, nw.leader())
}
