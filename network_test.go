package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// testNode is one node of the in-memory test network: a RawNode, its durable
// storage and what it applied.
type testNode struct {
	id      uint64
	rn      *RawNode
	storage *MemoryStorage
	cfg     Config
	applied []Entry
	// lastApplied is the index of the last applied entry or snapshot.
	lastApplied uint64
	// confState is the configuration after the last applied change, and
	// refusedConfChanges the indexes of changes ApplyConfChange refused.
	confState          ConfState
	refusedConfChanges []uint64
}

// network is a deterministic in-memory cluster: messages are queued and
// delivered on request, and links can be cut. Every host follows the Ready
// contract, and the network asserts that it does: a message that promises
// durable state is only sent once that state is in the storage.
type network struct {
	t     testing.TB
	nodes map[uint64]*testNode
	ids   []uint64

	// queue holds messages sent and not yet delivered, in send order.
	queue []Message
	// cut[from][to] drops every message on that link.
	cut map[[2]uint64]bool
	// dropRate drops messages at random with this probability.
	dropRate float64
	rand     *rand.Rand

	// leaders records the leader seen for each term (election safety).
	leaders map[uint64]uint64
	// committed records the entry seen committed at each index
	// (state-machine safety).
	committed map[uint64]Entry

	// sendBeforePersist makes every host send MessagesAfterPersist before
	// persisting: a broken host, which the contract checker must catch.
	sendBeforePersist bool

	// onReady, if set, sees every Ready a node handles.
	onReady func(n *testNode, rd Ready)
}

// networkOption adjusts every node's Config.
type networkOption func(*Config)

// newNetwork bootstraps a cluster of n voters with IDs 1..n.
func newNetwork(t testing.TB, n int, opts ...networkOption) *network {
	t.Helper()
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	nw := &network{
		t:         t,
		nodes:     map[uint64]*testNode{},
		cut:       map[[2]uint64]bool{},
		rand:      rand.New(rand.NewPCG(1, 2)),
		leaders:   map[uint64]uint64{},
		committed: map[uint64]Entry{},
	}
	for _, id := range ids {
		nw.addNode(id, ids, opts...)
	}
	nw.ids = ids
	return nw
}

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

// addNode starts node id with empty storage, bootstrapped with voters (none
// if voters is nil: the node waits for a snapshot).
func (nw *network) addNode(id uint64, voters []uint64, opts ...networkOption) *testNode {
	nw.t.Helper()
	storage := NewMemoryStorage()
	cfg := testConfig(id, storage)
	for _, o := range opts {
		o(&cfg)
	}
	rn, err := NewRawNode(cfg)
	require.NoError(nw.t, err)
	if voters != nil {
		require.NoError(nw.t, rn.Bootstrap(voters))
	}
	n := &testNode{id: id, rn: rn, storage: storage, cfg: cfg}
	nw.nodes[id] = n
	if !slices.Contains(nw.ids, id) {
		nw.ids = append(nw.ids, id)
		slices.Sort(nw.ids)
	}
	nw.handleReady(n)
	return n
}

// node returns node id's RawNode.
func (nw *network) node(id uint64) *RawNode { return nw.nodes[id].rn }

// raft returns node id's state machine.
func (nw *network) raft(id uint64) *raft { return nw.nodes[id].rn.raft }

// handleReady runs the host loop for one node until it has no Ready:
// persist, send (into the queue), apply, advance.
func (nw *network) handleReady(n *testNode) {
	nw.t.Helper()
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		nw.processReady(n, rd)
		n.rn.Advance(rd)
	}
}

func (nw *network) processReady(n *testNode, rd Ready) {
	nw.t.Helper()
	if nw.onReady != nil {
		nw.onReady(n, rd)
	}
	if rd.SoftState != nil && rd.RaftState == StateLeader {
		term := n.rn.raft.Term
		if prev, ok := nw.leaders[term]; ok && prev != n.id {
			nw.t.Fatalf("election safety violated: nodes %d and %d both lead term %d", prev, n.id, term)
		}
		nw.leaders[term] = n.id
	}
	nw.queue = append(nw.queue, rd.Messages...)
	if nw.sendBeforePersist {
		nw.sendAfterPersist(n, rd.MessagesAfterPersist)
	}
	if !rd.Snapshot.IsEmpty() {
		require.NoError(nw.t, n.storage.ApplySnapshot(rd.Snapshot))
		n.lastApplied = rd.Snapshot.Metadata.Index
	}
	require.NoError(nw.t, n.storage.Append(rd.Entries))
	if !rd.HardState.IsEmpty() {
		require.NoError(nw.t, n.storage.SetHardState(rd.HardState))
	}
	if !nw.sendBeforePersist {
		nw.sendAfterPersist(n, rd.MessagesAfterPersist)
	}
	for _, e := range rd.CommittedEntries {
		nw.apply(n, e)
	}
}

// sendAfterPersist queues messages that promise durable state, asserting
// that the storage indeed holds what each promises.
func (nw *network) sendAfterPersist(n *testNode, msgs []Message) {
	nw.t.Helper()
	for _, m := range msgs {
		if err := checkDurable(n.storage, m); err != nil {
			nw.t.Fatalf("Ready contract violated by node %d: %v", n.id, err)
		}
		nw.queue = append(nw.queue, m)
	}
}

// checkDurable reports an error if m promises state that storage does not
// hold durably.
func checkDurable(s *MemoryStorage, m Message) error {
	hs := s.HardState()
	// A vote in term T is safe once the durable state rules out another
	// vote in T: it records that vote, or a later term.
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
		last, _ := s.LastIndex()
		if last < m.Index {
			return fmt.Errorf("append ack of index %d sent while durable last index is %d", m.Index, last)
		}
	}
	return nil
}

// apply records a committed entry, checking that every node applies the
// same entry at each index.
func (nw *network) apply(n *testNode, e Entry) {
	nw.t.Helper()
	if e.Index != n.lastApplied+1 {
		nw.t.Fatalf("node %d applied index %d after %d", n.id, e.Index, n.lastApplied)
	}
	if prev, ok := nw.committed[e.Index]; ok {
		if prev.Term != e.Term || string(prev.Data) != string(e.Data) {
			nw.t.Fatalf("state machine safety violated at index %d: %+v vs %+v", e.Index, prev, e)
		}
	} else {
		nw.committed[e.Index] = e
	}
	n.applied = append(n.applied, e)
	n.lastApplied = e.Index
	if e.Type == EntryConfChange {
		var cc ConfChange
		require.NoError(nw.t, cc.Unmarshal(e.Data))
		cs, err := n.rn.ApplyConfChange(cc)
		if err != nil {
			n.refusedConfChanges = append(n.refusedConfChanges, e.Index)
		}
		n.confState = cs
	}
}

// deliverOne delivers the oldest queued message. It reports false if the
// queue is empty.
func (nw *network) deliverOne() bool {
	if len(nw.queue) == 0 {
		return false
	}
	m := nw.queue[0]
	nw.queue = nw.queue[1:]
	n, ok := nw.nodes[m.To]
	lost := !ok || nw.cut[[2]uint64{m.From, m.To}] || (nw.dropRate > 0 && nw.rand.Float64() < nw.dropRate)
	if m.Type == MsgSnap {
		// A transport tells the sender how sending a snapshot went.
		defer nw.reportSnapshot(m.From, m.To, !lost)
	}
	if lost {
		return true
	}
	_ = n.rn.Step(m)
	nw.handleReady(n)
	return true
}

// reportSnapshot tells node from whether its snapshot reached to.
func (nw *network) reportSnapshot(from, to uint64, ok bool) {
	sender, exists := nw.nodes[from]
	if !exists {
		return
	}
	status := SnapshotFailure
	if ok {
		status = SnapshotFinish
	}
	sender.rn.ReportSnapshot(to, status)
	nw.handleReady(sender)
}

// stabilize delivers messages until none is left.
func (nw *network) stabilize() {
	nw.t.Helper()
	for _, id := range nw.ids {
		nw.handleReady(nw.nodes[id])
	}
	for i := 0; nw.deliverOne(); i++ {
		if i > 100000 {
			nw.t.Fatal("network did not stabilize after 100000 messages")
		}
	}
}

// tick ticks node id n times, handling its Ready after each tick.
func (nw *network) tick(id uint64, n int) {
	for range n {
		nw.node(id).Tick()
		nw.handleReady(nw.nodes[id])
	}
}

// tickAll ticks every node once and delivers everything.
func (nw *network) tickAll() {
	for _, id := range nw.ids {
		nw.tick(id, 1)
	}
	nw.stabilize()
}

// campaign makes node id campaign and delivers everything.
func (nw *network) campaign(id uint64) {
	nw.t.Helper()
	require.NoError(nw.t, nw.node(id).Campaign())
	nw.handleReady(nw.nodes[id])
	nw.stabilize()
}

// propose proposes data at node id and delivers everything.
func (nw *network) propose(id uint64, data string) error {
	err := nw.node(id).Propose([]byte(data))
	nw.handleReady(nw.nodes[id])
	nw.stabilize()
	return err
}

// isolate cuts every link to and from id.
func (nw *network) isolate(id uint64) {
	for _, other := range nw.ids {
		if other != id {
			nw.cut[[2]uint64{id, other}] = true
			nw.cut[[2]uint64{other, id}] = true
		}
	}
}

// partition cuts every link between different groups.
func (nw *network) partition(groups ...[]uint64) {
	group := map[uint64]int{}
	for g, ids := range groups {
		for _, id := range ids {
			group[id] = g
		}
	}
	for _, a := range nw.ids {
		for _, b := range nw.ids {
			if a != b && group[a] != group[b] {
				nw.cut[[2]uint64{a, b}] = true
			}
		}
	}
}

// heal restores every link.
func (nw *network) heal() { clear(nw.cut) }

// crash restarts node id from what its storage holds, as a host whose state
// machine lives in memory: it restores the latest snapshot and replays the
// committed entries after it (which re-applies configuration changes too).
// Nothing unpersisted survives; the simple host persists before advancing,
// so nothing is lost here unless a test removed it from the storage.
func (nw *network) crash(id uint64) {
	nw.t.Helper()
	n := nw.nodes[id]
	snap, err := n.storage.Snapshot()
	require.NoError(nw.t, err)
	rn, err := NewRawNode(n.cfg)
	require.NoError(nw.t, err)
	n.rn = rn
	n.lastApplied = snap.Metadata.Index
	kept := n.applied[:0]
	for _, e := range n.applied {
		if e.Index <= snap.Metadata.Index {
			kept = append(kept, e)
		}
	}
	n.applied = kept
	n.confState = snap.Metadata.ConfState
	// Messages already queued from the old incarnation stay in flight, as
	// on a real network.
	nw.handleReady(n)
}

// leader returns the ID of a node that believes it leads the highest term,
// or None.
func (nw *network) leader() uint64 {
	var lead, term uint64
	for _, id := range nw.ids {
		r := nw.raft(id)
		if r.state == StateLeader && r.Term >= term {
			lead, term = id, r.Term
		}
	}
	return lead
}

// electLeader elects node id and checks that it won.
func (nw *network) electLeader(id uint64) {
	nw.t.Helper()
	nw.campaign(id)
	require.Equal(nw.t, StateLeader, nw.raft(id).state, "node %d should have won the election", id)
}

// appliedData returns the data of the normal, non-empty entries node id applied.
func (nw *network) appliedData(id uint64) []string {
	var out []string
	for _, e := range nw.nodes[id].applied {
		if e.Type == EntryNormal && len(e.Data) > 0 {
			out = append(out, string(e.Data))
		}
	}
	return out
}
