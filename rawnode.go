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

	// ReadStates answer ReadIndex calls: serve each read once the state
	// machine has applied its Index.
	ReadStates []ReadState

	// ProposalPlacements answer proposals this node forwarded with
	// RawNode.ProposeTracked.
	ProposalPlacements []ProposalPlacement

	// MustSync reports whether the writes must be synced to stable storage
	// (fsync) before MessagesAfterPersist are sent: the term, the vote, the
	// recovery state or the log changed. A commit index change alone need
	// not be synced.
	MustSync bool
}

// HasUpdates reports whether the Ready carries anything.
func (rd *Ready) HasUpdates() bool {
	return rd.SoftState != nil || !rd.HardState.IsEmpty() || !rd.Snapshot.IsEmpty() ||
		len(rd.Entries) > 0 || len(rd.CommittedEntries) > 0 ||
		len(rd.Messages) > 0 || len(rd.MessagesAfterPersist) > 0 || len(rd.ReadStates) > 0 ||
		len(rd.ProposalPlacements) > 0
}

// RawNode drives one node's state machine. It does no I/O, starts no
// goroutine and reads no clock: the host feeds it ticks and messages and
// carries out its Ready batches. It is not safe for concurrent use.
type RawNode struct {
	raft       *raft
	prevSoftSt SoftState
	prevHardSt HardState
	// confApply notices committed configuration changes the host never
	// passes to ApplyConfChange.
	confApply confApplyTracker
	// err is set once the storage failed (it wraps ErrStorage); from then
	// on the node does nothing and every call returns it.
	err error
}

// Err returns the error that stopped the node, wrapping ErrStorage, or nil
// while it runs. Calls without an error result (Tick, Ready, Advance…) do
// nothing once the node has stopped; check Err after them, or watch the
// errors of Step and Propose.
func (rn *RawNode) Err() error { return rn.err }

// recoverStorage turns a storage failure raised inside the node into a
// stopped node and an error; any other panic (a bug) goes on.
func (rn *RawNode) recoverStorage(err *error) {
	r := recover()
	if r == nil {
		return
	}
	se, ok := r.(storageError)
	if !ok {
		panic(r)
	}
	rn.err = se.err
	if err != nil {
		*err = se.err
	}
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
	return &RawNode{raft: r, prevSoftSt: r.softState(), prevHardSt: r.storedHardState}, nil
}

// Bootstrap initialises a new cluster's first configuration with the given
// voters. The storage must be empty. The configuration reaches the host as
// the Snapshot of the next Ready (at index 1, term 1, with no data), to be
// persisted like any snapshot, so every node bootstrapped with the same
// voters starts from the same log position. BootstrapPeers also records
// the voters' addresses.
func (rn *RawNode) Bootstrap(voters []uint64) error { return rn.bootstrap(voters, nil) }

// bootstrap is Bootstrap, recording addrs (checked by the caller) in the
// first configuration.
func (rn *RawNode) bootstrap(voters []uint64, addrs map[uint64]string) (err error) {
	if rn.err != nil {
		return rn.err
	}
	defer rn.recoverStorage(&err)
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
	if !slices.Contains(voters, r.id) {
		return fmt.Errorf("%w: Bootstrap voters %v do not include this node (ID %d); a node that joins an existing cluster starts without Bootstrap and learns the configuration from the leader", ErrInvalidConfig, voters, r.id)
	}
	snap := Snapshot{Metadata: SnapshotMetadata{
		Index:     1,
		Term:      1,
		ConfState: ConfState{Voters: sortedIDs(voters), Addresses: addrs},
	}}
	r.raftLog.restore(snap)
	r.trk.applyConfState(snap.Metadata.ConfState, 2)
	r.becomeFollower(1, None)
	return nil
}

// Tick advances the node's logical clock by one tick. Election and heartbeat
// timeouts are counted in ticks. With ReadOnlyLeaseBased, a leader must
// be ticked for the time that elapsed even while its process was not
// running (see ReadOnlyLeaseBased).
func (rn *RawNode) Tick() {
	if rn.err != nil {
		return
	}
	defer rn.recoverStorage(nil)
	rn.raft.tick()
	rn.raft.checkInvariants()
}

// Campaign makes the node start an election now (with a pre-vote first
// unless disabled); on the leader it does nothing. It returns an error
// wrapping ErrCannotCampaign, saying why, when no election can start: the
// node has no configuration yet, its bootstrap or other snapshot is not yet
// persisted and applied (handle the pending Ready first), it is not a
// voter, it recovers from a storage fault, or committed configuration
// changes are not yet applied.
func (rn *RawNode) Campaign() (err error) {
	if rn.err != nil {
		return rn.err
	}
	defer rn.recoverStorage(&err)
	if reason := rn.raft.campaignRefusal(); reason != "" {
		return fmt.Errorf("%w: %s", ErrCannotCampaign, reason)
	}
	return rn.raft.Step(Message{Type: MsgHup, From: rn.raft.id})
}

// Propose proposes data to be appended to the log. A follower forwards it to
// the leader. It returns ErrProposalDropped if the proposal was not accepted
// (no known leader, forwarding disabled, uncommitted tail full). A nil error
// does not mean the proposal will commit: a leader change can still lose it.
func (rn *RawNode) Propose(data []byte) (err error) {
	if rn.err != nil {
		return rn.err
	}
	defer rn.recoverStorage(&err)
	return rn.raft.Step(Message{
		Type:    MsgProp,
		From:    rn.raft.id,
		Entries: []Entry{{Data: data}},
	})
}

// ProposeEntries proposes ents, normal entries and at most one
// configuration-change entry, as one batch appended in order; their Term
// and Index fields are ignored, and the core keeps the slice. On the leader
// the entries are appended at once: entry i gets index first+i in term
// term. A follower forwards them to the leader and returns first = 0, since
// where they land is not known here. Errors are those of Propose and
// ProposeConfChange; on an error nothing was appended.
func (rn *RawNode) ProposeEntries(ents []Entry) (first, term uint64, err error) {
	if rn.err != nil {
		return 0, 0, rn.err
	}
	defer rn.recoverStorage(&err)
	r := rn.raft
	if err := r.Step(Message{Type: MsgProp, From: r.id, Entries: ents}); err != nil {
		return 0, 0, err
	}
	if r.state != StateLeader {
		return 0, 0, nil
	}
	return r.raftLog.lastIndex() - uint64(len(ents)) + 1, r.Term, nil
}

// RecordMissedTicks tells the core that n ticks' worth of time passed
// without Tick being called: the host's process was paused (SIGSTOP, a
// virtual machine's stolen CPU, a long GC pause) or its loop was busy. A
// host that measures elapsed time calls it before its next Tick with the
// ticks it skipped. They count against the leader lease alone, as if
// ticked, so that a leader that slept through a lease serves no lease read
// from before the pause; they fire no election or heartbeat timeout, since
// a burst of timeouts before the host has handled the messages that arrived
// meanwhile would start needless elections.
func (rn *RawNode) RecordMissedTicks(n uint64) { rn.raft.missedTicks(n) }

// Step feeds a message that arrived from a peer. It returns
// ErrStepLocalMsg for message types only a node generates itself,
// ErrStepPeerNotFound for a response from a node outside the configuration,
// and an error wrapping ErrInvalidMessage for a message that fails
// validation. Rejected messages change nothing, but for one: a leader
// answers an append acknowledgement from a node that a change it applied
// removed with the commit index, so that the node learns of its removal.
func (rn *RawNode) Step(m Message) (err error) {
	if rn.err != nil {
		return rn.err
	}
	defer rn.recoverStorage(&err)
	r := rn.raft
	if m.Type.isLocal() {
		r.logger.Warn("dropped a local message type stepped from outside",
			zap.Stringer("type", m.Type), zap.Uint64("from", m.From))
		return ErrStepLocalMsg
	}
	if err := r.validateMessage(&m); err != nil {
		r.logger.Warn("dropped an invalid message", zap.Error(err))
		return err
	}
	if m.Type.isResponse() && r.trk.progress[m.From] == nil {
		r.logger.Warn("dropped a response from a node outside the configuration",
			zap.Stringer("type", m.Type), zap.Uint64("from", m.From), zap.Uint64("msg_term", m.Term))
		r.tellRemovedNodeTheCommit(m)
		return ErrStepPeerNotFound
	}
	err = r.Step(m)
	r.checkInvariants()
	return err
}

// ProposeConfChange proposes a membership change. On a leader it is refused
// at once with ErrPendingConfChange while an earlier change is not applied,
// with an error wrapping ErrProposalDropped before the leader has committed
// an entry of its term, and with ErrInvalidConfChange if the current
// configuration does not allow it. The change takes effect on each node
// when the host applies its entry and calls ApplyConfChange.
func (rn *RawNode) ProposeConfChange(cc ConfChange) (err error) {
	if rn.err != nil {
		return rn.err
	}
	defer rn.recoverStorage(&err)
	return rn.raft.Step(Message{
		Type:    MsgProp,
		From:    rn.raft.id,
		Entries: []Entry{{Type: EntryConfChange, Data: cc.Marshal()}},
	})
}

// ApplyConfChange applies a committed configuration change; the host calls
// it for every EntryConfChange entry it applies, in log order, decoding the
// entry's Data with ConfChange.Unmarshal. It returns the configuration now
// in force, which the host should store with its next snapshot. A change
// that is not valid against the current configuration is refused with an
// error wrapping ErrInvalidConfChange and changes nothing: every node
// refuses it alike, so the host can report the refusal to the proposer.
func (rn *RawNode) ApplyConfChange(cc ConfChange) (cs ConfState, err error) {
	if rn.err != nil {
		return rn.raft.trk.confState(), rn.err
	}
	defer rn.recoverStorage(&err)
	rn.confApply.applied()
	cs, err = rn.raft.applyConfChange(cc)
	rn.raft.checkInvariants()
	return cs, err
}

// ReadIndex requests a linearizable read. rctx identifies the request (it
// should be unique, such as a counter or random bytes); the answer arrives
// as a ReadState with the same RequestCtx in a later Ready. A read that
// cannot be served (no leader, leadership lost) gets no answer: the host
// times it out and retries. A follower forwards the request to the leader.
func (rn *RawNode) ReadIndex(rctx []byte) {
	if rn.err != nil {
		return
	}
	defer rn.recoverStorage(nil)
	_ = rn.raft.Step(Message{Type: MsgReadIndex, From: rn.raft.id, Entries: []Entry{{Data: rctx}}})
}

// TransferLeader asks the leader to hand leadership to the voter to: the
// leader brings it up to date and then tells it to campaign at once.
// Proposals fail with ErrTransferInProgress meanwhile; if to has not taken
// over within an election timeout, the transfer is abandoned. On a follower
// the request is forwarded to the leader. It returns ErrInvalidTransfer for
// a target that is not a voter or already leads, and ErrNotLeader if no
// leader is known.
func (rn *RawNode) TransferLeader(to uint64) (err error) {
	if rn.err != nil {
		return rn.err
	}
	defer rn.recoverStorage(&err)
	return rn.raft.Step(Message{Type: MsgTransferLeader, From: rn.raft.id, Index: to})
}

// ReportUnreachable tells the node that the last message to id could not be
// delivered; a leader then probes that peer again instead of streaming.
func (rn *RawNode) ReportUnreachable(id uint64) {
	if rn.err != nil {
		return
	}
	defer rn.recoverStorage(nil)
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
	if rn.err != nil {
		return
	}
	defer rn.recoverStorage(nil)
	_ = rn.raft.Step(Message{Type: MsgSnapStatus, From: id, Reject: status == SnapshotFailure})
}

// HasReady reports whether Ready would return anything.
func (rn *RawNode) HasReady() (has bool) {
	if rn.err != nil {
		return false
	}
	defer rn.recoverStorage(nil)
	r := rn.raft
	if r.softState() != rn.prevSoftSt {
		return true
	}
	if hs := r.hardState(); !hs.IsEmpty() && hs != rn.prevHardSt {
		return true
	}
	return r.raftLog.nextUnstableSnapshot() != nil ||
		len(r.msgs) > 0 || len(r.msgsAfterPersist) > 0 ||
		len(r.readStates) > 0 || len(r.placements) > 0 || (r.state == StateLeader && r.readOnly.roundPending) ||
		r.raftLog.hasNextUnstableEntries() || r.raftLog.hasNextCommittedEnts(!r.pipelined)
}

// Ready returns the work accumulated since the last Ready. What it hands out
// is never handed out again. The host must handle it and call Advance
// before calling Ready again.
func (rn *RawNode) Ready() (rd Ready) {
	if rn.err != nil {
		return Ready{}
	}
	defer func() {
		if rn.err != nil {
			rd = Ready{}
		}
	}()
	defer rn.recoverStorage(nil)
	r := rn.raft
	r.flushReadRound()
	rd = Ready{
		ReadStates:           r.readStates,
		ProposalPlacements:   r.placements,
		Entries:              r.raftLog.nextUnstableEntries(),
		CommittedEntries:     r.raftLog.nextCommittedEnts(!r.pipelined),
		Messages:             r.msgs,
		MessagesAfterPersist: r.msgsAfterPersist,
	}
	if softSt := r.softState(); softSt != rn.prevSoftSt {
		// A copy declared here, so that only a changed soft state is
		// allocated, not every Ready's.
		changed := softSt
		rd.SoftState = &changed
		if softSt.Lead != rn.prevSoftSt.Lead && softSt.Lead != None {
			// The one line an operator needs about elections.
			r.logger.Info("leader changed", zap.Uint64("leader", softSt.Lead), zap.Uint64("term", r.Term),
				zap.Stringer("state", softSt.RaftState))
		}
		rn.prevSoftSt = softSt
	}
	if hardSt := r.hardState(); hardSt != rn.prevHardSt {
		rd.HardState = hardSt
		rd.MustSync = hardSt.Term != rn.prevHardSt.Term || hardSt.Vote != rn.prevHardSt.Vote ||
			hardSt.Recovering != rn.prevHardSt.Recovering || hardSt.RecoveryEpoch != rn.prevHardSt.RecoveryEpoch
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
		rn.confApply.handedOut(rd.CommittedEntries)
		r.raftLog.acceptApplying(rd.CommittedEntries[n-1].Index)
		r.reduceUncommittedSize(payloadsSize(rd.CommittedEntries))
	}
	r.msgs = nil
	r.msgsAfterPersist = nil
	r.readStates = nil
	r.placements = nil
	return rd
}

// Advance tells the node that the host has handled rd: persisted its
// snapshot, entries and hard state, sent its messages and applied its
// committed entries. A leader counts its own log only from here on. With
// Config.PipelinedAcks, use AckPersisted and AckApplied instead.
func (rn *RawNode) Advance(rd Ready) {
	if rn.err != nil {
		return
	}
	defer rn.recoverStorage(nil)
	r := rn.raft
	rn.ackPersisted(rd)
	applied := uint64(0)
	if !rd.Snapshot.IsEmpty() {
		applied = rd.Snapshot.Metadata.Index
	}
	if n := len(rd.CommittedEntries); n > 0 {
		applied = rd.CommittedEntries[n-1].Index
	}
	if applied > 0 {
		rn.ackApplied(applied)
	}
	r.checkInvariants()
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

// RecycleMessages hands back the Messages or MessagesAfterPersist of a
// Ready once the host no longer holds them (Transport.Send does not keep
// the slice), so that the node collects later messages in their array
// instead of a new one. Advance does so for the Ready it is given; a host
// that acknowledges with AckPersisted and AckApplied calls this instead.
// msgs must not be used afterwards; an array the node cannot take (both of
// its buffers are in use) is left to the garbage collector.
func (rn *RawNode) RecycleMessages(msgs []Message) {
	if cap(msgs) == 0 {
		return
	}
	r := rn.raft
	switch {
	case len(r.msgs) == 0 && cap(r.msgs) == 0:
		clear(msgs)
		r.msgs = msgs[:0]
	case len(r.msgsAfterPersist) == 0 && cap(r.msgsAfterPersist) == 0:
		clear(msgs)
		r.msgsAfterPersist = msgs[:0]
	}
}

// AckPersisted tells a node in pipelined mode (Config.PipelinedAcks) that
// rd's snapshot, entries and hard state are durable. Readies must be
// acknowledged in the order they were handed out; one fsync may cover
// several, acknowledged one after the other. A leader counts its own copy
// of the entries from here on, and committed entries up to them can be
// handed out for applying.
func (rn *RawNode) AckPersisted(rd Ready) {
	if rn.err != nil {
		return
	}
	defer rn.recoverStorage(nil)
	rn.ackPersisted(rd)
	rn.raft.checkInvariants()
}

func (rn *RawNode) ackPersisted(rd Ready) {
	r := rn.raft
	if !rd.Snapshot.IsEmpty() {
		r.raftLog.stableSnapTo(rd.Snapshot.Metadata.Index)
	}
	if n := len(rd.Entries); n > 0 {
		last := rd.Entries[n-1]
		r.onPersisted(last.Index, last.Term)
	}
	if !rd.HardState.IsEmpty() {
		r.onHardStateDurable(rd.HardState)
	}
}

// AckApplied tells a node in pipelined mode that the state machine applied
// every entry (and snapshot) handed out up to index. Applying is in log
// order, so one call covers everything before index too.
func (rn *RawNode) AckApplied(index uint64) {
	if rn.err != nil {
		return
	}
	defer rn.recoverStorage(nil)
	rn.ackApplied(index)
	rn.raft.checkInvariants()
}

func (rn *RawNode) ackApplied(index uint64) {
	r := rn.raft
	if index <= r.raftLog.applied {
		return
	}
	rn.confApply.checkAcked(r, index)
	r.raftLog.appliedTo(min(index, r.raftLog.applying))
	r.maybeAutoLeave()
	r.maybeRecordIncarnations()
}
