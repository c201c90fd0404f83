package raftnode

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/keelraft/raft"
)

// nodeProposal is one proposed entry waiting for its outcome: appended at
// (term, index) by leader (this node, or the leader a follower forwarded
// it to), or, while fwd is set, forwarded and waiting for the leader to
// say where it landed.
type nodeProposal struct {
	term, index uint64
	leader      uint64
	fwd         *nodeForward
	res         chan nodeResult // capacity 1; receives exactly one result
	// next is the next proposal waiting at the same index (guarded by
	// nodeProposals.mu).
	next *nodeProposal
}

// nodeResultChans recycles result channels: a proposal's channel receives
// exactly one result, from whoever removed the proposal, so once its
// proposer took that result, or withdrew the proposal, nothing sends on
// it any more.
var nodeResultChans = sync.Pool{New: func() any { return make(chan nodeResult, 1) }}

// newNodeProposal returns a proposal with a recycled result channel.
func newNodeProposal() *nodeProposal {
	return &nodeProposal{res: nodeResultChans.Get().(chan nodeResult)}
}

type nodeResult struct {
	val any
	err error
}

type nodeLostProposal struct {
	p        *nodeProposal
	deadline uint64 // in loop ticks
}

// nodeProposals tracks pending proposals by index, and forwarded ones by
// request ID until their placement is known. The loop registers them, the
// apply goroutine completes them, the loop expires those whose leader
// lost office, and callers withdraw them when their context expires;
// whoever removes a proposal delivers its one result.
type nodeProposals struct {
	mu sync.Mutex
	// m holds the placed proposals by index, each index's chained through
	// next; proposals of different terms may wait at one index (at most
	// one of them applies).
	m    map[uint64]*nodeProposal
	fwd  map[uint64]*nodeForward
	lost []nodeLostProposal
	// appliedIndex and appliedTerm are the index and term of the last
	// entry (or snapshot) applied: no entry after it has a lower term.
	appliedIndex, appliedTerm uint64
	// lastID is the last request ID given to a forwarded batch.
	lastID uint64
}

func (ps *nodeProposals) init() {
	ps.m = map[uint64]*nodeProposal{}
	ps.fwd = map[uint64]*nodeForward{}
}

// add registers a placed proposal, or completes it at once if the log
// applied here already rules it out.
func (ps *nodeProposals) add(p *nodeProposal) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.addLocked(p)
}

func (ps *nodeProposals) addLocked(p *nodeProposal) {
	if p.term < ps.appliedTerm {
		p.res <- nodeResult{err: overwritten(p, ps.appliedIndex, ps.appliedTerm)}
		return
	}
	p.next = ps.m[p.index]
	ps.m[p.index] = p
}

// overwritten is the error of proposal p, which cannot apply since the
// entry at index has a later term.
func overwritten(p *nodeProposal, index, term uint64) error {
	if index == p.index {
		return fmt.Errorf("%w: the entry at index %d was overwritten by term %d (proposed in term %d)",
			raft.ErrProposalDropped, p.index, term, p.term)
	}
	return fmt.Errorf("%w: the entry at index %d was overwritten (term %d applied at index %d, proposed in term %d)",
		raft.ErrProposalDropped, p.index, term, index, p.term)
}

// removeLocked removes p from the index map and reports whether it was
// there.
func (ps *nodeProposals) removeLocked(p *nodeProposal) bool {
	head := ps.m[p.index]
	if head == p {
		if p.next == nil {
			delete(ps.m, p.index)
		} else {
			ps.m[p.index] = p.next
		}
		p.next = nil
		return true
	}
	for q := head; q != nil; q = q.next {
		if q.next == p {
			q.next, p.next = p.next, nil
			return true
		}
	}
	return false
}

// unlinkAll removes the proposals at index from m and returns their
// chain.
func (ps *nodeProposals) unlinkAll(index uint64) nodeProposalChain {
	head := ps.m[index]
	delete(ps.m, index)
	return nodeProposalChain{head}
}

// nodeProposalChain walks a chain of proposals unlinked from the index
// map, clearing each link as it goes.
type nodeProposalChain struct{ p *nodeProposal }

// next returns the next proposal of the chain, or nil at its end.
func (c *nodeProposalChain) next() *nodeProposal {
	p := c.p
	if p != nil {
		c.p, p.next = p.next, nil
	}
	return p
}

// take withdraws p, placed or not, and reports whether it was pending: if
// not, its result was delivered already.
func (ps *nodeProposals) take(p *nodeProposal) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if f := p.fwd; f != nil {
		return f.withdraw(ps, p)
	}
	return ps.removeLocked(p)
}

// applied completes the proposals at e's index: with val the one proposed
// in e's term, as overwritten the others, which certainly failed; and, if
// e's term is later than those applied before, every proposal of an
// earlier term after it, which no longer can apply either.
func (ps *nodeProposals) applied(e *raft.Entry, val any, err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for c := ps.unlinkAll(e.Index); ; {
		p := c.next()
		if p == nil {
			break
		}
		if p.term == e.Term {
			p.res <- nodeResult{val: val, err: err}
		} else {
			p.res <- nodeResult{err: overwritten(p, e.Index, e.Term)}
		}
	}
	ps.advanceLocked(e.Index, e.Term)
}

// advanceLocked records that the log is applied up to index, whose term is
// term, and fails the proposals of earlier terms that wait beyond it.
func (ps *nodeProposals) advanceLocked(index, term uint64) {
	ps.appliedIndex = index
	if term <= ps.appliedTerm {
		return
	}
	ps.appliedTerm = term
	for i, head := range ps.m {
		var kept, last *nodeProposal
		for c := (nodeProposalChain{head}); ; {
			p := c.next()
			if p == nil {
				break
			}
			switch {
			case p.term < term:
				p.res <- nodeResult{err: overwritten(p, index, term)}
			case last == nil:
				kept, last = p, p
			default:
				last.next, last = p, p
			}
		}
		if kept == nil {
			delete(ps.m, i)
		} else {
			ps.m[i] = kept
		}
	}
}

// restored completes every proposal at or below the index of a restored
// snapshot as unknown (the snapshot covered their indexes, so whether they
// applied cannot be told) and those of earlier terms beyond it as
// overwritten.
func (ps *nodeProposals) restored(meta raft.SnapshotMetadata) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i := range ps.m {
		if i > meta.Index {
			continue
		}
		for c := ps.unlinkAll(i); ; {
			p := c.next()
			if p == nil {
				break
			}
			p.res <- nodeResult{err: fmt.Errorf("%w: a snapshot replaced the log at index %d", ErrProposalUnknown, i)}
		}
	}
	ps.advanceLocked(meta.Index, meta.Term)
}

// leaderLost gives every placed proposal whose leader no longer leads in
// its term (the current term is term, led by lead) until deadline to
// apply; after it, the caller learns that the outcome is unknown. A
// proposal that applies meanwhile is reported as applied even though its
// leader lost office.
func (ps *nodeProposals) leaderLost(deadline, term, lead uint64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, head := range ps.m {
		for p := head; p != nil; p = p.next {
			if p.term != term || p.leader != lead {
				ps.lost = append(ps.lost, nodeLostProposal{p: p, deadline: deadline})
			}
		}
	}
}

// expireLost completes the lost proposals whose deadline passed as unknown.
func (ps *nodeProposals) expireLost(now uint64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.lost) == 0 {
		return
	}
	kept := ps.lost[:0]
	for _, l := range ps.lost {
		if l.deadline > now {
			kept = append(kept, l)
			continue
		}
		if ps.removeLocked(l.p) {
			l.p.res <- nodeResult{err: fmt.Errorf("%w: the leader lost office before index %d applied here (proposed in term %d)",
				ErrProposalUnknown, l.p.index, l.p.term)}
		}
	}
	clear(ps.lost[len(kept):])
	ps.lost = kept
}

// failAll completes every pending proposal, placed or forwarded, as
// unknown, wrapping err.
func (ps *nodeProposals) failAll(err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i := range ps.m {
		for c := ps.unlinkAll(i); ; {
			p := c.next()
			if p == nil {
				break
			}
			p.res <- nodeResult{err: fmt.Errorf("%w: %w", ErrProposalUnknown, err)}
		}
	}
	for id, f := range ps.fwd {
		delete(ps.fwd, id)
		f.fail(fmt.Errorf("%w: forwarded to node %d: %w", ErrProposalUnknown, f.to, err))
	}
	ps.lost = nil
}

// Propose proposes data and returns the StateMachine's result for its entry
// once this node applied it, from any node: a follower forwards the
// proposal to the leader it knows over the transport, the leader answers
// with where it appended it, and the follower waits for that entry to
// apply locally, as the leader does. Empty data is allowed; its entry is
// not passed to Apply and its result is nil. data must not be modified
// after the call. Concurrent proposals are appended (or forwarded)
// together.
//
// The error tells whether the proposal may still apply:
//   - ErrProposalTooLarge: data is longer than Raft.MaxEntrySize (this
//     node's, or the leader's); nothing was appended, and retrying the
//     same data fails again.
//   - ErrProposalDropped (also overwritten entries, ErrTransferInProgress,
//     and a forwarded proposal that reached a node no longer leading),
//     ErrNotLeader (a *NotLeaderError: no leader known, or
//     Raft.DisableProposalForwarding set on a follower), ErrRemoved,
//     ErrStopped alone, or ctx's error alone: it certainly was not and
//     will not be applied; retrying is safe (elsewhere, for ErrRemoved).
//   - ErrProposalUnknown (wrapping ctx's error, ErrStopped or the storage
//     error, if that was the cause): the entry may have been appended but
//     this node could not see whether it applied: its leader lost office
//     and it did not apply within two election timeouts, the leader's
//     answer to a forwarded proposal did not arrive before ctx expired,
//     ctx expired, or the node stopped. An entry whose leader lost office
//     but that applies in time is reported as applied.
func (n *Node) Propose(ctx context.Context, data []byte) (any, error) {
	req := &nodePropReq{}
	req.one.ent[0].Data = data
	req.ents = req.one.ent[:]
	res := n.proposeEach(ctx, req)
	return res[0].Value, res[0].Err
}

// Result is the outcome of one entry of ProposeBatch.
type Result struct {
	// Value is the StateMachine's result for the entry once applied here;
	// nil if Err is set.
	Value any
	// Err is nil if the entry applied, else an error as Propose's, which
	// tells whether it may still apply.
	Err error
}

// ProposeBatch proposes several entries at once, appended together at
// consecutive indexes in one term (from any node, as Propose), and returns
// each entry's outcome, in order: one Result per element of data. The
// entries of a batch may fare differently: a new leader may keep the
// first and overwrite the rest, so each Result says whether its own entry
// applied, certainly failed, or may still apply, and a client retries only
// the entries that certainly failed. If an entry is longer than
// Raft.MaxEntrySize, nothing is proposed: that entry fails with
// ErrProposalTooLarge and the others with ErrProposalDropped.
func (n *Node) ProposeBatch(ctx context.Context, data [][]byte) []Result {
	if len(data) == 0 {
		return nil
	}
	ents := make([]raft.Entry, len(data))
	for i, d := range data {
		ents[i].Data = d
	}
	return n.proposeEach(ctx, &nodePropReq{ents: ents})
}

// ProposeUntracked proposes data without tracking its outcome, which lets
// any node propose: the leader appends it, and a follower forwards it to
// the leader it knows over the transport (unless
// Raft.DisableProposalForwarding is set), so that only members of the
// cluster can have it appended. A nil error says only that the proposal
// was appended or sent: a forwarded proposal may be lost and an appended
// entry overwritten without an error, so the host learns the outcome from
// its StateMachine, retries until it sees the entry applied, and makes the
// command idempotent. Apply's result for the entry is discarded. It fails
// with ErrProposalTooLarge, ErrProposalDropped (no leader known,
// forwarding disabled, a leadership transfer running, the uncommitted tail
// full), ErrStopped or ctx's error; the proposal then went nowhere.
func (n *Node) ProposeUntracked(ctx context.Context, data []byte) error {
	if err := n.removedErr(); err != nil {
		return err
	}
	if err := checkEntrySizes([]raft.Entry{{Data: data}}, n.cfg.Raft.MaxEntrySize); err != nil {
		return err
	}
	var perr error
	if err := n.do(ctx, func() { perr = n.rn.Propose(data) }); err != nil {
		return err
	}
	return perr
}

// nodePropReq is a proposal request on its way to the loop, which fills
// in props or err and signals done (once: see placed).
type nodePropReq struct {
	ctx  context.Context
	ents []raft.Entry
	// leaderOnly refuses the request on a follower instead of forwarding
	// it.
	leaderOnly bool
	props      []*nodeProposal
	err        error
	done       chan struct{} // capacity 1, from nodeDoneChans
	// one holds what a request of a single entry needs, so that it is
	// allocated with the request: its entry, proposal, props and result.
	one struct {
		ent  [1]raft.Entry
		prop nodeProposal
		ptr  [1]*nodeProposal
		out  [1]Result
	}
}

// nodeDoneChans recycles the done channels of proposal requests: the loop
// sends on one exactly once, and the proposer returns it only after
// receiving that.
var nodeDoneChans = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// placed tells the proposer that the loop is done with req: props or err
// is set.
func (req *nodePropReq) placed() { req.done <- struct{}{} }

// newProposals sets req.props to a new proposal for each of its entries,
// made by fill: the one allocated with the request for a single entry.
func (req *nodePropReq) newProposals(fill func(p *nodeProposal)) {
	if len(req.ents) == 1 {
		p := &req.one.prop
		*p = nodeProposal{res: nodeResultChans.Get().(chan nodeResult)}
		fill(p)
		req.one.ptr[0] = p
		req.props = req.one.ptr[:]
		return
	}
	req.props = make([]*nodeProposal, len(req.ents))
	for i := range req.props {
		p := newNodeProposal()
		fill(p)
		req.props[i] = p
	}
}

// nodeMaxPropBatch bounds the entries the loop gathers from queued proposal
// requests into one append.
const nodeMaxPropBatch = 1024

// propose proposes ents on the leader only (elsewhere it fails with a
// *NotLeaderError), as proposeEach does, and returns their values, or the
// first entry's error: for configuration changes, which go alone, and
// Barrier.
func (n *Node) propose(ctx context.Context, ents []raft.Entry) ([]any, error) {
	res := n.proposeEach(ctx, &nodePropReq{ents: ents, leaderOnly: true})
	vals := make([]any, len(res))
	for i, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
		vals[i] = r.Value
	}
	return vals, nil
}

// proposeEach appends req.ents on the leader, or forwards them to it
// unless req.leaderOnly, and waits for each entry's outcome.
func (n *Node) proposeEach(ctx context.Context, req *nodePropReq) []Result {
	ents := req.ents
	var out []Result
	if len(ents) == 1 {
		out = req.one.out[:]
	} else {
		out = make([]Result, len(ents))
	}
	fail := func(err error) []Result {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	if err := n.removedErr(); err != nil {
		return fail(err)
	}
	// Checked here, not only in the core: the loop appends concurrent
	// requests together, and one oversized entry must fail its own request
	// only.
	if err := checkEntrySizes(ents, n.cfg.Raft.MaxEntrySize); err != nil {
		fail(fmt.Errorf("%w: not proposed, another entry of the batch is too large (%v)", raft.ErrProposalDropped, err))
		for i := range ents {
			if uint64(len(ents[i].Data)) > n.cfg.Raft.MaxEntrySize {
				out[i].Err = err
			}
		}
		return out
	}
	req.ctx = ctx
	req.done = nodeDoneChans.Get().(chan struct{})
	select {
	case n.propc <- req:
	case <-ctx.Done():
		nodeDoneChans.Put(req.done)
		return fail(ctx.Err())
	case <-n.stopc:
		nodeDoneChans.Put(req.done)
		return fail(n.stopErr())
	}
	select {
	case <-req.done:
	case <-n.donec:
		select {
		case <-req.done:
		default:
			return fail(n.stopErr()) // req.done is not recycled: the loop may still hold it
		}
	}
	nodeDoneChans.Put(req.done)
	if req.err != nil {
		return fail(req.err)
	}
	// Entries apply in log order, so waiting for each in turn costs
	// nothing; each gets its own outcome.
	for i, p := range req.props {
		r := n.waitProposal(ctx, p)
		out[i] = Result{Value: r.val, Err: r.err}
	}
	return out
}

// stepProposals runs on the loop: it gathers first and the proposal
// requests queued behind it into one append (or, on a follower, one
// forwarded batch), so that concurrent proposers share replication
// messages and writes. A configuration change is appended on its own, on
// the leader only.
func (n *Node) stepProposals(first *nodePropReq) {
	batch := append(n.propBatch[:0], first)
	count := len(first.ents)
gather:
	for count < nodeMaxPropBatch {
		select {
		case req := <-n.propc:
			batch = append(batch, req)
			count += len(req.ents)
		default:
			break gather
		}
	}
	soft := n.rn.BasicStatus().SoftState
	leader := soft.RaftState == raft.StateLeader
	forward := !leader && soft.Lead != raft.None && !n.cfg.Raft.DisableProposalForwarding
	live, ents := n.propLive[:0], n.propEnts[:0]
	for _, req := range batch {
		conf := slices.ContainsFunc(req.ents, func(e raft.Entry) bool { return e.Type == raft.EntryConfChange })
		switch {
		case req.ctx.Err() != nil:
			req.err = req.ctx.Err()
			req.placed()
		case !leader && (conf || req.leaderOnly || !forward):
			req.err = &NotLeaderError{Leader: soft.Lead}
			req.placed()
		case conf:
			n.appendProposals([]*nodePropReq{req}, req.ents)
		default:
			live = append(live, req)
			ents = append(ents, req.ents...)
		}
	}
	switch {
	case len(live) == 0:
	case leader:
		// The core copies the entries into its log: ents can be reused.
		n.appendProposals(live, ents)
	default:
		// The forwarded message keeps its entries until the transport
		// sent it.
		n.forwardProposals(live, slices.Clone(ents), soft.Lead)
	}
	clear(batch)
	n.propBatch = batch[:0]
	clear(live)
	n.propLive = live[:0]
	clear(ents)
	n.propEnts = ents[:0]
}

// appendProposals steps ents, the entries of reqs in order, as one
// proposal and registers each entry's proposal.
func (n *Node) appendProposals(reqs []*nodePropReq, ents []raft.Entry) {
	index, term, err := n.rn.ProposeEntries(ents)
	for _, req := range reqs {
		if err != nil {
			req.err = err
			req.placed()
			continue
		}
		req.newProposals(func(p *nodeProposal) {
			p.term, p.index, p.leader = term, index, n.id
			n.props.add(p)
			index++
		})
		req.placed()
	}
}

// waitProposal waits for p's result, or withdraws it when ctx expires or the
// node stops.
func (n *Node) waitProposal(ctx context.Context, p *nodeProposal) nodeResult {
	var cause error
	select {
	case r := <-p.res:
		nodeResultChans.Put(p.res)
		return r
	case <-ctx.Done():
		cause = ctx.Err()
	case <-n.donec:
		cause = n.stopErr()
	}
	if !n.props.take(p) {
		r := <-p.res // completed meanwhile
		nodeResultChans.Put(p.res)
		return r
	}
	// Withdrawn: nothing sends on p.res any more.
	nodeResultChans.Put(p.res)
	return nodeResult{err: fmt.Errorf("%w: %w", ErrProposalUnknown, cause)}
}

// checkEntrySizes returns an error wrapping raft.ErrProposalTooLarge if an
// entry of ents carries more than max bytes, as the leader would refuse it.
func checkEntrySizes(ents []raft.Entry, max uint64) error {
	for i := range ents {
		if n := uint64(len(ents[i].Data)); n > max {
			return fmt.Errorf("%w: entry %d carries %d bytes, the limit is %d", raft.ErrProposalTooLarge, i, n, max)
		}
	}
	return nil
}
