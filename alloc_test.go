package raft

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// benchAllocsPerRun returns the average number of heap allocations of one
// call of f over runs calls. Unlike testing.AllocsPerRun it does not round
// down, so one allocation every ten calls shows as 0.1, not 0.
func benchAllocsPerRun(runs int, f func()) float64 {
	f() // warm up: let reused buffers reach their size
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(runs)
}

// benchAllocSlack absorbs MemoryStorage's amortized slice growth (a few
// dozen reallocations over benchAllocRuns appends); it is smaller than one
// allocation every ten calls, so a periodic allocation in the core still
// shows.
const (
	benchAllocRuns  = 1000
	benchAllocSlack = 0.05
)

// benchDrop discards the messages a node sent.
func (n *benchNode) benchDrop() {
	clear(n.out)
	n.out = n.out[:0]
}

// TestAllocationsOnHotPaths pins the allocation count of the steady-state
// paths (with logging off) so that a change that makes them allocate is
// noticed. The remaining allocations are the entries' own: a proposal's
// entry slice and the entry's slot in the unstable log.
func TestAllocationsOnHotPaths(t *testing.T) {
	if benchRaceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	tests := []struct {
		name string
		// setup returns the operation to measure, on a fresh cluster.
		setup     func(t *testing.T, c *benchCluster) func()
		maxAllocs float64
	}{
		{
			name: "single voter proposal to applied",
			setup: func(t *testing.T, _ *benchCluster) func() {
				sv := benchNewCluster(t, 1)
				sv.elect(t, 1)
				return func() { sv.proposeApply(t, 1) }
			},
			// Propose's entry slice and the entry's unstable log slot.
			maxAllocs: 2,
		},
		{
			name: "leader commits on an append ack",
			setup: func(t *testing.T, c *benchCluster) func() {
				l := c.node(1)
				for range benchAllocRuns + 1 {
					require.NoError(t, l.rn.Propose(benchPayload))
					l.handleReadies(t)
					l.benchDrop()
				}
				term := l.rn.BasicStatus().Term
				return func() {
					want := l.applied + 1
					_ = l.rn.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: term, Index: want})
					l.handleReadies(t)
					l.benchDrop()
					if l.applied != want {
						t.Fatalf("leader applied %d, want %d", l.applied, want)
					}
				}
			},
		},
		{
			name: "leader heartbeat response",
			setup: func(t *testing.T, c *benchCluster) func() {
				l := c.node(1)
				m := Message{Type: MsgHeartbeatResp, From: 2, To: 1, Term: l.rn.BasicStatus().Term}
				return func() {
					_ = l.rn.Step(m)
					l.handleReadies(t)
					l.benchDrop()
				}
			},
		},
		{
			name: "leader tick with heartbeats and quorum checks",
			setup: func(t *testing.T, c *benchCluster) func() {
				l := c.node(1)
				term := l.rn.BasicStatus().Term
				return func() {
					// Keep the followers active so that the leader stays.
					for _, id := range []uint64{2, 3} {
						_ = l.rn.Step(Message{Type: MsgHeartbeatResp, From: id, To: 1, Term: term})
					}
					l.rn.Tick()
					l.handleReadies(t)
					l.benchDrop()
					if st := l.rn.BasicStatus(); st.RaftState != StateLeader {
						t.Fatalf("leader stepped down: %+v", st)
					}
				}
			},
		},
		{
			name: "follower heartbeat",
			setup: func(t *testing.T, c *benchCluster) func() {
				f := c.node(2)
				m := Message{Type: MsgHeartbeat, From: 1, To: 2, Term: f.rn.BasicStatus().Term, Commit: f.applied}
				return func() {
					_ = f.rn.Step(m)
					f.handleReadies(t)
					f.benchDrop()
				}
			},
		},
		{
			name: "follower append of one entry",
			setup: func(t *testing.T, c *benchCluster) func() {
				f := c.node(2)
				term := f.rn.BasicStatus().Term
				ents := []Entry{{Term: term, Data: benchPayload}}
				return func() {
					last, _ := f.storage.LastIndex()
					ents[0].Index = last + 1
					_ = f.rn.Step(Message{Type: MsgApp, From: 1, To: 2, Term: term,
						Index: last, LogTerm: term, Entries: ents, Commit: last})
					f.handleReadies(t)
					f.benchDrop()
				}
			},
			// The entry's slot in the unstable log.
			maxAllocs: 1,
		},
		{
			name: "follower rejects an append",
			setup: func(t *testing.T, c *benchCluster) func() {
				f := c.node(2)
				term := f.rn.BasicStatus().Term
				m := Message{Type: MsgApp, From: 1, To: 2, Term: term, Index: 1000, LogTerm: term}
				return func() {
					_ = f.rn.Step(m)
					f.handleReadies(t)
					if len(f.out) != 1 || !f.out[0].Reject {
						t.Fatalf("want one rejection, got %+v", f.out)
					}
					f.benchDrop()
				}
			},
		},
		{
			name: "stale-term message ignored",
			setup: func(t *testing.T, c *benchCluster) func() {
				f := c.node(2)
				m := Message{Type: MsgHeartbeatResp, From: 3, To: 2, Term: f.rn.BasicStatus().Term - 1}
				return func() { _ = f.rn.Step(m) }
			},
		},
		{
			name: "leader drops a forwarded proposal: uncommitted tail full",
			setup: func(t *testing.T, c *benchCluster) func() {
				l := c.node(1)
				l.rn.raft.maxUncommittedSize = 1
				require.NoError(t, l.rn.Propose(benchPayload))
				ents := []Entry{{Data: benchPayload}}
				return func() {
					err := l.rn.Step(Message{Type: MsgProp, From: 2, To: 1, Entries: ents})
					require.ErrorIs(t, err, ErrProposalDropped)
				}
			},
		},
		{
			name: "follower without a leader drops a proposal",
			setup: func(t *testing.T, _ *benchCluster) func() {
				fresh := benchNewCluster(t, 3)
				f := fresh.node(2)
				ents := []Entry{{Data: benchPayload}}
				return func() {
					err := f.rn.Step(Message{Type: MsgProp, From: 3, To: 2, Entries: ents})
					require.ErrorIs(t, err, ErrProposalDropped)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := benchNewCluster(t, 3)
			c.elect(t, 1)
			op := tt.setup(t, c)
			got := benchAllocsPerRun(benchAllocRuns, op)
			assert.LessOrEqual(t, got, tt.maxAllocs+benchAllocSlack, "allocations per call")
		})
	}
}

// TestGuardedDebugLogsStillWritten checks that the debug lines that hot
// paths guard with Logger.Check (so that they cost nothing when debug is
// off) are still written, with their fields, when debug is on.
func TestGuardedDebugLogsStillWritten(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	storage := NewMemoryStorage()
	rn, err := NewRawNode(Config{ID: 2, Storage: storage, Logger: zap.New(core)})
	require.NoError(t, err)
	require.NoError(t, rn.Bootstrap([]uint64{1, 2, 3}))

	err = rn.Step(Message{Type: MsgProp, From: 3, To: 2, Entries: []Entry{{Data: benchPayload}}})
	require.ErrorIs(t, err, ErrProposalDropped)
	// A heartbeat makes 1 the leader of term 2; a stale one is then ignored.
	require.NoError(t, rn.Step(Message{Type: MsgHeartbeat, From: 1, To: 2, Term: 2}))
	require.NoError(t, rn.Step(Message{Type: MsgHeartbeatResp, From: 3, To: 2, Term: 1}))
	require.NoError(t, rn.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 50, LogTerm: 2}))

	tests := []struct {
		msg    string
		fields map[string]any
	}{
		{msg: "no leader at term; dropping proposal", fields: map[string]any{"term": uint64(1)}},
		{msg: "ignored a message with lower term", fields: map[string]any{"from": uint64(3), "msg_term": uint64(1)}},
		{msg: "rejected append", fields: map[string]any{"index": uint64(50), "hint_index": uint64(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			found := logs.FilterMessage(tt.msg).AllUntimed()
			require.Len(t, found, 1)
			assert.Equal(t, zap.DebugLevel, found[0].Level)
			ctx := found[0].ContextMap()
			for k, v := range tt.fields {
				assert.Equal(t, v, ctx[k], "field %s", k)
			}
		})
	}
}
