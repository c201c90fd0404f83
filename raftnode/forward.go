package raftnode

import (
	"fmt"
	"math/rand/v2"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// A follower's proposals are forwarded to the leader it knows with
// raft.RawNode.ProposeTracked, under a request ID. The leader answers with
// where it appended them (a raft.ProposalPlacement in a later Ready); from
// then on they are tracked as the leader's own proposals are: the entry
// at that index applies here either with that term (the result is Apply's)
// or with another (the proposal was overwritten). The proposals the loop
// gathers in one pass go in one forwarded batch, under one ID.

// nodeForward is a batch of proposals forwarded under one request ID,
// waiting for the leader's answer.
type nodeForward struct {
	id uint64
	to uint64 // the leader it was sent to; only its answer counts
	// props are the batch's entries in order; nil once withdrawn.
	props []*nodeProposal
	live  int
}

// withdraw removes p from the batch (ps.mu held) and reports whether it
// was there; the batch goes once every entry was withdrawn.
func (f *nodeForward) withdraw(ps *nodeProposals, p *nodeProposal) bool {
	for i, q := range f.props {
		if q == p {
			f.props[i] = nil
			p.fwd = nil
			if f.live--; f.live == 0 {
				delete(ps.fwd, f.id)
			}
			return true
		}
	}
	return false
}

// fail completes the batch's remaining entries with err (ps.mu held).
func (f *nodeForward) fail(err error) {
	for i, p := range f.props {
		if p != nil {
			p.fwd = nil
			p.res <- nodeResult{err: err}
			f.props[i] = nil
		}
	}
	f.live = 0
}

// forwarded registers a forwarded batch.
func (ps *nodeProposals) forwarded(f *nodeForward) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.fwd[f.id] = f
}

// placed takes the leader's answer to a forwarded batch and reports
// whether a waiting batch took it. A refusal completes the batch: nothing
// was appended. A placement registers each entry at its index, unless the
// log applied here already tells its fate; termAt reads the term of an
// applied entry from the log. term and lead are the current term and
// leader; a placement by another leadership is lost already and expires
// at deadline, as leaderLost says.
func (ps *nodeProposals) placed(pl raft.ProposalPlacement, termAt func(uint64) (uint64, error), term, lead, deadline uint64) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	f := ps.fwd[pl.ID]
	if f == nil || pl.From != f.to {
		return false
	}
	delete(ps.fwd, pl.ID)
	if pl.Err != nil {
		f.fail(pl.Err)
		return true
	}
	for i, p := range f.props {
		if p == nil {
			continue
		}
		f.props[i] = nil
		p.fwd = nil
		p.index, p.term, p.leader = pl.Index+uint64(i), pl.Term, pl.From
		if p.index <= ps.appliedIndex {
			p.res <- nodeResult{err: appliedBeforePlaced(p, termAt)}
			continue
		}
		ps.addLocked(p)
		if p.term != term || p.leader != lead {
			ps.lost = append(ps.lost, nodeLostProposal{p: p, deadline: deadline})
		}
	}
	return true
}

// appliedBeforePlaced is the outcome of a forwarded entry whose index
// applied here before the leader's answer arrived (a delayed answer): if
// the log holds another term there, the proposal was overwritten; if it
// holds the proposal's term, the entry applied but its result is gone.
func appliedBeforePlaced(p *nodeProposal, termAt func(uint64) (uint64, error)) error {
	t, err := termAt(p.index)
	switch {
	case err != nil:
		return fmt.Errorf("%w: index %d applied here before the leader's answer arrived, and the log no longer holds it: %w",
			ErrProposalUnknown, p.index, err)
	case t != p.term:
		return overwritten(p, p.index, t)
	default:
		return fmt.Errorf("%w: the entry at index %d applied here before the leader's answer arrived; its result was not kept",
			ErrProposalUnknown, p.index)
	}
}

// newID returns a new request ID. IDs start at a random point, so that a
// late answer to a request of an earlier run of the node matches no
// request of this one.
func (ps *nodeProposals) newID() uint64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.lastID == 0 {
		ps.lastID = rand.Uint64()
	}
	if ps.lastID++; ps.lastID == 0 {
		ps.lastID = 1
	}
	return ps.lastID
}

// forwardProposals forwards ents, the entries of reqs in order, to the
// leader lead as one tracked batch (on the loop).
func (n *Node) forwardProposals(reqs []*nodePropReq, ents []raft.Entry, lead uint64) {
	id := n.props.newID()
	_, _, err := n.rn.ProposeTracked(id, ents)
	if err != nil {
		for _, req := range reqs {
			req.err = err
			req.placed()
		}
		return
	}
	f := &nodeForward{id: id, to: lead, props: make([]*nodeProposal, 0, len(ents)), live: len(ents)}
	for _, req := range reqs {
		req.newProposals(func(p *nodeProposal) {
			p.leader, p.fwd = lead, f
			f.props = append(f.props, p)
		})
	}
	n.props.forwarded(f)
	for _, req := range reqs {
		req.placed()
	}
}

// placeForwarded hands the leader's answers in a Ready to the forwarded
// batches (on the loop).
func (n *Node) placeForwarded(pls []raft.ProposalPlacement) {
	st := n.rn.BasicStatus()
	deadline := n.ticks + 2*uint64(n.cfg.Raft.ElectionTick)
	for _, pl := range pls {
		if !n.props.placed(pl, n.storage.Term, st.Term, st.Lead, deadline) {
			n.logger.Debug("ignored an answer to no waiting forwarded proposal",
				zap.Uint64("from", pl.From), zap.Uint64("id", pl.ID))
		}
	}
}
