package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// This file holds the host the reliability scenarios run on. Unlike the
// network host of network_test.go, it carries out a Ready in explicit steps,
// so that a test can crash a node between any two of them: whatever the
// node had not yet made durable is lost, and the node restarts from its
// storage with NewRawNode.

// relStep is one step of a host's handling of a Ready, in the order a
// correct host takes them.
type relStep int

const (
	// relStepNone means no step at all: a crash right after Ready.
	relStepNone relStep = iota - 1
	// relStepSend sends Ready.Messages, which may leave before anything
	// is durable.
	relStepSend
	// relStepPersistEntries persists the snapshot and the entries.
	relStepPersistEntries
	// relStepPersistHardState persists the hard state.
	relStepPersistHardState
	// relStepSendAfterPersist sends Ready.MessagesAfterPersist.
	relStepSendAfterPersist
	// relStepApply applies the committed entries.
	relStepApply
	// relStepAdvance calls RawNode.Advance.
	relStepAdvance
)

// relCrashPoints lists every point at which a node can crash in the middle
// of a Ready (after the step named, before the next one).
var relCrashPoints = []relStep{relStepNone, relStepSend, relStepPersistEntries,
	relStepPersistHardState, relStepSendAfterPersist, relStepApply}

func (s relStep) String() string {
	switch s {
	case relStepNone:
		return "nothing"
	case relStepSend:
		return "send"
	case relStepPersistEntries:
		return "persist-entries"
	case relStepPersistHardState:
		return "persist-hardstate"
	case relStepSendAfterPersist:
		return "send-after-persist"
	case relStepApply:
		return "apply"
	case relStepAdvance:
		return "advance"
	}
	return fmt.Sprintf("relStep(%d)", int(s))
}

// relNode is one node of a relCluster: its durable storage, the RawNode of
// its current incarnation and its application state, which survives crashes
// (as if the application persisted its applied index with its state).
type relNode struct {
	id      uint64
	cfg     Config
	storage *MemoryStorage
	rn      *RawNode

	// rd is the Ready being handled (nil if none) and next its next step.
	rd   *Ready
	next relStep

	applied     []Entry
	lastApplied uint64

	// maxPromisedTerm is the highest term the node staked a durable
	// promise on: a vote request, a vote, an append acknowledgement, or a
	// leader's append or heartbeat.
	maxPromisedTerm uint64

	// Per incarnation: the (index, term) of every entry handed out in
	// Ready.Entries, and the last index handed out for applying.
	handedOut    map[[2]uint64]bool
	handedCommit uint64
	// seenApplied is the highest applied index the node reported.
	seenApplied uint64
}

// relStats counts what happened in a run, so that a run whose faults did not
// happen is noticed.
type relStats struct {
	readies, checkedMsgs, crashes, midReadyCrashes, drops int
}

func (s relStats) String() string {
	return fmt.Sprintf("readies=%d checked-msgs=%d crashes=%d mid-ready-crashes=%d drops=%d",
		s.readies, s.checkedMsgs, s.crashes, s.midReadyCrashes, s.drops)
}

// relCluster is a deterministic in-memory cluster whose hosts handle each
// Ready step by step. It records every violation of a safety property or of
// the Ready contract instead of failing at once, so that a test can assert
// that a broken host is caught as well as that a correct one is not.
type relCluster struct {
	t     testing.TB
	nodes map[uint64]*relNode
	ids   []uint64

	queue []Message
	cut   map[[2]uint64]bool

	// sendBeforePersist makes every host send MessagesAfterPersist with
	// Messages, before anything is durable: a broken host.
	sendBeforePersist bool
	// onReady, if set, sees every Ready before the host handles it.
	onReady func(n *relNode, rd *Ready)

	// leaders maps a term to the node seen leading it.
	leaders map[uint64]uint64
	// grants maps (voter, term) to the candidate a vote was sent to.
	grants map[[2]uint64]uint64
	// committed maps an index to the entry first applied there.
	committed map[uint64]Entry

	violations []string
	stats      relStats
}

// newRelCluster bootstraps n voters with IDs 1..n. CheckQuorum is off unless
// an option turns it on: the scenarios call Campaign explicitly, without
// ticking followers out of a leader's lease.
func newRelCluster(t testing.TB, n int, opts ...networkOption) *relCluster {
	t.Helper()
	c := &relCluster{
		t:         t,
		nodes:     map[uint64]*relNode{},
		cut:       map[[2]uint64]bool{},
		leaders:   map[uint64]uint64{},
		grants:    map[[2]uint64]uint64{},
		committed: map[uint64]Entry{},
	}
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	for _, id := range c.ids {
		storage := NewMemoryStorage()
		cfg := testConfig(id, storage)
		cfg.DisableCheckQuorum = true
		for _, o := range opts {
			o(&cfg)
		}
		rn, err := NewRawNode(cfg)
		require.NoError(t, err)
		require.NoError(t, rn.Bootstrap(c.ids))
		c.nodes[id] = &relNode{id: id, cfg: cfg, storage: storage, rn: rn, handedOut: map[[2]uint64]bool{}}
		c.handleReady(id)
	}
	return c
}

// violate records a violation.
func (c *relCluster) violate(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

// requireSafe fails the test if any violation was recorded.
func (c *relCluster) requireSafe(t testing.TB) {
	t.Helper()
	require.Empty(t, c.violations, "stats: %s", c.stats)
}

// hasViolation reports whether a recorded violation contains substr.
func (c *relCluster) hasViolation(substr string) bool {
	return slices.ContainsFunc(c.violations, func(v string) bool { return strings.Contains(v, substr) })
}

func (c *relCluster) node(id uint64) *RawNode          { return c.nodes[id].rn }
func (c *relCluster) status(id uint64) BasicStatus     { return c.nodes[id].rn.BasicStatus() }
func (c *relCluster) isLeader(id uint64) bool          { return c.status(id).RaftState == StateLeader }
func (c *relCluster) storage(id uint64) *MemoryStorage { return c.nodes[id].storage }

// runSteps takes a Ready from node id if none is being handled, and carries
// it out through step last (relStepAdvance finishes it). It reports whether
// there was a Ready.
func (c *relCluster) runSteps(id uint64, last relStep) bool {
	n := c.nodes[id]
	if n.rd == nil {
		if !n.rn.HasReady() {
			return false
		}
		rd := n.rn.Ready()
		n.rd, n.next = &rd, relStepSend
		c.checkReady(n, n.rd)
		if c.onReady != nil {
			c.onReady(n, n.rd)
		}
	}
	for ; n.rd != nil && n.next <= last; n.next++ {
		c.doStep(n, n.next)
	}
	return true
}

// handleReady handles node id's Readies completely until none is left.
func (c *relCluster) handleReady(id uint64) {
	for i := 0; c.runSteps(id, relStepAdvance); i++ {
		require.Less(c.t, i, 10000, "node %d never runs out of Readies", id)
	}
}

func (c *relCluster) doStep(n *relNode, s relStep) {
	rd := n.rd
	switch s {
	case relStepSend:
		c.sendAll(n, rd.Messages, false)
		if c.sendBeforePersist {
			c.sendAll(n, rd.MessagesAfterPersist, true)
		}
	case relStepPersistEntries:
		if !rd.Snapshot.IsEmpty() {
			require.NoError(c.t, n.storage.ApplySnapshot(rd.Snapshot))
			n.lastApplied = max(n.lastApplied, rd.Snapshot.Metadata.Index)
		}
		require.NoError(c.t, n.storage.Append(rd.Entries))
	case relStepPersistHardState:
		if !rd.HardState.IsEmpty() {
			c.checkHardStateWrite(n, rd.HardState)
			require.NoError(c.t, n.storage.SetHardState(rd.HardState))
		}
	case relStepSendAfterPersist:
		if !c.sendBeforePersist {
			c.sendAll(n, rd.MessagesAfterPersist, true)
		}
	case relStepApply:
		for _, e := range rd.CommittedEntries {
			c.apply(n, e)
		}
	case relStepAdvance:
		n.rn.Advance(*rd)
		n.rd = nil
	}
}

// checkHardStateWrite checks that the durable hard state only moves
// forward: the term never decreases, a vote never changes within a term and
// the commit index never decreases.
func (c *relCluster) checkHardStateWrite(n *relNode, hs HardState) {
	old := n.storage.HardState()
	switch {
	case hs.Term < old.Term:
		c.violate("node %d: durable term regresses from %d to %d", n.id, old.Term, hs.Term)
	case hs.Term == old.Term && old.Vote != None && hs.Vote != old.Vote:
		c.violate("node %d: durable vote in term %d changes from %d to %d", n.id, hs.Term, old.Vote, hs.Vote)
	}
	if hs.Commit < old.Commit {
		c.violate("node %d: durable commit regresses from %d to %d", n.id, old.Commit, hs.Commit)
	}
}

// relPromisesDurable reports whether a message of type t promises state
// that must be durable before it leaves.
func relPromisesDurable(t MessageType) bool {
	return t == MsgAppResp || t == MsgVote || t == MsgVoteResp
}

// checkReady checks a Ready against the contract when the host receives it.
func (c *relCluster) checkReady(n *relNode, rd *Ready) {
	c.stats.readies++
	st := n.rn.BasicStatus()
	if st.Applied < n.seenApplied {
		c.violate("node %d: applied index goes back from %d to %d", n.id, n.seenApplied, st.Applied)
	}
	n.seenApplied = st.Applied
	if rd.SoftState != nil && rd.RaftState == StateLeader {
		c.recordLeader(n.id, st.Term)
	}
	durable := n.storage.HardState()
	newLast, _ := n.storage.LastIndex()
	if !rd.Snapshot.IsEmpty() {
		newLast = rd.Snapshot.Metadata.Index
		n.handedCommit = max(n.handedCommit, newLast)
	}
	inReady := map[uint64]uint64{}
	for _, e := range rd.Entries {
		key := [2]uint64{e.Index, e.Term}
		if n.handedOut[key] {
			c.violate("node %d: Ready re-emits entry %d (term %d)", n.id, e.Index, e.Term)
		}
		n.handedOut[key] = true
		inReady[e.Index] = e.Term
		newLast = e.Index
	}
	if len(rd.Entries) > 0 && rd.Entries[0].Index <= durable.Commit {
		c.violate("node %d: Ready rewrites the log from index %d, at or below commit %d", n.id, rd.Entries[0].Index, durable.Commit)
	}
	commit := durable.Commit
	if !rd.HardState.IsEmpty() {
		commit = rd.HardState.Commit
		if commit > newLast {
			c.violate("node %d: Ready commits %d beyond last index %d", n.id, commit, newLast)
		}
	}
	hsChanged := !rd.HardState.IsEmpty() && (rd.HardState.Term != durable.Term || rd.HardState.Vote != durable.Vote)
	if want := hsChanged || len(rd.Entries) > 0 || !rd.Snapshot.IsEmpty(); rd.MustSync != want {
		c.violate("node %d: MustSync=%v, want %v (hard state %+v, durable %+v, %d entries)",
			n.id, rd.MustSync, want, rd.HardState, durable, len(rd.Entries))
	}
	for i, e := range rd.CommittedEntries {
		if want := n.handedCommit + 1 + uint64(i); e.Index != want {
			c.violate("node %d: committed entry %d handed out, want %d", n.id, e.Index, want)
		}
		if e.Index > commit || e.Index > newLast {
			c.violate("node %d: committed entry %d beyond commit %d or last index %d", n.id, e.Index, commit, newLast)
		}
		term, ok := inReady[e.Index]
		if !ok {
			var err error
			term, err = n.storage.Term(e.Index)
			ok = err == nil
		}
		if !ok || term != e.Term {
			c.violate("node %d: committed entry %d (term %d) is neither durable nor in the Ready", n.id, e.Index, e.Term)
		}
	}
	if k := len(rd.CommittedEntries); k > 0 {
		n.handedCommit = rd.CommittedEntries[k-1].Index
	}
	for _, m := range rd.Messages {
		if relPromisesDurable(m.Type) {
			c.violate("node %d: %s to %d in Messages, it must wait for persistence", n.id, m.Type, m.To)
		}
	}
	for _, m := range rd.MessagesAfterPersist {
		if !relPromisesDurable(m.Type) {
			c.violate("node %d: %s to %d needlessly in MessagesAfterPersist", n.id, m.Type, m.To)
		}
	}
}

// recordLeader records that id leads term, checking election safety.
func (c *relCluster) recordLeader(id, term uint64) {
	if prev, ok := c.leaders[term]; ok && prev != id {
		c.violate("two leaders in term %d: %d and %d", term, prev, id)
		return
	}
	c.leaders[term] = id
}

// sendAll queues msgs as node n's host sends them. Messages that promise
// durable state are checked against the storage with checkDurable.
func (c *relCluster) sendAll(n *relNode, msgs []Message, afterPersist bool) {
	for _, m := range msgs {
		if afterPersist {
			c.stats.checkedMsgs++
			if err := checkDurable(n.storage, m); err != nil {
				c.violate("node %d: Ready contract violated: %v", n.id, err)
			}
			n.maxPromisedTerm = max(n.maxPromisedTerm, m.Term)
		}
		switch m.Type {
		case MsgVoteResp:
			if !m.Reject {
				key := [2]uint64{m.From, m.Term}
				if prev, ok := c.grants[key]; ok && prev != m.To {
					c.violate("node %d voted for %d and %d in term %d", m.From, prev, m.To, m.Term)
				}
				c.grants[key] = m.To
			}
		case MsgApp, MsgHeartbeat, MsgSnap:
			c.recordLeader(m.From, m.Term)
			n.maxPromisedTerm = max(n.maxPromisedTerm, m.Term)
		}
		c.queue = append(c.queue, m)
	}
}

// apply applies e to node n's state machine, checking the order, that e is
// durable, and state-machine safety.
func (c *relCluster) apply(n *relNode, e Entry) {
	if e.Index != n.lastApplied+1 {
		c.violate("node %d applies index %d after %d", n.id, e.Index, n.lastApplied)
	}
	if term, err := n.storage.Term(e.Index); err != nil || term != e.Term {
		c.violate("node %d applies entry %d (term %d) that is not durable", n.id, e.Index, e.Term)
	}
	if prev, ok := c.committed[e.Index]; !ok {
		c.committed[e.Index] = e
	} else if prev.Term != e.Term || string(prev.Data) != string(e.Data) {
		c.violate("state machine safety: index %d applied as %q (term %d) and %q (term %d)",
			e.Index, prev.Data, prev.Term, e.Data, e.Term)
	}
	n.applied = append(n.applied, e)
	n.lastApplied = e.Index
}

// crash drops what node id had not yet made durable, including the Ready
// being handled, and restarts it from its storage.
func (c *relCluster) crash(id uint64) {
	c.t.Helper()
	n := c.nodes[id]
	c.stats.crashes++
	if n.rd != nil {
		c.stats.midReadyCrashes++
	}
	n.rd = nil
	cfg := n.cfg
	cfg.Applied = n.lastApplied
	rn, err := NewRawNode(cfg)
	require.NoError(c.t, err, "restarting node %d", id)
	n.rn = rn
	n.handedOut = map[[2]uint64]bool{}
	n.handedCommit = n.lastApplied
	st := rn.BasicStatus()
	if st.Applied != n.lastApplied {
		c.violate("node %d restarted with applied %d, want %d", id, st.Applied, n.lastApplied)
	}
	if st.HardState != n.storage.HardState() {
		c.violate("node %d restarted with hard state %+v, durable %+v", id, st.HardState, n.storage.HardState())
	}
	if st.Term < n.maxPromisedTerm {
		c.violate("node %d restarted at term %d below term %d it acted on", id, st.Term, n.maxPromisedTerm)
	}
	c.handleReady(id)
}

// crashDuringReady takes node id's next Ready (unless one is being
// handled), carries it out through step last and crashes the node.
func (c *relCluster) crashDuringReady(id uint64, last relStep) {
	c.t.Helper()
	c.runSteps(id, last)
	c.crash(id)
}

// deliver delivers the queued messages that match (every message if match
// is nil), oldest first, together with everything they cause, until none
// matching is left. Other messages stay queued.
func (c *relCluster) deliver(match func(Message) bool) {
	c.t.Helper()
	for i := 0; ; i++ {
		require.Less(c.t, i, 100000, "delivery does not settle")
		idx := slices.IndexFunc(c.queue, func(m Message) bool { return match == nil || match(m) })
		if idx < 0 {
			return
		}
		m := c.queue[idx]
		c.queue = slices.Delete(c.queue, idx, idx+1)
		c.deliverMsg(m)
	}
}

// deliverMsg steps m into its receiver, unless the link is cut, and handles
// the receiver's Readies.
func (c *relCluster) deliverMsg(m Message) {
	n, ok := c.nodes[m.To]
	if !ok || c.cut[[2]uint64{m.From, m.To}] {
		c.stats.drops++
		return
	}
	_ = n.rn.Step(m)
	c.handleReady(m.To)
}

// stabilize handles every Ready and delivers every message.
func (c *relCluster) stabilize() {
	c.t.Helper()
	for _, id := range c.ids {
		c.handleReady(id)
	}
	c.deliver(nil)
}

// take removes the queued messages that match and returns them.
func (c *relCluster) take(match func(Message) bool) []Message {
	var out []Message
	c.queue = slices.DeleteFunc(c.queue, func(m Message) bool {
		if match(m) {
			out = append(out, m)
			return true
		}
		return false
	})
	return out
}

// takeOne removes the single queued message that matches and returns it.
func (c *relCluster) takeOne(match func(Message) bool) Message {
	c.t.Helper()
	msgs := c.take(match)
	require.Len(c.t, msgs, 1, "exactly one queued message should match")
	return msgs[0]
}

// isolate cuts every link to and from id.
func (c *relCluster) isolate(id uint64) {
	for _, other := range c.ids {
		if other != id {
			c.cut[[2]uint64{id, other}] = true
			c.cut[[2]uint64{other, id}] = true
		}
	}
}

// heal restores every link.
func (c *relCluster) heal() { clear(c.cut) }

// tick ticks node id once and handles its Readies.
func (c *relCluster) tick(id uint64) {
	c.node(id).Tick()
	c.handleReady(id)
}

// propose proposes data at node id and handles its Readies.
func (c *relCluster) propose(id uint64, data string) error {
	err := c.node(id).Propose([]byte(data))
	c.handleReady(id)
	return err
}

// elect makes node id campaign, delivering the messages that match (all if
// nil), until it wins; a pre-vote or vote lost to a higher term is retried.
func (c *relCluster) elect(id uint64, match func(Message) bool) {
	c.t.Helper()
	for range 4 {
		require.NoError(c.t, c.node(id).Campaign())
		c.handleReady(id)
		c.deliver(match)
		if c.isLeader(id) {
			return
		}
	}
	c.t.Fatalf("node %d did not win an election: %+v", id, c.status(id))
}

// entry returns node id's durable entry at index i.
func (c *relCluster) entry(id, i uint64) (Entry, bool) {
	ents, err := c.storage(id).Entries(i, i+1, noLimit)
	if err != nil || len(ents) != 1 {
		return Entry{}, false
	}
	return ents[0], true
}

// appliedData returns the data of the non-empty entries node id applied.
func (c *relCluster) appliedData(id uint64) []string {
	var out []string
	for _, e := range c.nodes[id].applied {
		if len(e.Data) > 0 {
			out = append(out, string(e.Data))
		}
	}
	return out
}

// relAmong matches messages between members of ids.
func relAmong(ids ...uint64) func(Message) bool {
	return func(m Message) bool { return slices.Contains(ids, m.From) && slices.Contains(ids, m.To) }
}

// relChaos drives a cluster of size nodes from seed for steps steps: ticks,
// proposals, delivery in random order, drops, partitions, and crashes in the
// middle of a Ready at a random step. broken makes every host send before
// persisting.
func relChaos(t testing.TB, seed uint64, size, steps int, broken bool) *relCluster {
	t.Helper()
	c := newRelCluster(t, size, func(cfg *Config) { cfg.Seed = seed*1000 + cfg.ID })
	c.sendBeforePersist = broken
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for range steps {
		id := c.ids[rng.IntN(len(c.ids))]
		switch p := rng.IntN(100); {
		case p < 45:
			c.tick(id)
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
			_ = c.propose(id, fmt.Sprintf("v%d-%d", seed, c.stats.readies))
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
			c.crashDuringReady(id, relCrashPoints[rng.IntN(len(relCrashPoints))])
		}
	}
	return c
}
