package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A host that applies a committed configuration change like any entry, and
// never passes it to ApplyConfChange, is told so: a warning naming the
// index, and a panic in the invariants build.
func TestUnappliedConfChangeIsReported(t *testing.T) {
	for _, skip := range []bool{false, true} {
		name := map[bool]string{false: "host applies the change", true: "host skips ApplyConfChange"}[skip]
		t.Run(name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			storage := NewMemoryStorage()
			rn, err := NewRawNode(Config{ID: 1, Storage: storage, Logger: zap.New(core)})
			require.NoError(t, err)
			require.NoError(t, rn.Bootstrap([]uint64{1}))
			handle := func() (acked func()) {
				for rn.HasReady() {
					rd := rn.Ready()
					if !rd.Snapshot.IsEmpty() {
						require.NoError(t, storage.ApplySnapshot(rd.Snapshot))
					}
					require.NoError(t, storage.Append(rd.Entries))
					if !rd.HardState.IsEmpty() {
						require.NoError(t, storage.SetHardState(rd.HardState))
					}
					skipped := false
					for _, e := range rd.CommittedEntries {
						if e.Type != EntryConfChange {
							continue
						}
						if skip {
							skipped = true
							continue
						}
						var cc ConfChange
						require.NoError(t, cc.Unmarshal(e.Data))
						_, err := rn.ApplyConfChange(cc)
						require.NoError(t, err)
					}
					advance := func() { rn.Advance(rd) }
					if skipped && invariantsEnabled {
						return advance // the caller expects the panic
					}
					advance()
				}
				return nil
			}
			require.Nil(t, handle())
			require.NoError(t, rn.Campaign())
			require.Nil(t, handle())
			cc := ConfChange{Changes: []ConfChangeSingle{{Type: ConfChangeAddLearnerNode, NodeID: 2}}}
			require.NoError(t, rn.ProposeConfChange(cc))
			acked := handle()
			if acked != nil {
				assert.PanicsWithValue(t, "raft: node 1: host acknowledged configuration changes at [3] as applied without ApplyConfChange", acked)
				return
			}
			warned := logs.FilterMessageSnippet("never passed to ApplyConfChange").All()
			if !skip {
				assert.Empty(t, warned)
				assert.Equal(t, []uint64{2}, rn.Status().Config.Learners)
				return
			}
			require.Len(t, warned, 1)
			assert.Equal(t, []any{uint64(3)}, warned[0].ContextMap()["indexes"])
			assert.Empty(t, rn.Status().Config.Learners, "the membership is stale, as reported")
		})
	}
}
