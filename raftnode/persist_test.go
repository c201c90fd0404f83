package raftnode

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

func nodeEnts(term uint64, indexes ...uint64) []raft.Entry {
	out := make([]raft.Entry, len(indexes))
	for i, idx := range indexes {
		out[i] = raft.Entry{Term: term, Index: idx}
	}
	return out
}

func TestNodeMergeReadies(t *testing.T) {
	snap := raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 10, Term: 3}}
	tests := []struct {
		name     string
		batch    []raft.Ready
		wantHS   raft.HardState
		wantEnts []raft.Entry
		wantSnap raft.Snapshot
	}{
		{name: "appends in order",
			batch:    []raft.Ready{{Entries: nodeEnts(1, 2, 3)}, {Entries: nodeEnts(1, 4)}},
			wantEnts: nodeEnts(1, 2, 3, 4)},
		{name: "later entries replace the overlap and what follows",
			batch:    []raft.Ready{{Entries: nodeEnts(1, 2, 3, 4)}, {Entries: nodeEnts(2, 3)}},
			wantEnts: append(nodeEnts(1, 2), nodeEnts(2, 3)...)},
		{name: "later entries replace everything",
			batch:    []raft.Ready{{Entries: nodeEnts(1, 3, 4)}, {Entries: nodeEnts(2, 2, 3)}},
			wantEnts: nodeEnts(2, 2, 3)},
		{name: "last non-empty hard state wins",
			batch: []raft.Ready{{HardState: raft.HardState{Term: 2, Vote: 1, Commit: 3}},
				{HardState: raft.HardState{Term: 2, Vote: 1, Commit: 5}}, {}},
			wantHS: raft.HardState{Term: 2, Vote: 1, Commit: 5}},
		{name: "a snapshot drops earlier entries",
			batch:    []raft.Ready{{Entries: nodeEnts(1, 2, 3)}, {Snapshot: snap, Entries: nodeEnts(3, 11)}},
			wantEnts: nodeEnts(3, 11), wantSnap: snap},
		{name: "entries after a snapshot are kept",
			batch:    []raft.Ready{{Snapshot: snap}, {Entries: nodeEnts(3, 11, 12)}},
			wantEnts: nodeEnts(3, 11, 12), wantSnap: snap},
		{name: "a gap is passed on for the storage to refuse",
			batch:    []raft.Ready{{Entries: nodeEnts(1, 2)}, {Entries: nodeEnts(1, 4)}},
			wantEnts: nodeEnts(1, 2, 4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inputs := make([][]raft.Entry, len(tt.batch))
			for i := range tt.batch {
				inputs[i] = append([]raft.Entry(nil), tt.batch[i].Entries...)
			}
			hs, ents, snap := nodeMergeReadies(tt.batch)
			assert.Equal(t, tt.wantHS, hs)
			assert.Equal(t, tt.wantEnts, ents)
			assert.Equal(t, tt.wantSnap, snap)
			for i := range tt.batch {
				assert.Equal(t, inputs[i], tt.batch[i].Entries, "Ready %d's entries left untouched", i)
			}
		})
	}
}

func TestNodeMemoryStorageSave(t *testing.T) {
	ms := raft.NewMemoryStorage()
	snap := raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 5, Term: 2, ConfState: raft.ConfState{Voters: []uint64{1}}}}
	assert.NoError(t, ms.Save(raft.HardState{Term: 2, Vote: 1, Commit: 5}, nodeEnts(2, 6, 7), snap))
	first, _ := ms.FirstIndex()
	last, _ := ms.LastIndex()
	assert.Equal(t, uint64(6), first)
	assert.Equal(t, uint64(7), last)
	assert.Equal(t, raft.HardState{Term: 2, Vote: 1, Commit: 5}, ms.HardState())

	assert.NoError(t, ms.Save(raft.HardState{}, nodeEnts(3, 7), raft.Snapshot{}), "an empty hard state is not written")
	assert.Equal(t, raft.HardState{Term: 2, Vote: 1, Commit: 5}, ms.HardState())
	term, _ := ms.Term(7)
	assert.Equal(t, uint64(3), term)

	assert.ErrorIs(t, ms.Save(raft.HardState{}, nil, snap), raft.ErrSnapOutOfDate)
	assert.ErrorIs(t, ms.Save(raft.HardState{}, nodeEnts(3, 9), raft.Snapshot{}), raft.ErrLogGap)
}

func TestCompactKeepDefaultsToAtMostSnapshotEvery(t *testing.T) {
	for _, tt := range []struct{ every, want uint64 }{{5, 5}, {DefaultSnapshotEvery, DefaultCompactKeep}} {
		n, err := New(Config{Raft: raft.Config{ID: 1}, Storage: raft.NewMemoryStorage(), StateMachine: nopSM{}, SnapshotEvery: tt.every})
		require.NoError(t, err)
		assert.Equal(t, tt.want, n.cfg.CompactKeep, "SnapshotEvery %d", tt.every)
	}
}

// nopSM is a state machine that keeps nothing.
type nopSM struct{}

func (nopSM) Apply(ents []raft.Entry) []any    { return nil }
func (nopSM) Snapshot() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("")), nil }
func (nopSM) Restore(io.Reader) error          { return nil }
