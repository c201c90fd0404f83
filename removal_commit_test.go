package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// removalHost is a node of TestRemovedNodeLearnsItsRemoval: its RawNode,
// storage and the membership it applied.
type removalHost struct {
	rn      *RawNode
	storage *MemoryStorage
	conf    ConfState
}

// handle persists, sends (onto out) and applies every Ready of h,
// configuration changes through ApplyConfChange.
func (h *removalHost) handle(t testing.TB, out *[]Message) {
	for h.rn.HasReady() {
		rd := h.rn.Ready()
		if !rd.Snapshot.IsEmpty() {
			require.NoError(t, h.storage.ApplySnapshot(rd.Snapshot))
			h.conf = rd.Snapshot.Metadata.ConfState
		}
		require.NoError(t, h.storage.Append(rd.Entries))
		if !rd.HardState.IsEmpty() {
			require.NoError(t, h.storage.SetHardState(rd.HardState))
		}
		*out = append(*out, rd.Messages...)
		*out = append(*out, rd.MessagesAfterPersist...)
		for _, e := range rd.CommittedEntries {
			if e.Type == EntryConfChange {
				var cc ConfChange
				require.NoError(t, cc.Unmarshal(e.Data))
				cs, err := h.rn.ApplyConfChange(cc)
				require.NoError(t, err)
				h.conf = cs
			}
		}
		h.rn.Advance(rd)
	}
}

// A node removed by a change the others committed without it learns of its
// removal although its acknowledgement of the change reaches the leader only
// after the leader applied it and stopped tracking the node: the leader
// answers that late acknowledgement with the commit index, as far as the
// node's log is known to match. Without it the removed node never applies
// its removal, and runs on, campaigning, as a member of nothing.
func TestRemovedNodeLearnsItsRemoval(t *testing.T) { removedNodeLearnsItsRemoval(t) }

func removedNodeLearnsItsRemoval(t testing.TB) {
	ids := []uint64{1, 2, 3}
	hosts := map[uint64]*removalHost{}
	for _, id := range ids {
		storage := NewMemoryStorage()
		rn, err := NewRawNode(Config{ID: id, Storage: storage, Seed: id})
		require.NoError(t, err)
		require.NoError(t, rn.Bootstrap(ids))
		hosts[id] = &removalHost{rn: rn, storage: storage}
	}
	var queue, held []Message
	// settle handles and delivers everything, holding back what hold picks.
	settle := func(hold func(Message) bool) {
		for _, id := range ids {
			hosts[id].handle(t, &queue)
		}
		for len(queue) > 0 {
			m := queue[0]
			queue = queue[1:]
			if hold != nil && hold(m) {
				held = append(held, m)
				continue
			}
			_ = hosts[m.To].rn.Step(m) // responses from a removed node are refused
			hosts[m.To].handle(t, &queue)
		}
	}
	settle(nil)
	require.NoError(t, hosts[1].rn.Campaign())
	settle(nil)
	require.Equal(t, StateLeader, hosts[1].rn.BasicStatus().RaftState)

	// Node 3's acknowledgements of the change are held until the leader
	// applied it, and what would tell node 3 that it committed is lost.
	cc := ConfChange{Changes: []ConfChangeSingle{{Type: ConfChangeRemoveNode, NodeID: 3}}}
	require.NoError(t, hosts[1].rn.ProposeConfChange(cc))
	hosts[1].handle(t, &queue)
	removal, err := hosts[1].storage.LastIndex()
	require.NoError(t, err)
	settle(func(m Message) bool { return m.From == 3 || (m.To == 3 && m.Commit >= removal) })
	require.Equal(t, []uint64{1, 2}, hosts[1].conf.Voters, "the leader applied the removal")
	require.Equal(t, []uint64{1, 2, 3}, hosts[3].conf.Voters, "node 3 has not applied it yet")
	var late []Message
	for _, m := range held {
		if m.From == 3 {
			late = append(late, m)
		}
	}
	require.NotEmpty(t, late)
	held = nil

	queue = late
	settle(nil)
	assert.Equal(t, []uint64{1, 2}, hosts[3].conf.Voters, "node 3 applied its removal")
}
