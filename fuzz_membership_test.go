package raft

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The membership fuzzer drives hosts that follow doc.go, each with its own
// RawNode and MemoryStorage, through the actions such a host may take
// (membership changes, transfers, reads, snapshots and compaction,
// restarts with Config.Applied, both ways of acknowledging a Ready) mixed
// with an unreliable network and forged messages, and checks after every
// step that nothing panicked and that the cluster stayed safe.

// mfHosts is the number of hosts, with IDs 1..mfHosts; mfGhost is named in
// membership changes but never runs.
const (
	mfHosts = 5
	mfGhost = mfHosts + 1
	// mfMaxOps bounds the operations one input performs.
	mfMaxOps = 600
	// mfMaxInflight bounds the Readies a pipelined host holds.
	mfMaxInflight = 8
)

// mfReady is a Ready a host took and has not finished with.
type mfReady struct {
	rd        Ready
	persisted bool
	applied   bool
}

// mfHost is one host: its node, its storage and its state machine (which
// only records how far it got and the membership there).
type mfHost struct {
	id      uint64
	cfg     Config
	storage *MemoryStorage
	rn      *RawNode
	// inflight holds the Readies taken and not yet retired, oldest first.
	// A host in Advance mode holds at most one.
	inflight []*mfReady
	// eager, for a pipelined host, applies a Ready before it is durable;
	// lazy leaves applying to explicit apply operations and to
	// stabilize, like a slow state machine.
	eager, lazy bool
	// applied is the state machine's applied index, cs the membership
	// there, handedOut the last index the node handed out for applying.
	applied, handedOut uint64
	cs                 ConfState
}

// mfReport is a snapshot send whose outcome the transport must report.
type mfReport struct {
	from, to uint64
	ok       bool
}

type mfStats struct {
	ops, delivered, injected, leaders, commits, restarts, snapshotsMade, snapshotsSent,
	confProposed, confApplied, confRefused, leaderRemoved, transfers, jointEntered int
}

func (s *mfStats) add(o mfStats) {
	s.ops += o.ops
	s.delivered += o.delivered
	s.injected += o.injected
	s.leaders += o.leaders
	s.commits += o.commits
	s.restarts += o.restarts
	s.snapshotsMade += o.snapshotsMade
	s.snapshotsSent += o.snapshotsSent
	s.confProposed += o.confProposed
	s.confApplied += o.confApplied
	s.confRefused += o.confRefused
	s.leaderRemoved += o.leaderRemoved
	s.transfers += o.transfers
	s.jointEntered += o.jointEntered
}

type mfFuzzer struct {
	t       testing.TB
	hosts   map[uint64]*mfHost
	ids     []uint64
	queue   []Message
	reports []mfReport

	// byzantine is set once a forged message carrying a leader's or a
	// voter's authority was accepted; from then on agreement between
	// nodes is no longer checked (see badFuzzer.byzantine), only that
	// nothing panics and each node's own invariants.
	byzantine bool

	// leaders maps a term to the node seen leading it.
	leaders map[uint64]uint64
	// entries maps (index, term) to the entry seen there in a durable log
	// or on the wire: Log Matching says there is only one.
	entries map[[2]uint64]string
	// committed maps an index to the entry handed out for applying there.
	committed map[uint64]string
	// refused records, per index of a configuration change, whether
	// ApplyConfChange refused it: every node must decide alike.
	refused map[uint64]bool
	stats   mfStats
	// noCycle out of 4 operations leave the Readies they cause for later.
	noCycle int
	// lastConf names the nodes of the latest membership change proposed.
	lastConf [2]uint64
	// trace lists the operations performed, for the failure message.
	trace []string
}

// tracef records an operation.
func (f *mfFuzzer) tracef(format string, args ...any) {
	f.trace = append(f.trace, fmt.Sprintf(format, args...))
}

// newMFuzzer builds the hosts from two option bytes.
func newMFuzzer(t testing.TB, o1, o2 byte) *mfFuzzer {
	t.Helper()
	f := &mfFuzzer{
		t:         t,
		hosts:     map[uint64]*mfHost{},
		leaders:   map[uint64]uint64{},
		entries:   map[[2]uint64]string{},
		committed: map[uint64]string{},
		refused:   map[uint64]bool{},
	}
	f.noCycle = 1
	if o2&64 != 0 {
		f.noCycle = 3
	}
	voters := [][]uint64{{1, 2, 3}, {1}, {1, 2}, {1, 2, 3, 4, 5}}[(o1>>5)&3]
	for id := uint64(1); id <= mfHosts; id++ {
		var pipelined bool
		switch (o1 >> 2) & 3 {
		case 1:
			pipelined = true
		case 2:
			pipelined = id%2 == 1
		case 3:
			pipelined = id%2 == 0
		}
		cfg := Config{
			ID:                        id,
			ElectionTick:              10,
			HeartbeatTick:             1,
			Storage:                   NewMemoryStorage(),
			MaxSizePerMsg:             math.MaxUint64,
			MaxInflightMsgs:           256,
			DisablePreVote:            o1&1 != 0,
			DisableCheckQuorum:        o1&2 != 0,
			PipelinedAcks:             pipelined,
			DisableStepDownOnRemoval:  o2&1 != 0,
			DisableProposalForwarding: o2&8 != 0,
			Seed:                      id * 7919,
		}
		if o1&128 != 0 && !cfg.DisableCheckQuorum {
			cfg.ReadOnlyOption = ReadOnlyLeaseBased
		}
		if o2&2 != 0 {
			cfg.MaxCommittedSizePerReady = 1 // one committed entry per Ready
		}
		if o2&4 != 0 {
			cfg.MaxSizePerMsg = 1 // one entry per append
		}
		if o2&16 != 0 {
			cfg.MaxInflightMsgs = 1
		}
		h := &mfHost{id: id, cfg: cfg, storage: cfg.Storage.(*MemoryStorage), eager: pipelined && o1&16 != 0,
			lazy: pipelined && o2&32 != 0}
		rn, err := NewRawNode(cfg)
		if err != nil {
			t.Fatalf("NewRawNode(%d): %v", id, err)
		}
		h.rn = rn
		if slices.Contains(voters, id) {
			if err := rn.Bootstrap(voters); err != nil {
				t.Fatalf("Bootstrap(%d): %v", id, err)
			}
		}
		f.hosts[id] = h
		f.ids = append(f.ids, id)
	}
	for _, id := range f.ids {
		f.cycle(f.hosts[id])
	}
	f.check()
	return f
}

func (f *mfFuzzer) fatalf(format string, args ...any) {
	f.t.Helper()
	tail := f.trace[max(0, len(f.trace)-mfTraceTail):]
	f.t.Fatalf("%s\nafter %d operations, the last ones:\n  %s", fmt.Sprintf(format, args...), len(f.trace),
		strings.Join(tail, "\n  "))
}

// mfTraceTail is how many operations a failure message lists.
var mfTraceTail = 400

// run performs the operations the input encodes, then lets the cluster
// settle, checking after every step.
func (f *mfFuzzer) run(in *badInput) {
	for ops := 0; !in.done() && ops < mfMaxOps; ops++ {
		f.step(in)
		f.stats.ops++
		f.check()
	}
	for range 20 {
		for _, id := range f.ids {
			f.hosts[id].rn.Tick()
			f.cycleApply(f.hosts[id], true)
			f.check()
		}
		f.stabilize(400, 0xff)
	}
}

// step performs one operation.
func (f *mfFuzzer) step(in *badInput) {
	h := f.hosts[f.nodeID(in)]
	switch op := in.intn(mfOps); op {
	case 0, 1, 2, 3, 4, 5, 6:
		k, cycle := in.byte(), f.cycleBit(in)
		if len(f.queue) > 0 {
			f.deliver(int(k)%len(f.queue), op == mfOpDuplicate, cycle)
		}
	case mfOpDrop:
		k := in.byte()
		if len(f.queue) > 0 {
			f.drop(int(k) % len(f.queue))
		}
	case mfOpTick:
		n, cycle := 1+in.intn(4), f.cycleBit(in)
		f.tracef("tick %d x%d", h.id, n)
		for range n {
			h.rn.Tick()
		}
		f.maybeCycle(h, cycle)
	case mfOpPropose:
		b, cycle := in.byte(), f.cycleBit(in)
		err := h.rn.Propose([]byte{'p', b})
		f.tracef("propose %d %q: %v", h.id, []byte{'p', b}, err)
		f.checkRequestErr(h, "Propose", err)
		f.maybeCycle(h, cycle)
	case mfOpConfChange:
		cc := f.confChange(h, in)
		transfer, cycle := in.intn(4) == 0, f.cycleBit(in)
		err := h.rn.ProposeConfChange(cc)
		f.tracef("propose-conf %d %v: %v", h.id, cc, err)
		f.checkRequestErr(h, "ProposeConfChange "+cc.String(), err)
		if err == nil {
			f.stats.confProposed++
			f.lastConf = [2]uint64{}
			for i, c := range cc.Changes[:min(2, len(cc.Changes))] {
				f.lastConf[i] = c.NodeID
			}
			if len(cc.Changes) == 1 {
				f.lastConf[1] = f.lastConf[0]
			}
			if transfer {
				// Hand leadership to the node the change names (which
				// it may remove or demote) before the change applies.
				err := h.rn.TransferLeader(f.lastConf[0])
				f.tracef("transfer %d -> %d: %v", h.id, f.lastConf[0], err)
				f.checkRequestErr(h, "TransferLeader", err)
			}
		}
		f.maybeCycle(h, cycle)
	case mfOpTransfer:
		to := uint64(in.intn(mfGhost + 4))
		if to > mfGhost {
			// A node the latest membership change named: one being
			// removed or demoted, say.
			to = f.lastConf[int(to)%2]
		}
		cycle := f.cycleBit(in)
		err := h.rn.TransferLeader(to)
		f.tracef("transfer %d -> %d: %v", h.id, to, err)
		f.checkRequestErr(h, fmt.Sprintf("TransferLeader(%d)", to), err)
		if err == nil {
			f.stats.transfers++
		}
		f.maybeCycle(h, cycle)
	case mfOpReadIndex:
		b, cycle := in.byte(), f.cycleBit(in)
		h.rn.ReadIndex([]byte{'r', b})
		f.tracef("read-index %d", h.id)
		f.maybeCycle(h, cycle)
	case mfOpCampaign:
		cycle := f.cycleBit(in)
		f.tracef("campaign %d", h.id)
		f.checkRequestErr(h, "Campaign", h.rn.Campaign())
		f.maybeCycle(h, cycle)
	case mfOpReport:
		k, peer := in.byte(), uint64(1+in.intn(mfGhost))
		if len(f.reports) > 0 && k&1 == 0 {
			f.report(int(k>>1) % len(f.reports))
		} else {
			f.tracef("unreachable %d -> %d", h.id, peer)
			h.rn.ReportUnreachable(peer)
		}
	case mfOpSnapshot:
		f.snapshot(h, in.intn(6))
	case mfOpRestart:
		mode := in.intn(4)
		if mode == 3 {
			switch in.intn(4) {
			case 0:
				// Rarely, the log comes back shorter than acknowledged.
				f.truncate(h, 1+in.intn(4))
			case 1, 2:
				// The crash hits in the middle of a write.
				f.halfPersist(h, in.intn(8))
			}
			mode = 0
		}
		f.restart(h, mode)
	case mfOpTake:
		f.take(h)
	case mfOpPersist:
		f.persist(h)
	case mfOpApply:
		f.apply(h)
	case mfOpCycle:
		f.cycle(h)
	case mfOpForge:
		m := in.message(h.id, h.rn.raft)
		switch in.intn(8) {
		case 0:
			m.From = mfGhost
		case 1:
			m.From = 1 << 40
		case 2:
			m.From = math.MaxUint64
		}
		cycle := f.cycleBit(in)
		f.inject(h, m)
		f.maybeCycle(h, cycle)
	default:
		f.stabilize(200, in.byte())
	}
}

// confChange builds a membership change from the input: single-step and
// joint, adding voters and learners, removing nodes (the leader too),
// demoting voters, leaving a joint configuration.
func (f *mfFuzzer) confChange(h *mfHost, in *badInput) ConfChange {
	kind := in.intn(8)
	a, b := f.target(in), f.target(in)
	tr := ConfChangeTransition(in.intn(3))
	single := func(t ConfChangeType, id uint64) ConfChange {
		return ConfChange{Changes: []ConfChangeSingle{{Type: t, NodeID: id}}}
	}
	switch kind {
	case 0:
		return single(ConfChangeAddNode, a)
	case 1:
		return single(ConfChangeAddLearnerNode, a)
	case 2:
		return single(ConfChangeRemoveNode, a)
	case 3:
		return ConfChange{} // leave the joint configuration
	case 4:
		// Remove the leader this node knows, or itself.
		lead := h.rn.raft.lead
		if lead == None {
			lead = h.id
		}
		cc := single(ConfChangeRemoveNode, lead)
		cc.Transition = tr
		return cc
	case 5:
		// Demote a voter.
		cc := single(ConfChangeAddLearnerNode, a)
		cc.Transition = tr
		return cc
	default:
		types := []ConfChangeType{ConfChangeAddNode, ConfChangeAddLearnerNode, ConfChangeRemoveNode}
		return ConfChange{Transition: tr, Changes: []ConfChangeSingle{
			{Type: types[in.intn(3)], NodeID: a},
			{Type: types[in.intn(3)], NodeID: b},
		}}
	}
}

// cycleBit reads whether a host handles its Readies right after an
// operation: mostly, unless the input's options make hosts sluggish.
func (f *mfFuzzer) cycleBit(in *badInput) bool { return in.intn(4) >= f.noCycle }

// nodeID picks a host, the leader more often than the others.
func (f *mfFuzzer) nodeID(in *badInput) uint64 {
	if v := uint64(in.intn(8)); v < mfHosts {
		return v + 1
	}
	if lead := f.leader(); lead != None {
		return lead
	}
	return 1
}

// target picks a node for a membership change: any, the ghost, or the
// leader.
func (f *mfFuzzer) target(in *badInput) uint64 {
	if v := uint64(in.intn(8)); v < mfGhost {
		return v + 1
	}
	if lead := f.leader(); lead != None {
		return lead
	}
	return 1
}

// leader returns the node leading the highest term, or None.
func (f *mfFuzzer) leader() uint64 {
	var lead, term uint64
	for _, id := range f.ids {
		if r := f.hosts[id].rn.raft; r.state == StateLeader && r.Term >= term {
			lead, term = id, r.Term
		}
	}
	return lead
}

// checkRequestErr fails on an error a host request may not return.
func (f *mfFuzzer) checkRequestErr(h *mfHost, what string, err error) {
	f.t.Helper()
	if err == nil || isRefusal(err) {
		return
	}
	f.fatalf("%s at node %d: unexpected error %v", what, h.id, err)
}

// isRefusal reports whether err is a documented refusal of a request.
func isRefusal(err error) bool {
	for _, want := range []error{ErrProposalDropped, ErrTransferInProgress, ErrPendingConfChange,
		ErrInvalidConfChange, ErrInvalidTransfer, ErrNotLeader, ErrCannotCampaign} {
		if errors.Is(err, want) {
			return true
		}
	}
	return false
}

// deliver steps the k-th queued message into its receiver; with dup, a copy
// stays queued. With cycle, the receiver's host then handles its Readies.
func (f *mfFuzzer) deliver(k int, dup, cycle bool) {
	m := f.queue[k]
	if !dup {
		f.queue = slices.Delete(f.queue, k, k+1)
	}
	h := f.hosts[m.To]
	if m.Type == MsgSnap {
		f.reports = append(f.reports, mfReport{from: m.From, to: m.To, ok: h != nil})
		f.stats.snapshotsSent++
	}
	f.tracef("deliver%s %s", map[bool]string{true: " (dup)"}[dup], msgString(m))
	if h == nil {
		return
	}
	if m.Type == MsgApp {
		for _, e := range m.Entries {
			f.noteEntry(e)
		}
	}
	err := h.rn.Step(m)
	f.stats.delivered++
	switch {
	case err == nil, isRefusal(err), errors.Is(err, ErrStepPeerNotFound):
	case f.byzantine || m.Term > maxTerm:
		// A node that adopted a forged term refuses honest messages.
	default:
		f.fatalf("node %d refused a message from a correct node: %v\n%+v", m.To, err, m)
	}
	f.maybeCycle(h, cycle)
}

// drop loses the k-th queued message; a lost snapshot is reported.
func (f *mfFuzzer) drop(k int) {
	m := f.queue[k]
	f.queue = slices.Delete(f.queue, k, k+1)
	f.tracef("drop %s", msgString(m))
	if m.Type == MsgSnap {
		f.reports = append(f.reports, mfReport{from: m.From, to: m.To})
	}
}

// report tells a sender the outcome of its k-th pending snapshot send, as
// doc.go asks of the transport (late and out of order are allowed).
func (f *mfFuzzer) report(k int) {
	rep := f.reports[k]
	f.reports = slices.Delete(f.reports, k, k+1)
	if h := f.hosts[rep.from]; h != nil {
		status := SnapshotFailure
		if rep.ok {
			status = SnapshotFinish
		}
		f.tracef("report-snapshot %d -> %d ok=%v", rep.from, rep.to, rep.ok)
		h.rn.ReportSnapshot(rep.to, status)
		f.cycle(h)
	}
}

// inject steps a forged message into h's node.
func (f *mfFuzzer) inject(h *mfHost, m Message) {
	termBefore := h.rn.raft.Term
	err := h.rn.Step(m)
	f.tracef("forge %s: %v", msgString(m), err)
	f.stats.injected++
	switch {
	case errors.Is(err, ErrInvalidMessage), errors.Is(err, ErrStepLocalMsg), errors.Is(err, ErrStepPeerNotFound):
	case err == nil || isRefusal(err):
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap, MsgAppResp, MsgVote, MsgVoteResp:
			if m.Term >= termBefore {
				f.byzantine = true
			}
		}
	default:
		f.fatalf("unexpected error from Step: %v\n%+v", err, m)
	}
}

// maybeCycle lets h's host handle everything if cycle is set.
func (f *mfFuzzer) maybeCycle(h *mfHost, cycle bool) {
	if cycle {
		f.cycle(h)
	}
}

// cycle handles h's Readies until there is nothing left: what a host's
// loop does when it has nothing else to do.
func (f *mfFuzzer) cycle(h *mfHost) { f.cycleApply(h, !h.lazy) }

// cycleApply is cycle, applying only if apply is set.
func (f *mfFuzzer) cycleApply(h *mfHost, apply bool) {
	for range 100 {
		for f.persist(h) {
		}
		for apply && f.apply(h) {
		}
		if !f.take(h) {
			return
		}
	}
	f.fatalf("node %d: Readies did not run dry", h.id)
}

// take takes a Ready, checks it, and sends its Messages (which may leave
// before the Ready is durable).
func (f *mfFuzzer) take(h *mfHost) bool {
	if len(h.inflight) >= mfMaxInflight || (!h.cfg.PipelinedAcks && len(h.inflight) > 0) || !h.rn.HasReady() {
		return false
	}
	rd := h.rn.Ready()
	if err := h.rn.Err(); err != nil {
		f.fatalf("node %d stopped: %v", h.id, err)
	}
	f.tracef("take %d: %s", h.id, readyString(rd))
	f.checkReady(h, rd)
	f.queue = append(f.queue, rd.Messages...)
	h.inflight = append(h.inflight, &mfReady{rd: rd})
	return true
}

// checkReady checks what a Ready hands out for applying: each index once,
// in order, the same entry on every node and, in pipelined mode, only
// entries already durable here.
func (f *mfFuzzer) checkReady(h *mfHost, rd Ready) {
	if !rd.Snapshot.IsEmpty() {
		if si := rd.Snapshot.Metadata.Index; si <= h.handedOut && !f.byzantine {
			f.fatalf("node %d: snapshot at %d handed out after index %d", h.id, si, h.handedOut)
		}
		h.handedOut = rd.Snapshot.Metadata.Index
	}
	for _, e := range rd.CommittedEntries {
		if e.Index != h.handedOut+1 {
			f.fatalf("node %d: committed index %d handed out after %d", h.id, e.Index, h.handedOut)
		}
		h.handedOut = e.Index
		if h.cfg.PipelinedAcks {
			if t, err := h.storage.Term(e.Index); err != nil || t != e.Term {
				f.fatalf("node %d (pipelined): committed entry %d/%d handed out before it is durable (storage: term %d, %v)",
					h.id, e.Index, e.Term, t, err)
			}
		}
		d := entryDigest(e)
		if prev, ok := f.committed[e.Index]; ok && prev != d && !f.byzantine {
			f.fatalf("state machine safety: node %d applies %s at index %d, another node %s", h.id, d, e.Index, prev)
		}
		f.committed[e.Index] = d
		f.stats.commits++
	}
}

func msgString(m Message) string {
	s := fmt.Sprintf("%v %d->%d t%d i%d lt%d c%d", m.Type, m.From, m.To, m.Term, m.Index, m.LogTerm, m.Commit)
	if m.Reject {
		s += fmt.Sprintf(" reject(hint %d)", m.RejectHint)
	}
	if len(m.Entries) > 0 {
		s += fmt.Sprintf(" ents[%d..%d]", m.Entries[0].Index, m.Entries[len(m.Entries)-1].Index)
	}
	if m.Snapshot != nil {
		s += fmt.Sprintf(" snap %d/%d %+v", m.Snapshot.Metadata.Index, m.Snapshot.Metadata.Term, m.Snapshot.Metadata.ConfState)
	}
	return s
}

func readyString(rd Ready) string {
	s := ""
	if rd.SoftState != nil {
		s += fmt.Sprintf(" soft=%+v", *rd.SoftState)
	}
	if !rd.HardState.IsEmpty() {
		s += fmt.Sprintf(" hs=%+v", rd.HardState)
	}
	if !rd.Snapshot.IsEmpty() {
		s += fmt.Sprintf(" snap=%d/%d", rd.Snapshot.Metadata.Index, rd.Snapshot.Metadata.Term)
	}
	if n := len(rd.Entries); n > 0 {
		s += fmt.Sprintf(" ents=[%d..%d]", rd.Entries[0].Index, rd.Entries[n-1].Index)
	}
	if n := len(rd.CommittedEntries); n > 0 {
		s += fmt.Sprintf(" committed=[%d..%d]", rd.CommittedEntries[0].Index, rd.CommittedEntries[n-1].Index)
	}
	s += fmt.Sprintf(" msgs=%d/%d", len(rd.Messages), len(rd.MessagesAfterPersist))
	return s
}

func entryDigest(e Entry) string { return fmt.Sprintf("t%d/%v/%x", e.Term, e.Type, e.Data) }

// noteEntry records an entry seen durable or on the wire and checks Log
// Matching: one entry per index and term.
func (f *mfFuzzer) noteEntry(e Entry) {
	k := [2]uint64{e.Index, e.Term}
	d := entryDigest(e)
	if prev, ok := f.entries[k]; ok && prev != d && !f.byzantine {
		f.fatalf("log matching: two entries at index %d term %d: %s and %s", e.Index, e.Term, prev, d)
	}
	f.entries[k] = d
}

// persist writes h's oldest Ready not yet durable, then sends its
// MessagesAfterPersist.
func (f *mfFuzzer) persist(h *mfHost) bool {
	i := slices.IndexFunc(h.inflight, func(r *mfReady) bool { return !r.persisted })
	if i < 0 {
		return false
	}
	r := h.inflight[i]
	rd := &r.rd
	f.tracef("persist %d (ready %d of %d)", h.id, i+1, len(h.inflight))
	if !rd.Snapshot.IsEmpty() {
		if err := h.storage.ApplySnapshot(rd.Snapshot); err != nil && !f.byzantine {
			f.fatalf("node %d: storing the snapshot at %d: %v", h.id, rd.Snapshot.Metadata.Index, err)
		}
	}
	if err := h.storage.Append(rd.Entries); err != nil && !f.byzantine {
		f.fatalf("node %d: appending entries: %v", h.id, err)
	}
	for _, e := range rd.Entries {
		f.noteEntry(e)
	}
	if !rd.HardState.IsEmpty() {
		if err := h.storage.SetHardState(rd.HardState); err != nil {
			f.fatalf("node %d: %v", h.id, err)
		}
	}
	f.queue = append(f.queue, rd.MessagesAfterPersist...)
	r.persisted = true
	if h.cfg.PipelinedAcks {
		h.rn.AckPersisted(*rd)
	}
	f.retire(h)
	return true
}

// apply applies h's oldest Ready not yet applied, if it may: once durable,
// or at once for an eager pipelined host. Configuration changes are applied
// as doc.go says: every EntryConfChange in order, decoded with Unmarshal.
func (f *mfFuzzer) apply(h *mfHost) bool {
	i := slices.IndexFunc(h.inflight, func(r *mfReady) bool { return !r.applied })
	if i < 0 || (!h.inflight[i].persisted && !h.eager) {
		return false
	}
	r := h.inflight[i]
	rd := &r.rd
	f.tracef("apply %d (ready %d of %d)", h.id, i+1, len(h.inflight))
	if !rd.Snapshot.IsEmpty() {
		h.applied = rd.Snapshot.Metadata.Index
		h.cs = rd.Snapshot.Metadata.ConfState
	}
	for _, e := range rd.CommittedEntries {
		if e.Index != h.applied+1 {
			f.fatalf("node %d: applying index %d after %d", h.id, e.Index, h.applied)
		}
		h.applied = e.Index
		if e.Type != EntryConfChange {
			continue
		}
		var cc ConfChange
		if cc.Unmarshal(e.Data) != nil {
			continue
		}
		wasLeader := h.rn.raft.state == StateLeader
		cs, err := h.rn.ApplyConfChange(cc)
		f.tracef("apply-conf %d %d %v: %+v %v", h.id, e.Index, cc, cs, err)
		switch {
		case err == nil:
			h.cs = cs
			f.stats.confApplied++
			if len(cs.VotersOutgoing) > 0 {
				f.stats.jointEntered++
			}
			if wasLeader && !slices.Contains(cs.Voters, h.id) {
				f.stats.leaderRemoved++
			}
		case errors.Is(err, ErrInvalidConfChange):
			f.stats.confRefused++
		default:
			f.fatalf("node %d: ApplyConfChange(%v): %v", h.id, cc, err)
		}
		if prev, ok := f.refused[e.Index]; ok && prev != (err != nil) && !f.byzantine {
			f.fatalf("node %d: change %v at index %d refused=%v, on another node refused=%v", h.id, cc, e.Index, err != nil, prev)
		}
		f.refused[e.Index] = err != nil
	}
	r.applied = true
	if h.cfg.PipelinedAcks && (!rd.Snapshot.IsEmpty() || len(rd.CommittedEntries) > 0) {
		h.rn.AckApplied(h.applied)
	}
	f.retire(h)
	return true
}

// retire drops the finished Readies at the head of h's queue, calling
// Advance in Advance mode.
func (f *mfFuzzer) retire(h *mfHost) {
	for len(h.inflight) > 0 && h.inflight[0].persisted && h.inflight[0].applied {
		if !h.cfg.PipelinedAcks {
			h.rn.Advance(h.inflight[0].rd)
		}
		h.inflight = h.inflight[1:]
	}
}

// snapshot makes h's host take a snapshot at its applied index, with the
// membership there, and compact its log: all of it, keeping a few entries
// below the snapshot, or not at all.
func (f *mfFuzzer) snapshot(h *mfHost, how int) {
	cur, err := h.storage.Snapshot()
	if err != nil {
		f.fatalf("node %d: %v", h.id, err)
	}
	if h.applied > cur.Metadata.Index && how < 5 {
		cs := h.cs
		_, err := h.storage.CreateSnapshot(h.applied, &cs, []byte("s"))
		switch {
		case err == nil:
			f.tracef("create-snapshot %d at %d %+v", h.id, h.applied, cs)
			f.stats.snapshotsMade++
		case errors.Is(err, ErrUnavailable) && h.eager:
			// Applied before durable: not in the log yet.
			return
		default:
			f.fatalf("node %d: CreateSnapshot(%d): %v", h.id, h.applied, err)
		}
	}
	snap, _ := h.storage.Snapshot()
	si := snap.Metadata.Index
	keep := uint64(how % 4)
	if how == 4 || si <= keep {
		return
	}
	f.tracef("compact %d to %d", h.id, si-keep)
	if err := h.storage.Compact(si - keep); err != nil && !errors.Is(err, ErrCompacted) {
		f.fatalf("node %d: Compact(%d): %v", h.id, si-keep, err)
	}
}

// halfPersist writes part of h's oldest Ready not yet durable, as a crash
// in the middle of persisting it leaves the storage: its snapshot and the
// first n of its entries, without its hard state (doc.go: entries are
// durable no later than the hard state that commits them). Nothing of it
// was acknowledged.
func (f *mfFuzzer) halfPersist(h *mfHost, n int) {
	i := slices.IndexFunc(h.inflight, func(r *mfReady) bool { return !r.persisted })
	if i < 0 {
		return
	}
	rd := &h.inflight[i].rd
	if !rd.Snapshot.IsEmpty() {
		if err := h.storage.ApplySnapshot(rd.Snapshot); err != nil && !f.byzantine {
			f.fatalf("node %d: storing the snapshot at %d: %v", h.id, rd.Snapshot.Metadata.Index, err)
		}
	}
	ents := rd.Entries[:min(n, len(rd.Entries))]
	if err := h.storage.Append(ents); err != nil && !f.byzantine {
		f.fatalf("node %d: appending entries: %v", h.id, err)
	}
	for _, e := range ents {
		f.noteEntry(e)
	}
	f.tracef("half-persist %d: snapshot %d, %d of %d entries, no hard state", h.id,
		rd.Snapshot.Metadata.Index, len(ents), len(rd.Entries))
}

// truncate cuts up to n entries off the tail of h's stored log, above its
// stored commit index: a damaged tail cut off, which doc.go says the leader
// notices and repairs. The node may have acknowledged those entries, so a
// commit can be lost and the run checks only that nothing panics.
func (f *mfFuzzer) truncate(h *mfHost, n int) {
	s := h.storage
	hs := s.HardState()
	snap, _ := s.Snapshot()
	last, _ := s.LastIndex()
	keep := max(hs.Commit, snap.Metadata.Index, last-min(last, uint64(n)))
	if keep >= last {
		return
	}
	ents, err := s.Entries(snap.Metadata.Index+1, keep+1, math.MaxUint64)
	if err != nil {
		f.fatalf("node %d: reading entries (%d, %d]: %v", h.id, snap.Metadata.Index, keep, err)
	}
	cut := NewMemoryStorage()
	if !snap.IsEmpty() {
		if err := cut.ApplySnapshot(snap); err != nil {
			f.fatalf("node %d: %v", h.id, err)
		}
	}
	if err := cut.Append(ents); err != nil {
		f.fatalf("node %d: %v", h.id, err)
	}
	if !hs.IsEmpty() {
		if err := cut.SetHardState(hs); err != nil {
			f.fatalf("node %d: %v", h.id, err)
		}
	}
	f.tracef("truncate %d: log (%d, %d] cut to (%d, %d]", h.id, snap.Metadata.Index, last, snap.Metadata.Index, keep)
	h.storage, h.cfg.Storage = cut, cut
	f.byzantine = true
}

// restart crashes h's node and starts it again from its storage: what was
// not persisted is lost, messages already sent stay in flight. The state
// machine is restored from the snapshot (Applied set to its index, or left
// 0 to replay from it), or survived the crash (Applied set to its index).
func (f *mfFuzzer) restart(h *mfHost, mode int) {
	snap, err := h.storage.Snapshot()
	if err != nil {
		f.fatalf("node %d: %v", h.id, err)
	}
	si := snap.Metadata.Index
	// The state machine after the restart: restored from the snapshot
	// unless it survived and is not behind the snapshot.
	smApplied, smCS, applied := si, snap.Metadata.ConfState, si
	switch {
	case mode == 1 && h.applied >= si:
		smApplied, smCS, applied = h.applied, h.cs, h.applied
	case mode == 2:
		// Replay everything after the snapshot (entries kept below it
		// count as applied: TestFindingAppliedZeroBelowSnapshot).
		applied = 0
	}
	cfg := h.cfg
	cfg.Applied = applied
	f.tracef("restart %d Applied=%d storage %s", h.id, applied, storageSummary(h.storage))
	rn, err := NewRawNode(cfg)
	if err != nil {
		if f.byzantine {
			// A forged past can leave a storage no node accepts: the
			// node keeps running instead.
			return
		}
		f.fatalf("node %d: restart with Applied=%d (storage %s) failed: %v", h.id, applied, storageSummary(h.storage), err)
	}
	h.inflight = nil
	h.rn = rn
	h.applied, h.cs = smApplied, smCS
	h.handedOut = max(applied, si)
	f.stats.restarts++
	f.cycle(h)
}

func storageSummary(s *MemoryStorage) string {
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	snap, _ := s.Snapshot()
	return fmt.Sprintf("hs=%+v snap=%d/%d %+v entries=[%d,%d]", s.HardState(), snap.Metadata.Index, snap.Metadata.Term,
		snap.Metadata.ConfState, first, last)
}

// stabilize lets every host handle its Readies, reports snapshot outcomes
// and delivers queued messages, at most limit of them. Lazy hosts apply
// only if their bit (1<<id) is set in apply.
func (f *mfFuzzer) stabilize(limit int, apply byte) {
	for range limit {
		for _, id := range f.ids {
			h := f.hosts[id]
			f.cycleApply(h, !h.lazy || apply&(1<<id) != 0)
		}
		for len(f.reports) > 0 {
			f.report(0)
		}
		if len(f.queue) == 0 {
			return
		}
		f.deliver(0, false, true)
		f.check()
	}
}

// check asserts the cluster's safety and each node's own invariants.
func (f *mfFuzzer) check() {
	f.t.Helper()
	for _, id := range f.ids {
		h := f.hosts[id]
		r := h.rn.raft
		l := r.raftLog
		switch {
		case l.committed > l.lastIndex():
			f.fatalf("node %d: commit %d beyond last index %d", id, l.committed, l.lastIndex())
		case l.applied > l.committed:
			f.fatalf("node %d: applied %d beyond commit %d", id, l.applied, l.committed)
		}
		if r.state == StateLeader {
			if prev, ok := f.leaders[r.Term]; !ok {
				f.leaders[r.Term] = id
				f.stats.leaders++
			} else if prev != id && !f.byzantine {
				f.fatalf("election safety: nodes %d and %d both lead term %d", prev, id, r.Term)
			}
		}
		// A host that applied everything handed out runs the membership
		// its state machine is at.
		// (A snapshot not yet handed out brings its membership in force
		// when it is received.)
		if len(h.inflight) == 0 && h.applied == h.handedOut && h.applied == l.applied && !f.byzantine &&
			!l.hasNextOrInProgressSnapshot() {
			if got := r.trk.confState(); !sameConfState(got, h.cs) && !(h.cs.Voters == nil && h.applied == 0) {
				f.fatalf("node %d: runs membership %+v, its state machine is at %+v (applied %d)", id, got, h.cs, h.applied)
			}
		}
	}
}

func sameConfState(a, b ConfState) bool {
	return slices.Equal(a.Voters, b.Voters) && slices.Equal(a.Learners, b.Learners) &&
		slices.Equal(a.VotersOutgoing, b.VotersOutgoing) && slices.Equal(a.LearnersNext, b.LearnersNext) &&
		a.AutoLeave == b.AutoLeave
}

// mfSeed encodes operations for the seed corpus; its first two bytes are
// the options of newMFuzzer.
type mfSeed []byte

const (
	mfOpDeliver    = 0 // to 6: delivering is the most common operation
	mfOpDuplicate  = 6
	mfOpDrop       = 7
	mfOpTick       = 8
	mfOpPropose    = 9
	mfOpConfChange = 10
	mfOpTransfer   = 11
	mfOpReadIndex  = 12
	mfOpCampaign   = 13
	mfOpReport     = 14
	mfOpSnapshot   = 15
	mfOpRestart    = 16
	mfOpTake       = 17
	mfOpPersist    = 18
	mfOpApply      = 19
	mfOpCycle      = 20
	mfOpForge      = 21
	mfOpStabilize  = 22 // and 23
	mfOps          = 24
)

func (s mfSeed) op(id, op byte, args ...byte) mfSeed {
	return append(append(s, id-1, op), args...)
}

func (s mfSeed) stabilize() mfSeed                 { return s.op(1, mfOpStabilize, 0xff) }
func (s mfSeed) deliver(k byte, cycle bool) mfSeed { return s.op(1, mfOpDeliver, k, mfBool(cycle)) }
func (s mfSeed) tick(id, n byte) mfSeed            { return s.op(id, mfOpTick, n-1, 1) }
func (s mfSeed) propose(id byte) mfSeed            { return s.op(id, mfOpPropose, 'x', 1) }
func (s mfSeed) campaign(id byte) mfSeed           { return s.op(id, mfOpCampaign, 1) }
func (s mfSeed) transfer(id, to byte) mfSeed       { return s.op(id, mfOpTransfer, to, 1) }
func (s mfSeed) readIndex(id byte) mfSeed          { return s.op(id, mfOpReadIndex, 'r', 1) }
func (s mfSeed) snapshot(id, how byte) mfSeed      { return s.op(id, mfOpSnapshot, how) }
func (s mfSeed) restart(id, mode byte) mfSeed      { return s.op(id, mfOpRestart, mode) }
func (s mfSeed) cycle(id byte) mfSeed              { return s.op(id, mfOpCycle) }
func (s mfSeed) take(id byte) mfSeed               { return s.op(id, mfOpTake) }
func (s mfSeed) persist(id byte) mfSeed            { return s.op(id, mfOpPersist) }
func (s mfSeed) apply(id byte) mfSeed              { return s.op(id, mfOpApply) }
func (s mfSeed) unreachable(id, peer byte) mfSeed  { return s.op(id, mfOpReport, 1, peer-1) }

// conf proposes at id a change of the given kind (see confChange) on nodes
// a and b with transition tr.
func (s mfSeed) conf(id, kind, a, b byte, tr ConfChangeTransition, types ...byte) mfSeed {
	s = s.op(id, mfOpConfChange, kind, a-1, b-1, byte(tr))
	s = append(s, types...)
	return append(s, 1, 1) // no transfer; cycle
}

// removeAndTransfer proposes at id to remove a, and transfers leadership to
// a before the removal applies.
func (s mfSeed) removeAndTransfer(id, a byte) mfSeed {
	return append(s.op(id, mfOpConfChange, 2, a-1, 0, 0), 0, 1)
}

// stabilizeApplying is stabilize with only the lazy hosts in apply
// applying.
func (s mfSeed) stabilizeApplying(apply byte) mfSeed { return s.op(1, mfOpStabilize, apply) }

func (s mfSeed) addVoter(id, a byte) mfSeed   { return s.conf(id, 0, a, 1, 0) }
func (s mfSeed) addLearner(id, a byte) mfSeed { return s.conf(id, 1, a, 1, 0) }
func (s mfSeed) remove(id, a byte) mfSeed     { return s.conf(id, 2, a, 1, 0) }
func (s mfSeed) leaveJoint(id byte) mfSeed    { return s.conf(id, 3, 1, 1, 0) }
func (s mfSeed) removeLeader(id byte, tr ConfChangeTransition) mfSeed {
	return s.conf(id, 4, 1, 1, tr)
}
func (s mfSeed) demote(id, a byte, tr ConfChangeTransition) mfSeed { return s.conf(id, 5, a, 1, tr) }
func (s mfSeed) joint(id byte, tr ConfChangeTransition, ta, a, tb, b byte) mfSeed {
	return s.conf(id, 6, a, b, tr, ta, tb)
}

// forge injects m at id (addressed to id). Its sender must be below 5;
// from, if not 7, replaces it (0: the ghost node, 1: 2^40, 2: MaxUint64).
func (s mfSeed) forge(id byte, m Message, from byte) mfSeed {
	m.To = uint64(id)
	s = s.op(id, mfOpForge)
	s = append(s, badMessageBytes(uint64(id), m)...)
	return append(s, from, 1)
}

func mfBool(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func mfSeeds() [][]byte {
	const (
		add     = byte(ConfChangeAddNode)
		learner = byte(ConfChangeAddLearnerNode)
		remove  = byte(ConfChangeRemoveNode)
	)
	elect := mfSeed{0, 0}.campaign(1).stabilize()
	pipelined := mfSeed{1 << 2, 0}.campaign(1).stabilize()
	mixed := mfSeed{2<<2 | 16, 2}.campaign(2).stabilize()
	single := mfSeed{1<<5 | 1<<2, 0}.campaign(1).stabilize()
	grow := func(s mfSeed) mfSeed {
		return s.propose(1).stabilize().addVoter(1, 4).stabilize().addLearner(1, 5).stabilize().
			propose(1).stabilize()
	}
	return [][]byte{
		elect,
		grow(elect),
		grow(pipelined),
		grow(mixed.propose(2).stabilize().transfer(2, 1).stabilize()),
		// Remove the leader, single-step and joint, with and without a
		// transfer first.
		elect.propose(1).stabilize().removeLeader(1, 0).stabilize().tick(2, 4).tick(3, 4).stabilize(),
		elect.propose(1).stabilize().removeLeader(1, ConfChangeTransitionJointImplicit).stabilize().
			tick(2, 4).stabilize().propose(2).stabilize(),
		elect.propose(1).stabilize().remove(1, 2).transfer(1, 2).stabilize().addVoter(3, 2).stabilize(),
		// Shrink to one voter, grow again.
		elect.propose(1).stabilize().remove(1, 3).stabilize().remove(1, 2).stabilize().propose(1).stabilize().
			addVoter(1, 2).stabilize().addVoter(1, 4).stabilize().propose(1).stabilize(),
		// Demote a voter (the leader too), promote it back.
		elect.propose(1).stabilize().demote(1, 2, 0).stabilize().transfer(1, 2).stabilize().addVoter(1, 2).stabilize().
			demote(1, 1, ConfChangeTransitionJointExplicit).stabilize().leaveJoint(1).stabilize().tick(2, 4).stabilize(),
		// Joint changes replacing nodes.
		elect.propose(1).stabilize().joint(1, ConfChangeTransitionJointExplicit, add, 4, remove, 3).stabilize().
			leaveJoint(1).stabilize().joint(1, 0, learner, 2, add, 5).stabilize().propose(1).stabilize(),
		// Snapshots, compaction (keeping entries below the snapshot),
		// new nodes caught up by snapshot, restarts with each Applied.
		grow(elect).snapshot(1, 0).snapshot(2, 2).snapshot(3, 4).propose(1).stabilize().addVoter(1, 5).stabilize().
			restart(2, 0).restart(3, 1).restart(4, 2).stabilize().propose(2).stabilize(),
		grow(pipelined).snapshot(1, 1).snapshot(4, 3).restart(1, 1).restart(4, 0).stabilize().
			tick(2, 4).tick(2, 4).tick(2, 4).stabilize().propose(3).stabilize(),
		// Pipelined single voter: propose, grow, restart.
		single.propose(1).stabilize().addVoter(1, 2).stabilize().restart(1, 1).stabilize().tick(1, 4).tick(1, 4).
			tick(1, 4).stabilize().propose(1).stabilize(),
		// Committed but unapplied: the receivers step and do not apply.
		elect.propose(1).stabilize().remove(1, 3).take(1).deliver(0, false).deliver(0, false).
			transfer(1, 3).readIndex(2).campaign(3).stabilize(),
		// Pipelined hosts taking several Readies before persisting, and
		// applying them later.
		grow(pipelined).propose(2).take(1).propose(1).take(1).deliver(0, false).deliver(0, false).persist(1).
			take(2).take(3).persist(2).apply(2).persist(3).persist(3).apply(3).cycle(2).cycle(3).
			deliver(0, false).cycle(1).stabilize(),
		// Lazy pipelined hosts (a slow state machine): committed changes
		// wait to be applied while elections and transfers go on.
		mfSeed{1 << 2, 32 | 64}.stabilize().campaign(1).stabilize().propose(1).stabilize().
			removeAndTransfer(1, 3).stabilizeApplying(1<<1|1<<2).apply(3).stabilize().
			demote(1, 2, 0).stabilizeApplying(1<<1).transfer(1, 2).stabilize(),
		// What the fuzzer found before the core fix: voters {1, 2},
		// leader 1 removes 2 and transfers leadership to it; 2 steps the
		// commit and the timeout-now before its host applies, campaigns,
		// applies its removal, then wins (nil progress in becomeLeader).
		[]byte("A 0%0070000000000.00\"21000100010000000100000"),
		// Reads everywhere, unreachable reports, forged extreme terms.
		elect.readIndex(1).readIndex(2).unreachable(1, 2).stabilize().
			forge(2, Message{Type: MsgVote, From: 4, Term: maxTerm, Index: 3, LogTerm: 2}, 7).
			forge(3, Message{Type: MsgHeartbeat, From: 1, Term: maxTerm + 1}, 7).
			forge(1, Message{Type: MsgAppResp, From: 1, Term: 2, Index: math.MaxUint64}, 0).
			forge(1, Message{Type: MsgTransferLeader, From: 1, Index: 3}, 1).
			stabilize().propose(2).stabilize(),
	}
}

// FuzzMembership drives five hosts that follow doc.go from the input:
// membership changes, transfers, reads, snapshots and compaction,
// restarts, pipelined and Advance hosts, an unreliable network and forged
// messages. It checks that nothing panics and that the cluster stays safe.
func FuzzMembership(f *testing.F) {
	for _, s := range mfSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &badInput{data: data}
		o1, o2 := in.byte(), in.byte()
		newMFuzzer(t, o1, o2).run(in)
	})
}

// TestMembershipFuzzSeeds checks that the seed corpus reaches what it
// claims to.
func TestMembershipFuzzSeeds(t *testing.T) {
	var total mfStats
	for i, s := range mfSeeds() {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			in := &badInput{data: s}
			f := newMFuzzer(t, in.byte(), in.byte())
			f.run(in)
			if f.byzantine && i != len(mfSeeds())-1 {
				t.Errorf("seed %d became byzantine", i)
			}
			total.add(f.stats)
		})
	}
	t.Logf("%+v", total)
	if total.confApplied == 0 || total.leaderRemoved == 0 || total.jointEntered == 0 || total.snapshotsSent == 0 ||
		total.restarts == 0 || total.transfers == 0 {
		t.Fatalf("the seeds did not reach the states they should: %+v", total)
	}
}

// TestMembershipRandom runs FuzzMembership's property on pseudo-random
// inputs from fixed seeds, so that plain `go test` covers more than the
// seed corpus.
func TestMembershipRandom(t *testing.T) {
	var total mfStats
	n := 200
	if testing.Short() {
		n = 30
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		rng := rand.New(rand.NewPCG(seed, 0xfe11))
		data := make([]byte, 300+rng.IntN(900))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		ok := t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			in := &badInput{data: data}
			f := newMFuzzer(t, in.byte(), in.byte())
			f.run(in)
			total.add(f.stats)
		})
		if !ok {
			t.Fatalf("failed with seed %d; input %x", seed, data)
		}
	}
	t.Logf("%+v", total)
}
