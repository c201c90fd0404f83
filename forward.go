package raft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// A follower that wants to learn where its forwarded proposal lands calls
// RawNode.ProposeTracked with a request ID. The MsgProp it forwards carries
// the ID in Context (eight bytes, big-endian). The leader that appends the
// entries answers with a MsgPropResp carrying the ID, the first entry's
// index (Index) and their term (LogTerm); a node that does not append them
// answers with Reject set and the reason in RejectHint. The answer reaches
// the follower's host as a ProposalPlacement in a Ready. An entry with
// that index and term is the proposed one wherever it shows up (only the
// leader of a term creates entries of that term), so the host tracks it as
// it tracks its own proposals: if the entry at that index applies with
// another term, the proposal was overwritten and never applies.

// propIDLen is the length of a tracked proposal's request ID in Context.
const propIDLen = 8

// Reasons a node gives, in RejectHint, for not appending a tracked
// proposal.
const (
	propRejectDropped    = 0 // ErrProposalDropped
	propRejectTransfer   = 1 // ErrTransferInProgress
	propRejectTooLarge   = 2 // ErrProposalTooLarge
	propRejectNotLeader  = 3 // the receiver does not lead; not forwarded again
	numPropRejectReasons = 4
)

// ProposalPlacement is the answer to a proposal this node forwarded with
// RawNode.ProposeTracked: where the leader appended it, or why it was not
// appended.
type ProposalPlacement struct {
	// ID is the request ID given to ProposeTracked.
	ID uint64
	// From is the node that answered.
	From uint64
	// Index is the index at which the first proposed entry was appended
	// and Term the term of the proposed entries: entry i was appended at
	// Index+i. Both are 0 when Err is set.
	Index, Term uint64
	// Err, if set, says that the entries were not appended: it wraps
	// ErrProposalDropped (ErrTransferInProgress among others) or
	// ErrProposalTooLarge. The proposal went nowhere.
	Err error
}

// ProposeTracked is ProposeEntries for a host that wants to learn where a
// forwarded proposal lands. On the leader it appends ents as
// ProposeEntries does and returns their first index and term. On a
// follower it forwards them to the leader with id (which must not be 0)
// and returns first = 0; a later Ready then carries, in
// ProposalPlacements, a ProposalPlacement with id: where the leader
// appended them, or that it did not. No answer comes if the request or
// the answer is lost; a duplicated or late answer carries the same id, so
// the host must ignore answers to requests it no longer waits for. The
// node that receives the forwarded proposal does not forward it again: if
// it does not lead, it answers that the proposal was dropped. Errors are
// those of ProposeEntries; on an error nothing was appended or sent.
func (rn *RawNode) ProposeTracked(id uint64, ents []Entry) (first, term uint64, err error) {
	if rn.err != nil {
		return 0, 0, rn.err
	}
	if id == 0 {
		return 0, 0, fmt.Errorf("%w: a tracked proposal needs a request ID other than 0", ErrProposalDropped)
	}
	defer rn.recoverStorage(&err)
	r := rn.raft
	m := Message{Type: MsgProp, From: r.id, Entries: ents, Context: encodePropID(id)}
	if err := r.Step(m); err != nil {
		return 0, 0, err
	}
	if r.state != StateLeader {
		return 0, 0, nil
	}
	return r.raftLog.lastIndex() - uint64(len(ents)) + 1, r.Term, nil
}

func encodePropID(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// isTrackedProp reports whether m is a proposal forwarded by another node
// that asks where it lands.
func (r *raft) isTrackedProp(m *Message) bool {
	return m.Type == MsgProp && m.From != r.id && len(m.Context) == propIDLen
}

// stepProposal steps a proposal. A tracked proposal from another node is
// answered: with where it was appended, or why it was not; it is not
// forwarded again.
func (r *raft) stepProposal(m Message) error {
	err := r.checkEntrySizes(m.Entries)
	if err != nil {
		r.logger.Warn("refused a proposal", zap.Uint64("from", m.From), zap.Error(err))
	}
	if !r.isTrackedProp(&m) {
		if err != nil {
			return err
		}
		return r.step(r, m)
	}
	if err == nil && r.state != StateLeader {
		err = fmt.Errorf("%w: node %d does not lead", ErrProposalDropped, r.id)
	}
	if err == nil {
		err = r.step(r, m)
	}
	resp := Message{To: m.From, Type: MsgPropResp, Context: m.Context}
	switch {
	case err == nil:
		resp.Index = r.raftLog.lastIndex() - uint64(len(m.Entries)) + 1
		resp.LogTerm = r.Term
	case errors.Is(err, ErrProposalTooLarge):
		resp.Reject, resp.RejectHint = true, propRejectTooLarge
	case r.state != StateLeader:
		resp.Reject, resp.RejectHint = true, propRejectNotLeader
	case errors.Is(err, ErrTransferInProgress):
		resp.Reject, resp.RejectHint = true, propRejectTransfer
	default:
		resp.Reject, resp.RejectHint = true, propRejectDropped
	}
	r.send(resp)
	return err
}

// handlePropResp hands the answer to a tracked proposal to the host. It is
// taken whatever the answer's term: where a leader appended an entry stays
// true after it lost office.
func (r *raft) handlePropResp(m Message) {
	p := ProposalPlacement{ID: binary.BigEndian.Uint64(m.Context), From: m.From}
	if m.Reject {
		switch m.RejectHint {
		case propRejectTransfer:
			p.Err = fmt.Errorf("%w (at node %d)", ErrTransferInProgress, m.From)
		case propRejectTooLarge:
			p.Err = fmt.Errorf("%w: node %d refused it", ErrProposalTooLarge, m.From)
		case propRejectNotLeader:
			p.Err = fmt.Errorf("%w: node %d does not lead", ErrProposalDropped, m.From)
		default:
			p.Err = fmt.Errorf("%w by node %d", ErrProposalDropped, m.From)
		}
	} else {
		p.Index, p.Term = m.Index, m.LogTerm
	}
	r.placements = append(r.placements, p)
}

// validatePropMessage checks the request ID of a proposal and the answer
// to a tracked one.
func validatePropMessage(m *Message) error {
	switch m.Type {
	case MsgProp:
		if n := len(m.Context); n != 0 && n != propIDLen {
			return fmt.Errorf("proposal context of %d bytes, want none or a %d-byte request ID", n, propIDLen)
		}
	case MsgPropResp:
		switch {
		case len(m.Context) != propIDLen:
			return fmt.Errorf("proposal answer context of %d bytes, want a %d-byte request ID", len(m.Context), propIDLen)
		case m.Reject && (m.RejectHint >= numPropRejectReasons || m.Index != 0 || m.LogTerm != 0):
			return fmt.Errorf("refusal with reason %d, index %d, log term %d", m.RejectHint, m.Index, m.LogTerm)
		case !m.Reject && (m.Index == 0 || m.Index > maxIndex):
			return fmt.Errorf("placement index %d not in [1, %d]", m.Index, uint64(maxIndex))
		case !m.Reject && (m.LogTerm == 0 || m.LogTerm != m.Term):
			return fmt.Errorf("placement term %d, want the message term %d", m.LogTerm, m.Term)
		case !m.Reject && m.RejectHint != 0:
			return fmt.Errorf("placement with reject hint %d", m.RejectHint)
		}
	}
	return nil
}
