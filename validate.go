package raft

import (
	"fmt"
)

// maxTerm is the highest term a message may raise a node to from any lower
// term. Real elections never come near it: a term close to it can only be
// corrupt or forged.
const maxTerm = 1 << 62

// termStepLimit bounds the terms beyond maxTerm: a message may carry a term at
// most termStepLimit above max(the receiver's term, maxTerm). Elections past
// maxTerm advance one term at a time, so a node pushed to maxTerm by a forged
// message can still campaign about 3·2^62 times, while a forged message can
// move a node only termStepLimit further and never to the end of the term
// space, where term+1 would overflow.
const termStepLimit = 1 << 32

// maxCampaignTerm is the highest term from which a node campaigns: its
// pre-vote and vote name the term after it.
const maxCampaignTerm = ^uint64(0) - 1

// maxIndex bounds the log indexes accepted from peers, for the same reason:
// no real log gets near it, and indexes beyond it let index+1 overflow.
const maxIndex = 1 << 62

// validateMessage checks a message that arrived from the network before it
// touches any state. It returns an error wrapping ErrInvalidMessage that
// says what is wrong.
func (r *raft) validateMessage(m *Message) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s from %d: %s", ErrInvalidMessage, m.Type, m.From, fmt.Sprintf(format, args...))
	}
	switch {
	case m.Type >= numMessageTypes:
		return invalid("unknown message type %d", uint8(m.Type))
	case m.From == None:
		return invalid("sender is 0")
	case m.From == r.id:
		return invalid("sender is this node")
	case m.To != r.id:
		return invalid("addressed to %d, not to this node (%d)", m.To, r.id)
	case m.Term > maxTerm && mutated(mutationTermCeiling):
		return invalid("term %d exceeds the maximum %d", m.Term, uint64(maxTerm))
	case m.Term > max(r.Term, maxTerm) && m.Term-max(r.Term, maxTerm) > termStepLimit:
		return invalid("term %d is more than %d beyond max(own term %d, %d)",
			m.Term, uint64(termStepLimit), r.Term, uint64(maxTerm))
	case m.Term == 0 && !m.Type.isForwarded():
		// Term 0 marks a local message, which skips the term checks.
		return invalid("term is 0")
	case m.Term != 0 && m.Type.isForwarded():
		return invalid("forwarded request carries term %d, want 0", m.Term)
	case m.LogTerm > m.Term:
		return invalid("log term %d exceeds message term %d", m.LogTerm, m.Term)
	}
	if err := validateEntries(m); err != nil {
		return invalid("%v", err)
	}
	if err := validatePropMessage(m); err != nil {
		return invalid("%v", err)
	}
	if m.Type == MsgSnap {
		switch s := m.Snapshot; {
		case s == nil || s.Metadata.Index == 0:
			return invalid("missing snapshot")
		case s.Metadata.Index > maxIndex:
			return invalid("snapshot index %d exceeds the maximum %d", s.Metadata.Index, uint64(maxIndex))
		case s.Metadata.Term == 0 || s.Metadata.Term > m.Term:
			return invalid("snapshot term %d not in [1, %d]", s.Metadata.Term, m.Term)
		case len(s.Metadata.ConfState.Voters) == 0:
			return invalid("snapshot has no voters")
		}
		if err := checkConfStateAddresses(&m.Snapshot.Metadata.ConfState); err != nil {
			return invalid("snapshot configuration: %v", err)
		}
	}
	return nil
}

// validateEntries checks the entries an append carries: consecutive indexes
// following m.Index, terms in [m.LogTerm, m.Term] and never decreasing.
// Proposals carry data only; their indexes and terms are assigned by the
// leader, so only their count and types matter.
func validateEntries(m *Message) error {
	switch m.Type {
	case MsgApp:
	case MsgProp:
		if len(m.Entries) == 0 {
			return fmt.Errorf("proposal without entries")
		}
		for i := range m.Entries {
			if t := m.Entries[i].Type; t > EntryConfChange {
				return fmt.Errorf("proposed entry %d has unknown type %d", i, uint8(t))
			}
		}
		return nil
	default:
		if len(m.Entries) > 0 && m.Type != MsgReadIndex && m.Type != MsgReadIndexResp {
			return fmt.Errorf("unexpected entries")
		}
		return nil
	}
	if m.Index > ^uint64(0)-uint64(len(m.Entries)) {
		return fmt.Errorf("index %d overflows with %d entries", m.Index, len(m.Entries))
	}
	if last := m.Index + uint64(len(m.Entries)); len(m.Entries) > 0 && last > maxIndex {
		return fmt.Errorf("last entry index %d exceeds the maximum %d", last, uint64(maxIndex))
	}
	prevTerm := max(m.LogTerm, 1) // entries start at term 1
	for i := range m.Entries {
		e := &m.Entries[i]
		if want := m.Index + 1 + uint64(i); e.Index != want {
			return fmt.Errorf("entry %d has index %d, want %d", i, e.Index, want)
		}
		if e.Term < prevTerm || e.Term > m.Term {
			return fmt.Errorf("entry %d has term %d, want a term in [%d, %d]", e.Index, e.Term, prevTerm, m.Term)
		}
		if e.Type > EntryConfChange {
			return fmt.Errorf("entry %d has unknown type %d", e.Index, uint8(e.Type))
		}
		prevTerm = e.Term
	}
	return nil
}
