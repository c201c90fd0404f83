package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Deterministic reproductions of what FuzzMembership found. A test of a
// bug not yet fixed fails on the code it was written against and is
// skipped (t.Skip("known: ...")) until the core is fixed; remove the t.Skip
// to check a fix.

// findingHost is a minimal host that follows doc.go in Advance mode: it
// persists into a MemoryStorage, applies configuration changes and records
// the indexes it applied.
type findingHost struct {
	t       *testing.T
	storage *MemoryStorage
	rn      *RawNode
	applied []uint64
	cs      ConfState
}

func newFindingHost(t *testing.T, cfg Config) *findingHost {
	t.Helper()
	rn, err := NewRawNode(cfg)
	require.NoError(t, err)
	return &findingHost{t: t, storage: cfg.Storage.(*MemoryStorage), rn: rn}
}

// handle runs the host loop until the node has no Ready.
func (h *findingHost) handle() {
	h.t.Helper()
	for h.rn.HasReady() {
		rd := h.rn.Ready()
		require.NoError(h.t, h.storage.Save(rd.HardState, rd.Entries, rd.Snapshot))
		if !rd.Snapshot.IsEmpty() {
			h.cs = rd.Snapshot.Metadata.ConfState
		}
		for _, e := range rd.CommittedEntries {
			h.applied = append(h.applied, e.Index)
			if e.Type == EntryConfChange {
				var cc ConfChange
				require.NoError(h.t, cc.Unmarshal(e.Data))
				if cs, err := h.rn.ApplyConfChange(cc); err == nil {
					h.cs = cs
				}
			}
		}
		h.rn.Advance(rd)
	}
}

// TestFindingAppliedZeroBelowSnapshot: a host that keeps a few entries
// below its snapshot when it compacts (MemoryStorage.Compact below the
// snapshot index) and restarts with Config.Applied 0 must not get the
// entries between the compaction point and the snapshot handed out again:
// the snapshot covers them, and a host restoring its state machine from
// the snapshot would apply them twice, configuration changes included.
// Found by FuzzMembership; fixed on main by "entries kept below the
// storage's snapshot count as applied at startup".
func TestFindingAppliedZeroBelowSnapshot(t *testing.T) {
	s := NewMemoryStorage()
	cfg := testConfig(1, s)
	h := newFindingHost(t, cfg)
	require.NoError(t, h.rn.Bootstrap([]uint64{1}))
	h.handle()
	require.NoError(t, h.rn.Campaign())
	h.handle() // leader of term 2, empty entry at 2
	require.NoError(t, h.rn.ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{Type: ConfChangeAddLearnerNode, NodeID: 2}}}))
	h.handle() // index 3
	require.NoError(t, h.rn.Propose([]byte("x")))
	h.handle() // index 4
	require.Equal(t, []uint64{2, 3, 4}, h.applied)
	_, err := s.CreateSnapshot(4, &h.cs, nil)
	require.NoError(t, err)
	require.NoError(t, s.Compact(2)) // keep entries 3 and 4 below the snapshot

	h = newFindingHost(t, cfg) // Applied 0: restore the state machine from the snapshot
	h.handle()
	require.Empty(t, h.applied, "entries covered by the snapshot at 4 handed out again")
}
