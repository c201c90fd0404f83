package raft

import (
	"fmt"
	"slices"

	"go.uber.org/zap"
)

// Ready is a batch of work the host must do for a node: state to persist,
// messages to send and entries to apply. The host handles it as doc.go
// describes, then calls RawNode.Advance. Every slice in a Ready belongs to
// the host until Advance; after Advance the node may reuse the Messages
// slices, so the host must not keep them.
type Ready struct {
	// SoftState is the new leader and role, or nil if unchanged.
	*SoftState

	// HardState must be persisted (after Entries) before any of
	// MessagesAfterPersist is sent. It is empty if unchanged.
	HardState HardState

	// Entries must be appended to durable storage, replacing any stored
	// entries at the same or higher indexes.
	Entries []Entry

	// Snapshot, if not empty, must be persisted (before Entries) and the
	// application state restored from it.
	Snapshot Snapshot

	// CommittedEntries are to be applied to the state machine, in order,
	// after Entries are durable. They may include entries from Entries.
	CommittedEntries []Entry

	// Messages may be sent at once, even before Entries and HardState are
	// durable: they are a leader's appends and heartbeats, whose safety
	// does not rest on the sender's own disk.
	Messages []Message

	// MessagesAfterPersist may be sent only once Snapshot, Entries and
	// HardState of this Ready are durable: votes, vote requests and append
	// acknowledgements promise state that must survive a crash.
	MessagesAfterPersist []Message

	// MustSync reports whether the writes must be synced to stable storage
	// (fsync) before MessagesAfterPersist are sent: the term, the vote or
	// the log changed. A commit index change alone need not be synced.
	MustSync bool
}

// HasUpdates reports whether the Ready carries anything.
func (rd *Ready) HasUpdates() bool {
	return rd.SoftState != nil || !rd.HardState.IsEmpty() || !rd.Snapshot.IsEmpty() ||
		len(rd.Entries) > 0 || len(rd.CommittedEntries) > 0 ||
		len(rd.Messages) > 0 || len(rd.MessagesAfterPersist) > 0
}

// RawNode drives one node's state machine. It does no I/O, starts no
// goroutine and reads no clock: the host feeds it ticks and messages and
// carries out its Ready batches. It is not safe for concurrent use.
type RawNode struct {
	raft       *raft
	prevSoftSt SoftState
	prevHardSt HardState
}

// NewRawNode builds a node from c. It validates c and the state in
// c.Storage and returns an error (never panics) if either is unusable. A
// node with empty storage has no configuration until Bootstrap is called or
// a snapshot arrives from a leader.
func NewRawNode(c Config) (*RawNode, error) {
	r, err := newRaft(c)
	if err != nil {
		return nil, err
	}
	return &RawNode{raft: r, prevSoftSt: r.softState(), prevHardSt: r.hardState()}, nil
}

// Bootstrap initialises a new cluster's first configuration with the given
// voters. The storage must be empty. The configuration reaches the host as
// the Snapshot of the next Ready (at index 1, term 1, with no data), to be
// persisted like any snapshot, so every node bootstrapped with the same
// voters starts from the same log position.
func (rn *RawNode) Bootstrap(voters []uint64) error {
	r := rn.raft
	if r.raftLog.lastIndex() != 0 || !rn.prevHardSt.IsEmpty() {
		return ErrAlreadyBootstrapped
	}
	if len(voters) == 0 {
		return fmt.Errorf("%w: Bootstrap needs at least one voter", ErrInvalidConfig)
	}
	if slices.Contains(voters, None) {
		return fmt.Errorf("%w: Bootstrap voters %v include ID 0", ErrInvalidConfig, voters)
	}
	snap := Snapshot{Metadata: SnapshotMetadata{
		Index:     1,
		Term:      1,
		ConfState: ConfState{Voters: sortedIDs(voters)},
	}}
	r.raftLog.restore(snap)
	r.trk.applyConfState(snap.Metadata.ConfState, 2)
	r.becomeFollower(1, None)
	return nil
}

// Tick advances the node's logical clock by one tick. Election and heartbeat
// timeouts are counted in ticks.
func (rn *RawNode) Tick() { rn.raft.tick() }

// Campaign makes the node start an election now (with a pre-vote first
// unless disabled).
func (rn *RawNode) Campaign() error {
	return rn.raft.Step(Message{Type: MsgHup, From: rn.raft.id})
}

// Propose proposes data to be appended to the log. A follower forwards it to
// the leader. It returns ErrProposalDropped if the proposal was not accepted
// (no known leader, forwarding disabled, uncommitted tail full). A nil error
// does not mean the proposal will commit: a leader change can still lose it.
func (rn *RawNode) Propose(data []byte) error {
	return rn.raft.Step(Message{
		Type:    MsgProp,
		From:    rn.raft.id,
		Entries: []Entry{{Data: data}},
	})
}

// Step feeds a message that arrived from a peer. It returns
// ErrStepLocalMsg for message types only a node generates itself,
// ErrStepPeerNotFound for a response from a node outside the configuration,
// and an error wrapping ErrInvalidMessage for a message that fails
// validation. Rejected messages change nothing.
func (rn *RawNode) Step(m Message) error {
	if m.Type.isLocal() {
		return ErrStepLocalMsg
	}
	r := rn.raft
	if err := r.validateMessage(&m); err != nil {
		r.logger.Warn("dropped an invalid message", zap.Error(err))
		return err
	}
	if m.Type.isResponse() && r.trk.progress[m.From] == nil {
		return ErrStepPeerNotFound
	}
	return r.Step(m)
}

// ReportUnreachable tells the node that the last message to id could not be
// delivered; a leader then probes that peer again instead of streaming.
func (rn *RawNode) ReportUnreachable(id uint64) {
	_ = rn.raft.Step(Message{Type: MsgUnreachable, From: id})
}

// SnapshotStatus is the outcome of sending a snapshot, for ReportSnapshot.
type SnapshotStatus bool

const (
	// SnapshotFinish means the snapshot reached the peer.
	SnapshotFinish SnapshotStatus = true
	// SnapshotFailure means the snapshot could not be sent.
	SnapshotFailure SnapshotStatus = false
)

// ReportSnapshot tells the node whether the snapshot it asked to send to id
// arrived.
func (rn *RawNode) ReportSnapshot(id uint64, status SnapshotStatus) {
	_ = rn.raft.Step(Message{Type: MsgSnapStatus, From: id, Reject: status == SnapshotFailure})
}

// HasReady reports whether Ready would return anything.
func (rn *RawNode) HasReady() bool {
	r := rn.raft
	if r.softState() != rn.prevSoftSt {
		return true
	}
	if hs := r.hardState(); !hs.IsEmpty() && hs != rn.prevHardSt {
		return true
	}
	return r.raftLog.nextUnstableSnapshot() != nil ||
		len(r.msgs) > 0 || len(r.msgsAfterPersist) > 0 ||
		r.raftLog.hasNextUnstableEntries() || r.raftLog.hasNextCommittedEnts(true)
}

// Ready returns the work accumulated since the last Ready. What it hands out
// is never handed out again. The host must handle it and call Advance
// before calling Ready again.
func (rn *RawNode) Ready() Ready {
	r := rn.raft
	rd := Ready{
		Entries:              r.raftLog.nextUnstableEntries(),
		CommittedEntries:     r.raftLog.nextCommittedEnts(true),
		Messages:             r.msgs,
		MessagesAfterPersist: r.msgsAfterPersist,
	}
	if softSt := r.softState(); softSt != rn.prevSoftSt {
		// A copy declared here, so that only a changed soft state is
		// allocated, not every Ready's.
		changed := softSt
		rd.SoftState = &changed
		rn.prevSoftSt = softSt
	}
	if hardSt := r.hardState(); hardSt != rn.prevHardSt {
		rd.HardState = hardSt
		rd.MustSync = hardSt.Term != rn.prevHardSt.Term || hardSt.Vote != rn.prevHardSt.Vote
		rn.prevHardSt = hardSt
	}
	if s := r.raftLog.nextUnstableSnapshot(); s != nil {
		rd.Snapshot = *s
		rd.MustSync = true
		r.raftLog.acceptApplying(s.Metadata.Index)
	}
	if len(rd.Entries) > 0 {
		rd.MustSync = true
	}
	r.raftLog.unstable.acceptInProgress()
	if n := len(rd.CommittedEntries); n > 0 {
		r.raftLog.acceptApplying(rd.CommittedEntries[n-1].Index)
		r.reduceUncommittedSize(payloadsSize(rd.CommittedEntries))
	}
	r.msgs = nil
	r.msgsAfterPersist = nil
	return rd
}

// Advance tells the node that the host has handled rd: persisted its
// snapshot, entries and hard state, sent its messages and applied its
// committed entries. A leader counts its own log only from here on.
func (rn *RawNode) Advance(rd Ready) {
	r := rn.raft
	if !rd.Snapshot.IsEmpty() {
		r.raftLog.stableSnapTo(rd.Snapshot.Metadata.Index)
		r.raftLog.appliedTo(rd.Snapshot.Metadata.Index)
	}
	if n := len(rd.Entries); n > 0 {
		last := rd.Entries[n-1]
		r.onPersisted(last.Index, last.Term)
	}
	if n := len(rd.CommittedEntries); n > 0 {
		r.raftLog.appliedTo(rd.CommittedEntries[n-1].Index)
	}
	// Reuse the message buffers: the host no longer holds them.
	if len(r.msgs) == 0 && cap(rd.Messages) > 0 {
		clear(rd.Messages)
		r.msgs = rd.Messages[:0]
	}
	if len(r.msgsAfterPersist) == 0 && cap(rd.MessagesAfterPersist) > 0 {
		clear(rd.MessagesAfterPersist)
		r.msgsAfterPersist = rd.MessagesAfterPersist[:0]
	}
}
