package raft

// The rules of the Raft paper (Ongaro & Ousterhout, "In Search of an
// Understandable Consensus Algorithm", §5), section by section, as tests.
// Unit-level rules drive one node by hand (paperNewNode); the figures run on
// the test cluster built from hand-written logs (paperNewNetwork).

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// paperLog describes a node's durable state at start: after the bootstrap
// snapshot (index 1, term 1), entries at indexes 2, 3, … with the given terms.
type paperLog struct {
	// terms are the terms of the entries at index 2, 3, …
	terms []uint64
	// term is HardState.Term; 0 means the last entry's term.
	term uint64
	vote uint64
	// commit is HardState.Commit; 0 means 1 (the bootstrap snapshot).
	commit uint64
}

// paperEntries returns entries at index 2, 3, … with the given terms. The
// data is derived from (term, index), so two logs holding the same entry
// hold the same data, as the log matching property requires.
func paperEntries(terms ...uint64) []Entry {
	ents := make([]Entry, len(terms))
	for i, term := range terms {
		index := uint64(i + 2)
		ents[i] = Entry{Term: term, Index: index, Data: []byte(fmt.Sprintf("t%d/i%d", term, index))}
	}
	return ents
}

// paperStorage returns a MemoryStorage holding the bootstrap snapshot for
// voters and the state lg describes.
func paperStorage(t testing.TB, voters []uint64, lg paperLog) *MemoryStorage {
	t.Helper()
	s := NewMemoryStorage()
	require.NoError(t, s.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{
		Index: 1, Term: 1, ConfState: ConfState{Voters: slices.Clone(voters)},
	}}))
	require.NoError(t, s.Append(paperEntries(lg.terms...)))
	hs := HardState{Term: lg.term, Vote: lg.vote, Commit: max(lg.commit, 1)}
	if hs.Term == 0 {
		hs.Term = 1
		if n := len(lg.terms); n > 0 {
			hs.Term = lg.terms[n-1]
		}
	}
	require.NoError(t, s.SetHardState(hs))
	return s
}

// paperNewNode starts node id of a cluster of voters from the state lg,
// alone: the test drives it by hand, stepping messages into it and
// collecting what it sends (drain). Its host carries out every Ready as the
// Ready contract asks.
func paperNewNode(t testing.TB, id uint64, voters []uint64, lg paperLog, opts ...configOption) *testNode {
	t.Helper()
	c := buildCluster(t, clusterSpec{
		ids:     []uint64{id},
		storage: func(uint64) *MemoryStorage { return paperStorage(t, voters, lg) },
		opts:    opts,
	})
	n := c.nodes[id]
	n.drain()
	return n
}

// r returns the node's state machine.
func (n *testNode) r() *raft { return n.rn.raft }

// step feeds m (from a peer) to the node, addressing it to the node.
func (n *testNode) step(m Message) error {
	m.To = n.id
	return n.rn.Step(m)
}

// mustStep feeds m and requires that the node accepted it.
func (n *testNode) mustStep(m Message) {
	n.c.t.Helper()
	require.NoError(n.c.t, n.step(m))
}

// drain handles every pending Ready of the node and returns the messages
// it sent, in order, taking them off the cluster's queue.
func (n *testNode) drain() []Message {
	n.c.t.Helper()
	n.c.handleReady(n.id)
	return n.c.take(func(m Message) bool { return m.From == n.id })
}

// terms returns the terms of the node's entries from index 2 on.
func (n *testNode) terms() []uint64 {
	var terms []uint64
	for _, e := range n.r().raftLog.allEntries() {
		terms = append(terms, e.Term)
	}
	return terms
}

// campaignAndWin makes the node campaign and grants it every vote it asks
// for. It returns the messages the new leader sent.
func (n *testNode) campaignAndWin() []Message {
	t := n.c.t
	t.Helper()
	require.NoError(t, n.rn.Campaign())
	var msgs []Message
	for range 3 {
		msgs = n.drain()
		if n.r().state == StateLeader {
			break
		}
		for _, m := range msgs {
			if m.Type == MsgPreVote || m.Type == MsgVote {
				n.mustStep(Message{From: m.To, Type: voteResponseType(m.Type), Term: m.Term})
			}
		}
	}
	require.Equal(t, StateLeader, n.r().state, "node %d should have won", n.id)
	return msgs
}

// propose proposes data and returns the messages it caused.
func (n *testNode) propose(data string) []Message {
	n.c.t.Helper()
	require.NoError(n.c.t, n.rn.Propose([]byte(data)))
	return n.drain()
}

// paperSelect returns the messages of type typ addressed to to.
func paperSelect(msgs []Message, typ MessageType, to uint64) []Message {
	var out []Message
	for _, m := range msgs {
		if m.Type == typ && m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// paperEntryIndexes returns the indexes of the entries m carries.
func paperEntryIndexes(m Message) []uint64 {
	var idx []uint64
	for _, e := range m.Entries {
		idx = append(idx, e.Index)
	}
	return idx
}

// paperInState returns node 1 of a 3-voter cluster in role state at term:
// the role transitions are driven directly, as a won or lost election
// would drive them.
func paperInState(t testing.TB, state StateType, term uint64, opts ...configOption) *testNode {
	t.Helper()
	require.Greater(t, term, uint64(1))
	n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{}, opts...)
	r := n.r()
	switch state {
	case StateFollower:
		r.becomeFollower(term, None)
	case StatePreCandidate:
		r.becomeFollower(term, None)
		r.becomePreCandidate()
	case StateCandidate:
		r.becomeFollower(term-1, None)
		r.becomeCandidate()
	case StateLeader:
		r.becomeFollower(term-1, None)
		r.becomeCandidate()
		r.becomeLeader()
	}
	n.drain()
	require.Equal(t, state, r.state)
	require.Equal(t, term, r.Term)
	return n
}

var paperRoles = []StateType{StateFollower, StatePreCandidate, StateCandidate, StateLeader}

// §5.1: a node that sees a higher term in any message adopts it and becomes
// a follower. The one exception is by design: a pre-vote (thesis §9.6) asks
// about a future term without anyone moving to it.
func TestPaperHigherTermMakesFollower(t *testing.T) {
	const msgTerm = 5
	tests := []struct {
		name     string
		msg      Message
		wantLead uint64
		wantVote uint64
		// unchanged means the pre-vote exception: term and role stay.
		unchanged bool
	}{
		{name: "MsgApp", msg: Message{Type: MsgApp, Index: 1, LogTerm: 1, Commit: 1}, wantLead: 2},
		{name: "MsgHeartbeat", msg: Message{Type: MsgHeartbeat}, wantLead: 2},
		{name: "MsgVote", msg: Message{Type: MsgVote, Index: 10, LogTerm: 4}, wantVote: 2},
		{name: "MsgAppResp", msg: Message{Type: MsgAppResp, Index: 1}},
		{name: "MsgHeartbeatResp", msg: Message{Type: MsgHeartbeatResp}},
		{name: "MsgVoteResp rejected", msg: Message{Type: MsgVoteResp, Reject: true}},
		{name: "MsgPreVoteResp rejected", msg: Message{Type: MsgPreVoteResp, Reject: true}},
		{name: "MsgPreVote", msg: Message{Type: MsgPreVote, Index: 10, LogTerm: 4}, unchanged: true},
	}
	for _, role := range paperRoles {
		for _, tt := range tests {
			t.Run(role.String()+"/"+tt.name, func(t *testing.T) {
				// CheckQuorum off: the leader lease (which ignores vote
				// requests near a live leader) is not a §5.1 rule.
				n := paperInState(t, role, 2, func(c *Config) { c.DisableCheckQuorum = true })
				m := tt.msg
				m.From, m.Term = 2, msgTerm
				n.mustStep(m)
				n.drain()
				r := n.r()
				if tt.unchanged {
					assert.Equal(t, uint64(2), r.Term)
					assert.Equal(t, role, r.state)
					return
				}
				assert.Equal(t, uint64(msgTerm), r.Term)
				assert.Equal(t, StateFollower, r.state)
				assert.Equal(t, tt.wantLead, r.lead)
				assert.Equal(t, tt.wantVote, r.Vote)
				assert.Equal(t, uint64(msgTerm), n.storage.HardState().Term, "the new term is persisted")
			})
		}
	}
}

// §5.1: a request from a stale term is answered with the current term, so
// that its sender learns it; anything else from a stale term is ignored.
func TestPaperStaleTermMessages(t *testing.T) {
	const nodeTerm, staleTerm = 5, 3
	tests := []struct {
		name string
		msg  Message
		// wantResp is the type of the answer, or 0 (MsgHup) for none.
		wantResp   MessageType
		wantReject bool
	}{
		{name: "MsgApp", msg: Message{Type: MsgApp, Index: 1, LogTerm: 1, Entries: []Entry{{Index: 2, Term: staleTerm}}}, wantResp: MsgAppResp},
		{name: "MsgHeartbeat", msg: Message{Type: MsgHeartbeat}, wantResp: MsgAppResp},
		{name: "MsgVote", msg: Message{Type: MsgVote, Index: 10, LogTerm: staleTerm}, wantResp: MsgVoteResp, wantReject: true},
		{name: "MsgPreVote", msg: Message{Type: MsgPreVote, Index: 10, LogTerm: staleTerm}, wantResp: MsgPreVoteResp, wantReject: true},
		{name: "MsgAppResp", msg: Message{Type: MsgAppResp, Index: 2}},
		{name: "MsgHeartbeatResp", msg: Message{Type: MsgHeartbeatResp}},
		{name: "MsgVoteResp", msg: Message{Type: MsgVoteResp}},
		{name: "MsgPreVoteResp", msg: Message{Type: MsgPreVoteResp}},
		{name: "MsgSnap", msg: Message{Type: MsgSnap, Snapshot: &Snapshot{Metadata: SnapshotMetadata{
			Index: 50, Term: staleTerm, ConfState: ConfState{Voters: []uint64{1, 2, 3}}}}}},
	}
	for _, role := range paperRoles {
		for _, tt := range tests {
			t.Run(role.String()+"/"+tt.name, func(t *testing.T) {
				n := paperInState(t, role, nodeTerm)
				r := n.r()
				hsBefore, leadBefore, lastBefore := r.hardState(), r.lead, r.raftLog.lastIndex()
				m := tt.msg
				m.From, m.Term = 2, staleTerm
				n.mustStep(m)
				msgs := n.drain()

				assert.Equal(t, role, r.state, "role unchanged")
				assert.Equal(t, hsBefore, r.hardState(), "term, vote and commit unchanged")
				assert.Equal(t, leadBefore, r.lead)
				assert.Equal(t, lastBefore, r.raftLog.lastIndex(), "log unchanged")
				if tt.wantResp == MsgHup {
					assert.Empty(t, msgs, "a stale %s is ignored", tt.msg.Type)
					return
				}
				require.Len(t, msgs, 1)
				assert.Equal(t, tt.wantResp, msgs[0].Type)
				assert.Equal(t, uint64(2), msgs[0].To)
				assert.Equal(t, uint64(nodeTerm), msgs[0].Term, "the answer carries the current term")
				assert.Equal(t, tt.wantReject, msgs[0].Reject)
			})
		}
	}
}

// §5.1: a deposed leader or a stale (pre-)candidate that contacts a node of a
// later term learns that term from the answer and steps down.
func TestPaperStaleSenderStepsDown(t *testing.T) {
	tests := []struct {
		name           string
		role           StateType
		disablePreVote bool
		// send makes the stale node send its requests.
		send func(n *testNode) error
		want MessageType
	}{
		{name: "leader heartbeat", role: StateLeader, want: MsgHeartbeat,
			send: func(n *testNode) error { return n.r().Step(Message{From: n.id, Type: MsgBeat}) }},
		{name: "leader append", role: StateLeader, want: MsgApp,
			send: func(n *testNode) error { return n.rn.Propose([]byte("stale")) }},
		{name: "candidate vote request", role: StateFollower, want: MsgVote, disablePreVote: true,
			send: func(n *testNode) error { return n.rn.Campaign() }},
		{name: "pre-candidate pre-vote request", role: StateFollower, want: MsgPreVote,
			send: func(n *testNode) error { return n.rn.Campaign() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stale := paperInState(t, tt.role, 3, func(c *Config) { c.DisablePreVote = tt.disablePreVote })
			current := paperNewNode(t, 2, []uint64{1, 2, 3}, paperLog{term: 7})
			require.NoError(t, tt.send(stale))
			reqs := paperSelect(stale.drain(), tt.want, 2)
			require.NotEmpty(t, reqs)
			for _, m := range reqs {
				current.mustStep(m)
			}
			resps := current.drain()
			require.NotEmpty(t, resps)
			for _, m := range resps {
				assert.Equal(t, uint64(7), m.Term)
				stale.mustStep(m)
			}
			stale.drain()
			assert.Equal(t, StateFollower, stale.r().state)
			assert.Equal(t, uint64(7), stale.r().Term)
			assert.Equal(t, uint64(7), current.r().Term, "the current node keeps its term")
		})
	}
}

// §5.2: a follower that hears nothing campaigns once its randomized
// election timeout, drawn from [ElectionTick, 2*ElectionTick), runs out.
func TestPaperFollowerCampaignsAfterRandomizedTimeout(t *testing.T) {
	const electionTick = 10
	seen := map[int]int{}
	for seed := uint64(1); seed <= 200; seed++ {
		for _, preVote := range []bool{true, false} {
			n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{}, func(c *Config) {
				c.Seed = seed
				c.DisablePreVote = !preVote
			})
			r := n.r()
			timeout := r.randomizedElectionTimeout
			require.GreaterOrEqual(t, timeout, electionTick, "seed %d", seed)
			require.Less(t, timeout, 2*electionTick, "seed %d", seed)
			seen[timeout]++
			for range timeout - 1 {
				n.rn.Tick()
			}
			require.Equal(t, StateFollower, r.state, "seed %d: campaigned before its timeout %d", seed, timeout)
			n.rn.Tick()
			msgs := n.drain()
			if preVote {
				require.Equal(t, StatePreCandidate, r.state, "seed %d", seed)
				assert.Len(t, paperSelect(msgs, MsgPreVote, 2), 1)
			} else {
				require.Equal(t, StateCandidate, r.state, "seed %d", seed)
				assert.Equal(t, uint64(2), r.Term)
				assert.Len(t, paperSelect(msgs, MsgVote, 2), 1)
			}
		}
	}
	assert.Len(t, seen, electionTick, "every timeout in [ElectionTick, 2*ElectionTick) is drawn: %v", seen)

	// Nodes of one cluster, seeded by their IDs, do not all draw the same
	// timeout; that is what keeps split votes rare.
	nw := newCluster(t, 5)
	timeouts := map[int]bool{}
	for _, id := range nw.ids {
		timeouts[nw.raft(id).randomizedElectionTimeout] = true
	}
	assert.Greater(t, len(timeouts), 1, "all five nodes drew the same timeout")
}

// §5.2: a candidate increments its term, votes for itself (durably, in the
// Ready's HardState) and asks every other voter, describing its last entry.
func TestPaperCandidateVotesForItselfAndAsksAllVoters(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("voters=%d", size), func(t *testing.T) {
			n := paperNewNode(t, 1, clusterIDs(size), paperLog{terms: []uint64{1, 2}},
				func(c *Config) { c.DisablePreVote = true })
			require.NoError(t, n.rn.Campaign())
			rd := n.rn.Ready()
			assert.Equal(t, StateCandidate, n.r().state)
			assert.Equal(t, HardState{Term: 3, Vote: 1, Commit: 1}, rd.HardState)
			assert.True(t, rd.MustSync)
			assert.Empty(t, paperSelect(rd.Messages, MsgVote, 2), "vote requests wait for the vote to be durable")
			var asked []uint64
			for _, m := range rd.MessagesAfterPersist {
				require.Equal(t, MsgVote, m.Type)
				assert.Equal(t, uint64(3), m.Term)
				assert.Equal(t, uint64(3), m.Index, "last index")
				assert.Equal(t, uint64(2), m.LogTerm, "last term")
				asked = append(asked, m.To)
			}
			assert.Equal(t, clusterIDs(size)[1:], asked)
		})
	}
}

// §5.2: a node grants at most one vote per term, to the first candidate
// that asks with a log at least as up to date; the same candidate asking
// again (its first answer may have been lost) is granted again.
func TestPaperOneVotePerTerm(t *testing.T) {
	type request struct {
		from, term uint64
		wantGrant  bool
	}
	tests := []struct {
		name     string
		requests []request
		wantVote uint64
	}{
		{name: "first candidate is granted", requests: []request{{2, 2, true}}, wantVote: 2},
		{name: "second candidate of the term is rejected", requests: []request{{2, 2, true}, {3, 2, false}}, wantVote: 2},
		{name: "same candidate asking again is granted", requests: []request{{2, 2, true}, {2, 2, true}}, wantVote: 2},
		{name: "rejected candidate stays rejected", requests: []request{{2, 2, true}, {3, 2, false}, {3, 2, false}}, wantVote: 2},
		{name: "a new term frees the vote", requests: []request{{2, 2, true}, {3, 3, true}}, wantVote: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{})
			for i, req := range tt.requests {
				n.mustStep(Message{From: req.from, Type: MsgVote, Term: req.term, Index: 1, LogTerm: 1})
				resps := paperSelect(n.drain(), MsgVoteResp, req.from)
				require.Len(t, resps, 1, "request %d", i)
				assert.Equal(t, !req.wantGrant, resps[0].Reject, "request %d from %d at term %d", i, req.from, req.term)
			}
			assert.Equal(t, tt.wantVote, n.r().Vote)
			assert.Equal(t, tt.wantVote, n.storage.HardState().Vote)
		})
	}
}

// §5.2: the vote is persisted before the grant leaves: the HardState
// holding it is in the same Ready as the grant, and the grant is among the
// messages sent only after persisting.
func TestPaperVoteDurableBeforeGrant(t *testing.T) {
	n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{})
	n.mustStep(Message{From: 2, Type: MsgVote, Term: 2, Index: 1, LogTerm: 1})
	rd := n.rn.Ready()
	assert.Equal(t, HardState{Term: 2, Vote: 2, Commit: 1}, rd.HardState)
	assert.True(t, rd.MustSync)
	assert.Empty(t, paperSelect(rd.Messages, MsgVoteResp, 2))
	grants := paperSelect(rd.MessagesAfterPersist, MsgVoteResp, 2)
	require.Len(t, grants, 1)
	assert.False(t, grants[0].Reject)
	assert.Error(t, checkDurable(n.storage, grants[0]), "the grant must not be sendable before the Ready is persisted")
	require.NoError(t, n.storage.SetHardState(rd.HardState))
	assert.NoError(t, checkDurable(n.storage, grants[0]))
	n.rn.Advance(rd)
}

// §5.2: a candidate becomes leader with votes from a majority, returns to
// follower once a majority rejected it, and otherwise keeps waiting.
func TestPaperCandidateElectionOutcome(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		grants  []uint64
		rejects []uint64
		want    StateType
	}{
		{name: "single voter wins at once", size: 1, want: StateLeader},
		{name: "3: one grant wins", size: 3, grants: []uint64{2}, want: StateLeader},
		{name: "3: one rejection waits", size: 3, rejects: []uint64{2}, want: StateCandidate},
		{name: "3: two rejections lose", size: 3, rejects: []uint64{2, 3}, want: StateFollower},
		{name: "5: two grants win", size: 5, grants: []uint64{2, 3}, want: StateLeader},
		{name: "5: one grant waits", size: 5, grants: []uint64{2}, want: StateCandidate},
		{name: "5: one grant, two rejections wait", size: 5, grants: []uint64{2}, rejects: []uint64{3, 4}, want: StateCandidate},
		{name: "5: one grant, three rejections lose", size: 5, grants: []uint64{2}, rejects: []uint64{3, 4, 5}, want: StateFollower},
		{name: "5: three rejections lose", size: 5, rejects: []uint64{2, 3, 4}, want: StateFollower},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := paperNewNode(t, 1, clusterIDs(tt.size), paperLog{}, func(c *Config) { c.DisablePreVote = true })
			require.NoError(t, n.rn.Campaign())
			n.drain()
			for _, id := range tt.grants {
				n.mustStep(Message{From: id, Type: MsgVoteResp, Term: 2})
			}
			for _, id := range tt.rejects {
				n.mustStep(Message{From: id, Type: MsgVoteResp, Term: 2, Reject: true})
			}
			n.drain()
			assert.Equal(t, tt.want, n.r().state)
			assert.Equal(t, uint64(2), n.r().Term, "the outcome does not change the term")
		})
	}
}

// §5.2: a (pre-)candidate that hears from a leader of its term (or a later
// one) recognises it and returns to follower; a rival's vote request does
// not make it step down.
func TestPaperCandidateStepsDownForLeader(t *testing.T) {
	tests := []struct {
		name      string
		role      StateType
		msg       Message
		wantState StateType
		wantTerm  uint64
		wantLead  uint64
	}{
		{name: "candidate, MsgApp of its term", role: StateCandidate,
			msg: Message{Type: MsgApp, Term: 3, Index: 1, LogTerm: 1}, wantState: StateFollower, wantTerm: 3, wantLead: 2},
		{name: "candidate, heartbeat of its term", role: StateCandidate,
			msg: Message{Type: MsgHeartbeat, Term: 3}, wantState: StateFollower, wantTerm: 3, wantLead: 2},
		{name: "candidate, MsgApp of a later term", role: StateCandidate,
			msg: Message{Type: MsgApp, Term: 4, Index: 1, LogTerm: 1}, wantState: StateFollower, wantTerm: 4, wantLead: 2},
		{name: "candidate, rival vote request of its term", role: StateCandidate,
			msg: Message{Type: MsgVote, Term: 3, Index: 1, LogTerm: 1}, wantState: StateCandidate, wantTerm: 3},
		{name: "pre-candidate, MsgApp of its term", role: StatePreCandidate,
			msg: Message{Type: MsgApp, Term: 3, Index: 1, LogTerm: 1}, wantState: StateFollower, wantTerm: 3, wantLead: 2},
		{name: "pre-candidate, heartbeat of its term", role: StatePreCandidate,
			msg: Message{Type: MsgHeartbeat, Term: 3}, wantState: StateFollower, wantTerm: 3, wantLead: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := paperInState(t, tt.role, 3)
			m := tt.msg
			m.From = 2
			n.mustStep(m)
			n.drain()
			assert.Equal(t, tt.wantState, n.r().state)
			assert.Equal(t, tt.wantTerm, n.r().Term)
			assert.Equal(t, tt.wantLead, n.r().lead)
		})
	}
}

// §5.2: randomized timeouts resolve a split vote. Every node of a cluster
// campaigns in the same term, so each votes for itself and none wins; the
// randomized timeouts then let one node time out first and win.
func TestPaperRandomizedTimeoutsResolveSplitVote(t *testing.T) {
	const electionTick = 10
	for _, size := range []int{3, 5} {
		for seed := uint64(1); seed <= 10; seed++ {
			t.Run(fmt.Sprintf("voters=%d/seed=%d", size, seed), func(t *testing.T) {
				nw := newCluster(t, size, func(c *Config) {
					c.DisablePreVote = true
					c.Seed = seed*1000 + c.ID
				})
				// Split the vote: every node becomes a candidate of term 2
				// before any request arrives.
				for _, id := range nw.ids {
					require.NoError(t, nw.node(id).Campaign())
					nw.handleReady(id)
				}
				nw.stabilize()
				for _, id := range nw.ids {
					require.NotEqual(t, StateLeader, nw.raft(id).state, "seed %d: the vote was not split", seed)
					require.Equal(t, uint64(2), nw.raft(id).Term)
				}
				ticks := 0
				for ; ticks < 4*electionTick && nw.leader() == None; ticks++ {
					nw.tickAll()
				}
				require.NotEqual(t, None, nw.leader(), "seed %d: no leader after %d ticks", seed, ticks)
				assert.LessOrEqual(t, nw.raft(nw.leader()).Term, uint64(4),
					"seed %d: the split took too many terms to resolve", seed)
			})
		}
	}
}

// §5.3: a leader appends a proposal to its log and sends it with the index
// and term of the entry before it, together with its commit index.
func TestPaperLeaderAppendsAndReplicates(t *testing.T) {
	n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{})
	first := n.campaignAndWin()
	for _, to := range []uint64{2, 3} {
		apps := paperSelect(first, MsgApp, to)
		require.Len(t, apps, 1)
		assert.Equal(t, uint64(1), apps[0].Index, "prev index: the bootstrap snapshot")
		assert.Equal(t, uint64(1), apps[0].LogTerm)
		assert.Equal(t, []uint64{2}, paperEntryIndexes(apps[0]), "the new term's empty entry")
		n.mustStep(Message{From: to, Type: MsgAppResp, Term: 2, Index: 2})
	}
	n.drain()
	require.Equal(t, uint64(2), n.r().raftLog.committed)

	for i, data := range []string{"a", "b"} {
		index := uint64(3 + i)
		msgs := n.propose(data)
		last, err := n.r().raftLog.term(index)
		require.NoError(t, err)
		assert.Equal(t, uint64(2), last, "appended in the leader's term")
		for _, to := range []uint64{2, 3} {
			apps := paperSelect(msgs, MsgApp, to)
			require.Len(t, apps, 1, "proposal %q to %d", data, to)
			assert.Equal(t, index-1, apps[0].Index, "prev index")
			assert.Equal(t, uint64(2), apps[0].LogTerm, "prev term")
			assert.Equal(t, []Entry{{Term: 2, Index: index, Data: []byte(data)}}, apps[0].Entries)
			assert.Equal(t, uint64(2), apps[0].Commit)
		}
	}
}

// §5.3: the follower's consistency check. It accepts an append only if its
// log holds the entry before the new ones with the same term; otherwise it
// rejects with a hint: its last index that may match, and that entry's term.
func TestPaperFollowerConsistencyCheck(t *testing.T) {
	// Follower log: 1:t1 (snapshot) 2:t2 3:t2 4:t3.
	tests := []struct {
		name           string
		index, logTerm uint64
		entries        []Entry
		wantReject     bool
		wantIndex      uint64
		wantHint       uint64
		wantHintTerm   uint64
		wantTerms      []uint64
	}{
		{name: "prev is the last entry", index: 4, logTerm: 3, entries: []Entry{{Index: 5, Term: 5}},
			wantIndex: 5, wantTerms: []uint64{2, 2, 3, 5}},
		{name: "prev is the snapshot", index: 1, logTerm: 1,
			wantIndex: 1, wantTerms: []uint64{2, 2, 3}},
		{name: "prev term differs at the last index", index: 4, logTerm: 4,
			wantReject: true, wantIndex: 4, wantHint: 4, wantHintTerm: 3},
		{name: "prev beyond the last index", index: 6, logTerm: 4,
			wantReject: true, wantIndex: 6, wantHint: 4, wantHintTerm: 3},
		{name: "prev term differs in the middle", index: 3, logTerm: 4,
			wantReject: true, wantIndex: 3, wantHint: 3, wantHintTerm: 2},
		{name: "hint skips entries of a later term", index: 4, logTerm: 2,
			wantReject: true, wantIndex: 4, wantHint: 3, wantHintTerm: 2},
		{name: "hint falls back to the snapshot", index: 4, logTerm: 1,
			wantReject: true, wantIndex: 4, wantHint: 1, wantHintTerm: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{terms: []uint64{2, 2, 3}})
			n.mustStep(Message{From: 2, Type: MsgApp, Term: 5, Index: tt.index, LogTerm: tt.logTerm, Entries: tt.entries})
			resps := paperSelect(n.drain(), MsgAppResp, 2)
			require.Len(t, resps, 1)
			resp := resps[0]
			assert.Equal(t, tt.wantReject, resp.Reject)
			assert.Equal(t, tt.wantIndex, resp.Index)
			if tt.wantReject {
				assert.Equal(t, tt.wantHint, resp.RejectHint, "hint index")
				assert.Equal(t, tt.wantHintTerm, resp.LogTerm, "hint term")
				assert.Equal(t, []uint64{2, 2, 3}, n.terms(), "a rejected append changes nothing")
			} else {
				assert.Equal(t, tt.wantTerms, n.terms())
			}
		})
	}
}

// §5.3: on a conflict the follower deletes the conflicting entry and all
// that follow it, and only then; entries it already holds, and anything
// after them, are kept; committed entries are never touched.
func TestPaperFollowerTruncatesConflictingSuffix(t *testing.T) {
	// Follower log: 1:t1 (snapshot) 2:t2 3:t2 4:t3.
	tests := []struct {
		name           string
		commit         uint64
		index, logTerm uint64
		entries        []Entry
		wantIndex      uint64
		wantTerms      []uint64
	}{
		{name: "entries already held: nothing truncated", index: 2, logTerm: 2,
			entries: []Entry{{Index: 3, Term: 2}}, wantIndex: 3, wantTerms: []uint64{2, 2, 3}},
		{name: "conflict in the middle truncates the suffix", index: 2, logTerm: 2,
			entries: []Entry{{Index: 3, Term: 4}}, wantIndex: 3, wantTerms: []uint64{2, 4}},
		{name: "conflict at the last entry", index: 3, logTerm: 2,
			entries: []Entry{{Index: 4, Term: 4}, {Index: 5, Term: 4}}, wantIndex: 5, wantTerms: []uint64{2, 2, 4, 4}},
		{name: "held prefix then conflict", index: 2, logTerm: 2,
			entries: []Entry{{Index: 3, Term: 2}, {Index: 4, Term: 4}}, wantIndex: 4, wantTerms: []uint64{2, 2, 4}},
		{name: "append after the last entry", index: 4, logTerm: 3,
			entries: []Entry{{Index: 5, Term: 4}}, wantIndex: 5, wantTerms: []uint64{2, 2, 3, 4}},
		{name: "committed entries are kept", commit: 3, index: 2, logTerm: 2,
			entries: []Entry{{Index: 3, Term: 4}}, wantIndex: 3, wantTerms: []uint64{2, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{terms: []uint64{2, 2, 3}, commit: tt.commit})
			n.mustStep(Message{From: 2, Type: MsgApp, Term: 5, Index: tt.index, LogTerm: tt.logTerm, Entries: tt.entries})
			resps := paperSelect(n.drain(), MsgAppResp, 2)
			require.Len(t, resps, 1)
			assert.False(t, resps[0].Reject)
			assert.Equal(t, tt.wantIndex, resps[0].Index)
			assert.Equal(t, tt.wantTerms, n.terms())
			stored, err := n.storage.Entries(2, n.r().raftLog.lastIndex()+1, noLimit)
			require.NoError(t, err)
			assert.Equal(t, n.r().raftLog.allEntries(), stored, "the durable log is the same")
		})
	}
}

// §5.3: the leader's commit index reaches followers in appends (capped at
// the last entry the append verified) and in heartbeats; it never goes back.
func TestPaperFollowerLearnsCommitIndex(t *testing.T) {
	// Follower log: 1:t1 (snapshot) 2:t2 3:t2 4:t3.
	tests := []struct {
		name       string
		commit     uint64
		msg        Message
		wantCommit uint64
	}{
		{name: "append carries the commit index",
			msg:        Message{Type: MsgApp, Index: 4, LogTerm: 3, Entries: []Entry{{Index: 5, Term: 5}}, Commit: 5},
			wantCommit: 5},
		{name: "append commits no further than it verified",
			msg:        Message{Type: MsgApp, Index: 2, LogTerm: 2, Commit: 4},
			wantCommit: 2},
		{name: "append commits up to its new entries",
			msg:        Message{Type: MsgApp, Index: 2, LogTerm: 2, Entries: []Entry{{Index: 3, Term: 2}}, Commit: 4},
			wantCommit: 3},
		{name: "heartbeat carries the commit index",
			msg:        Message{Type: MsgHeartbeat, Commit: 3},
			wantCommit: 3},
		{name: "commit never goes back", commit: 3,
			msg:        Message{Type: MsgHeartbeat, Commit: 2},
			wantCommit: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{terms: []uint64{2, 2, 3}, commit: tt.commit})
			m := tt.msg
			m.From, m.Term = 2, 5
			n.mustStep(m)
			n.drain()
			assert.Equal(t, tt.wantCommit, n.r().raftLog.committed)
			assert.Equal(t, tt.wantCommit, n.storage.HardState().Commit)
		})
	}
}

// §5.3: a heartbeat never tells a follower to commit beyond what the leader
// knows the follower holds (its Match), so a follower never commits an
// entry it has not verified.
func TestPaperHeartbeatCommitCappedAtMatch(t *testing.T) {
	n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{})
	n.campaignAndWin()
	n.mustStep(Message{From: 2, Type: MsgAppResp, Term: 2, Index: 2})
	n.drain()
	n.propose("x")
	n.mustStep(Message{From: 2, Type: MsgAppResp, Term: 2, Index: 3})
	n.drain()
	require.Equal(t, uint64(3), n.r().raftLog.committed)

	heartbeats := func() map[uint64]uint64 {
		require.NoError(t, n.r().Step(Message{From: 1, Type: MsgBeat}))
		commits := map[uint64]uint64{}
		for _, m := range n.drain() {
			if m.Type == MsgHeartbeat {
				commits[m.To] = m.Commit
			}
		}
		return commits
	}
	assert.Equal(t, map[uint64]uint64{2: 3, 3: 0}, heartbeats(), "node 3 is not known to hold anything")
	n.mustStep(Message{From: 3, Type: MsgAppResp, Term: 2, Index: 2})
	n.drain()
	assert.Equal(t, map[uint64]uint64{2: 3, 3: 2}, heartbeats(), "node 3 holds up to index 2")
}

// §5.3: the leader commits an entry of its term once a majority of voters
// (itself included, once its own copy is durable) holds it.
func TestPaperLeaderCommitsOnMajority(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		acks       []uint64
		wantCommit bool
	}{
		{name: "single voter", size: 1, wantCommit: true},
		{name: "3: no ack", size: 3},
		{name: "3: one ack", size: 3, acks: []uint64{2}, wantCommit: true},
		{name: "5: one ack", size: 5, acks: []uint64{5}},
		{name: "5: two acks", size: 5, acks: []uint64{2, 4}, wantCommit: true},
		{name: "5: four acks", size: 5, acks: []uint64{2, 3, 4, 5}, wantCommit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := paperNewNode(t, 1, clusterIDs(tt.size), paperLog{})
			n.campaignAndWin()
			n.propose("x")
			for _, id := range tt.acks {
				n.mustStep(Message{From: id, Type: MsgAppResp, Term: 2, Index: 3})
			}
			n.drain()
			want := uint64(1)
			if tt.wantCommit {
				want = 3
			}
			assert.Equal(t, want, n.r().raftLog.committed)
		})
	}
}

// §5.3, Figure 7: whatever the follower's log, the leader of term 8 makes
// it identical to its own: missing entries are added, extra and
// conflicting ones removed.
func TestPaperFigure7FollowerLogsRepaired(t *testing.T) {
	// Terms of the entries at the paper's indexes 1, 2, … (ours are one
	// higher: index 1 is the bootstrap snapshot).
	leader := []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6}
	tests := []struct {
		name     string
		follower []uint64
	}{
		{name: "a: missing one entry", follower: []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6}},
		{name: "b: missing many entries", follower: []uint64{1, 1, 1, 4}},
		{name: "c: one extra uncommitted entry", follower: []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}},
		{name: "d: two extra entries of a later term", follower: []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}},
		{name: "e: missing and extra entries", follower: []uint64{1, 1, 1, 4, 4, 4, 4}},
		{name: "f: many entries of terms the leader never saw", follower: []uint64{1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Node 3 holds the leader's log and gives it the majority even
			// when the follower's log is more up to date (c, d).
			nw := paperNewNetwork(t, []paperLog{
				{terms: leader, term: 7},
				{terms: tt.follower},
				{terms: leader, term: 7},
			})
			nw.electLeader(1)
			require.Equal(t, uint64(8), nw.raft(1).Term)
			nw.tickAll()

			want := nw.raft(1).raftLog.allEntries()
			require.Len(t, want, len(leader)+1, "the leader's log plus its empty entry")
			assert.Equal(t, want, nw.raft(2).raftLog.allEntries(), "the follower's log equals the leader's")
			stored, err := nw.nodes[2].storage.Entries(2, uint64(len(want))+2, noLimit)
			require.NoError(t, err)
			assert.Equal(t, want, stored, "and so does its durable log")
			last, err := nw.nodes[2].storage.LastIndex()
			require.NoError(t, err)
			assert.Equal(t, uint64(len(want))+1, last, "nothing is left after the leader's last entry")
			assert.Equal(t, nw.raft(1).raftLog.committed, nw.raft(2).raftLog.committed)
		})
	}
}

// §5.4.1: a voter grants its vote only to a candidate whose log is at least
// as up to date as its own: a later last term, or the same last term and a
// last index at least as high.
func TestPaperVoteRequiresUpToDateLog(t *testing.T) {
	// Voter log: 1:t1 (snapshot) 2:t2 3:t2, so its last entry is (3, t2).
	tests := []struct {
		name                string
		lastIndex, lastTerm uint64
		wantGrant           bool
	}{
		{name: "same last entry", lastIndex: 3, lastTerm: 2, wantGrant: true},
		{name: "same last term, longer", lastIndex: 4, lastTerm: 2, wantGrant: true},
		{name: "same last term, shorter", lastIndex: 2, lastTerm: 2},
		{name: "later last term, shorter", lastIndex: 2, lastTerm: 3, wantGrant: true},
		{name: "earlier last term, longer", lastIndex: 9, lastTerm: 1},
		{name: "only the snapshot", lastIndex: 1, lastTerm: 1},
	}
	for _, tt := range tests {
		for _, typ := range []MessageType{MsgVote, MsgPreVote} {
			t.Run(typ.String()+"/"+tt.name, func(t *testing.T) {
				n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{terms: []uint64{2, 2}})
				n.mustStep(Message{From: 2, Type: typ, Term: 4, Index: tt.lastIndex, LogTerm: tt.lastTerm})
				resps := paperSelect(n.drain(), voteResponseType(typ), 2)
				require.Len(t, resps, 1)
				assert.Equal(t, !tt.wantGrant, resps[0].Reject)
				if typ == MsgVote {
					want := None
					if tt.wantGrant {
						want = 2
					}
					assert.Equal(t, want, n.r().Vote)
				}
			})
		}
	}
}

// §5.4.1: the election restriction decides whole elections: a candidate
// whose log is less up to date than a majority's cannot win.
func TestPaperElectionRestriction(t *testing.T) {
	tests := []struct {
		name      string
		candidate []uint64
		others    []uint64
		wantWin   bool
	}{
		{name: "earlier last term, longer log", candidate: []uint64{1, 2, 2, 2, 2}, others: []uint64{1, 3}},
		{name: "same last term, shorter log", candidate: []uint64{1, 3}, others: []uint64{1, 3, 3}},
		{name: "same log", candidate: []uint64{1, 3, 3}, others: []uint64{1, 3, 3}, wantWin: true},
		{name: "same last term, longer log", candidate: []uint64{1, 3, 3, 3}, others: []uint64{1, 3, 3}, wantWin: true},
		{name: "later last term, shorter log", candidate: []uint64{4}, others: []uint64{1, 3, 3}, wantWin: true},
	}
	for _, tt := range tests {
		for _, preVote := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/prevote=%v", tt.name, preVote), func(t *testing.T) {
				nw := paperNewNetwork(t, []paperLog{
					{terms: tt.candidate, term: 5}, {terms: tt.others, term: 5}, {terms: tt.others, term: 5},
				}, func(c *Config) { c.DisablePreVote = !preVote })
				nw.campaign(1)
				if tt.wantWin {
					assert.Equal(t, StateLeader, nw.raft(1).state)
					return
				}
				assert.NotEqual(t, StateLeader, nw.raft(1).state)
				// The cluster is not stuck: a node with the up-to-date log
				// wins, and the candidate's extra entries do not survive.
				nw.campaign(2)
				require.Equal(t, StateLeader, nw.raft(2).state)
				nw.tickAll()
				assert.Equal(t, nw.raft(2).raftLog.allEntries(), nw.raft(1).raftLog.allEntries())
			})
		}
	}
}

// Figure 8 (§5.4.2) on five nodes, with the paper's index 2 at our index 3
// (our index 1 is the bootstrap snapshot, our index 2 the paper's index 1).
// State (b): S1 led term 2 and replicated its entry 3 to S2 only; S5 led
// term 3 with S3 and S4's votes and appended a different entry 3.
func paperFigure8(t *testing.T) *testCluster {
	t.Helper()
	nw := paperNewNetwork(t, []paperLog{
		{terms: []uint64{1, 2}, term: 2, vote: 1, commit: 2},
		{terms: []uint64{1, 2}, term: 2, vote: 1, commit: 2},
		{terms: []uint64{1}, term: 3, vote: 5, commit: 2},
		{terms: []uint64{1}, term: 3, vote: 5, commit: 2},
		{terms: []uint64{1, 3}, term: 3, vote: 5, commit: 2},
	}, func(c *Config) {
		// The paper's algorithm: no pre-vote, no leader lease.
		c.DisablePreVote = true
		c.DisableCheckQuorum = true
	})
	// (c): S5 is down, S4 unreachable; S1 wins term 4 with S2 and S3.
	nw.partition([]uint64{1, 2, 3}, []uint64{4}, []uint64{5})
	return nw
}

// paperCampaignUntil campaigns at node id until it leads or tries run out,
// delivering with keep (nil keeps everything).
func paperCampaignUntil(nw *testCluster, id uint64, tries int, keep func(m *Message) bool) {
	nw.t.Helper()
	for range tries {
		if nw.raft(id).state == StateLeader {
			return
		}
		require.NoError(nw.t, nw.node(id).Campaign())
		nw.handleReady(id)
		paperDeliver(nw, keep)
	}
}

// §5.4.2, Figure 8: an entry of an earlier term is not committed by
// counting replicas, even on a majority; it is committed only indirectly,
// by an entry of the leader's own term.
func TestPaperFigure8(t *testing.T) {
	t.Run("d: old-term entry on a majority is not committed and may be overwritten", func(t *testing.T) {
		nw := paperFigure8(t)
		// S1's empty entry of term 4 (index 4) is lost on the way; its
		// entry of term 2 reaches S3.
		stripNew := func(m *Message) bool {
			if m.Type == MsgApp && m.From == 1 {
				n := 0
				for n < len(m.Entries) && m.Entries[n].Index < 4 {
					n++
				}
				m.Entries = m.Entries[:n]
			}
			return true
		}
		paperCampaignUntil(nw, 1, 3, stripNew)
		s1 := nw.raft(1)
		require.Equal(t, StateLeader, s1.state)
		require.Equal(t, uint64(4), s1.Term)
		require.Equal(t, uint64(4), s1.raftLog.lastIndex())
		for _, id := range []uint64{2, 3} {
			require.Equal(t, uint64(3), s1.trk.progress[id].Match, "S1 knows S%d holds entry 3", id)
			require.True(t, nw.raft(id).raftLog.matchTerm(3, 2))
		}
		assert.Equal(t, uint64(2), s1.raftLog.committed, "entry 3 of term 2 is on S1, S2, S3 but must not commit")

		// (d): S1 crashes; S5 wins with S2, S3, S4 (its last term 3 beats
		// their 2) and replaces entry 3 everywhere. The network's
		// state-machine check would fail had anyone applied S1's entry 3.
		nw.heal()
		nw.isolate(1)
		paperCampaignUntil(nw, 5, 3, nil)
		require.Equal(t, StateLeader, nw.raft(5).state)
		nw.tickAll() // a heartbeat carries the commit index to all
		for _, id := range []uint64{2, 3, 4, 5} {
			assert.True(t, nw.raft(id).raftLog.matchTerm(3, 3), "S%d holds S5's entry 3", id)
			assert.GreaterOrEqual(t, nw.raft(id).raftLog.committed, uint64(3))
		}
		assert.Equal(t, uint64(3), nw.committed[3].Term, "entry 3 committed is S5's")
	})

	t.Run("e: committed with an entry of the current term, then safe", func(t *testing.T) {
		nw := paperFigure8(t)
		paperCampaignUntil(nw, 1, 3, nil)
		s1 := nw.raft(1)
		require.Equal(t, StateLeader, s1.state)
		assert.Equal(t, uint64(4), s1.raftLog.committed, "the term-4 entry commits, and entry 3 with it")
		assert.Equal(t, uint64(2), nw.committed[3].Term)

		// S1 crashes; S5 cannot win: S2 and S3 hold a later last term.
		nw.heal()
		nw.isolate(1)
		paperCampaignUntil(nw, 5, 3, nil)
		assert.NotEqual(t, StateLeader, nw.raft(5).state)
		for _, id := range []uint64{2, 3} {
			assert.True(t, nw.raft(id).raftLog.matchTerm(3, 2), "S%d keeps the committed entry 3", id)
		}
	})
}

// MaxSizePerMsg: an append carries as many entries as fit in the limit (at
// least one); more entries go in further appends.
func TestPaperMaxSizePerMsg(t *testing.T) {
	// Five proposals of 10 bytes: each entry counts 34 bytes.
	const entrySize = entryOverhead + 10
	tests := []struct {
		name    string
		maxSize uint64
		want    [][]uint64
	}{
		{name: "no limit: one append", maxSize: noLimit, want: [][]uint64{{3, 4, 5, 6, 7}}},
		{name: "two entries fit", maxSize: 2 * entrySize, want: [][]uint64{{3, 4}, {5, 6}, {7}}},
		{name: "just under three entries", maxSize: 3*entrySize - 1, want: [][]uint64{{3, 4}, {5, 6}, {7}}},
		{name: "three entries fit", maxSize: 3 * entrySize, want: [][]uint64{{3, 4, 5}, {6, 7}}},
		{name: "smaller than one entry: one each", maxSize: 1, want: [][]uint64{{3}, {4}, {5}, {6}, {7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{}, func(c *Config) { c.MaxSizePerMsg = tt.maxSize })
			n.campaignAndWin()
			// Node 2 is probing (its first append is unanswered), so the
			// proposals queue up.
			for i := range 5 {
				msgs := n.propose(fmt.Sprintf("proposal-%d", i+1))
				require.Empty(t, paperSelect(msgs, MsgApp, 2), "a paused probe gets nothing")
			}
			n.mustStep(Message{From: 2, Type: MsgAppResp, Term: 2, Index: 2})
			var got [][]uint64
			for _, m := range paperSelect(n.drain(), MsgApp, 2) {
				assert.LessOrEqual(t, max(entriesSize(m.Entries), entrySize), max(tt.maxSize, entrySize))
				got = append(got, paperEntryIndexes(m))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// paperReplicating returns leader 1 of a 3-voter cluster in which node 2
// acknowledged the leader's empty entry, so it is in replicate state.
func paperReplicating(t testing.TB, opts ...configOption) *testNode {
	t.Helper()
	n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{}, opts...)
	n.campaignAndWin()
	n.mustStep(Message{From: 2, Type: MsgAppResp, Term: 2, Index: 2})
	n.drain()
	require.Equal(t, ProgressStateReplicate, n.r().trk.progress[2].State)
	return n
}

// MaxInflightMsgs: a replicating peer gets at most that many unacknowledged
// appends; an acknowledgement frees the window and sending resumes.
func TestPaperMaxInflightMsgs(t *testing.T) {
	n := paperReplicating(t, func(c *Config) { c.MaxInflightMsgs = 2 })
	var sent [][]uint64
	for i := range 4 {
		for _, m := range paperSelect(n.propose(fmt.Sprintf("p%d", i)), MsgApp, 2) {
			sent = append(sent, paperEntryIndexes(m))
		}
	}
	assert.Equal(t, [][]uint64{{3}, {4}}, sent, "the window of two is full after two appends")
	pr := n.r().trk.progress[2]
	assert.True(t, pr.isPaused())
	assert.Equal(t, 2, pr.InflightCount())

	// Acknowledging the first append frees one slot: the two waiting
	// entries go out together, and the window is full again.
	n.mustStep(Message{From: 2, Type: MsgAppResp, Term: 2, Index: 3})
	var resumed [][]uint64
	for _, m := range paperSelect(n.drain(), MsgApp, 2) {
		resumed = append(resumed, paperEntryIndexes(m))
	}
	assert.Equal(t, [][]uint64{{5, 6}}, resumed)
	assert.True(t, pr.isPaused())

	// An acknowledgement of everything empties the window.
	n.mustStep(Message{From: 2, Type: MsgAppResp, Term: 2, Index: 6})
	n.drain()
	assert.Equal(t, 0, pr.InflightCount())
	assert.False(t, pr.isPaused())
}

// MaxInflightBytes: the window is also bounded by the bytes of the entries
// in flight.
func TestPaperMaxInflightBytes(t *testing.T) {
	// Each entry counts 100 bytes: the window of 250 holds three appends.
	data := string(make([]byte, 100-entryOverhead))
	n := paperReplicating(t, func(c *Config) {
		c.MaxSizePerMsg = 100
		c.MaxInflightBytes = 250
	})
	var sent [][]uint64
	for range 5 {
		for _, m := range paperSelect(n.propose(data), MsgApp, 2) {
			sent = append(sent, paperEntryIndexes(m))
		}
	}
	assert.Equal(t, [][]uint64{{3}, {4}, {5}}, sent, "300 bytes in flight reach the limit of 250")
	pr := n.r().trk.progress[2]
	assert.True(t, pr.isPaused())

	// Freeing 100 bytes lets exactly one more 100-byte append go.
	n.mustStep(Message{From: 2, Type: MsgAppResp, Term: 2, Index: 3})
	var resumed [][]uint64
	for _, m := range paperSelect(n.drain(), MsgApp, 2) {
		resumed = append(resumed, paperEntryIndexes(m))
	}
	assert.Equal(t, [][]uint64{{6}}, resumed)
	assert.True(t, pr.isPaused())
	n.mustStep(Message{From: 2, Type: MsgAppResp, Term: 2, Index: 5})
	resumed = nil
	for _, m := range paperSelect(n.drain(), MsgApp, 2) {
		resumed = append(resumed, paperEntryIndexes(m))
	}
	assert.Equal(t, [][]uint64{{7}}, resumed)
}

// Probe state: while the leader does not know where a peer's log matches,
// it sends one append and waits for the answer; a heartbeat response lets
// it try again (the append may have been lost).
func TestPaperProbeSendsOneAppendUntilAnswered(t *testing.T) {
	n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{})
	first := n.campaignAndWin()
	require.Len(t, paperSelect(first, MsgApp, 3), 1)
	pr := n.r().trk.progress[3]
	require.Equal(t, ProgressStateProbe, pr.State)
	assert.True(t, pr.isPaused(), "one append is out")

	for i := range 3 {
		assert.Empty(t, paperSelect(n.propose(fmt.Sprintf("p%d", i)), MsgApp, 3), "proposal %d: still waiting", i)
	}

	// A heartbeat response shows the peer is alive: probe again, once.
	n.mustStep(Message{From: 3, Type: MsgHeartbeatResp, Term: 2})
	apps := paperSelect(n.drain(), MsgApp, 3)
	require.Len(t, apps, 1)
	assert.Equal(t, uint64(1), apps[0].Index)
	assert.Equal(t, []uint64{2, 3, 4, 5}, paperEntryIndexes(apps[0]))
	assert.True(t, pr.isPaused())
	assert.Empty(t, paperSelect(n.propose("p3"), MsgApp, 3), "paused again")

	// The answer moves the peer to replicate state; the rest follows.
	n.mustStep(Message{From: 3, Type: MsgAppResp, Term: 2, Index: 5})
	apps = paperSelect(n.drain(), MsgApp, 3)
	assert.Equal(t, ProgressStateReplicate, pr.State)
	require.NotEmpty(t, apps)
	assert.Equal(t, []uint64{6}, paperEntryIndexes(apps[len(apps)-1]))
}

// Proposals: a follower forwards them to its leader unless forwarding is
// disabled; without a leader they are dropped with ErrProposalDropped.
func TestPaperProposalForwarding(t *testing.T) {
	tests := []struct {
		name      string
		noLeader  bool
		disable   bool
		proposer  uint64
		wantErr   error
		wantApply bool
	}{
		{name: "leader appends", proposer: 1, wantApply: true},
		{name: "follower forwards to the leader", proposer: 2, wantApply: true},
		{name: "forwarding disabled", proposer: 2, disable: true, wantErr: ErrProposalDropped},
		{name: "no leader", proposer: 2, noLeader: true, wantErr: ErrProposalDropped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nw := newCluster(t, 3, func(c *Config) { c.DisableProposalForwarding = tt.disable })
			if !tt.noLeader {
				nw.electLeader(1)
			}
			err := nw.node(tt.proposer).Propose([]byte("x"))
			nw.handleReady(tt.proposer)
			if tt.proposer != 1 {
				forwarded := paperSelect(nw.queue, MsgProp, 1)
				assert.Equal(t, tt.wantErr == nil, len(forwarded) == 1, "forwarded: %v", forwarded)
			}
			nw.stabilize()
			nw.tickAll()
			assert.ErrorIs(t, err, tt.wantErr)
			for _, id := range nw.ids {
				if tt.wantApply {
					assert.Equal(t, []string{"x"}, nw.appliedData(id), "node %d", id)
				} else {
					assert.Empty(t, nw.appliedData(id), "node %d", id)
				}
			}
		})
	}

	t.Run("candidate drops", func(t *testing.T) {
		n := paperInState(t, StateCandidate, 3)
		assert.ErrorIs(t, n.rn.Propose([]byte("x")), ErrProposalDropped)
		assert.Empty(t, n.drain())
	})
	t.Run("pre-candidate drops", func(t *testing.T) {
		n := paperInState(t, StatePreCandidate, 3)
		assert.ErrorIs(t, n.rn.Propose([]byte("x")), ErrProposalDropped)
		assert.Empty(t, n.drain())
	})
}

// MaxUncommittedEntriesSize: a leader refuses proposals once the payload of
// its uncommitted tail would exceed the limit, except that an empty tail
// always accepts one proposal (so an oversized one is not refused forever).
func TestPaperMaxUncommittedEntriesSize(t *testing.T) {
	const limit = 30
	tests := []struct {
		name  string
		sizes []int
		want  []bool
	}{
		{name: "fills up to the limit", sizes: []int{10, 10, 10, 10}, want: []bool{true, true, true, false}},
		{name: "one beyond the limit", sizes: []int{20, 11}, want: []bool{true, false}},
		{name: "empty tail accepts an oversized proposal", sizes: []int{100, 1}, want: []bool{true, false}},
		{name: "empty proposals always fit", sizes: []int{30, 0, 0}, want: []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{}, func(c *Config) { c.MaxUncommittedEntriesSize = limit })
			n.campaignAndWin()
			last := n.r().raftLog.lastIndex()
			for i, size := range tt.sizes {
				err := n.rn.Propose(make([]byte, size))
				n.drain()
				if tt.want[i] {
					assert.NoError(t, err, "proposal %d (%d bytes)", i, size)
					last++
				} else {
					assert.ErrorIs(t, err, ErrProposalDropped, "proposal %d (%d bytes)", i, size)
				}
				assert.Equal(t, last, n.r().raftLog.lastIndex(), "a dropped proposal is not appended")
			}
		})
	}

	t.Run("committing frees the tail", func(t *testing.T) {
		n := paperNewNode(t, 1, []uint64{1, 2, 3}, paperLog{}, func(c *Config) { c.MaxUncommittedEntriesSize = limit })
		n.campaignAndWin()
		require.NoError(t, n.rn.Propose(make([]byte, limit)))
		n.drain()
		require.ErrorIs(t, n.rn.Propose(make([]byte, 1)), ErrProposalDropped)
		n.mustStep(Message{From: 2, Type: MsgAppResp, Term: 2, Index: n.r().raftLog.lastIndex()})
		n.drain()
		require.Equal(t, n.r().raftLog.lastIndex(), n.r().raftLog.applied)
		assert.NoError(t, n.rn.Propose(make([]byte, limit)))
	})
}
