package raftnode_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

// The core's fault scenarios, run through Node: it forces pipelined
// acknowledgements and keeps entries below its snapshots, which the core
// tests exercise only in part.

// nodeGatedStorage is a MemoryStorage whose Save blocks, while armed, on a
// write that hold selects, until release; entered receives each such write
// as it blocks.
type nodeGatedStorage struct {
	*raft.MemoryStorage
	hold    func(hs raft.HardState, ents []raft.Entry) bool
	armed   atomic.Bool
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func newNodeGatedStorage(ms *raft.MemoryStorage, hold func(raft.HardState, []raft.Entry) bool) *nodeGatedStorage {
	s := &nodeGatedStorage{MemoryStorage: ms, hold: hold, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	s.armed.Store(true)
	return s
}

func (s *nodeGatedStorage) Save(hs raft.HardState, ents []raft.Entry, snap raft.Snapshot) error {
	if s.armed.Load() && s.hold(hs, ents) {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-s.gate
	}
	return s.MemoryStorage.Save(hs, ents, snap)
}

// release lets every held and later write through.
func (s *nodeGatedStorage) release() {
	s.armed.Store(false)
	s.once.Do(func() { close(s.gate) })
}

// cloneMemoryStorage returns a copy of ms as it is now.
func cloneMemoryStorage(tb testing.TB, ms *raft.MemoryStorage) *raft.MemoryStorage {
	tb.Helper()
	snap, err := ms.Snapshot()
	require.NoError(tb, err)
	first, err := ms.FirstIndex()
	require.NoError(tb, err)
	last, err := ms.LastIndex()
	require.NoError(tb, err)
	ents, err := ms.Entries(first, last+1, math.MaxUint64)
	require.NoError(tb, err)
	cp := raft.NewMemoryStorage()
	if !snap.IsEmpty() {
		require.NoError(tb, cp.ApplySnapshot(snap))
	}
	require.NoError(tb, cp.Append(ents))
	require.NoError(tb, cp.SetHardState(ms.HardState()))
	return cp
}

// waitData waits until node id's state machine holds data.
func (c *nodeCluster) waitData(id uint64, data string) {
	c.tb.Helper()
	nodeWaitFor(c.tb, fmt.Sprintf("node %d to apply %q", id, data), func() bool {
		return slices.Contains(c.members[id].sm.snapshot(), data)
	})
}

func otherThan(ids []uint64, not ...uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if !slices.Contains(not, id) {
			out = append(out, id)
		}
	}
	return out
}

// Scenario 1: every append to a follower is lost until its inflight window
// is full; once the network heals, heartbeats alone must reopen the window
// (no new proposal comes to push it).
func TestNodeFollowerCatchesUpAfterEveryAppendToItWasLost(t *testing.T) {
	nodeFollowerCatchesUpAfterLostAppends(t)
}

func nodeFollowerCatchesUpAfterLostAppends(t testing.TB) {
	wrappers := map[uint64]*nodeDropTransport{}
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) {
		cfg.Raft.MaxInflightMsgs = 4
	}), withDropTransports(wrappers))
	lead := c.waitLeader()
	c.propose("first")
	f := otherThan(c.ids, lead)[0]
	c.waitData(f, "first")

	dropAppsToF := func(m raft.Message) bool { return m.Type == raft.MsgApp && m.To == f }
	for _, w := range wrappers {
		w.drop.Store(&dropAppsToF)
	}
	const n = 20 // more appends than the window holds
	for i := range n {
		c.proposeAmong(otherThan(c.ids, f), fmt.Sprintf("lost-%d", i))
	}
	last := fmt.Sprintf("lost-%d", n-1)
	require.NotContains(t, c.members[f].sm.snapshot(), last, "appends to the follower were dropped")
	for _, w := range wrappers {
		w.drop.Store(nil)
	}
	c.waitData(f, last)
}

// Scenario 2: a node restarts from a storage whose snapshot covers
// configuration changes that its log still holds below the snapshot (Node
// keeps CompactKeep entries there). It must come back with the membership
// committed at the snapshot, not one made by applying them again.
func TestNodeRestartKeepsMembershipOfSnapshotWithConfChangesBelowIt(t *testing.T) {
	nodeRestartKeepsMembershipOfSnapshot(t)
}

func nodeRestartKeepsMembershipOfSnapshot(t testing.TB) {
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) {
		cfg.SnapshotEvery = 5
		// CompactKeep defaults to at most SnapshotEvery: keep the conf
		// changes in the log below the snapshot explicitly.
		cfg.CompactKeep = raftnode.DefaultCompactKeep
	}))
	c.propose("first") // the leader has committed an entry of its term
	ctx := nodeCtx(t)
	explicit := raft.ConfChangeTransitionJointExplicit
	// Node 4 never runs: the joint quorums hold without it.
	c.changeConf(ctx, raft.ConfChange{Transition: explicit,
		Changes: []raft.ConfChangeSingle{{Type: raft.ConfChangeAddNode, NodeID: 4}}},
		func(cs raft.ConfState) bool { return slices.Contains(cs.Voters, 4) })
	c.changeConf(ctx, raft.ConfChange{}, // leave the joint configuration
		func(cs raft.ConfState) bool { return slices.Contains(cs.Voters, 4) && len(cs.VotersOutgoing) == 0 })
	want := c.changeConf(ctx, raft.ConfChange{Transition: explicit,
		Changes: []raft.ConfChangeSingle{{Type: raft.ConfChangeRemoveNode, NodeID: 3}}},
		func(cs raft.ConfState) bool { return !slices.Contains(cs.Voters, 3) })
	require.Equal(t, []uint64{1, 2, 4}, want.Voters)
	require.Equal(t, []uint64{1, 2, 3, 4}, want.VotersOutgoing)
	var lastIdx uint64
	for i := range 10 {
		lastIdx = c.propose(fmt.Sprintf("after-%d", i))
	}

	r := otherThan(c.ids, c.waitLeader(), 3)[0]
	storage := c.members[r].storage.(*raft.MemoryStorage)
	c.waitData(r, "after-9")
	nodeWaitFor(t, "a snapshot above the conf changes, with the log below it kept", func() bool {
		snap, err := storage.Snapshot()
		require.NoError(t, err)
		first, err := storage.FirstIndex()
		require.NoError(t, err)
		// The conf changes lie below the ten entries proposed after them.
		// (Not the newest snapshot: one is skipped while the snapshotter
		// is busy, and an idle cluster gives it no next batch.)
		return snap.Metadata.Index+10 > lastIdx && first <= 2
	})
	c.stop(r)
	m := c.start(r, storage, nil)
	st, err := m.node.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, want, st.Config, "the membership after a restart")
	c.propose("after-restart")
	c.waitData(r, "after-restart")
}

// changeConf proposes cc on whichever node leads until done reports that
// the leader's membership includes it, and returns that membership. A
// proposal whose outcome is unknown (the leader lost office) is proposed
// again only if the new leader has not applied it.
func (c *nodeCluster) changeConf(ctx context.Context, cc raft.ConfChange, done func(raft.ConfState) bool) raft.ConfState {
	c.tb.Helper()
	for {
		lead := c.waitLeader()
		st, err := c.members[lead].node.Status(ctx)
		require.NoError(c.tb, err)
		if st.RaftState == raft.StateLeader && done(st.Config) {
			return st.Config
		}
		_, err = c.members[lead].node.ProposeConfChangeForTesting(ctx, cc)
		require.NoError(c.tb, ctx.Err(), "changing the membership: last error %v", err)
		if err != nil {
			time.Sleep(time.Millisecond) // a Node test: let the new leader settle
		}
	}
}

// startSingleVoter replaces the node of a one-node cluster with one on
// storage.
func startSingleVoter(t testing.TB, storage raft.LogStorage) (*nodeCluster, *nodeMember) {
	c := newNodeCluster(t, 1)
	c.waitLeader()
	c.stop(1)
	return c, c.start(1, storage, nil)
}

// Scenario 3: a leadership transfer target whose log holds committed
// configuration changes it has not applied must not campaign: the votes
// would be counted in a configuration that is about to change. Its apply
// goroutine is held on an entry before a change; once it catches up, the
// transfer goes through.
func TestNodeTransferTargetWithUnappliedConfChangeDoesNotTakeOffice(t *testing.T) {
	nodeTransferTargetWaitsForConfChanges(t)
}

func nodeTransferTargetWaitsForConfChanges(t testing.TB) {
	hold := make(chan struct{})
	var released sync.Once
	release := func() { released.Do(func() { close(hold) }) }
	defer release()
	var target atomic.Uint64
	c := newNodeCluster(t, 3, withPrepare(func(id uint64, m *nodeMember) {
		m.sm.beforeApply = func(ents []raft.Entry) {
			if target.Load() == id && slices.ContainsFunc(ents, func(e raft.Entry) bool { return string(e.Data) == "hold" }) {
				<-hold
			}
		}
	}))
	lead := c.waitLeader()
	tgt := otherThan(c.ids, lead)[0]
	target.Store(tgt)
	ctx := nodeCtx(t)
	ln, tn := c.members[lead].node, c.members[tgt].node
	_, err := ln.Propose(ctx, []byte("hold"))
	require.NoError(t, err)
	_, err = ln.AddLearner(ctx, 4, "") // node 4 never runs
	require.NoError(t, err)
	ccIndex := ln.AppliedIndex()
	nodeWaitFor(t, "the target to learn the change is committed", func() bool {
		st, err := tn.Status(ctx)
		require.NoError(t, err)
		return st.Commit >= ccIndex
	})
	st, err := tn.Status(ctx)
	require.NoError(t, err)
	require.Less(t, st.Applied, ccIndex, "the target's apply is held before the change")
	termBefore := st.Term

	tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond) // five election timeouts
	err = ln.TransferLeadership(tctx, tgt)
	cancel()
	require.Error(t, err, "the transfer completed while the target had not applied a committed conf change")
	st, err = tn.Status(ctx)
	require.NoError(t, err)
	require.NotEqual(t, raft.StateLeader, st.RaftState)
	require.Equal(t, termBefore, st.Term, "the target campaigned with a conf change unapplied")

	release()
	nodeWaitFor(t, "the target to apply the change", func() bool { return tn.AppliedIndex() >= ccIndex })
	require.NoError(t, ln.TransferLeadership(ctx, tgt))
	require.Equal(t, tgt, c.waitLeader())
}

// Scenario 4: a single voter restarts with committed entries beyond its
// durable commit index (the commit index is written after the entries, so
// a crash between the two writes loses it while clients already saw the
// writes applied). Once it leads again, a read must wait until the entry
// of its new term commits, which commits them too.
func TestNodeSingleVoterReadAfterRestartSeesEntriesBeyondItsDurableCommit(t *testing.T) {
	nodeSingleVoterReadWaitsForCommitInItsTerm(t)
}

func nodeSingleVoterReadWaitsForCommitInItsTerm(t testing.TB) {
	ms := raft.NewMemoryStorage()
	require.NoError(t, ms.ApplySnapshot(raft.Snapshot{Metadata: raft.SnapshotMetadata{
		Index: 1, Term: 1, ConfState: raft.ConfState{Voters: []uint64{1}}}}))
	var ents []raft.Entry
	for i := uint64(2); i <= 6; i++ {
		ents = append(ents, raft.Entry{Index: i, Term: 1, Data: []byte(fmt.Sprintf("w%d", i))})
	}
	require.NoError(t, ms.Append(ents))
	require.NoError(t, ms.SetHardState(raft.HardState{Term: 1, Vote: 1, Commit: 3}))
	// Hold the write of the new term's first entry: until it is durable,
	// nothing of the new term commits.
	gs := newNodeGatedStorage(ms, func(_ raft.HardState, ents []raft.Entry) bool {
		return slices.ContainsFunc(ents, func(e raft.Entry) bool { return e.Term >= 2 })
	})
	defer gs.release()
	_, m := startSingleVoter(t, gs)
	nodeWaitFor(t, "the single voter to lead", func() bool { l, _ := m.node.LeaderID(); return l == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := m.node.Read(ctx)
	cancel()
	if err == nil {
		require.Contains(t, m.sm.snapshot(), "w6", "a read served before the leader committed in its term")
	}
	gs.release()
	require.NoError(t, m.node.Read(nodeCtx(t)))
	require.Contains(t, m.sm.snapshot(), "w6")
}

// Scenario 5: with pipelined acknowledgements (forced by Node), a single
// voter must not take office before the hard state with its new term and
// vote is durable.
func TestNodeSingleVoterLeadsOnlyOnceItsTermIsDurable(t *testing.T) {
	nodeSingleVoterLeadsOnlyOnceTermIsDurable(t)
}

func nodeSingleVoterLeadsOnlyOnceTermIsDurable(t testing.TB) {
	ms := raft.NewMemoryStorage()
	require.NoError(t, ms.ApplySnapshot(raft.Snapshot{Metadata: raft.SnapshotMetadata{
		Index: 1, Term: 1, ConfState: raft.ConfState{Voters: []uint64{1}}}}))
	require.NoError(t, ms.SetHardState(raft.HardState{Term: 1, Vote: 1, Commit: 1}))
	gs := newNodeGatedStorage(ms, func(hs raft.HardState, _ []raft.Entry) bool { return hs.Term >= 2 })
	defer gs.release()
	_, m := startSingleVoter(t, gs)
	select {
	case <-gs.entered:
	case <-time.After(nodeWaitTimeout):
		t.Fatal("the single voter never wrote a new term")
	}
	// Status runs on the raft loop, after the iteration that took the
	// Ready being written: its role is settled for that Ready.
	st, err := m.node.Status(nodeCtx(t))
	require.NoError(t, err)
	require.NotEqual(t, raft.StateLeader, st.RaftState, "leading at term %d before it is durable", st.Term)
	gs.release()
	nodeWaitFor(t, "the single voter to lead", func() bool { l, _ := m.node.LeaderID(); return l == 1 })
	_, err = m.node.Propose(nodeCtx(t), []byte("x"))
	require.NoError(t, err)
}

// Scenario 6: a message at term 2^62 reaches a follower. The cluster must
// still elect leaders afterwards, including after losing its leader.
func TestNodeElectsLeadersAfterAMessageAtTerm2To62(t *testing.T) {
	nodeElectsLeadersAfterLargestTerm(t)
}

func nodeElectsLeadersAfterLargestTerm(t testing.TB) {
	c := newNodeCluster(t, 3)
	lead := c.waitLeader()
	c.propose("before")
	f := otherThan(c.ids, lead)[0]
	c.members[f].node.HandleMessage(raft.Message{Type: raft.MsgHeartbeat, From: lead, To: f, Term: 1 << 62})
	// The message deposes the leader: a proposal in flight may end with an
	// unknown outcome, after which it is retried.
	c.proposeUntilApplied("after-the-message")
	lead = c.waitLeader()
	c.stop(lead)
	delete(c.members, lead)
	c.proposeUntilApplied("after-losing-the-leader")
}

// proposeUntilApplied proposes data on whichever node leads until a
// proposal of it is applied, retrying after any error while the test's
// time lasts.
func (c *nodeCluster) proposeUntilApplied(data string) {
	c.tb.Helper()
	ctx := nodeCtx(c.tb)
	ids := slices.Sorted(maps.Keys(c.members))
	for {
		lead := c.waitLeader(ids...)
		_, err := c.members[lead].node.Propose(ctx, []byte(data))
		if err == nil {
			return
		}
		require.NoError(c.tb, ctx.Err(), "proposing %q: last error %v", data, err)
	}
}

// Scenario 7: a follower restarts with a log shorter than the leader knew
// it held (its disk lost acknowledged writes). The leader must notice and
// resend what it lacks, without new proposals to prompt it.
func TestNodeFollowerWhoseLogWentBackwardsCatchesUp(t *testing.T) {
	nodeFollowerWhoseLogWentBackwardsCatchesUp(t)
}

func nodeFollowerWhoseLogWentBackwardsCatchesUp(t testing.TB) {
	c := newNodeCluster(t, 3)
	lead := c.waitLeader()
	f := otherThan(c.ids, lead)[0]
	for i := range 5 {
		c.propose(fmt.Sprintf("a%d", i))
	}
	c.waitData(f, "a4")
	old := cloneMemoryStorage(t, c.members[f].storage.(*raft.MemoryStorage))
	for i := range 5 {
		c.propose(fmt.Sprintf("b%d", i))
	}
	c.waitData(f, "b4")
	c.stop(f)
	c.start(f, old, nil)
	c.waitData(f, "b4")
}
