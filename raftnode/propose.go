package raftnode

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/keelraft/raft"
)

// nodeProposal is a proposal appended to this leader's log at (term, index),
// waiting for the entry at index to apply.
type nodeProposal struct {
	term, index uint64
	res         chan nodeResult // capacity 1; receives exactly one result
}

type nodeResult struct {
	val any
	err error
}

type nodeLostProposal struct {
	p        *nodeProposal
	deadline uint64 // in loop ticks
}

// nodeProposals tracks pending proposals by index. The loop registers them,
// the apply goroutine completes them, the loop expires those whose leader
// lost office, and callers withdraw them when their context expires;
// whoever removes a proposal from the map delivers its one result.
type nodeProposals struct {
	mu   sync.Mutex
	m    map[uint64]*nodeProposal
	lost []nodeLostProposal
}

func (ps *nodeProposals) init() { ps.m = map[uint64]*nodeProposal{} }

func (ps *nodeProposals) add(p *nodeProposal) {
	ps.mu.Lock()
	ps.m[p.index] = p
	ps.mu.Unlock()
}

// take removes and returns the proposal at index, if p is nil or it is p.
func (ps *nodeProposals) take(index uint64, p *nodeProposal) *nodeProposal {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	q := ps.m[index]
	if q == nil || (p != nil && q != p) {
		return nil
	}
	delete(ps.m, index)
	return q
}

// applied completes the proposal at e's index: with val if the applied
// entry is the proposed one (same term), or as overwritten if another
// leader's entry took the index, which means the proposal certainly failed.
func (ps *nodeProposals) applied(e *raft.Entry, val any, err error) {
	p := ps.take(e.Index, nil)
	if p == nil {
		return
	}
	if p.term != e.Term {
		err = fmt.Errorf("%w: the entry at index %d was overwritten by term %d (proposed in term %d)",
			raft.ErrProposalDropped, e.Index, e.Term, p.term)
		val = nil
	}
	p.res <- nodeResult{val: val, err: err}
}

// unknownUpTo completes every proposal at or below index as unknown: a
// snapshot covered their indexes, so whether they applied cannot be told.
func (ps *nodeProposals) unknownUpTo(index uint64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, p := range ps.m {
		if i <= index {
			delete(ps.m, i)
			p.res <- nodeResult{err: fmt.Errorf("%w: a snapshot replaced the log at index %d", ErrProposalUnknown, i)}
		}
	}
}

// leaderLost gives every pending proposal not of the current leadership
// (term, and leader) until deadline to apply; after it, the caller learns
// that the outcome is unknown. A proposal that applies meanwhile is
// reported as applied even though its leader lost office.
func (ps *nodeProposals) leaderLost(deadline, term uint64, leader bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.m {
		if !leader || p.term != term {
			ps.lost = append(ps.lost, nodeLostProposal{p: p, deadline: deadline})
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
		if ps.m[l.p.index] == l.p {
			delete(ps.m, l.p.index)
			l.p.res <- nodeResult{err: fmt.Errorf("%w: the leader lost office before index %d applied here (proposed in term %d)",
				ErrProposalUnknown, l.p.index, l.p.term)}
		}
	}
	clear(ps.lost[len(kept):])
	ps.lost = kept
}

// failAll completes every pending proposal as unknown, wrapping err.
func (ps *nodeProposals) failAll(err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, p := range ps.m {
		delete(ps.m, i)
		p.res <- nodeResult{err: fmt.Errorf("%w: %w", ErrProposalUnknown, err)}
	}
	ps.lost = nil
}

// Propose proposes data and returns the StateMachine's result for its entry
// once this node applied it. Only the leader accepts proposals: elsewhere
// Propose returns a *NotLeaderError naming the leader, if known, so that the
// client retries there (a forwarded proposal's index is unknown, so its
// outcome could not be tracked). Empty data is allowed; its entry is not
// passed to Apply and its result is nil. data must not be modified after
// the call. Concurrent proposals are appended together.
//
// The error tells whether the proposal may still apply:
//   - ErrProposalTooLarge: data is longer than Raft.MaxEntrySize; nothing
//     was appended, and retrying the same data fails again.
//   - ErrProposalDropped (also overwritten entries and ErrTransferInProgress),
//     ErrNotLeader, ErrStopped alone, or ctx's error alone: it certainly was
//     not and will not be applied; retrying is safe.
//   - ErrProposalUnknown (wrapping ctx's error, ErrStopped or the storage
//     error, if that was the cause): the entry was appended but this node
//     could not see whether it applied: its leader lost office and it did
//     not apply within two election timeouts, ctx expired, or the node
//     stopped. An entry whose leader lost office but that applies in time
//     is reported as applied.
func (n *Node) Propose(ctx context.Context, data []byte) (any, error) {
	res, err := n.propose(ctx, []raft.Entry{{Data: data}})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// ProposeBatch proposes several entries at once, appended together at
// consecutive indexes, and returns their results in order. The errors are
// those of Propose; on ErrProposalUnknown the results of the entries seen
// applied before are returned along with it.
func (n *Node) ProposeBatch(ctx context.Context, data [][]byte) ([]any, error) {
	if len(data) == 0 {
		return nil, nil
	}
	ents := make([]raft.Entry, len(data))
	for i, d := range data {
		ents[i].Data = d
	}
	return n.propose(ctx, ents)
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
// in props or err and closes done.
type nodePropReq struct {
	ctx   context.Context
	ents  []raft.Entry
	props []*nodeProposal
	err   error
	done  chan struct{}
}

// nodeMaxPropBatch bounds the entries the loop gathers from queued proposal
// requests into one append.
const nodeMaxPropBatch = 1024

// propose appends ents on the leader and waits for their results.
func (n *Node) propose(ctx context.Context, ents []raft.Entry) ([]any, error) {
	if err := n.removedErr(); err != nil {
		return nil, err
	}
	// Checked here, not only in the core: the loop appends concurrent
	// requests together, and one oversized entry must fail its own request
	// only.
	if err := checkEntrySizes(ents, n.cfg.Raft.MaxEntrySize); err != nil {
		return nil, err
	}
	req := &nodePropReq{ctx: ctx, ents: ents, done: make(chan struct{})}
	select {
	case n.propc <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.stopc:
		return nil, n.stopErr()
	}
	select {
	case <-req.done:
	case <-n.donec:
		select {
		case <-req.done:
		default:
			return nil, n.stopErr()
		}
	}
	if req.err != nil {
		return nil, req.err
	}
	out := make([]any, 0, len(req.props))
	for _, p := range req.props {
		r := n.waitProposal(ctx, p)
		if r.err != nil {
			for _, q := range req.props[len(out)+1:] {
				n.props.take(q.index, q) // withdraw the rest
			}
			return out, r.err
		}
		out = append(out, r.val)
	}
	return out, nil
}

// stepProposals runs on the loop: it gathers first and the proposal
// requests queued behind it into one append, so that concurrent proposers
// share replication messages and writes. A configuration change is
// appended on its own.
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
	var (
		live []*nodePropReq
		ents []raft.Entry
	)
	for _, req := range batch {
		switch {
		case req.ctx.Err() != nil:
			req.err = req.ctx.Err()
			close(req.done)
		case soft.RaftState != raft.StateLeader:
			req.err = &NotLeaderError{Leader: soft.Lead}
			close(req.done)
		case slices.ContainsFunc(req.ents, func(e raft.Entry) bool { return e.Type == raft.EntryConfChange }):
			n.appendProposals([]*nodePropReq{req}, req.ents)
		default:
			live = append(live, req)
			ents = append(ents, req.ents...)
		}
	}
	if len(live) > 0 {
		n.appendProposals(live, ents)
	}
	clear(batch)
	n.propBatch = batch[:0]
}

// appendProposals steps ents, the entries of reqs in order, as one
// proposal and registers each entry's proposal.
func (n *Node) appendProposals(reqs []*nodePropReq, ents []raft.Entry) {
	index, term, err := n.rn.ProposeEntries(ents)
	for _, req := range reqs {
		if err != nil {
			req.err = err
			close(req.done)
			continue
		}
		req.props = make([]*nodeProposal, len(req.ents))
		for i := range req.ents {
			p := &nodeProposal{term: term, index: index, res: make(chan nodeResult, 1)}
			n.props.add(p)
			req.props[i] = p
			index++
		}
		close(req.done)
	}
}

// waitProposal waits for p's result, or withdraws it when ctx expires or the
// node stops.
func (n *Node) waitProposal(ctx context.Context, p *nodeProposal) nodeResult {
	var cause error
	select {
	case r := <-p.res:
		return r
	case <-ctx.Done():
		cause = ctx.Err()
	case <-n.donec:
		cause = n.stopErr()
	}
	if n.props.take(p.index, p) == nil {
		return <-p.res // completed meanwhile
	}
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
