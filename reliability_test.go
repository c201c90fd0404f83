package raft

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Scenarios S01–S10 of docs/reliability.md, each asserting its "must hold"
// column. They run on the strict cluster of newRelCluster (cluster_test.go),
// whose hosts carry out a Ready step by step so that a node can crash
// between any two steps and lose what it had not made durable. Unless a
// test says otherwise, PreVote is on and CheckQuorum off (the scenarios
// elect leaders with explicit campaigns).

// relHasEntryOfTerm reports whether m carries an entry of term t.
func relHasEntryOfTerm(m Message, t uint64) bool {
	for _, e := range m.Entries {
		if e.Term == t {
			return true
		}
	}
	return false
}

// S01, the paper's Figure 8 with five nodes. An entry of term 2 that reaches
// a majority while the leader is in term 4 must not be committed by counting
// replicas, because a node that never saw it can still win and overwrite it;
// it commits only together with an entry of the leader's own term.
func TestFigure8OldTermEntryNotCommittedByCounting(t *testing.T) {
	tests := []struct {
		name string
		// currentTermOnMajority: before node 1 crashes, the entry of its
		// own term reaches a majority (Figure 8 e) rather than nobody (d).
		currentTermOnMajority bool
	}{
		{name: "leader crashes with only the old-term entry on a majority", currentTermOnMajority: false},
		{name: "current-term entry reaches a majority", currentTermOnMajority: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One entry per append, so that the old entry and the new
			// term's entry travel separately.
			c := newRelCluster(t, 5, func(cfg *Config) { cfg.MaxSizePerMsg = 1 })

			// (a) Node 1 leads term 2 and replicates "old" (index 3) to node 2 only.
			c.elect(1, nil)
			require.Equal(t, uint64(2), c.status(1).Term)
			require.NoError(t, c.proposeAt(1, "old"))
			c.deliver(amongNodes(1, 2))
			c.take(func(Message) bool { return true })
			old, ok := c.entry(2, 3)
			require.True(t, ok)
			require.Equal(t, Entry{Term: 2, Index: 3, Data: []byte("old")}, old)

			// (b) Node 1 crashes. Node 5 wins term 3 with nodes 3 and 4 and
			// appends its own entry at index 3, which never leaves it.
			c.isolate(1)
			c.elect(5, func(m Message) bool { return m.Type != MsgApp })
			require.Equal(t, uint64(3), c.status(5).Term)
			c.take(func(m Message) bool { return m.From == 5 })
			c.heal()
			c.isolate(5)
			c.crash(1)

			// (c) Node 1 restarts and wins term 4; "old" reaches nodes 3 and
			// 4, but node 1's entry of term 4 reaches nobody who would
			// accept it.
			accepts := func(m Message) bool {
				e, ok := c.entry(m.To, m.Index)
				return ok && e.Term == m.LogTerm
			}
			c.elect(1, func(m Message) bool {
				return !(m.Type == MsgApp && relHasEntryOfTerm(m, 4) && accepts(m))
			})
			require.Equal(t, uint64(4), c.status(1).Term)
			for _, id := range []uint64{2, 3, 4} {
				e, ok := c.entry(id, 3)
				require.True(t, ok, "node %d", id)
				require.Equal(t, "old", string(e.Data), "node %d", id)
			}
			st := c.node(1).Status()
			require.Equal(t, uint64(3), st.Progress[3].Match)
			require.Equal(t, uint64(3), st.Progress[4].Match)
			// Counting replicas, index 3 is on a majority (1, 3, 4) ...
			require.Equal(t, uint64(3), c.nodes[1].rn.raft.trk.committed())
			// ... and yet it is not committed: it is of term 2.
			assert.Equal(t, uint64(2), st.Commit, "an old-term entry must not commit by counting")
			for _, id := range c.ids {
				assert.NotContains(t, c.appliedData(id), "old", "node %d", id)
			}

			if !tt.currentTermOnMajority {
				// (d) Node 1 crashes again with its term-4 entry unsent.
				// Node 5 can win (nodes 2, 3 and 4 vote for it) and
				// replaces "old": had it been committed, it would be lost.
				c.take(func(Message) bool { return true })
				c.heal()
				c.isolate(1)
				c.crash(5)
				c.elect(5, nil)
				c.stabilize()
				for _, id := range []uint64{2, 3, 4, 5} {
					e, ok := c.entry(id, 3)
					require.True(t, ok, "node %d", id)
					assert.Equal(t, uint64(3), e.Term, "node %d", id)
					assert.NotContains(t, c.appliedData(id), "old", "node %d", id)
				}
				assert.Equal(t, uint64(3), c.committed[3].Term)
			} else {
				// (e) The term-4 entry reaches the majority: now both it and
				// "old" commit, and node 5 can never win.
				c.deliver(amongNodes(1, 2, 3, 4))
				require.Equal(t, uint64(4), c.status(1).Commit)
				for _, id := range []uint64{1, 2, 3, 4} {
					assert.Equal(t, []string{"old"}, c.appliedData(id), "node %d", id)
				}
				c.take(func(Message) bool { return true })
				c.heal()
				c.isolate(1)
				c.crash(5)
				for range 3 {
					require.NoError(t, c.node(5).Campaign())
					c.handleReady(5)
					c.deliver(nil)
					require.False(t, c.isLeader(5), "node 5 must not win without the committed entry")
				}
				c.elect(2, nil)
				c.stabilize()
				for _, id := range []uint64{2, 3, 4, 5} {
					assert.Equal(t, []string{"old"}, c.appliedData(id), "node %d", id)
				}
			}
			c.requireSafe(t)
		})
	}
}

// S02: a new leader commits the suffix it inherited from an earlier term
// through its own empty entry, without any client proposal.
func TestNewLeaderNoopCommitsInheritedSuffix(t *testing.T) {
	c := newRelCluster(t, 3)
	c.elect(1, nil)
	require.NoError(t, c.proposeAt(1, "inherited"))
	// The followers append the entry but the leader never hears their acks.
	c.deliver(func(m Message) bool { return m.From == 1 })
	c.take(func(m Message) bool { return m.To == 1 })
	for _, id := range c.ids {
		e, ok := c.entry(id, 3)
		require.True(t, ok, "node %d", id)
		require.Equal(t, "inherited", string(e.Data), "node %d", id)
		require.Equal(t, uint64(2), c.status(id).Commit, "node %d", id)
	}

	// Node 1 crashes; node 2 wins term 3.
	c.isolate(1)
	c.elect(2, func(m Message) bool { return m.Type != MsgApp })
	require.Equal(t, uint64(3), c.status(2).Term)
	last, err := c.storage(2).LastIndex()
	require.NoError(t, err)
	noop, ok := c.entry(2, last)
	require.True(t, ok)
	assert.Equal(t, Entry{Term: 3, Index: 4}, noop, "a new leader appends an empty entry of its term")
	assert.Equal(t, uint64(2), c.status(2).Commit, "nothing commits before the empty entry is replicated")

	c.deliver(nil)
	for _, id := range []uint64{2, 3} {
		assert.Equal(t, uint64(4), c.status(id).Commit, "node %d", id)
		assert.Equal(t, []string{"inherited"}, c.appliedData(id), "node %d", id)
	}
	assert.Equal(t, uint64(2), c.committed[3].Term, "the inherited entry commits with its original term")
	c.requireSafe(t)
}

// S03: a candidate whose log lacks a committed entry loses the election,
// with or without PreVote, and does not damage the up-to-date log.
func TestStaleLogCandidateLosesElection(t *testing.T) {
	tests := []struct {
		name    string
		preVote bool
	}{
		{name: "with PreVote", preVote: true},
		{name: "without PreVote", preVote: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRelCluster(t, 3, func(cfg *Config) { cfg.DisablePreVote = !tt.preVote })
			c.elect(1, nil)
			c.isolate(3)
			require.NoError(t, c.proposeAt(1, "x"))
			c.stabilize()
			require.Equal(t, uint64(3), c.status(2).Commit)
			termBefore := c.status(2).Term

			// The leader dies; node 3, which missed "x", comes back.
			c.heal()
			c.isolate(1)
			for range 3 {
				require.NoError(t, c.node(3).Campaign())
				c.handleReady(3)
				c.deliver(nil)
				require.False(t, c.isLeader(3), "a candidate with a stale log must lose")
			}
			for term, id := range c.leaders {
				assert.NotEqual(t, uint64(3), id, "node 3 led term %d", term)
			}
			e, ok := c.entry(2, 3)
			require.True(t, ok)
			assert.Equal(t, "x", string(e.Data))
			assert.Equal(t, uint64(3), c.status(2).Commit)
			if tt.preVote {
				assert.Equal(t, termBefore, c.status(2).Term, "a lost pre-vote leaves the term alone")
			}

			// The up-to-date node wins and repairs node 3.
			c.elect(2, nil)
			c.stabilize()
			assert.Equal(t, []string{"x"}, c.appliedData(3))
			c.requireSafe(t)
		})
	}
}

// S04: node 3 grants node 1 its vote in term 2 and crashes somewhere in
// handling that Ready. Then node 2, cut off from node 1, campaigns. A
// correct host sends the grant only once the vote is durable, so node 3
// never grants two votes that leave it in one term, and no term has two
// leaders. A host that sends before persisting is caught doing both.
func TestVoteThenCrashBeforeHardStateSyncedNoSecondVote(t *testing.T) {
	tests := []struct {
		name       string
		crashAfter readyStep
		broken     bool
		// wantLeaderTerm2 is who leads term 2 (None: nobody).
		wantLeaderTerm2 uint64
		wantViolations  []string
	}{
		{name: "crash before any step", crashAfter: readyStepNone, wantLeaderTerm2: 2},
		{name: "crash after send", crashAfter: readyStepSend, wantLeaderTerm2: 2},
		{name: "crash after persisting entries", crashAfter: readyStepPersistEntries, wantLeaderTerm2: 2},
		{name: "crash after persisting the hard state", crashAfter: readyStepPersistHardState, wantLeaderTerm2: None},
		{name: "crash after sending the vote", crashAfter: readyStepSendAfterPersist, wantLeaderTerm2: 1},
		{name: "crash after apply", crashAfter: readyStepApply, wantLeaderTerm2: 1},
		{
			name: "broken host sends the vote before persisting", crashAfter: readyStepSend, broken: true,
			wantViolations: []string{"Ready contract violated", "node 3 voted for 1 and 2 in term 2", "two leaders in term 2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRelCluster(t, 3)
			c.sendBeforePersist = tt.broken
			require.NoError(t, c.node(1).Campaign())
			c.handleReady(1)
			c.deliver(func(m Message) bool { return m.Type == MsgPreVote || m.Type == MsgPreVoteResp })
			require.Equal(t, StateCandidate, c.status(1).RaftState)
			require.Equal(t, uint64(2), c.status(1).Term)
			c.take(func(m Message) bool { return m.Type == MsgVote && m.To == 2 })
			req := c.takeOne(func(m Message) bool { return m.Type == MsgVote && m.To == 3 })

			require.NoError(t, c.node(3).Step(req))
			c.crashDuringReady(3, tt.crashAfter)
			durable := c.storage(3).HardState()
			if tt.crashAfter >= readyStepPersistHardState {
				assert.Equal(t, HardState{Term: 2, Vote: 1, Commit: 1}, durable)
			} else {
				assert.Equal(t, uint64(1), durable.Term, "the vote was lost in the crash")
			}
			c.deliver(func(m Message) bool { return m.To == 1 })

			// Node 2 campaigns without node 1.
			c.isolate(1)
			for range 4 {
				if c.isLeader(2) {
					break
				}
				require.NoError(t, c.node(2).Campaign())
				c.handleReady(2)
				c.deliver(nil)
			}
			require.True(t, c.isLeader(2))

			if tt.broken {
				for _, v := range tt.wantViolations {
					assert.True(t, c.hasViolation(v), "want a violation %q, got %q", v, c.violations)
				}
				return
			}
			c.requireSafe(t)
			assert.Equal(t, tt.wantLeaderTerm2, c.leaders[2])
			// Node 3's vote in term 2 that left it decided the term: for
			// node 1 if sent, nobody if durable but unsent, node 2 if lost.
			assert.Equal(t, tt.wantLeaderTerm2, c.grants[[2]uint64{3, 2}])
		})
	}
	t.Run("randomized crashes in the middle of Readies", func(t *testing.T) {
		grants, crashes := 0, 0
		for seed := uint64(100); seed < 130; seed++ {
			c := relChaos(t, seed, 5, 600, false)
			require.False(t, c.hasViolation("voted for"), "seed %d: %q", seed, c.violations)
			require.False(t, c.hasViolation("two leaders"), "seed %d: %q", seed, c.violations)
			grants += len(c.grants)
			crashes += c.stats.midReadyCrashes
		}
		require.Greater(t, grants, 100, "votes must actually be cast")
		require.Greater(t, crashes, 50, "crashes must actually happen")
	})
}

// S05: the term a node restarts with is its durable term, which never
// decreases, and is never below a term it acted on (voted, acknowledged,
// led). A message that raised the term but was lost with the crash is as if
// never received.
func TestTermNeverRegressesAcrossCrash(t *testing.T) {
	tests := []struct {
		name string
		// msg builds, on a cluster where node 3 is still in term 2 while
		// the others are in term 3, a message that raises node 3's term.
		msg      func(c *testCluster) Message
		wantTerm uint64
	}{
		{
			name: "heartbeat of a later leader",
			msg: func(c *testCluster) Message {
				c.tick(2, 1)
				return c.takeOne(func(m Message) bool { return m.Type == MsgHeartbeat && m.To == 3 })
			},
			wantTerm: 3,
		},
		{
			name: "vote request of a later term",
			msg: func(c *testCluster) Message {
				require.NoError(c.t, c.node(1).Campaign())
				c.handleReady(1)
				c.deliver(func(m Message) bool { return m.Type != MsgVote || m.To != 3 })
				return c.takeOne(func(m Message) bool { return m.Type == MsgVote && m.To == 3 })
			},
			wantTerm: 4,
		},
	}
	for _, tt := range tests {
		for _, crashAfter := range readyCrashPoints {
			t.Run(tt.name+"/crash after "+crashAfter.String(), func(t *testing.T) {
				c := newRelCluster(t, 3)
				c.elect(1, nil)
				c.isolate(3)
				c.elect(2, nil)
				require.Equal(t, uint64(3), c.status(2).Term)
				require.Equal(t, uint64(2), c.status(3).Term)
				m := tt.msg(c)
				require.Equal(t, tt.wantTerm, m.Term)

				require.NoError(t, c.node(3).Step(m))
				c.crashDuringReady(3, crashAfter)
				term := c.status(3).Term
				assert.Equal(t, c.storage(3).HardState().Term, term, "the restart term is the durable term")
				assert.GreaterOrEqual(t, term, uint64(2), "the term never falls below the durable term")
				if crashAfter >= readyStepPersistHardState {
					assert.Equal(t, tt.wantTerm, term)
				}
				c.requireSafe(t)
			})
		}
	}
	t.Run("randomized crashes in the middle of Readies", func(t *testing.T) {
		var total clusterStats
		leaders := 0
		for seed := uint64(1); seed <= 60; seed++ {
			c := relChaos(t, seed, 3, 600, false)
			require.Empty(t, c.violations, "seed %d, stats: %s", seed, c.stats)
			total.crashes += c.stats.crashes
			total.midReadyCrashes += c.stats.midReadyCrashes
			leaders += len(c.leaders)
		}
		require.Greater(t, total.midReadyCrashes, 150, "the faults must actually happen")
		require.Greater(t, leaders, 120, "leaders must actually change")
		t.Logf("crashes=%d mid-ready=%d terms-with-leader=%d", total.crashes, total.midReadyCrashes, leaders)
	})
}

// S06: node 3 receives entries together with a commit index covering them,
// and crashes at each point of handling that Ready, in particular between
// the entries write and the hard state write. On restart its commit index
// never exceeds its durable last index. A host writing in the other order
// leaves a storage that the restart refuses with an error, without panic.
func TestCrashBetweenEntriesAndHardStateCommitWithinDurableLog(t *testing.T) {
	setup := func(t *testing.T) (*testCluster, Message, *Ready) {
		c := newRelCluster(t, 3)
		c.elect(1, nil)
		c.isolate(3)
		for _, d := range []string{"x", "y"} {
			require.NoError(t, c.proposeAt(1, d))
		}
		c.stabilize()
		c.heal()
		require.NoError(t, c.proposeAt(1, "z"))
		// Hold back the append that node 3 will accept.
		accepted := func(m Message) bool {
			e, ok := c.entry(3, m.Index)
			return m.Type == MsgApp && m.To == 3 && len(m.Entries) > 0 && ok && e.Term == m.LogTerm
		}
		c.deliver(func(m Message) bool { return !accepted(m) })
		app := c.takeOne(accepted)
		require.Equal(t, uint64(5), c.status(1).Commit)
		require.Less(t, c.storage(3).HardState().Commit, uint64(3))
		rd := new(Ready)
		c.onReady = func(n *testNode, r *Ready) {
			if n.id == 3 && rd.Entries == nil {
				*rd = *r
			}
		}
		return c, app, rd
	}
	for _, crashAfter := range readyCrashPoints {
		t.Run("crash after "+crashAfter.String(), func(t *testing.T) {
			c, app, rd := setup(t)
			commitBefore := c.storage(3).HardState().Commit
			require.NoError(t, c.node(3).Step(app))
			c.crashDuringReady(3, crashAfter)
			require.Len(t, rd.Entries, 3)
			require.Equal(t, uint64(5), rd.HardState.Commit, "the Ready carries entries and a commit covering them")

			hs := c.storage(3).HardState()
			last, err := c.storage(3).LastIndex()
			require.NoError(t, err)
			assert.LessOrEqual(t, hs.Commit, last, "durable commit within the durable log")
			assert.Equal(t, hs.Commit, c.status(3).Commit)
			assert.LessOrEqual(t, c.nodes[3].lastApplied, hs.Commit)
			if crashAfter == readyStepPersistEntries {
				assert.Equal(t, uint64(5), last)
				assert.Equal(t, commitBefore, hs.Commit)
			}

			c.stabilize()
			c.tick(1, 1)
			c.stabilize()
			assert.Equal(t, []string{"x", "y", "z"}, c.appliedData(3))
			c.requireSafe(t)
		})
	}
	t.Run("hard state written before the entries makes the node recover on restart", func(t *testing.T) {
		c, app, rd := setup(t)
		require.NoError(t, c.node(3).Step(app))
		c.runSteps(3, readyStepNone)
		require.Len(t, rd.Entries, 3)
		// A broken host persists the hard state first and crashes.
		require.NoError(t, c.storage(3).SetHardState(rd.HardState))
		// Its commit index lies beyond its log: it lost what it promised,
		// and neither votes nor counts until a leader repairs it.
		require.NotPanics(t, func() {
			rn, err := NewRawNode(c.nodes[3].cfg)
			require.NoError(t, err)
			assert.True(t, rn.BasicStatus().HardState.Recovering)
		})
	})
}

// S07: a single voter hands out no entry for applying before the host made
// it durable, wherever it crashes; an entry lost in the crash is never
// applied, a durable one commits once the node leads again.
func TestSingleVoterAppliesNothingBeforeDurable(t *testing.T) {
	for _, crashAfter := range append(readyCrashPoints, readyStepAdvance) {
		t.Run("crash after "+crashAfter.String(), func(t *testing.T) {
			c := newRelCluster(t, 1)
			c.elect(1, nil)
			require.Equal(t, uint64(2), c.status(1).Commit)
			c.onReady = func(n *testNode, rd *Ready) {
				durableLast, err := n.storage.LastIndex()
				require.NoError(t, err)
				for _, e := range rd.CommittedEntries {
					if e.Index > durableLast {
						c.violate("single voter hands out entry %d for applying, durable last index %d", e.Index, durableLast)
					}
				}
				if !rd.HardState.IsEmpty() && rd.HardState.Commit > durableLast {
					c.violate("single voter commits %d, durable last index %d", rd.HardState.Commit, durableLast)
				}
			}
			require.NoError(t, c.node(1).Propose([]byte("x")))
			c.runSteps(1, crashAfter)
			assert.Empty(t, c.appliedData(1), "nothing applied in the Ready that carries the entry")
			if crashAfter != readyStepAdvance {
				c.crash(1)
				c.elect(1, nil)
			}
			c.handleReady(1)

			_, durable := c.entry(1, 3)
			if crashAfter >= readyStepPersistEntries {
				require.True(t, durable)
				assert.Equal(t, []string{"x"}, c.appliedData(1))
			} else {
				assert.Empty(t, c.appliedData(1), "a proposal lost in the crash is never applied")
			}
			c.requireSafe(t)
		})
	}
}

// S08: a follower whose log has an uncommitted suffix from a deposed leader
// loses only that suffix; its committed prefix is never rewritten, not even
// by an append that claims otherwise.
func TestFollowerConflictTruncatesOnlyUncommittedSuffix(t *testing.T) {
	c := newRelCluster(t, 3)
	c.elect(1, nil)
	require.NoError(t, c.proposeAt(1, "a"))
	c.stabilize()
	// The leader is cut off and appends two entries that never commit.
	c.isolate(1)
	require.NoError(t, c.proposeAt(1, "b"))
	require.NoError(t, c.proposeAt(1, "c"))
	c.stabilize()
	require.Equal(t, uint64(3), c.status(1).Commit)
	committedBefore, err := c.storage(1).Entries(2, 4, noLimit)
	require.NoError(t, err)

	c.elect(2, nil)
	require.NoError(t, c.proposeAt(2, "d"))
	c.stabilize()
	c.heal()
	c.tick(2, 1)
	c.stabilize()

	committedAfter, err := c.storage(1).Entries(2, 4, noLimit)
	require.NoError(t, err)
	assert.Equal(t, committedBefore, committedAfter, "the committed prefix is untouched")
	want, err := c.storage(2).Entries(2, 6, noLimit)
	require.NoError(t, err)
	got, err := c.storage(1).Entries(2, 6, noLimit)
	require.NoError(t, err)
	assert.Equal(t, want, got, "the uncommitted suffix was replaced by the leader's")
	for _, id := range c.ids {
		assert.Equal(t, []string{"a", "d"}, c.appliedData(id), "node %d", id)
	}

	t.Run("append conflicting with committed entries", func(t *testing.T) {
		commit := c.status(3).Commit
		require.Equal(t, uint64(5), commit)
		forged := []Message{
			{Type: MsgApp, From: 2, To: 3, Term: 3, Index: 2, LogTerm: 2, Commit: commit,
				Entries: []Entry{{Term: 3, Index: 3, Data: []byte("forged")}}},
			{Type: MsgApp, From: 2, To: 3, Term: 3, Index: 4, LogTerm: 2, Commit: commit,
				Entries: []Entry{{Term: 3, Index: 5, Data: []byte("forged")}}},
		}
		before, err := c.storage(3).Entries(2, 6, noLimit)
		require.NoError(t, err)
		for _, m := range forged {
			require.NotPanics(t, func() { _ = c.node(3).Step(m) })
			c.handleReady(3)
		}
		after, err := c.storage(3).Entries(2, 6, noLimit)
		require.NoError(t, err)
		assert.Equal(t, before, after)
		assert.Equal(t, commit, c.status(3).Commit)
		c.requireSafe(t)
	})
}

// S09: leaders A (1) → C (3) → A. Acknowledgements that A's term-2
// appends earned from B (2) arrive after A leads again in term 4, when B's
// log no longer holds those entries. They must not move B's progress or
// commit anything, and the stale appends themselves, replayed, must not
// truncate anybody's log.
func TestStaleTermAppendAckNoTruncateNoMiscommit(t *testing.T) {
	c := newRelCluster(t, 5)
	a, b, cc, d, e := uint64(1), uint64(2), uint64(3), uint64(4), uint64(5)

	// Term 2: A appends x1..x5 (indexes 3..7); only B gets them, and B's
	// acknowledgements are held back.
	c.elect(a, nil)
	for _, x := range []string{"x1", "x2", "x3", "x4", "x5"} {
		require.NoError(t, c.proposeAt(a, x))
	}
	staleApps := c.take(func(m Message) bool { return m.Type == MsgApp && m.From == a && m.To == b })
	require.Len(t, staleApps, 5)
	for _, m := range staleApps {
		c.deliverMsg(m)
	}
	staleAcks := c.take(func(m Message) bool { return m.Type == MsgAppResp && m.From == b })
	require.Len(t, staleAcks, 5)
	require.Equal(t, uint64(7), staleAcks[4].Index)
	c.take(func(Message) bool { return true })

	// Term 3: C wins with D and E and overwrites B's suffix; A learns it too.
	c.isolate(a)
	c.elect(cc, nil)
	c.stabilize()
	c.heal()
	c.tick(cc, 1)
	c.stabilize()
	for _, id := range c.ids {
		last, err := c.storage(id).LastIndex()
		require.NoError(t, err)
		require.Equal(t, uint64(3), last, "node %d", id)
	}

	// Term 4: A wins with D and E, without B and C, and appends 4..7; only
	// D gets 5..7.
	c.isolate(cc)
	c.cut[[2]uint64{a, b}], c.cut[[2]uint64{b, a}] = true, true
	c.elect(a, nil)
	c.stabilize()
	require.Equal(t, uint64(4), c.status(a).Term)
	require.Equal(t, uint64(4), c.status(a).Commit)
	c.cut[[2]uint64{a, e}] = true
	for _, v := range []string{"v1", "v2", "v3"} {
		require.NoError(t, c.proposeAt(a, v))
	}
	c.stabilize()
	require.Equal(t, uint64(4), c.status(a).Commit)
	matchB := c.node(a).Status().Progress[b].Match

	// The term-2 acknowledgements arrive. Counted, B would complete a
	// majority (A, B, D) for index 7, which B does not hold.
	for _, m := range staleAcks {
		require.NotPanics(t, func() { _ = c.node(a).Step(m) })
		c.handleReady(a)
	}
	assert.Equal(t, uint64(4), c.status(a).Commit, "a stale acknowledgement must not commit")
	assert.Equal(t, matchB, c.node(a).Status().Progress[b].Match, "a stale acknowledgement must not move progress")

	// The term-2 appends arrive late at B and at D: nothing is truncated.
	for _, id := range []uint64{b, d} {
		before, err := c.storage(id).Entries(2, c.nodes[id].mustLastIndex(t)+1, noLimit)
		require.NoError(t, err)
		m := staleApps[0]
		m.To = id
		require.NotPanics(t, func() { _ = c.node(id).Step(m) })
		c.handleReady(id)
		after, err := c.storage(id).Entries(2, c.nodes[id].mustLastIndex(t)+1, noLimit)
		require.NoError(t, err)
		assert.Equal(t, before, after, "node %d", id)
	}

	// Heal. A follower that was behind learns the final commit index from
	// the heartbeat after it caught up.
	c.take(func(Message) bool { return true })
	c.heal()
	for range 2 {
		c.tick(a, 1)
		c.stabilize()
	}
	for _, id := range c.ids {
		assert.Equal(t, []string{"v1", "v2", "v3"}, c.appliedData(id), "node %d", id)
	}
	c.requireSafe(t)
}

// mustLastIndex returns the node's durable last index.
func (n *testNode) mustLastIndex(t testing.TB) uint64 {
	t.Helper()
	last, err := n.storage.LastIndex()
	require.NoError(t, err)
	return last
}

// S10: messages from the leader whose commit index lies beyond the
// follower's log are clamped (or the message rejected or refused); nothing
// panics and the commit index never passes the log.
func TestCommitBeyondLogClampedNoPanic(t *testing.T) {
	tests := []struct {
		name       string
		msg        Message
		wantErr    error
		wantCommit uint64
	}{
		{name: "heartbeat far beyond the log", msg: Message{Type: MsgHeartbeat, Commit: 1 << 40}, wantCommit: 4},
		{name: "heartbeat at the largest index", msg: Message{Type: MsgHeartbeat, Commit: math.MaxUint64}, wantCommit: 4},
		{name: "empty append", msg: Message{Type: MsgApp, Index: 4, LogTerm: 2, Commit: 1000}, wantCommit: 4},
		{
			name: "append with an entry",
			msg: Message{Type: MsgApp, Index: 4, LogTerm: 2, Commit: math.MaxUint64,
				Entries: []Entry{{Term: 2, Index: 5, Data: []byte("e")}}},
			wantCommit: 5,
		},
		{name: "append beyond the log", msg: Message{Type: MsgApp, Index: 1000, LogTerm: 2, Commit: 2000}, wantCommit: 3},
		{
			name: "append whose indexes overflow",
			msg: Message{Type: MsgApp, Index: math.MaxUint64 - 1, LogTerm: 2, Commit: math.MaxUint64,
				Entries: []Entry{{Term: 2, Index: math.MaxUint64}, {Term: 2, Index: 0}}},
			wantErr:    ErrInvalidMessage,
			wantCommit: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Node 2 holds index 4 uncommitted, with commit 3.
			c := newRelCluster(t, 3)
			c.elect(1, nil)
			require.NoError(t, c.proposeAt(1, "a"))
			c.stabilize()
			require.NoError(t, c.proposeAt(1, "b"))
			c.take(func(m Message) bool { return m.To != 2 })
			c.deliverMsg(c.takeOne(func(m Message) bool { return m.To == 2 }))
			c.take(func(Message) bool { return true })
			require.Equal(t, uint64(3), c.status(2).Commit)
			require.Equal(t, uint64(4), c.nodes[2].mustLastIndex(t))

			m := tt.msg
			m.From, m.To, m.Term = 1, 2, 2
			require.NotPanics(t, func() {
				err := c.node(2).Step(m)
				if tt.wantErr != nil {
					assert.ErrorIs(t, err, tt.wantErr)
				} else {
					assert.NoError(t, err)
				}
				c.handleReady(2)
			})
			assert.Equal(t, tt.wantCommit, c.status(2).Commit)
			assert.LessOrEqual(t, c.storage(2).HardState().Commit, c.nodes[2].mustLastIndex(t))
			require.NotPanics(t, func() { c.crash(2) })
			assert.Equal(t, tt.wantCommit, c.status(2).Commit)
			c.requireSafe(t)
		})
	}
}

// relChaos drives a cluster of size nodes from seed for steps steps: ticks,
// proposals, delivery in random order, drops, partitions, and crashes in the
// middle of a Ready at a random step. broken makes every host send before
// persisting.
func relChaos(t testing.TB, seed uint64, size, steps int, broken bool) *testCluster {
	t.Helper()
	c := newRelCluster(t, size, func(cfg *Config) { cfg.Seed = seed*1000 + cfg.ID })
	c.sendBeforePersist = broken
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for range steps {
		id := c.ids[rng.IntN(len(c.ids))]
		switch p := rng.IntN(100); {
		case p < 45:
			c.tick(id, 1)
		case p < 83:
			for range 3 {
				if len(c.queue) == 0 {
					break
				}
				i := rng.IntN(len(c.queue))
				m := c.queue[i]
				c.queue = slices.Delete(c.queue, i, i+1)
				if rng.IntN(10) == 0 {
					c.stats.drops++
					continue
				}
				c.deliverMsg(m)
			}
		case p < 93:
			_ = c.proposeAt(id, fmt.Sprintf("v%d-%d", seed, c.stats.readies))
		case p < 95:
			c.isolate(id)
		case p < 98:
			c.heal()
		default:
			// Crash in the middle of a Ready: give the node something to
			// do, carry out part of it, then crash.
			if i := slices.IndexFunc(c.queue, func(m Message) bool { return !c.cut[[2]uint64{m.From, m.To}] }); i >= 0 {
				m := c.queue[i]
				c.queue = slices.Delete(c.queue, i, i+1)
				id = m.To
				_ = c.node(id).Step(m)
			} else {
				c.node(id).Tick()
			}
			c.crashDuringReady(id, readyCrashPoints[rng.IntN(len(readyCrashPoints))])
		}
	}
	return c
}
