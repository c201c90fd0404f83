package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// unitProgress returns a Progress in state with the given Match and Next, a
// window of maxInflight appends, and n appends in flight.
func unitProgress(state ProgressState, match, next uint64, maxInflight, n int) *Progress {
	pr := newProgress(next, maxInflight, 0, false)
	pr.State = state
	pr.Match = match
	for i := range n {
		pr.inflights.add(match+uint64(i)+1, 10)
	}
	return pr
}

func TestProgressBecomeProbe(t *testing.T) {
	tests := []struct {
		name     string
		pr       *Progress
		pending  uint64
		wantNext uint64
	}{
		{name: "from replicate", pr: unitProgress(ProgressStateReplicate, 1, 5, 10, 3), wantNext: 2},
		{name: "from probe", pr: unitProgress(ProgressStateProbe, 3, 9, 10, 0), wantNext: 4},
		{name: "from snapshot: after the snapshot", pr: unitProgress(ProgressStateSnapshot, 1, 5, 10, 0), pending: 10, wantNext: 11},
		{name: "from snapshot: match beyond the snapshot", pr: unitProgress(ProgressStateSnapshot, 15, 16, 10, 0), pending: 10, wantNext: 16},
		{name: "from snapshot: none pending", pr: unitProgress(ProgressStateSnapshot, 4, 5, 10, 0), pending: 0, wantNext: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := tt.pr
			pr.PendingSnapshot = tt.pending
			pr.MsgAppFlowPaused = true
			pr.becomeProbe()
			assert.Equal(t, ProgressStateProbe, pr.State)
			assert.Equal(t, tt.wantNext, pr.Next)
			assert.Zero(t, pr.PendingSnapshot)
			assert.False(t, pr.MsgAppFlowPaused)
			assert.Zero(t, pr.InflightCount())
			assert.Less(t, pr.Match, pr.Next, "invariant Match < Next")
		})
	}
}

func TestProgressBecomeReplicate(t *testing.T) {
	tests := []struct {
		name string
		pr   *Progress
	}{
		{name: "from probe", pr: unitProgress(ProgressStateProbe, 1, 5, 10, 0)},
		{name: "from snapshot", pr: unitProgress(ProgressStateSnapshot, 7, 8, 10, 0)},
		{name: "from replicate with inflights", pr: unitProgress(ProgressStateReplicate, 2, 6, 10, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := tt.pr
			pr.PendingSnapshot = 3
			pr.becomeReplicate()
			assert.Equal(t, ProgressStateReplicate, pr.State)
			assert.Equal(t, pr.Match+1, pr.Next)
			assert.Zero(t, pr.PendingSnapshot)
			assert.Zero(t, pr.InflightCount())
		})
	}
}

func TestProgressBecomeSnapshot(t *testing.T) {
	pr := unitProgress(ProgressStateReplicate, 1, 5, 10, 3)
	pr.becomeSnapshot(20)
	assert.Equal(t, ProgressStateSnapshot, pr.State)
	assert.Equal(t, uint64(20), pr.PendingSnapshot)
	assert.Zero(t, pr.InflightCount())
	assert.True(t, pr.isPaused())
	// The snapshot is installed: the peer reports it holds index 20.
	assert.True(t, pr.maybeUpdate(20))
	pr.becomeProbe()
	assert.Equal(t, uint64(21), pr.Next)
}

func TestProgressMaybeUpdate(t *testing.T) {
	// Match 5, Next 10 before each call.
	tests := []struct {
		name        string
		n           uint64
		want        bool
		wantMatch   uint64
		wantNext    uint64
		wantUnpause bool
	}{
		{name: "stale", n: 2, want: false, wantMatch: 5, wantNext: 10},
		{name: "same as match", n: 5, want: false, wantMatch: 5, wantNext: 10},
		{name: "advance below next", n: 7, want: true, wantMatch: 7, wantNext: 10, wantUnpause: true},
		{name: "advance to next - 1", n: 9, want: true, wantMatch: 9, wantNext: 10, wantUnpause: true},
		{name: "advance beyond next", n: 12, want: true, wantMatch: 12, wantNext: 13, wantUnpause: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := unitProgress(ProgressStateProbe, 5, 10, 10, 0)
			pr.MsgAppFlowPaused = true
			assert.Equal(t, tt.want, pr.maybeUpdate(tt.n))
			assert.Equal(t, tt.wantMatch, pr.Match, "match")
			assert.Equal(t, tt.wantNext, pr.Next, "next")
			assert.Equal(t, !tt.wantUnpause, pr.MsgAppFlowPaused, "paused")
		})
	}
}

func TestProgressMaybeDecrTo(t *testing.T) {
	tests := []struct {
		name       string
		state      ProgressState
		match      uint64
		next       uint64
		rejected   uint64
		hint       uint64
		want       bool
		wantNext   uint64
		wantPaused bool
	}{
		// Replicate: Next goes back to Match+1 unless the rejection is
		// of an index at or below Match (an old answer).
		{name: "replicate: rejection at match is stale", state: ProgressStateReplicate, match: 5, next: 10, rejected: 5, hint: 5, wantNext: 10, wantPaused: true},
		{name: "replicate: rejection below match is stale", state: ProgressStateReplicate, match: 5, next: 10, rejected: 4, hint: 4, wantNext: 10, wantPaused: true},
		{name: "replicate: rejection above match", state: ProgressStateReplicate, match: 5, next: 10, rejected: 9, hint: 9, want: true, wantNext: 6, wantPaused: true},
		{name: "replicate: hint is ignored", state: ProgressStateReplicate, match: 5, next: 10, rejected: 7, hint: 2, want: true, wantNext: 6, wantPaused: true},
		// Probe: only a rejection of Next-1 counts.
		{name: "probe: rejection not of the last probe is stale", state: ProgressStateProbe, match: 0, next: 10, rejected: 5, hint: 5, wantNext: 10, wantPaused: true},
		{name: "probe: rejection above the last probe is stale", state: ProgressStateProbe, match: 0, next: 10, rejected: 10, hint: 5, wantNext: 10, wantPaused: true},
		{name: "probe: hint below the rejected index", state: ProgressStateProbe, match: 0, next: 10, rejected: 9, hint: 4, want: true, wantNext: 5},
		{name: "probe: hint at the rejected index", state: ProgressStateProbe, match: 0, next: 10, rejected: 9, hint: 9, want: true, wantNext: 9},
		{name: "probe: hint above the rejected index", state: ProgressStateProbe, match: 0, next: 10, rejected: 9, hint: 20, want: true, wantNext: 9},
		{name: "probe: never below match + 1", state: ProgressStateProbe, match: 6, next: 10, rejected: 9, hint: 2, want: true, wantNext: 7},
		{name: "probe: hint zero", state: ProgressStateProbe, match: 0, next: 10, rejected: 9, hint: 0, want: true, wantNext: 1},
		{name: "probe: at the start of the log", state: ProgressStateProbe, match: 0, next: 1, rejected: 0, hint: 0, want: true, wantNext: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := unitProgress(tt.state, tt.match, tt.next, 10, 0)
			pr.MsgAppFlowPaused = true
			assert.Equal(t, tt.want, pr.maybeDecrTo(tt.rejected, tt.hint))
			assert.Equal(t, tt.wantNext, pr.Next, "next")
			assert.Equal(t, tt.match, pr.Match, "match never changes")
			assert.Equal(t, tt.wantPaused, pr.MsgAppFlowPaused, "paused")
			assert.Less(t, pr.Match, pr.Next, "invariant Match < Next")
		})
	}
}

func TestProgressIsPaused(t *testing.T) {
	tests := []struct {
		name   string
		pr     *Progress
		paused bool
		want   bool
	}{
		{name: "probe", pr: unitProgress(ProgressStateProbe, 0, 1, 2, 0), want: false},
		{name: "probe, paused", pr: unitProgress(ProgressStateProbe, 0, 1, 2, 0), paused: true, want: true},
		{name: "replicate", pr: unitProgress(ProgressStateReplicate, 0, 1, 2, 1), want: false},
		{name: "replicate, flag ignored", pr: unitProgress(ProgressStateReplicate, 0, 1, 2, 1), paused: true, want: false},
		{name: "replicate, window full", pr: unitProgress(ProgressStateReplicate, 0, 1, 2, 2), want: true},
		{name: "snapshot", pr: unitProgress(ProgressStateSnapshot, 0, 1, 2, 0), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.pr.MsgAppFlowPaused = tt.paused
			assert.Equal(t, tt.want, tt.pr.isPaused())
		})
	}
}

func TestProgressResume(t *testing.T) {
	pr := unitProgress(ProgressStateProbe, 0, 1, 2, 0)
	pr.MsgAppFlowPaused = true
	pr.resume()
	assert.False(t, pr.isPaused())
}

func TestProgressSentEntries(t *testing.T) {
	tests := []struct {
		name          string
		pr            *Progress
		last, bytes   uint64
		n             int
		wantNext      uint64
		wantInflight  int
		wantPaused    bool
		wantFlowPause bool
	}{
		{name: "replicate", pr: unitProgress(ProgressStateReplicate, 3, 4, 2, 0), last: 6, bytes: 30, n: 3, wantNext: 7, wantInflight: 1},
		{name: "replicate fills the window", pr: unitProgress(ProgressStateReplicate, 3, 5, 2, 1), last: 6, bytes: 30, n: 2, wantNext: 7, wantInflight: 2, wantPaused: true},
		{name: "replicate, empty append", pr: unitProgress(ProgressStateReplicate, 3, 4, 2, 0), last: 3, n: 0, wantNext: 4},
		{name: "probe pauses", pr: unitProgress(ProgressStateProbe, 3, 4, 2, 0), last: 6, bytes: 30, n: 3, wantNext: 4, wantPaused: true, wantFlowPause: true},
		{name: "probe pauses on an empty append", pr: unitProgress(ProgressStateProbe, 3, 4, 2, 0), last: 3, n: 0, wantNext: 4, wantPaused: true, wantFlowPause: true},
		{name: "snapshot", pr: unitProgress(ProgressStateSnapshot, 3, 4, 2, 0), last: 6, bytes: 30, n: 3, wantNext: 4, wantPaused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.pr.sentEntries(tt.last, tt.bytes, tt.n, 1)
			assert.Equal(t, tt.wantNext, tt.pr.Next, "next")
			assert.Equal(t, tt.wantInflight, tt.pr.InflightCount(), "inflight")
			assert.Equal(t, tt.wantPaused, tt.pr.isPaused(), "paused")
			assert.Equal(t, tt.wantFlowPause, tt.pr.MsgAppFlowPaused, "flow paused flag")
		})
	}
}

func TestProgressString(t *testing.T) {
	learner := unitProgress(ProgressStateProbe, 2, 3, 4, 0)
	learner.IsLearner = true
	snap := unitProgress(ProgressStateSnapshot, 2, 3, 4, 0)
	snap.PendingSnapshot = 9
	paused := unitProgress(ProgressStateProbe, 2, 3, 4, 0)
	paused.MsgAppFlowPaused = true
	tests := []struct {
		name string
		pr   *Progress
		want string
	}{
		{name: "probe", pr: unitProgress(ProgressStateProbe, 2, 3, 4, 0), want: "StateProbe match=2 next=3"},
		{name: "learner", pr: learner, want: "StateProbe match=2 next=3 learner"},
		{name: "paused probe", pr: paused, want: "StateProbe match=2 next=3 paused"},
		{name: "replicate with inflights", pr: unitProgress(ProgressStateReplicate, 2, 5, 4, 2), want: "StateReplicate match=2 next=5 inflight=2"},
		{name: "replicate, full", pr: unitProgress(ProgressStateReplicate, 2, 7, 4, 4), want: "StateReplicate match=2 next=7 paused inflight=4[full]"},
		{name: "snapshot", pr: snap, want: "StateSnapshot match=2 next=3 paused pendingSnap=9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.pr.String())
		})
	}
}
