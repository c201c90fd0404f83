package raft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of the Ready contract: what a Ready carries, when, and what a host
// may do with it. The contract checker itself (checkDurable) is calibrated
// here against a host that breaks the contract.

// relRecordingTB is a testing.TB whose Fatal and Fatalf record the failure
// and return, so that a test can run the cluster of newCluster (whose
// violations fail the test at once) with a broken host and assert that its
// checks fire. Every other method, including Errorf and FailNow (used by
// require), fails the real test.
type relRecordingTB struct {
	testing.TB
	failures []string
}

func (r *relRecordingTB) Fatalf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *relRecordingTB) Fatal(args ...any) { r.failures = append(r.failures, fmt.Sprint(args...)) }

// has reports whether a recorded failure contains substr.
func (r *relRecordingTB) has(substr string) bool {
	for _, f := range r.failures {
		if strings.Contains(f, substr) {
			return true
		}
	}
	return false
}

// relNetworkChaos drives the cluster of newCluster (cluster_test.go) from seed:
// ticks, in-order delivery with drops, proposals, partitions and crashes.
// It returns how many delivered messages promised durable state (each was
// checked with checkDurable when it was sent).
func relNetworkChaos(tb testing.TB, seed uint64, steps int, sendBeforePersist bool) (promises int) {
	nw := newCluster(tb, 3, func(cfg *Config) { cfg.Seed = seed*1000 + cfg.ID })
	nw.sendBeforePersist = sendBeforePersist
	nw.rand = rand.New(rand.NewPCG(seed, 7))
	nw.dropRate = 0.1
	rng := rand.New(rand.NewPCG(seed, 11))
	for i := range steps {
		id := nw.ids[rng.IntN(len(nw.ids))]
		switch p := rng.IntN(100); {
		case p < 45:
			nw.tick(id, 1)
		case p < 85:
			for range 3 {
				if len(nw.queue) > 0 && promisesDurable(nw.queue[0].Type) {
					promises++
				}
				nw.deliverOne()
			}
		case p < 93:
			_ = nw.node(id).Propose(fmt.Appendf(nil, "p%d", i))
			nw.handleReady(id)
		case p < 95:
			nw.isolate(id)
		case p < 98:
			nw.heal()
		default:
			nw.crash(id)
		}
	}
	return promises
}

func TestReadyContractCheckerCatchesSendBeforePersist(t *testing.T) {
	t.Run("network host sending a vote request before persisting", func(t *testing.T) {
		rec := &relRecordingTB{TB: t}
		nw := newCluster(rec, 3)
		nw.sendBeforePersist = true
		nw.campaign(1)
		assert.True(t, rec.has("Ready contract violated by node 1: MsgVote for term 2"), "failures: %q", rec.failures)
	})
	t.Run("network host, randomized", func(t *testing.T) {
		for seed := uint64(1); seed <= 20; seed++ {
			rec := &relRecordingTB{TB: t}
			relNetworkChaos(rec, seed, 300, true)
			assert.True(t, rec.has("Ready contract violated"), "seed %d: not caught", seed)
		}
	})
	t.Run("step-wise host, randomized", func(t *testing.T) {
		for seed := uint64(1); seed <= 20; seed++ {
			c := relChaos(t, seed, 3, 600, true)
			assert.True(t, c.hasViolation("Ready contract violated"), "seed %d: not caught, stats %s", seed, c.stats)
		}
	})
}

func TestReadyContractCorrectHostNoViolation(t *testing.T) {
	t.Run("network host, randomized", func(t *testing.T) {
		promises := 0
		for seed := uint64(1); seed <= 30; seed++ {
			rec := &relRecordingTB{TB: t}
			promises += relNetworkChaos(rec, seed, 600, false)
			require.Empty(t, rec.failures, "seed %d", seed)
		}
		require.Greater(t, promises, 1000, "the checker must actually have checked messages")
	})
	t.Run("step-wise host, randomized", func(t *testing.T) {
		var total clusterStats
		for seed := uint64(1); seed <= 30; seed++ {
			c := relChaos(t, seed, 5, 600, false)
			require.Empty(t, c.violations, "seed %d, stats %s", seed, c.stats)
			total.checkedMsgs += c.stats.checkedMsgs
			total.midReadyCrashes += c.stats.midReadyCrashes
		}
		require.Greater(t, total.checkedMsgs, 1000)
		require.Greater(t, total.midReadyCrashes, 50)
	})
}

// TestReadyContractCheckerOfDurablePromises calibrates checkDurable message
// by message: what each kind of message promises, and when it holds.
func TestReadyContractCheckerOfDurablePromises(t *testing.T) {
	tests := []struct {
		name    string
		durable HardState
		last    uint64
		msg     Message
		wantErr bool
	}{
		{"grant with the vote durable", HardState{Term: 2, Vote: 1}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, false},
		{"grant before the term is durable", HardState{Term: 1}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, true},
		{"grant while another vote is durable", HardState{Term: 2, Vote: 3}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, true},
		{"grant overtaken by a later durable term", HardState{Term: 3, Vote: 3}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, false},
		{"refusal promises nothing", HardState{Term: 1}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2, Reject: true}, false},
		{"request with the own vote durable", HardState{Term: 2, Vote: 1}, 1,
			Message{Type: MsgVote, From: 1, To: 2, Term: 2}, false},
		{"request before the own vote is durable", HardState{Term: 1}, 1,
			Message{Type: MsgVote, From: 1, To: 2, Term: 2}, true},
		{"ack of a durable index", HardState{Term: 2}, 3,
			Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 3}, false},
		{"ack beyond the durable log", HardState{Term: 2}, 2,
			Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemoryStorage()
			require.NoError(t, s.SetHardState(tt.durable))
			for i := uint64(1); i <= tt.last; i++ {
				require.NoError(t, s.Append([]Entry{{Term: 1, Index: i}}))
			}
			err := checkDurable(s, tt.msg)
			if tt.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// relClusterWithFollowerTail returns a 3-node cluster led by node 1 in term
// 2 where index 3 is committed everywhere and node 2 also holds index 4,
// uncommitted. No message is queued.
func relClusterWithFollowerTail(t testing.TB, opts ...configOption) *testCluster {
	t.Helper()
	c := newRelCluster(t, 3, opts...)
	c.elect(1, nil)
	require.NoError(t, c.proposeAt(1, "a"))
	c.stabilize()
	c.tick(1, 1)
	c.stabilize()
	require.NoError(t, c.proposeAt(1, "b"))
	c.deliverMsg(c.takeOne(func(m Message) bool { return m.To == 2 }))
	c.take(func(Message) bool { return true })
	require.Equal(t, uint64(3), c.status(2).Commit)
	require.Equal(t, uint64(4), c.nodes[2].mustLastIndex(t))
	return c
}

func TestReadyNeverReemits(t *testing.T) {
	t.Run("Ready twice without Advance", func(t *testing.T) {
		c := newRelCluster(t, 3)
		c.elect(1, nil)
		c.stabilize()
		n := c.nodes[1]
		require.NoError(t, n.rn.Propose([]byte("a")))
		rd1 := n.rn.Ready()
		require.Len(t, rd1.Entries, 1)
		require.Len(t, rd1.Messages, 2)
		rd2 := n.rn.Ready()
		assert.False(t, rd2.HasUpdates(), "second Ready: %+v", rd2)
		assert.False(t, n.rn.HasReady())

		require.NoError(t, n.rn.Propose([]byte("b")))
		rd3 := n.rn.Ready()
		require.Len(t, rd3.Entries, 1)
		assert.Equal(t, uint64(4), rd3.Entries[0].Index, "only the new entry")
		for _, m := range rd3.Messages {
			for _, e := range m.Entries {
				assert.NotEqual(t, uint64(3), e.Index, "entry 3 was already sent to %d", m.To)
			}
		}

		// Handle all three in order, then let the cluster settle.
		for _, rd := range []Ready{rd1, rd2, rd3} {
			require.NoError(t, n.storage.Append(rd.Entries))
			if !rd.HardState.IsEmpty() {
				require.NoError(t, n.storage.SetHardState(rd.HardState))
			}
			c.queue = append(c.queue, rd.Messages...)
			c.queue = append(c.queue, rd.MessagesAfterPersist...)
			for _, e := range rd.CommittedEntries {
				c.apply(n, e)
			}
			n.rn.Advance(rd)
		}
		c.stabilize()
		for _, id := range c.ids {
			assert.Equal(t, []string{"a", "b"}, c.appliedData(id), "node %d", id)
		}
		c.requireSafe(t)
	})

	t.Run("nothing again after Advance", func(t *testing.T) {
		tests := []struct {
			name   string
			id     uint64
			action func(c *testCluster)
		}{
			{name: "leader after a proposal", id: 1, action: func(c *testCluster) { require.NoError(t, c.node(1).Propose([]byte("x"))) }},
			{name: "leader after a heartbeat tick", id: 1, action: func(c *testCluster) { c.node(1).Tick() }},
			{name: "follower after an append", id: 2, action: func(c *testCluster) {
				require.NoError(t, c.node(2).Step(Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 4, LogTerm: 2,
					Entries: []Entry{{Term: 2, Index: 5}}, Commit: 4}))
			}},
			{name: "follower after a campaign", id: 3, action: func(c *testCluster) { require.NoError(t, c.node(3).Campaign()) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := relClusterWithFollowerTail(t)
				tt.action(c)
				require.True(t, c.node(tt.id).HasReady())
				c.handleReady(tt.id)
				assert.False(t, c.node(tt.id).HasReady())
				rd := c.node(tt.id).Ready()
				assert.False(t, rd.HasUpdates(), "Ready after Advance: %+v", rd)
				c.requireSafe(t)
			})
		}
	})

	t.Run("over a run with leader changes and crashes", func(t *testing.T) {
		// The step-wise host records any entry handed out twice in one
		// incarnation and any committed entry out of sequence.
		for seed := uint64(1); seed <= 10; seed++ {
			c := relChaos(t, seed, 3, 600, false)
			assert.False(t, c.hasViolation("re-emits"), "seed %d: %q", seed, c.violations)
			assert.False(t, c.hasViolation("committed entry"), "seed %d: %q", seed, c.violations)
		}
	})
}

func TestReadyMustSync(t *testing.T) {
	tests := []struct {
		name string
		// before is stepped into node 2 and handled first.
		before []Message
		msg    Message
		want   bool
		// wantHS is the Ready's hard state (empty: unchanged).
		wantHS HardState
	}{
		{
			name: "commit only", msg: Message{Type: MsgHeartbeat, From: 1, Term: 2, Commit: 4},
			want: false, wantHS: HardState{Term: 2, Vote: 1, Commit: 4},
		},
		{
			name: "nothing durable", msg: Message{Type: MsgHeartbeat, From: 1, Term: 2, Commit: 3},
			want: false,
		},
		{
			name: "pre-vote granted", msg: Message{Type: MsgPreVote, From: 3, Term: 3, Index: 4, LogTerm: 2},
			want: false,
		},
		{
			name: "entries", msg: Message{Type: MsgApp, From: 1, Term: 2, Index: 4, LogTerm: 2, Commit: 3,
				Entries: []Entry{{Term: 2, Index: 5}}},
			want: true,
		},
		{
			name: "term", msg: Message{Type: MsgHeartbeat, From: 3, Term: 3, Commit: 3},
			want: true, wantHS: HardState{Term: 3, Commit: 3},
		},
		{
			name:   "vote in the same term",
			before: []Message{{Type: MsgAppResp, From: 3, Term: 3}},
			msg:    Message{Type: MsgVote, From: 3, Term: 3, Index: 4, LogTerm: 2},
			want:   true, wantHS: HardState{Term: 3, Vote: 3, Commit: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := relClusterWithFollowerTail(t)
			for _, m := range tt.before {
				m.To = 2
				require.NoError(t, c.node(2).Step(m))
				c.handleReady(2)
			}
			if len(tt.before) > 0 {
				require.Equal(t, HardState{Term: 3, Commit: 3}, c.storage(2).HardState())
			}
			m := tt.msg
			m.To = 2
			require.NoError(t, c.node(2).Step(m))
			rd := c.node(2).Ready()
			require.True(t, rd.HasUpdates())
			assert.Equal(t, tt.want, rd.MustSync)
			assert.Equal(t, tt.wantHS, rd.HardState)
		})
	}
}

func TestReadyMessageClasses(t *testing.T) {
	type class struct{ now, afterPersist []MessageType }
	types := func(msgs []Message) []MessageType {
		var out []MessageType
		for _, m := range msgs {
			out = append(out, m.Type)
		}
		return out
	}
	tests := []struct {
		name    string
		preVote bool
		id      uint64
		action  func(t *testing.T, c *testCluster)
		want    class
		// wantEntries: the Ready also carries new entries to persist.
		wantEntries bool
	}{
		{
			name: "leader replicates while persisting", id: 1,
			action: func(t *testing.T, c *testCluster) { require.NoError(t, c.node(1).Propose([]byte("x"))) },
			want:   class{now: []MessageType{MsgApp, MsgApp}}, wantEntries: true,
		},
		{
			name: "leader heartbeats", id: 1,
			action: func(t *testing.T, c *testCluster) { c.node(1).Tick() },
			want:   class{now: []MessageType{MsgHeartbeat, MsgHeartbeat}},
		},
		{
			name: "follower acknowledges an append after persisting", id: 2,
			action: func(t *testing.T, c *testCluster) {
				require.NoError(t, c.node(2).Step(Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 4, LogTerm: 2,
					Entries: []Entry{{Term: 2, Index: 5}}, Commit: 3}))
			},
			want: class{afterPersist: []MessageType{MsgAppResp}}, wantEntries: true,
		},
		{
			name: "follower answers a heartbeat at once", id: 2,
			action: func(t *testing.T, c *testCluster) {
				require.NoError(t, c.node(2).Step(Message{Type: MsgHeartbeat, From: 1, To: 2, Term: 2, Commit: 3}))
			},
			want: class{now: []MessageType{MsgHeartbeatResp}},
		},
		{
			name: "candidate requests votes after persisting its own", id: 3,
			action: func(t *testing.T, c *testCluster) { require.NoError(t, c.node(3).Campaign()) },
			want:   class{afterPersist: []MessageType{MsgVote, MsgVote}},
		},
		{
			name: "voter grants after persisting", id: 2,
			action: func(t *testing.T, c *testCluster) {
				require.NoError(t, c.node(2).Step(Message{Type: MsgVote, From: 3, To: 2, Term: 3, Index: 4, LogTerm: 2}))
			},
			want: class{afterPersist: []MessageType{MsgVoteResp}},
		},
		{
			name: "pre-candidate asks at once", preVote: true, id: 3,
			action: func(t *testing.T, c *testCluster) { require.NoError(t, c.node(3).Campaign()) },
			want:   class{now: []MessageType{MsgPreVote, MsgPreVote}},
		},
		{
			name: "pre-vote answered at once", preVote: true, id: 2,
			action: func(t *testing.T, c *testCluster) {
				require.NoError(t, c.node(2).Step(Message{Type: MsgPreVote, From: 3, To: 2, Term: 3, Index: 4, LogTerm: 2}))
			},
			want: class{now: []MessageType{MsgPreVoteResp}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := relClusterWithFollowerTail(t, func(cfg *Config) { cfg.DisablePreVote = !tt.preVote })
			tt.action(t, c)
			rd := c.node(tt.id).Ready()
			assert.Equal(t, tt.want.now, types(rd.Messages), "Messages")
			assert.Equal(t, tt.want.afterPersist, types(rd.MessagesAfterPersist), "MessagesAfterPersist")
			assert.Equal(t, tt.wantEntries, len(rd.Entries) > 0)
			if tt.wantEntries && len(rd.Messages) > 0 {
				for _, m := range rd.Messages {
					assert.Equal(t, rd.Entries, m.Entries, "the leader's append carries the entries it has yet to persist")
				}
			}
		})
	}
}

func TestReadyCommittedEntriesWithinPersisted(t *testing.T) {
	t.Run("leader hands out nothing it has not persisted", func(t *testing.T) {
		c := newRelCluster(t, 3)
		c.elect(1, nil)
		c.stabilize()
		require.NoError(t, c.node(1).Propose([]byte("x")))
		rd := c.node(1).Ready()
		require.Len(t, rd.Entries, 1)
		assert.Empty(t, rd.CommittedEntries)
		assert.True(t, rd.HardState.IsEmpty())
	})
	t.Run("follower may apply what the same Ready persists", func(t *testing.T) {
		c := relClusterWithFollowerTail(t)
		require.NoError(t, c.node(2).Step(Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 4, LogTerm: 2,
			Entries: []Entry{{Term: 2, Index: 5, Data: []byte("c")}}, Commit: 5}))
		rd := c.node(2).Ready()
		require.Len(t, rd.Entries, 1)
		require.Equal(t, uint64(5), rd.HardState.Commit)
		require.Len(t, rd.CommittedEntries, 2)
		durable, ok := c.entry(2, 4)
		require.True(t, ok)
		assert.Equal(t, durable, rd.CommittedEntries[0], "entry 4 was durable before")
		assert.Equal(t, rd.Entries[0], rd.CommittedEntries[1], "entry 5 is persisted by this Ready first")
	})
	t.Run("applied never goes backwards across Readies and restarts", func(t *testing.T) {
		// The step-wise host checks both properties on every Ready.
		for seed := uint64(1); seed <= 10; seed++ {
			c := relChaos(t, seed, 3, 600, false)
			require.Empty(t, c.violations, "seed %d", seed)
			for _, id := range c.ids {
				assert.Equal(t, c.nodes[id].lastApplied, c.status(id).Applied, "seed %d node %d", seed, id)
			}
		}
	})
}

func TestReadyHasReady(t *testing.T) {
	tests := []struct {
		name   string
		id     uint64
		action func(c *testCluster)
		want   bool
	}{
		{name: "nothing happened since Advance", id: 1, action: func(*testCluster) {}, want: false},
		{name: "follower tick within the election timeout", id: 2, action: func(c *testCluster) { c.node(2).Tick() }, want: false},
		{name: "leader tick that sends heartbeats", id: 1, action: func(c *testCluster) { c.node(1).Tick() }, want: true},
		{name: "proposal at the leader", id: 1, action: func(c *testCluster) { _ = c.node(1).Propose([]byte("x")) }, want: true},
		{name: "proposal forwarded by a follower", id: 2, action: func(c *testCluster) { _ = c.node(2).Propose([]byte("x")) }, want: true},
		{name: "follower past its election timeout", id: 2, action: func(c *testCluster) {
			for range 2 * c.nodes[2].cfg.ElectionTick {
				c.node(2).Tick()
			}
		}, want: true},
		{name: "stale response ignored", id: 1, action: func(c *testCluster) {
			_ = c.node(1).Step(Message{Type: MsgHeartbeatResp, From: 2, To: 1, Term: 1})
		}, want: false},
		{name: "heartbeat response from an up-to-date follower", id: 1, action: func(c *testCluster) {
			_ = c.node(1).Step(Message{Type: MsgHeartbeatResp, From: 2, To: 1, Term: 2})
		}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRelCluster(t, 3)
			c.elect(1, nil)
			c.tick(1, 1)
			c.stabilize()
			require.False(t, c.node(tt.id).HasReady())
			tt.action(c)
			assert.Equal(t, tt.want, c.node(tt.id).HasReady())
			rd := c.node(tt.id).Ready()
			assert.Equal(t, tt.want, rd.HasUpdates(), "HasReady agrees with Ready")
		})
	}
}

func TestBootstrapErrors(t *testing.T) {
	tests := []struct {
		name string
		// storage builds the storage the node starts on.
		storage func(t *testing.T) *MemoryStorage
		voters  []uint64
		// bootstrapFirst bootstraps once successfully before the call.
		bootstrapFirst bool
		wantErr        error
	}{
		{name: "bootstrapped twice", storage: relEmptyStorage, voters: []uint64{1}, bootstrapFirst: true, wantErr: ErrAlreadyBootstrapped},
		{name: "storage holding a cluster's state", storage: relUsedStorage, voters: []uint64{1, 2, 3}, wantErr: ErrAlreadyBootstrapped},
		{name: "storage holding only a hard state", storage: func(t *testing.T) *MemoryStorage {
			s := NewMemoryStorage()
			require.NoError(t, s.SetHardState(HardState{Term: 1}))
			return s
		}, voters: []uint64{1}, wantErr: ErrAlreadyBootstrapped},
		{name: "no voters", storage: relEmptyStorage, voters: nil, wantErr: ErrInvalidConfig},
		{name: "empty voters", storage: relEmptyStorage, voters: []uint64{}, wantErr: ErrInvalidConfig},
		{name: "zero voter ID", storage: relEmptyStorage, voters: []uint64{1, 0, 3}, wantErr: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn, err := NewRawNode(testConfig(1, tt.storage(t)))
			require.NoError(t, err)
			if tt.bootstrapFirst {
				require.NoError(t, rn.Bootstrap(tt.voters))
			}
			hadReady := rn.HasReady()
			before := rn.Status()
			err = rn.Bootstrap(tt.voters)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tt.wantErr), "got %v, want %v", err, tt.wantErr)
			assert.Equal(t, before, rn.Status(), "a failed Bootstrap changes nothing")
			assert.Equal(t, hadReady, rn.HasReady())
		})
	}
}

func relEmptyStorage(*testing.T) *MemoryStorage { return NewMemoryStorage() }

// relUsedStorage returns the storage of node 1 of a cluster that elected a
// leader and committed an entry.
func relUsedStorage(t *testing.T) *MemoryStorage {
	c := newRelCluster(t, 3)
	c.elect(1, nil)
	require.NoError(t, c.proposeAt(1, "x"))
	c.stabilize()
	return c.storage(1)
}

func TestRestartContinuesWithPersistedState(t *testing.T) {
	c := newRelCluster(t, 3)
	c.elect(1, nil)
	for _, d := range []string{"a", "b"} {
		require.NoError(t, c.proposeAt(1, d))
	}
	c.stabilize()
	c.tick(1, 1)
	c.stabilize()
	for _, id := range c.ids {
		before := c.node(id).Status()
		require.Equal(t, uint64(4), before.Commit, "node %d", id)
		c.crash(id)
		after := c.node(id).Status()
		assert.Equal(t, before.HardState, after.HardState, "node %d: term, vote and commit survive", id)
		assert.Equal(t, before.Config, after.Config, "node %d: configuration survives", id)
		assert.Equal(t, before.Applied, after.Applied, "node %d", id)
		assert.Equal(t, StateFollower, after.RaftState, "node %d restarts as a follower", id)
	}
	// The restarted cluster carries on from where it was.
	c.elect(2, nil)
	require.NoError(t, c.proposeAt(2, "c"))
	c.stabilize()
	c.tick(2, 1)
	c.stabilize()
	for _, id := range c.ids {
		assert.Equal(t, []string{"a", "b", "c"}, c.appliedData(id), "node %d", id)
	}
	assert.Equal(t, uint64(3), c.status(2).Term)
	c.requireSafe(t)
}
