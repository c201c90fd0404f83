package raft

import "fmt"

// None is the node ID that means "no node": no leader known, no vote cast.
const None uint64 = 0

// EntryType distinguishes the kinds of log entry.
type EntryType uint8

const (
	// EntryNormal carries application data (or nothing: a leader's empty
	// entry at the start of its term).
	EntryNormal EntryType = iota
	// EntryConfChange carries an encoded ConfChange.
	EntryConfChange
)

// String returns the entry type's name.
func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "EntryNormal"
	case EntryConfChange:
		return "EntryConfChange"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one record of the replicated log.
//
// Invariants: Index >= 1 and Term >= 1 for every entry in a log; within a
// log, indexes are consecutive and terms never decrease.
type Entry struct {
	Term  uint64    `msgpack:"t"`
	Index uint64    `msgpack:"i"`
	Type  EntryType `msgpack:"y"`
	Data  []byte    `msgpack:"d"`
}

// entryOverhead approximates the fixed encoded size of an entry besides its
// Data; it is what the size limits (MaxSizePerMsg, MaxInflightBytes,
// MaxUncommittedEntriesSize) charge for an empty entry.
const entryOverhead = 24

// size returns the number of bytes the entry counts for in size limits.
func (e *Entry) size() uint64 { return entryOverhead + uint64(len(e.Data)) }

// payloadSize returns the size of the entry's application data only.
func (e *Entry) payloadSize() uint64 { return uint64(len(e.Data)) }

// HardState is the part of a node's state that must be durable before the
// node sends any message that depends on it.
//
// Invariant: Commit never exceeds the durable last log index.
type HardState struct {
	Term   uint64 `msgpack:"t"`
	Vote   uint64 `msgpack:"v"`
	Commit uint64 `msgpack:"c"`
	// Recovering marks a node whose storage lost state it had promised to
	// keep (a damaged or truncated log, a wiped directory, a restored
	// backup). Until a leader has brought it up to date, such a node
	// neither votes nor campaigns, and the leader does not count it toward
	// any quorum. A storage that detects its own damage sets it; the node
	// clears it once it is repaired.
	Recovering bool `msgpack:"r,omitempty"`
	// RecoveryEpoch counts the recoveries this node started, a restart
	// while recovering included; the node keeps it. It makes every
	// recovery's token (Message.Recovery) new, so that a leader's message
	// ending an earlier recovery cannot end a later one.
	RecoveryEpoch uint64 `msgpack:"re,omitempty"`
}

// IsEmpty reports whether hs is the zero HardState.
func (hs HardState) IsEmpty() bool { return hs == HardState{} }

// ConfState is a cluster membership: the voters, the learners and, while a
// joint configuration is in force, the outgoing voters.
type ConfState struct {
	// Voters are the voters of the incoming (or only) configuration.
	Voters []uint64 `msgpack:"v"`
	// Learners receive the log but neither vote nor count for a quorum.
	Learners []uint64 `msgpack:"l"`
	// VotersOutgoing are the voters of the outgoing configuration of a joint
	// configuration; empty when the configuration is not joint.
	VotersOutgoing []uint64 `msgpack:"o"`
	// LearnersNext are voters of the outgoing configuration that become
	// learners when the joint configuration is left.
	LearnersNext []uint64 `msgpack:"n"`
	// AutoLeave reports whether the leader leaves the joint configuration
	// on its own once it is applied.
	AutoLeave bool `msgpack:"a"`
	// Incarnations maps members to the storage incarnation they were last
	// known by (see Config.Incarnation). A member whose storage was
	// replaced shows another incarnation, and is not counted as its old
	// self. Members without an entry have not been recorded yet.
	Incarnations map[uint64]uint64 `msgpack:"in,omitempty"`
	// Addresses maps members to the address their peers reach them at
	// (ConfChangeSingle.Address, Peer.Address): the configuration carries
	// them, so that every node, a later leader or a node that joins from
	// a snapshot included, can reach every member. Members added without
	// an address have no entry; a removed member's entry goes with it.
	Addresses map[uint64]string `msgpack:"ad,omitempty"`
}

// SnapshotMetadata says which log position a snapshot covers and which
// membership was in force there.
type SnapshotMetadata struct {
	Index     uint64    `msgpack:"i"`
	Term      uint64    `msgpack:"t"`
	ConfState ConfState `msgpack:"c"`
}

// Snapshot is a point-in-time image of the application state together with
// the log position it covers. The image is Data, in memory, or, for
// storage and transports that stream it, read through Source (then Data is
// empty); Source stays in the process: it is never encoded.
type Snapshot struct {
	Metadata SnapshotMetadata `msgpack:"m"`
	Data     []byte           `msgpack:"d"`
	Source   SnapshotSource   `msgpack:"-"`
}

// IsEmpty reports whether the snapshot covers no log position.
func (s *Snapshot) IsEmpty() bool { return s == nil || s.Metadata.Index == 0 }

// MessageType is the kind of a Message.
type MessageType uint8

const (
	// MsgHup is local: it tells a node to start an election.
	MsgHup MessageType = iota
	// MsgBeat is local: it tells a leader to send heartbeats.
	MsgBeat
	// MsgProp carries proposed entries to a leader (locally, or forwarded
	// by a follower).
	MsgProp
	// MsgApp replicates entries: Index/LogTerm name the entry preceding
	// Entries, Commit is the leader's commit index.
	MsgApp
	// MsgAppResp answers MsgApp. On success Index is the follower's last
	// matching index; on rejection Index is the rejected MsgApp's Index,
	// RejectHint the follower's last index and LogTerm the follower's
	// term at RejectHint. Commit is the follower's commit index.
	MsgAppResp
	// MsgVote asks for a vote; Index/LogTerm describe the candidate's log.
	MsgVote
	// MsgVoteResp answers MsgVote.
	MsgVoteResp
	// MsgHeartbeat asserts leadership and carries the commit index, capped
	// at what the receiver is known to hold. Index is the leader's tick
	// count when it was sent, which the answer echoes.
	MsgHeartbeat
	// MsgHeartbeatResp answers MsgHeartbeat; Commit is the follower's
	// commit index and Index echoes the heartbeat's. Reject says that the
	// follower's log ends (at RejectHint) before the heartbeat's commit
	// index: it lost entries it had acknowledged.
	MsgHeartbeatResp
	// MsgSnap carries a snapshot to a follower whose needed entries were
	// compacted away.
	MsgSnap
	// MsgUnreachable is local: the host reports a peer it could not reach.
	MsgUnreachable
	// MsgSnapStatus is local: the host reports whether sending a snapshot
	// succeeded (Reject set on failure).
	MsgSnapStatus
	// MsgPreVote asks whether the sender could win an election at Term
	// without the receiver changing its own term.
	MsgPreVote
	// MsgPreVoteResp answers MsgPreVote.
	MsgPreVoteResp
	// MsgTransferLeader is local or forwarded: it asks the leader to hand
	// leadership to the node whose ID is in Index.
	MsgTransferLeader
	// MsgTimeoutNow tells the transfer target to campaign at once.
	MsgTimeoutNow
	// MsgReadIndex asks the leader for a read index; Entries[0].Data holds
	// the request context.
	MsgReadIndex
	// MsgReadIndexResp returns the read index to a follower.
	MsgReadIndexResp
	// MsgCheckQuorum is local: a leader checks that a quorum is active.
	MsgCheckQuorum
	// MsgPropResp answers a forwarded MsgProp that carried a request ID in
	// Context (RawNode.ProposeTracked), echoing the ID: Index is the index
	// at which the leader appended the first entry and LogTerm their term;
	// Reject says that the entries were not appended, for the reason coded
	// in RejectHint.
	MsgPropResp

	numMessageTypes
)

// Valid reports whether t is a message type this version knows.
func (t MessageType) Valid() bool { return t < numMessageTypes }

var messageTypeNames = [...]string{
	MsgHup:            "MsgHup",
	MsgBeat:           "MsgBeat",
	MsgProp:           "MsgProp",
	MsgApp:            "MsgApp",
	MsgAppResp:        "MsgAppResp",
	MsgVote:           "MsgVote",
	MsgVoteResp:       "MsgVoteResp",
	MsgHeartbeat:      "MsgHeartbeat",
	MsgHeartbeatResp:  "MsgHeartbeatResp",
	MsgSnap:           "MsgSnap",
	MsgUnreachable:    "MsgUnreachable",
	MsgSnapStatus:     "MsgSnapStatus",
	MsgPreVote:        "MsgPreVote",
	MsgPreVoteResp:    "MsgPreVoteResp",
	MsgTransferLeader: "MsgTransferLeader",
	MsgTimeoutNow:     "MsgTimeoutNow",
	MsgReadIndex:      "MsgReadIndex",
	MsgReadIndexResp:  "MsgReadIndexResp",
	MsgCheckQuorum:    "MsgCheckQuorum",
	MsgPropResp:       "MsgPropResp",
}

// String returns the message type's name.
func (t MessageType) String() string {
	if t < numMessageTypes {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// isLocal reports whether the type may only be generated inside a node, never
// received from a peer.
func (t MessageType) isLocal() bool {
	switch t {
	case MsgHup, MsgBeat, MsgUnreachable, MsgSnapStatus, MsgCheckQuorum:
		return true
	}
	return false
}

// isForwarded reports whether the type is a request a follower forwards to
// its leader unchanged; such messages carry no term.
func (t MessageType) isForwarded() bool {
	return t == MsgProp || t == MsgReadIndex || t == MsgTransferLeader
}

// isResponse reports whether the type answers a request.
func (t MessageType) isResponse() bool {
	switch t {
	case MsgAppResp, MsgVoteResp, MsgHeartbeatResp, MsgPreVoteResp, MsgReadIndexResp:
		return true
	}
	return false
}

// voteResponseType returns the response type for a vote or pre-vote request.
func voteResponseType(t MessageType) MessageType {
	if t == MsgPreVote {
		return MsgPreVoteResp
	}
	return MsgVoteResp
}

// Message is the unit of communication between nodes and between the host
// and a node. Which fields are meaningful depends on Type.
type Message struct {
	Type       MessageType `msgpack:"y"`
	From       uint64      `msgpack:"f"`
	To         uint64      `msgpack:"o"`
	Term       uint64      `msgpack:"t"`
	LogTerm    uint64      `msgpack:"lt"`
	Index      uint64      `msgpack:"i"`
	Entries    []Entry     `msgpack:"e"`
	Commit     uint64      `msgpack:"c"`
	Reject     bool        `msgpack:"r"`
	RejectHint uint64      `msgpack:"rh"`
	Snapshot   *Snapshot   `msgpack:"s"`
	Context    []byte      `msgpack:"x"`
	// Incarnation is the sender's storage incarnation (Config.Incarnation),
	// and ToIncarnation the one the sender knows the recipient by; zero
	// when unknown.
	Incarnation   uint64 `msgpack:"in,omitempty"`
	ToIncarnation uint64 `msgpack:"ti,omitempty"`
	// Recovery, on any message but a leader's MsgApp, MsgHeartbeat or
	// MsgSnap, says that the sender recovers from a storage fault (see
	// HardState.Recovering) and must not be counted toward a quorum yet;
	// its value is a random token of that recovery, drawn anew whenever
	// the sender starts or restarts recovering. On a leader's MsgApp or
	// MsgHeartbeat it tells the recipient that the recovery with that
	// token is complete: a token from before a restart matches no current
	// recovery, so a late message cannot end one.
	Recovery uint64 `msgpack:"rc,omitempty"`
}

// StateType is a node's role.
type StateType uint8

const (
	// StateFollower follows a leader (or waits for one).
	StateFollower StateType = iota
	// StateCandidate campaigns for votes in its term.
	StateCandidate
	// StateLeader replicates its log to the others.
	StateLeader
	// StatePreCandidate asks for pre-votes before starting a real election.
	StatePreCandidate
)

// String returns the role's name.
// MarshalText encodes s as its name (as String), so that JSON shows
// "StateLeader" rather than a number.
func (s StateType) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a name that MarshalText wrote.
func (s *StateType) UnmarshalText(b []byte) error {
	for t := StateFollower; t <= StatePreCandidate; t++ {
		if t.String() == string(b) {
			*s = t
			return nil
		}
	}
	return fmt.Errorf("raft: unknown node state %q", b)
}

// String returns the state's name, such as "StateLeader".
func (s StateType) String() string {
	switch s {
	case StateFollower:
		return "StateFollower"
	case StateCandidate:
		return "StateCandidate"
	case StateLeader:
		return "StateLeader"
	case StatePreCandidate:
		return "StatePreCandidate"
	}
	return fmt.Sprintf("StateType(%d)", uint8(s))
}

// SoftState is volatile state that the host may want to observe but need not
// persist.
type SoftState struct {
	Lead      uint64
	RaftState StateType
}
