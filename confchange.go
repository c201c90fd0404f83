package raft

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// ConfChangeType is the kind of one membership change.
type ConfChangeType uint8

const (
	// ConfChangeAddNode adds a voter, or promotes a learner to voter.
	ConfChangeAddNode ConfChangeType = iota
	// ConfChangeAddLearnerNode adds a learner, or demotes a voter to learner.
	ConfChangeAddLearnerNode
	// ConfChangeRemoveNode removes a voter or learner.
	ConfChangeRemoveNode
	// ConfChangeRecordIncarnation records the storage incarnation of a
	// member (ConfChangeSingle.Incarnation) without changing its role. A
	// leader proposes it on its own once it hears a member's incarnation
	// (see Config.Incarnation); hosts apply it like any other change.
	ConfChangeRecordIncarnation
)

// String returns the change type's name.
func (t ConfChangeType) String() string {
	switch t {
	case ConfChangeAddNode:
		return "AddNode"
	case ConfChangeAddLearnerNode:
		return "AddLearnerNode"
	case ConfChangeRemoveNode:
		return "RemoveNode"
	case ConfChangeRecordIncarnation:
		return "RecordIncarnation"
	}
	return fmt.Sprintf("ConfChangeType(%d)", uint8(t))
}

// ConfChangeTransition says how a change moves between configurations.
type ConfChangeTransition uint8

const (
	// ConfChangeTransitionAuto makes a single-step change when at most one
	// voter changes, and otherwise enters a joint configuration that the
	// leader leaves on its own.
	ConfChangeTransitionAuto ConfChangeTransition = iota
	// ConfChangeTransitionJointImplicit always enters a joint configuration,
	// which the leader leaves on its own once it is applied.
	ConfChangeTransitionJointImplicit
	// ConfChangeTransitionJointExplicit enters a joint configuration that
	// stays until the application proposes an empty ConfChange to leave it.
	ConfChangeTransitionJointExplicit
)

// String returns the transition's name.
func (t ConfChangeTransition) String() string {
	switch t {
	case ConfChangeTransitionAuto:
		return "Auto"
	case ConfChangeTransitionJointImplicit:
		return "JointImplicit"
	case ConfChangeTransitionJointExplicit:
		return "JointExplicit"
	}
	return fmt.Sprintf("ConfChangeTransition(%d)", uint8(t))
}

// ConfChangeSingle is one change to one node.
type ConfChangeSingle struct {
	Type   ConfChangeType
	NodeID uint64
	// Incarnation, when not zero, is the storage incarnation of the node
	// (see ConfState.Incarnations): required by ConfChangeRecordIncarnation,
	// optional with an addition, ignored with a removal.
	Incarnation uint64
	// Address, when not empty, is where the node's peers reach it (its
	// form is up to the transport, such as host:port for package
	// tcptransport). It is allowed with an addition only: adding a node
	// records its address in the configuration (ConfState.Addresses), and
	// adding a member again with another address moves it there; an
	// addition without an address keeps the one recorded. See
	// MaxAddressSize for what an address may hold.
	Address string
}

// ConfChange is a membership change: one or several node changes applied
// together, or, with no changes, leaving a joint configuration.
type ConfChange struct {
	Transition ConfChangeTransition
	Changes    []ConfChangeSingle
	// Context is opaque to the library. A member's address belongs in
	// ConfChangeSingle.Address, which the configuration keeps.
	Context []byte
}

// LeaveJoint reports whether cc asks to leave a joint configuration.
func (cc ConfChange) LeaveJoint() bool { return len(cc.Changes) == 0 }

// String describes the change, e.g. "Auto [AddNode(4) RemoveNode(1)]".
func (cc ConfChange) String() string {
	if cc.LeaveJoint() {
		return "LeaveJoint"
	}
	s := cc.Transition.String() + " ["
	for i, c := range cc.Changes {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s(%d", c.Type, c.NodeID)
		if c.Incarnation != 0 {
			s += fmt.Sprintf("@%x", c.Incarnation)
		}
		if c.Address != "" {
			s += fmt.Sprintf(" at %q", c.Address)
		}
		s += ")"
	}
	return s + "]"
}

// confChangeVersion is the first byte of an encoded ConfChange;
// confChangeVersionIncarnations, which adds each change's incarnation, is
// written only when a change carries one, and confChangeVersionAddresses,
// which adds each change's incarnation and address (a uvarint length, then
// the bytes), only when a change carries an address, so that the encoding
// of every other change stays as it was. Every version is decoded.
const (
	confChangeVersion             = 1
	confChangeVersionIncarnations = 2
	confChangeVersionAddresses    = 3
)

// maxConfChanges bounds the changes one encoded ConfChange may carry.
const maxConfChanges = 1 << 12

// Marshal encodes cc for an EntryConfChange entry's Data.
func (cc ConfChange) Marshal() []byte {
	version := byte(confChangeVersion)
	addrs := 0
	for _, c := range cc.Changes {
		if c.Incarnation != 0 {
			version = max(version, confChangeVersionIncarnations)
		}
		if c.Address != "" {
			version = confChangeVersionAddresses
			addrs += len(c.Address)
		}
	}
	b := make([]byte, 0, 4+len(cc.Changes)*4+addrs+len(cc.Context))
	b = append(b, version, byte(cc.Transition))
	b = binary.AppendUvarint(b, uint64(len(cc.Changes)))
	for _, c := range cc.Changes {
		b = append(b, byte(c.Type))
		b = binary.AppendUvarint(b, c.NodeID)
		if version >= confChangeVersionIncarnations {
			b = binary.AppendUvarint(b, c.Incarnation)
		}
		if version >= confChangeVersionAddresses {
			b = binary.AppendUvarint(b, uint64(len(c.Address)))
			b = append(b, c.Address...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(cc.Context)))
	return append(b, cc.Context...)
}

// Unmarshal decodes data written by Marshal, by this version or an earlier
// one. It returns an error wrapping ErrInvalidConfChange for anything else
// (an address that is not valid included: see MaxAddressSize), and never
// allocates more than data's size implies.
func (cc *ConfChange) Unmarshal(data []byte) error {
	bad := func(what string) error {
		return fmt.Errorf("%w: cannot decode: %s", ErrInvalidConfChange, what)
	}
	if len(data) < 2 || data[0] < confChangeVersion || data[0] > confChangeVersionAddresses {
		return bad("missing or unknown version")
	}
	withIncarnations := data[0] >= confChangeVersionIncarnations
	withAddresses := data[0] >= confChangeVersionAddresses
	out := ConfChange{Transition: ConfChangeTransition(data[1])}
	if out.Transition > ConfChangeTransitionJointExplicit {
		return bad(fmt.Sprintf("unknown transition %d", data[1]))
	}
	rest := data[2:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > maxConfChanges || n > uint64(len(rest)) {
		return bad("change count")
	}
	rest = rest[k:]
	out.Changes = make([]ConfChangeSingle, 0, n)
	for range n {
		if len(rest) < 2 {
			return bad("truncated change")
		}
		t := ConfChangeType(rest[0])
		if t > ConfChangeRecordIncarnation {
			return bad(fmt.Sprintf("unknown change type %d", rest[0]))
		}
		id, k := binary.Uvarint(rest[1:])
		if k <= 0 {
			return bad("node ID")
		}
		rest = rest[1+k:]
		var inc uint64
		if withIncarnations {
			if inc, k = binary.Uvarint(rest); k <= 0 {
				return bad("incarnation")
			}
			rest = rest[k:]
		}
		var addr string
		if withAddresses {
			n, k := binary.Uvarint(rest)
			if k <= 0 || n > uint64(len(rest)-k) {
				return bad("address length")
			}
			addr = string(rest[k : k+int(n)])
			rest = rest[k+int(n):]
			if err := checkAddress(addr); err != nil {
				return bad(fmt.Sprintf("node %d: %v", id, err))
			}
		}
		out.Changes = append(out.Changes, ConfChangeSingle{Type: t, NodeID: id, Incarnation: inc, Address: addr})
	}
	ctxLen, k := binary.Uvarint(rest)
	if k <= 0 || ctxLen != uint64(len(rest)-k) {
		return bad("context length")
	}
	if ctxLen > 0 {
		out.Context = slices.Clone(rest[k:])
	}
	*cc = out
	return nil
}

// nodeSet is a small set of node IDs.
type nodeSet map[uint64]struct{}

func newNodeSet(ids []uint64) nodeSet {
	s := make(nodeSet, len(ids))
	for _, id := range ids {
		s[id] = struct{}{}
	}
	return s
}

func (s nodeSet) has(id uint64) bool { _, ok := s[id]; return ok }

func (s nodeSet) sorted() []uint64 {
	if len(s) == 0 {
		return nil
	}
	ids := make([]uint64, 0, len(s))
	for id := range s {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// nextConfState computes the configuration that results from applying cc to
// cs, or an error wrapping ErrInvalidConfChange if cc is not allowed there.
// It is a pure function: the leader uses it to refuse a change at propose
// time, and every node uses it to apply committed changes identically.
func nextConfState(cs ConfState, cc ConfChange) (ConfState, error) {
	joint := len(cs.VotersOutgoing) > 0
	invalid := func(format string, args ...any) (ConfState, error) {
		return cs, fmt.Errorf("%w: %s: %s", ErrInvalidConfChange, cc, fmt.Sprintf(format, args...))
	}
	if cc.Transition > ConfChangeTransitionJointExplicit {
		return invalid("unknown transition")
	}
	if cc.LeaveJoint() {
		if !joint {
			return invalid("not in a joint configuration")
		}
		learners := newNodeSet(cs.Learners)
		for _, id := range cs.LearnersNext {
			learners[id] = struct{}{}
		}
		next := ConfState{Voters: slices.Clone(cs.Voters), Learners: learners.sorted(), Incarnations: maps.Clone(cs.Incarnations)}
		next.Addresses = memberAddresses(cs.Addresses, next)
		return next, nil
	}
	if joint {
		return invalid("a joint configuration must be left before another change")
	}
	voters, learners := newNodeSet(cs.Voters), newNodeSet(cs.Learners)
	incarnations := maps.Clone(cs.Incarnations)
	addresses := maps.Clone(cs.Addresses)
	setIncarnation := func(id, inc uint64) {
		if incarnations == nil {
			incarnations = map[uint64]uint64{}
		}
		incarnations[id] = inc
	}
	outgoing := newNodeSet(nil)
	enterJoint := cc.Transition != ConfChangeTransitionAuto
	if !enterJoint && countVoterChanges(cs, cc) > 1 {
		enterJoint = true
	}
	if enterJoint {
		outgoing = newNodeSet(cs.Voters)
	}
	learnersNext := newNodeSet(nil)
	for _, c := range cc.Changes {
		if c.NodeID == None {
			return invalid("node ID 0")
		}
		if c.Address != "" {
			if c.Type != ConfChangeAddNode && c.Type != ConfChangeAddLearnerNode {
				return invalid("an address with %s of node %d", c.Type, c.NodeID)
			}
			if err := checkAddress(c.Address); err != nil {
				return invalid("node %d: %v", c.NodeID, err)
			}
			if addresses == nil {
				addresses = map[uint64]string{}
			}
			addresses[c.NodeID] = c.Address
		}
		switch c.Type {
		case ConfChangeAddNode, ConfChangeAddLearnerNode:
			if c.Incarnation != 0 {
				setIncarnation(c.NodeID, c.Incarnation)
			}
		case ConfChangeRemoveNode:
			delete(incarnations, c.NodeID)
		}
		switch c.Type {
		case ConfChangeAddNode:
			voters[c.NodeID] = struct{}{}
			delete(learners, c.NodeID)
			delete(learnersNext, c.NodeID)
		case ConfChangeAddLearnerNode:
			delete(voters, c.NodeID)
			if outgoing.has(c.NodeID) {
				// Still a voter of the outgoing half: a learner only once
				// the joint configuration is left.
				learnersNext[c.NodeID] = struct{}{}
			} else {
				learners[c.NodeID] = struct{}{}
			}
		case ConfChangeRemoveNode:
			delete(voters, c.NodeID)
			delete(learners, c.NodeID)
			delete(learnersNext, c.NodeID)
		case ConfChangeRecordIncarnation:
			if c.Incarnation == 0 {
				return invalid("no incarnation to record for node %d", c.NodeID)
			}
			if !voters.has(c.NodeID) && !learners.has(c.NodeID) && !outgoing.has(c.NodeID) && !learnersNext.has(c.NodeID) {
				return invalid("node %d is not a member", c.NodeID)
			}
			setIncarnation(c.NodeID, c.Incarnation)
		default:
			return invalid("unknown change type %d", uint8(c.Type))
		}
	}
	if len(voters) == 0 {
		return invalid("it would remove every voter")
	}
	if len(incarnations) == 0 {
		incarnations = nil
	}
	next := ConfState{Voters: voters.sorted(), Learners: learners.sorted(), Incarnations: incarnations}
	if enterJoint {
		next.VotersOutgoing = outgoing.sorted()
		next.LearnersNext = learnersNext.sorted()
		next.AutoLeave = cc.Transition != ConfChangeTransitionJointExplicit
	}
	next.Addresses = memberAddresses(addresses, next)
	return next, nil
}

// memberAddresses returns the entries of addrs that belong to members of
// cs, in a new map (nil if none): a removed node's address leaves the
// configuration with it, once it votes in no half of a joint configuration
// either.
func memberAddresses(addrs map[uint64]string, cs ConfState) map[uint64]string {
	var out map[uint64]string
	for _, ids := range [][]uint64{cs.Voters, cs.VotersOutgoing, cs.Learners, cs.LearnersNext} {
		for _, id := range ids {
			if a, ok := addrs[id]; ok && a != "" {
				if out == nil {
					out = map[uint64]string{}
				}
				out[id] = a
			}
		}
	}
	return out
}

// countVoterChanges returns how many nodes' voting rights cc changes.
func countVoterChanges(cs ConfState, cc ConfChange) int {
	before := newNodeSet(cs.Voters)
	after := newNodeSet(cs.Voters)
	for _, c := range cc.Changes {
		switch c.Type {
		case ConfChangeAddNode:
			after[c.NodeID] = struct{}{}
		case ConfChangeRecordIncarnation:
		default:
			delete(after, c.NodeID)
		}
	}
	n := 0
	for id := range before {
		if !after.has(id) {
			n++
		}
	}
	for id := range after {
		if !before.has(id) {
			n++
		}
	}
	return n
}
