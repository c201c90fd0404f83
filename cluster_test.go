package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testCluster is the deterministic in-memory cluster the package's tests run
// on: RawNodes over MemoryStorage, hosted by a loop that follows the Ready
// contract, with a network whose messages wait in a queue until a test
// delivers them, links that can be cut and a seeded random drop rate.
//
// Every host carries out a Ready in explicit steps (readyStep), so that a
// test can crash a node between any two of them; normally it runs them all
// at once. The cluster checks election safety, state-machine safety and
// the Ready contract (a message that promises durable state leaves only
// once that state is in the storage) throughout.
//
// The presets differ in how the hosts behave, as the tests need:
//
//   - newCluster: every Ready is handled as soon as there is one, every
//     delivered message with everything it causes; a restarted node
//     rebuilds its state machine from its storage (it lives in memory); a
//     violation fails the test at once.
//   - newRelCluster (strict): every Ready is also checked against the whole
//     contract, every restart against what the node promised before it;
//     the state machine survives crashes; violations are recorded, so that
//     a test can assert that a broken host is caught.
//   - newPipelinedCluster: the hosts use PipelinedAcks, and Readies and
//     messages move only when the test says (collect, sync, deliver).
//   - paperNewNetwork, paperNewNode, newRemovedNode (next to their tests):
//     nodes start from hand-written storage; a lone node is driven by hand,
//     the test stepping messages into it and draining what it sends.
//   - the scripted scenarios (scenEnv) run a manual cluster: nothing happens
//     unless a command does it.
//
// The benchmarks keep their own minimal host (benchCluster, bench_test.go):
// they measure the core, and this cluster's bookkeeping (t.Helper, the
// safety maps, a record of every applied entry) would show in their timings
// and in the allocation counts TestAllocationsOnHotPaths pins.
type testCluster struct {
	t     testing.TB
	nodes map[uint64]*testNode
	ids   []uint64

	// queue holds messages sent and not yet delivered, in send order.
	queue []Message
	// cut[{from, to}] drops every message on that link.
	cut map[[2]uint64]bool
	// dropRate drops messages at random with this probability.
	dropRate float64
	rand     *rand.Rand

	// leaders maps a term to the node seen leading it (election safety);
	// committed maps an index to the entry first applied there
	// (state-machine safety); grants maps (voter, term) to the candidate a
	// vote was sent to (strict only).
	leaders   map[uint64]uint64
	committed map[uint64]Entry
	grants    map[[2]uint64]uint64
	// reads collects the ReadStates each node handed out.
	reads map[uint64][]ReadState

	// sendBeforePersist makes every host send MessagesAfterPersist with
	// Messages, before anything is durable: a broken host, which the
	// contract check must catch.
	sendBeforePersist bool
	// onReady, if set, sees every Ready a node hands out, before its host
	// carries it out.
	onReady func(n *testNode, rd *Ready)
	// onConfChange, if set, sees the outcome of every configuration change
	// a host applies: the configuration it led to, or the refusal.
	onConfChange func(n *testNode, e Entry, cs ConfState, err error)

	clusterModes

	// report reports a violation: it fails the test at once, unless the
	// cluster records violations (clusterModes.record) or a test sets it
	// otherwise (the scripted scenarios report them with t.Errorf).
	report     func(format string, args ...any)
	violations []string
	stats      clusterStats

	// forged says that the nodes accepted forged messages (the fuzzer's
	// byzantine runs): a committed configuration change may then not
	// decode, and is refused as a host refuses it instead of reported.
	forged bool
}

// clusterModes are the host behaviours that differ between the presets.
type clusterModes struct {
	// strict checks every Ready against the whole contract (what it may
	// carry, MustSync, committed entries durable, promises in the right
	// list), the durable hard state against regressions, votes against
	// double voting and restarts against what the node promised.
	strict bool
	// record lists violations in testCluster.violations instead of
	// failing the test at once.
	record bool
	// durableApply keeps a node's state machine across a crash (as if the
	// application persisted its applied index with its state); otherwise a
	// restarted node rebuilds it from its snapshot and log.
	durableApply bool
	// manual handles Readies only when the test asks (handleReady, collect,
	// sync, processReady): delivering a message only steps it into its
	// receiver, and no snapshot status is reported on its own.
	manual bool
	// pipelined hosts use Config.PipelinedAcks: a Ready's messages leave
	// and its committed entries apply when it is collected, its writes are
	// persisted and acknowledged when the host syncs.
	pipelined bool
}

// clusterStats counts what happened in a run, so that a run whose faults
// did not happen is noticed.
type clusterStats struct {
	readies, checkedMsgs, crashes, midReadyCrashes, drops int
}

func (s clusterStats) String() string {
	return fmt.Sprintf("readies=%d checked-msgs=%d crashes=%d mid-ready-crashes=%d drops=%d",
		s.readies, s.checkedMsgs, s.crashes, s.midReadyCrashes, s.drops)
}

// testNode is one node of a testCluster: its durable storage, the RawNode of
// its current incarnation and its host's application state.
type testNode struct {
	c       *testCluster
	id      uint64
	cfg     Config
	storage *MemoryStorage
	rn      *RawNode // nil while the node is down

	// applied lists the entries applied, lastApplied is the index of the
	// last applied entry or snapshot.
	applied     []Entry
	lastApplied uint64
	// confState is the configuration as of lastApplied, and
	// refusedConfChanges the indexes of changes ApplyConfChange refused.
	confState          ConfState
	refusedConfChanges []uint64

	// rd is the Ready being handled (nil if none) and next its next step.
	rd   *Ready
	next readyStep
	// pending holds the Readies a pipelined host collected and has not
	// yet persisted.
	pending []Ready

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

// readyStep is one step of a host's handling of a Ready, in the order a
// correct host takes them.
type readyStep int

const (
	// readyStepNone means no step at all: a crash right after Ready.
	readyStepNone readyStep = iota - 1
	// readyStepSend sends Ready.Messages, which may leave before anything
	// is durable.
	readyStepSend
	// readyStepPersistEntries persists the snapshot and the entries.
	readyStepPersistEntries
	// readyStepPersistHardState persists the hard state.
	readyStepPersistHardState
	// readyStepSendAfterPersist sends Ready.MessagesAfterPersist.
	readyStepSendAfterPersist
	// readyStepApply applies the committed entries.
	readyStepApply
	// readyStepAdvance calls RawNode.Advance.
	readyStepAdvance
)

// readyCrashPoints lists every point at which a node can crash in the
// middle of a Ready (after the step named, before the next one).
var readyCrashPoints = []readyStep{readyStepNone, readyStepSend, readyStepPersistEntries,
	readyStepPersistHardState, readyStepSendAfterPersist, readyStepApply}

func (s readyStep) String() string {
	switch s {
	case readyStepNone:
		return "nothing"
	case readyStepSend:
		return "send"
	case readyStepPersistEntries:
		return "persist-entries"
	case readyStepPersistHardState:
		return "persist-hardstate"
	case readyStepSendAfterPersist:
		return "send-after-persist"
	case readyStepApply:
		return "apply"
	case readyStepAdvance:
		return "advance"
	}
	return fmt.Sprintf("readyStep(%d)", int(s))
}

// configOption adjusts every node's Config.
type configOption func(*Config)

// testConfig returns the Config tests use unless they say otherwise.
func testConfig(id uint64, storage Storage) Config {
	return Config{
		ID:              id,
		ElectionTick:    10,
		HeartbeatTick:   1,
		Storage:         storage,
		MaxSizePerMsg:   noLimit,
		MaxInflightMsgs: 256,
	}
}

// clusterSpec describes a cluster for buildCluster.
type clusterSpec struct {
	// ids are the nodes' IDs.
	ids []uint64
	// storage, if set, returns node id's durable state at start;
	// otherwise the node starts empty and is bootstrapped with ids as
	// voters.
	storage func(id uint64) *MemoryStorage
	opts    []configOption
	modes   clusterModes
}

// buildCluster starts the nodes spec describes and handles their first
// Readies (unless the cluster is manual).
func buildCluster(t testing.TB, spec clusterSpec) *testCluster {
	t.Helper()
	c := &testCluster{
		t:            t,
		nodes:        map[uint64]*testNode{},
		cut:          map[[2]uint64]bool{},
		rand:         rand.New(rand.NewPCG(1, 2)),
		leaders:      map[uint64]uint64{},
		committed:    map[uint64]Entry{},
		grants:       map[[2]uint64]uint64{},
		reads:        map[uint64][]ReadState{},
		clusterModes: spec.modes,
	}
	c.report = t.Fatalf
	if c.record {
		c.report = func(format string, args ...any) {
			c.violations = append(c.violations, fmt.Sprintf(format, args...))
		}
	}
	for _, id := range spec.ids {
		if spec.storage != nil {
			c.startNode(id, spec.storage(id), nil, spec.opts...)
		} else {
			c.startNode(id, NewMemoryStorage(), spec.ids, spec.opts...)
		}
	}
	if !c.manual {
		for _, id := range c.ids {
			c.handleReady(id)
		}
	}
	return c
}

// clusterIDs returns 1..n.
func clusterIDs(n int) []uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

// newCluster bootstraps a cluster of n voters with IDs 1..n whose hosts
// handle every Ready at once.
func newCluster(t testing.TB, n int, opts ...configOption) *testCluster {
	t.Helper()
	return buildCluster(t, clusterSpec{ids: clusterIDs(n), opts: opts})
}

// newRelCluster bootstraps n voters with IDs 1..n on strict hosts that
// record violations and keep their state machine across crashes (the
// reliability scenarios). CheckQuorum is off unless an option turns it on:
// the scenarios call Campaign explicitly, without ticking followers out of
// a leader's lease.
func newRelCluster(t testing.TB, n int, opts ...configOption) *testCluster {
	t.Helper()
	noCheckQuorum := func(cfg *Config) { cfg.DisableCheckQuorum = true }
	return buildCluster(t, clusterSpec{
		ids:   clusterIDs(n),
		opts:  append([]configOption{noCheckQuorum}, opts...),
		modes: clusterModes{strict: true, record: true, durableApply: true},
	})
}

// newPipelinedCluster bootstraps n voters with IDs 1..n whose hosts use
// PipelinedAcks and act only when the test says.
func newPipelinedCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	pipelined := func(cfg *Config) { cfg.PipelinedAcks = true }
	return buildCluster(t, clusterSpec{
		ids:   clusterIDs(n),
		opts:  []configOption{pipelined},
		modes: clusterModes{manual: true, pipelined: true},
	})
}

// startNode starts node id over storage, bootstrapped with voters unless
// voters is nil (then the node starts from what storage holds, or, if it is
// empty, waits for a snapshot). The host's state machine starts as of the
// storage's snapshot, or of Config.Applied if that is later (its recorded
// configuration is the snapshot's in either case).
func (c *testCluster) startNode(id uint64, storage *MemoryStorage, voters []uint64, opts ...configOption) *testNode {
	c.t.Helper()
	cfg := testConfig(id, storage)
	for _, o := range opts {
		o(&cfg)
	}
	rn, err := NewRawNode(cfg)
	require.NoError(c.t, err)
	if voters != nil {
		require.NoError(c.t, rn.Bootstrap(voters))
	}
	snap, err := storage.Snapshot()
	require.NoError(c.t, err)
	n := &testNode{
		c: c, id: id, rn: rn, storage: storage, cfg: cfg,
		lastApplied: max(snap.Metadata.Index, cfg.Applied), confState: snap.Metadata.ConfState,
		handedOut: map[[2]uint64]bool{}, handedCommit: max(snap.Metadata.Index, cfg.Applied),
	}
	c.nodes[id] = n
	if !slices.Contains(c.ids, id) {
		c.ids = append(c.ids, id)
		slices.Sort(c.ids)
	}
	return n
}

// addNode starts node id with empty storage, bootstrapped with voters (none
// if voters is nil: the node waits for a snapshot), and handles its Ready.
func (c *testCluster) addNode(id uint64, voters []uint64, opts ...configOption) *testNode {
	c.t.Helper()
	n := c.startNode(id, NewMemoryStorage(), voters, opts...)
	if !c.manual {
		c.handleReady(id)
	}
	return n
}

// violate reports a violation of a safety property or of the Ready
// contract.
func (c *testCluster) violate(format string, args ...any) {
	c.t.Helper()
	c.report(format, args...)
}

// requireSafe fails the test if any violation was recorded.
func (c *testCluster) requireSafe(t testing.TB) {
	t.Helper()
	require.Empty(t, c.violations, "stats: %s", c.stats)
}

// hasViolation reports whether a recorded violation contains substr.
func (c *testCluster) hasViolation(substr string) bool {
	return slices.ContainsFunc(c.violations, func(v string) bool { return strings.Contains(v, substr) })
}

// node returns node id's RawNode.
func (c *testCluster) node(id uint64) *RawNode { return c.nodes[id].rn }

// raft returns node id's state machine.
func (c *testCluster) raft(id uint64) *raft { return c.nodes[id].rn.raft }

func (c *testCluster) status(id uint64) BasicStatus     { return c.nodes[id].rn.BasicStatus() }
func (c *testCluster) isLeader(id uint64) bool          { return c.status(id).RaftState == StateLeader }
func (c *testCluster) storage(id uint64) *MemoryStorage { return c.nodes[id].storage }

// handleReady runs node id's host until the node has no Ready left: each
// Ready is persisted, its messages queued, its committed entries applied,
// and it is advanced (or, pipelined, collected and synced).
func (c *testCluster) handleReady(id uint64) {
	c.t.Helper()
	n := c.nodes[id]
	if n.rn == nil {
		return
	}
	if c.pipelined {
		for i := 0; n.rn.HasReady() || len(n.pending) > 0; i++ {
			require.Less(c.t, i, 10000, "node %d never runs out of Readies", id)
			c.collect(id)
			c.sync(id)
		}
		return
	}
	for i := 0; c.runSteps(id, readyStepAdvance); i++ {
		require.Less(c.t, i, 10000, "node %d never runs out of Readies", id)
	}
}

// runSteps takes a Ready from node id if none is being handled, and carries
// it out through step last (readyStepAdvance finishes it). It reports
// whether there was a Ready.
func (c *testCluster) runSteps(id uint64, last readyStep) bool {
	c.t.Helper()
	n := c.nodes[id]
	if n.rd == nil {
		if !n.rn.HasReady() {
			return false
		}
		rd := n.rn.Ready()
		n.rd, n.next = &rd, readyStepSend
		c.took(n, n.rd)
	}
	for ; n.rd != nil && n.next <= last; n.next++ {
		c.doStep(n, n.next)
	}
	return true
}

// processReady carries out rd, a Ready the test took from node n itself,
// through applying it; the test calls Advance.
func (c *testCluster) processReady(n *testNode, rd Ready) {
	c.t.Helper()
	n.rd = &rd
	c.took(n, n.rd)
	for s := readyStepSend; s <= readyStepApply; s++ {
		c.doStep(n, s)
	}
	n.rd = nil
}

// took notes a Ready that node n handed out: its reads, its leadership, and
// (strict) whether it keeps the contract.
func (c *testCluster) took(n *testNode, rd *Ready) {
	c.t.Helper()
	c.stats.readies++
	if c.strict {
		c.checkReady(n, rd)
	}
	if rd.SoftState != nil && rd.RaftState == StateLeader {
		c.recordLeader(n.id, n.rn.raft.Term)
	}
	c.reads[n.id] = append(c.reads[n.id], rd.ReadStates...)
	if c.onReady != nil {
		c.onReady(n, rd)
	}
}

func (c *testCluster) doStep(n *testNode, s readyStep) {
	c.t.Helper()
	rd := n.rd
	switch s {
	case readyStepSend:
		c.sendAll(n, rd.Messages, false)
		if c.sendBeforePersist {
			c.sendAll(n, rd.MessagesAfterPersist, true)
		}
	case readyStepPersistEntries:
		c.persistEntries(n, *rd)
	case readyStepPersistHardState:
		if !rd.HardState.IsEmpty() {
			if c.strict {
				c.checkHardStateWrite(n, rd.HardState)
			}
			require.NoError(c.t, n.storage.SetHardState(rd.HardState))
		}
	case readyStepSendAfterPersist:
		if !c.sendBeforePersist {
			c.sendAll(n, rd.MessagesAfterPersist, true)
		}
	case readyStepApply:
		for _, e := range rd.CommittedEntries {
			c.apply(n, e)
		}
	case readyStepAdvance:
		n.rn.Advance(*rd)
		n.rd = nil
	}
}

// persistEntries persists a Ready's snapshot and entries. A snapshot also
// replaces the host's state machine.
func (c *testCluster) persistEntries(n *testNode, rd Ready) {
	c.t.Helper()
	if !rd.Snapshot.IsEmpty() {
		require.NoError(c.t, n.storage.ApplySnapshot(rd.Snapshot))
		if md := rd.Snapshot.Metadata; md.Index >= n.lastApplied {
			n.lastApplied = md.Index
			n.confState = md.ConfState
		}
	}
	require.NoError(c.t, n.storage.Append(rd.Entries))
}

// collect takes every Ready node id has, as a pipelined host does: the
// messages that need nothing durable leave at once, the committed entries
// (durable already) are applied and acknowledged at once, the rest waits
// for sync.
func (c *testCluster) collect(id uint64) {
	c.t.Helper()
	n := c.nodes[id]
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		c.took(n, &rd)
		c.sendAll(n, rd.Messages, false)
		persisted, _ := n.storage.LastIndex()
		for _, e := range rd.CommittedEntries {
			if e.Index > persisted {
				c.violate("node %d: pipelined mode hands out entry %d, beyond the durable index %d", id, e.Index, persisted)
			}
			c.apply(n, e)
		}
		if k := len(rd.CommittedEntries); k > 0 {
			n.rn.AckApplied(rd.CommittedEntries[k-1].Index)
		}
		n.pending = append(n.pending, rd)
	}
}

// sync persists every Ready node id's pipelined host collected, with one
// "fsync", then sends their MessagesAfterPersist and acknowledges them in
// order.
func (c *testCluster) sync(id uint64) {
	c.t.Helper()
	n := c.nodes[id]
	batch := n.pending
	n.pending = nil
	for _, rd := range batch {
		c.persistEntries(n, rd)
		if !rd.HardState.IsEmpty() {
			require.NoError(c.t, n.storage.SetHardState(rd.HardState))
		}
	}
	for _, rd := range batch {
		c.sendAll(n, rd.MessagesAfterPersist, true)
		n.rn.AckPersisted(rd)
		if !rd.Snapshot.IsEmpty() {
			n.rn.AckApplied(rd.Snapshot.Metadata.Index)
		}
	}
}

// checkHardStateWrite checks that the durable hard state only moves
// forward: the term never decreases, a vote never changes within a term and
// the commit index never decreases.
func (c *testCluster) checkHardStateWrite(n *testNode, hs HardState) {
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

// promisesDurable reports whether a message of type t promises state that
// must be durable before it leaves.
func promisesDurable(t MessageType) bool {
	return t == MsgAppResp || t == MsgVote || t == MsgVoteResp
}

// checkReady checks a Ready against the contract when the host receives it.
func (c *testCluster) checkReady(n *testNode, rd *Ready) {
	st := n.rn.BasicStatus()
	if st.Applied < n.seenApplied {
		c.violate("node %d: applied index goes back from %d to %d", n.id, n.seenApplied, st.Applied)
	}
	n.seenApplied = st.Applied
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
		if promisesDurable(m.Type) {
			c.violate("node %d: %s to %d in Messages, it must wait for persistence", n.id, m.Type, m.To)
		}
	}
	for _, m := range rd.MessagesAfterPersist {
		if !promisesDurable(m.Type) {
			c.violate("node %d: %s to %d needlessly in MessagesAfterPersist", n.id, m.Type, m.To)
		}
	}
}

// recordLeader records that id leads term, checking election safety.
func (c *testCluster) recordLeader(id, term uint64) {
	c.t.Helper()
	if prev, ok := c.leaders[term]; ok && prev != id {
		c.violate("election safety violated: two leaders in term %d: %d and %d", term, prev, id)
		return
	}
	c.leaders[term] = id
}

// sendAll queues msgs as node n's host sends them. Messages that promise
// durable state (afterPersist) are checked against the storage with
// checkDurable.
func (c *testCluster) sendAll(n *testNode, msgs []Message, afterPersist bool) {
	c.t.Helper()
	for _, m := range msgs {
		if afterPersist {
			c.stats.checkedMsgs++
			if err := checkDurable(n.storage, m); err != nil {
				c.violate("Ready contract violated by node %d: %v", n.id, err)
			}
			n.maxPromisedTerm = max(n.maxPromisedTerm, m.Term)
		}
		if c.strict {
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
		}
		c.queue = append(c.queue, m)
	}
}

// checkDurable reports an error if m, about to be sent, promises state that
// s does not hold. A vote request or grant for term T promises that the
// sender votes for no one else in T: that holds if the durable term is T
// with that vote, or any later term (the node never returns to T). An
// append acknowledgement for index i promises that the log is durable up to
// i.
func checkDurable(s *MemoryStorage, m Message) error {
	hs := s.HardState()
	voteDurable := func(term, votedFor uint64) bool {
		return hs.Term > term || (hs.Term == term && hs.Vote == votedFor)
	}
	switch {
	case m.Type == MsgVote:
		if !voteDurable(m.Term, m.From) {
			return fmt.Errorf("%s for term %d sent while durable term=%d vote=%d", m.Type, m.Term, hs.Term, hs.Vote)
		}
	case m.Type == MsgVoteResp && !m.Reject:
		if !voteDurable(m.Term, m.To) {
			return fmt.Errorf("vote for %d in term %d sent while durable term=%d vote=%d", m.To, m.Term, hs.Term, hs.Vote)
		}
	case m.Type == MsgAppResp && !m.Reject:
		if last, _ := s.LastIndex(); last < m.Index {
			return fmt.Errorf("append ack of index %d sent while durable last index is %d", m.Index, last)
		}
	}
	return nil
}

// apply applies a committed entry to node n's state machine, checking the
// order, that the entry is durable (strict) and state-machine safety. A
// configuration change goes through ApplyConfChange; apply returns its
// error, a refusal.
func (c *testCluster) apply(n *testNode, e Entry) error {
	c.t.Helper()
	if e.Index != n.lastApplied+1 {
		c.violate("node %d applies index %d after %d", n.id, e.Index, n.lastApplied)
	}
	if c.strict {
		if term, err := n.storage.Term(e.Index); err != nil || term != e.Term {
			c.violate("node %d applies entry %d (term %d) that is not durable", n.id, e.Index, e.Term)
		}
	}
	if prev, ok := c.committed[e.Index]; !ok {
		c.committed[e.Index] = e
	} else if prev.Term != e.Term || string(prev.Data) != string(e.Data) {
		c.violate("state machine safety violated at index %d: %s vs %s", e.Index, scenFormatEntry(prev), scenFormatEntry(e))
	}
	n.applied = append(n.applied, e)
	n.lastApplied = e.Index
	if e.Type != EntryConfChange {
		return nil
	}
	var cc ConfChange
	if err := cc.Unmarshal(e.Data); err != nil {
		if !c.forged {
			c.violate("node %d: committed conf change at %d does not decode: %v", n.id, e.Index, err)
			return nil
		}
		// Passed on as a change no configuration allows, which every
		// node refuses alike, so that the node counts it as handled.
		cc = ConfChange{Transition: ConfChangeTransitionJointExplicit + 1}
	}
	cs, err := n.rn.ApplyConfChange(cc)
	if err != nil {
		n.refusedConfChanges = append(n.refusedConfChanges, e.Index)
	} else {
		n.confState = cs
	}
	if c.onConfChange != nil {
		c.onConfChange(n, e, cs, err)
	}
	return err
}

// deliverOne delivers the oldest queued message. It reports false if the
// queue is empty.
func (c *testCluster) deliverOne() bool {
	if len(c.queue) == 0 {
		return false
	}
	m := c.queue[0]
	c.queue = c.queue[1:]
	c.deliverMsg(m)
	return true
}

// deliverMsg steps m into its receiver, unless the link is cut, the
// receiver is down or the message is dropped at random, and (unless the
// cluster is manual) handles the receiver's Readies. A snapshot's sender
// learns, as from a transport, whether it arrived.
func (c *testCluster) deliverMsg(m Message) {
	c.t.Helper()
	n, ok := c.nodes[m.To]
	lost := !ok || n.rn == nil || c.cut[[2]uint64{m.From, m.To}] || (c.dropRate > 0 && c.rand.Float64() < c.dropRate)
	if m.Type == MsgSnap && !c.manual {
		defer c.reportSnapshot(m.From, m.To, !lost)
	}
	if lost {
		c.stats.drops++
		return
	}
	_ = n.rn.Step(m)
	if !c.manual {
		c.handleReady(m.To)
	}
}

// reportSnapshot tells node from whether its snapshot reached to.
func (c *testCluster) reportSnapshot(from, to uint64, ok bool) {
	sender, exists := c.nodes[from]
	if !exists || sender.rn == nil {
		return
	}
	status := SnapshotFailure
	if ok {
		status = SnapshotFinish
	}
	sender.rn.ReportSnapshot(to, status)
	c.handleReady(from)
}

// deliver delivers the queued messages that match (every message if match
// is nil), oldest first, together with everything they cause, until none
// matching is left. Other messages stay queued.
func (c *testCluster) deliver(match func(Message) bool) {
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

// stabilize handles every Ready and delivers messages until none is left.
func (c *testCluster) stabilize() {
	c.t.Helper()
	for _, id := range c.ids {
		c.handleReady(id)
	}
	for i := 0; c.deliverOne(); i++ {
		if i > 100000 {
			c.t.Fatal("network did not stabilize after 100000 messages")
		}
	}
}

// take removes the queued messages that match and returns them.
func (c *testCluster) take(match func(Message) bool) []Message {
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
func (c *testCluster) takeOne(match func(Message) bool) Message {
	c.t.Helper()
	msgs := c.take(match)
	require.Len(c.t, msgs, 1, "exactly one queued message should match")
	return msgs[0]
}

// amongNodes matches messages between members of ids.
func amongNodes(ids ...uint64) func(Message) bool {
	return func(m Message) bool { return slices.Contains(ids, m.From) && slices.Contains(ids, m.To) }
}

// tick ticks node id n times, handling its Readies after each tick.
func (c *testCluster) tick(id uint64, n int) {
	for range n {
		c.node(id).Tick()
		c.handleReady(id)
	}
}

// tickAll ticks every node once and delivers everything.
func (c *testCluster) tickAll() {
	for _, id := range c.ids {
		c.tick(id, 1)
	}
	c.stabilize()
}

// campaign makes node id campaign and delivers everything.
func (c *testCluster) campaign(id uint64) {
	c.t.Helper()
	require.NoError(c.t, c.node(id).Campaign())
	c.handleReady(id)
	c.stabilize()
}

// electLeader elects node id and checks that it won.
func (c *testCluster) electLeader(id uint64) {
	c.t.Helper()
	c.campaign(id)
	require.Equal(c.t, StateLeader, c.raft(id).state, "node %d should have won the election", id)
}

// elect makes node id campaign, delivering the messages that match (all if
// nil), until it wins; a pre-vote or vote lost to a higher term is retried.
func (c *testCluster) elect(id uint64, match func(Message) bool) {
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

// propose proposes data at node id and delivers everything.
func (c *testCluster) propose(id uint64, data string) error {
	err := c.node(id).Propose([]byte(data))
	c.handleReady(id)
	c.stabilize()
	return err
}

// proposeAt proposes data at node id and handles its Readies, delivering
// nothing.
func (c *testCluster) proposeAt(id uint64, data string) error {
	err := c.node(id).Propose([]byte(data))
	c.handleReady(id)
	return err
}

// read issues a ReadIndex at id and delivers everything.
func (c *testCluster) read(id uint64, ctx string) {
	c.node(id).ReadIndex([]byte(ctx))
	c.handleReady(id)
	c.stabilize()
}

// readCtxs returns the contexts of the ReadStates node id handed out.
func (c *testCluster) readCtxs(id uint64) []string {
	var out []string
	for _, rs := range c.reads[id] {
		out = append(out, string(rs.RequestCtx))
	}
	return out
}

// isolate cuts every link to and from id.
func (c *testCluster) isolate(id uint64) {
	for _, other := range c.ids {
		if other != id {
			c.cut[[2]uint64{id, other}] = true
			c.cut[[2]uint64{other, id}] = true
		}
	}
}

// partition cuts every link between different groups.
func (c *testCluster) partition(groups ...[]uint64) {
	group := map[uint64]int{}
	for g, ids := range groups {
		for _, id := range ids {
			group[id] = g
		}
	}
	for _, a := range c.ids {
		for _, b := range c.ids {
			if a != b && group[a] != group[b] {
				c.cut[[2]uint64{a, b}] = true
			}
		}
	}
}

// heal restores every link.
func (c *testCluster) heal() { clear(c.cut) }

// stop takes node id down: whatever its RawNode held and had not made
// durable is lost, including a Ready being handled; its storage keeps what
// the host persisted. Messages already queued stay in flight, as on a real
// network.
func (c *testCluster) stop(id uint64) {
	n := c.nodes[id]
	c.stats.crashes++
	if n.rd != nil || len(n.pending) > 0 {
		c.stats.midReadyCrashes++
	}
	n.rn, n.rd, n.pending = nil, nil, nil
}

// start starts node id, stopped, again from its storage, with its Config
// (as n.cfg holds it). A host whose state machine is durable restarts at
// its applied index; otherwise the state machine is rebuilt from the
// latest snapshot and the committed entries after it (which re-applies
// configuration changes too). It returns NewRawNode's error.
func (c *testCluster) start(id uint64) error {
	c.t.Helper()
	n := c.nodes[id]
	cfg := n.cfg
	if c.durableApply {
		cfg.Applied = min(n.lastApplied, n.storage.HardState().Commit)
	} else {
		snap, err := n.storage.Snapshot()
		require.NoError(c.t, err)
		n.lastApplied = snap.Metadata.Index
		n.applied = slices.DeleteFunc(n.applied, func(e Entry) bool { return e.Index > snap.Metadata.Index })
		n.confState = snap.Metadata.ConfState
	}
	rn, err := NewRawNode(cfg)
	if err != nil {
		return err
	}
	n.rn = rn
	n.handedOut = map[[2]uint64]bool{}
	n.handedCommit = n.lastApplied
	if c.strict {
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
	}
	if !c.manual {
		c.handleReady(id)
	}
	return nil
}

// crash restarts node id from what its storage holds (stop, then start).
func (c *testCluster) crash(id uint64) {
	c.t.Helper()
	c.stop(id)
	require.NoError(c.t, c.start(id), "restarting node %d", id)
}

// crashDuringReady takes node id's next Ready (unless one is being
// handled), carries it out through step last and crashes the node.
func (c *testCluster) crashDuringReady(id uint64, last readyStep) {
	c.t.Helper()
	c.runSteps(id, last)
	c.crash(id)
}

// leader returns the ID of a node that believes it leads the highest term,
// or None.
func (c *testCluster) leader() uint64 {
	var lead, term uint64
	for _, id := range c.ids {
		r := c.raft(id)
		if r.state == StateLeader && r.Term >= term {
			lead, term = id, r.Term
		}
	}
	return lead
}

// entry returns node id's durable entry at index i.
func (c *testCluster) entry(id, i uint64) (Entry, bool) {
	ents, err := c.storage(id).Entries(i, i+1, noLimit)
	if err != nil || len(ents) != 1 {
		return Entry{}, false
	}
	return ents[0], true
}

// appliedData returns the data of the normal, non-empty entries node id
// applied.
func (c *testCluster) appliedData(id uint64) []string {
	var out []string
	for _, e := range c.nodes[id].applied {
		if e.Type == EntryNormal && len(e.Data) > 0 {
			out = append(out, string(e.Data))
		}
	}
	return out
}
