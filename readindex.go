package raft

import (
	"encoding/binary"

	"go.uber.org/zap"
)

// ReadOnlyOption chooses how a leader confirms it still leads before it
// answers a read.
type ReadOnlyOption uint8

const (
	// ReadOnlySafe confirms leadership with a quorum heartbeat round after
	// the read arrives. Reads are linearizable whatever the clocks do.
	ReadOnlySafe ReadOnlyOption = iota
	// ReadOnlyLeaseBased answers at once, relying on the leader lease that
	// CheckQuorum maintains: followers ignore vote requests for an election
	// timeout after hearing from the leader, so no other leader can be
	// elected during that time. The leader serves lease reads only while a
	// quorum acknowledged a heartbeat it sent less than
	// ElectionTick - 1 - ElectionTick/10 ticks ago. This is linearizable
	// provided no follower's ticks run more than about 10% faster than the
	// leader's (bounded clock drift); beyond that, a leader may serve a stale
	// read after a new leader was elected. When the lease has lapsed, a read
	// falls back to a heartbeat round, as it does for the rest of the term
	// once the leader has started a leadership transfer (the target's
	// election overrides the followers' lease). Requires CheckQuorum, and
	// every node should use it: a node using it ignores vote requests for
	// an election timeout after a restart, since before the crash it may
	// have acknowledged a heartbeat that a leader's lease rests on.
	//
	// The lease is counted in ticks, so it also assumes that every node is
	// ticked for all the time that passes, including time its process did
	// not run: a leader paused (SIGSTOP, a virtual machine descheduled, a
	// long garbage collection) for longer than the lease and then ticked
	// once would serve reads although a new leader may have committed
	// writes meanwhile. A host using RawNode must tick a leader, before it
	// steps any message or request after a pause, for the time its
	// monotonic clock says was missed (or for at least the lease's length);
	// a follower ticked slow is safe. Node counts that time against the
	// lease without firing the other timers: see its doc, which also says
	// what it assumes of the monotonic clock.
	ReadOnlyLeaseBased
)

// String returns the option's name.
func (o ReadOnlyOption) String() string {
	if o == ReadOnlyLeaseBased {
		return "ReadOnlyLeaseBased"
	}
	return "ReadOnlySafe"
}

// leaseTicks is how long, from the sending of a heartbeat that a quorum
// acknowledged, the leader trusts that no other leader can exist. Followers
// ignore vote requests for an election timeout after they receive a
// heartbeat; the lease is shorter by one tick (a follower's tick may fall
// just after the heartbeat arrives) and by a tenth of the timeout (the
// clock drift tolerated).
func (r *raft) leaseTicks() uint64 {
	return uint64(r.electionTimeout - 1 - r.electionTimeout/10)
}

// missedTicks records that d ticks' worth of time passed without being
// ticked (the host's process was paused, or its loop busy): they count
// against the leader lease, as if ticked, and against nothing else, so a
// pause ends the lease without firing timeouts before the host has handled
// what arrived meanwhile. Heartbeats sent before the gap thus count as d
// ticks older, even when acknowledged after it.
func (r *raft) missedTicks(d uint64) { r.trk.leaseSkew += d }

// ReadState answers a ReadIndex request: once the host has applied entries
// up to Index, a read of its state machine reflects every write committed
// before the request was made.
type ReadState struct {
	Index      uint64
	RequestCtx []byte
}

// readRequest is a read waiting for its leadership confirmation.
type readRequest struct {
	// seq numbers the read; a heartbeat round with a higher or equal seq
	// confirms it.
	seq uint64
	// index is the commit index when the read arrived.
	index uint64
	// from is the node that asked (this leader, or a follower).
	from uint64
	ctx  []byte
}

// readOnly tracks a leader's reads awaiting a quorum heartbeat round. Reads
// share rounds: a round carries the newest read's sequence number, and a
// quorum's acknowledgement of it confirms every read queued before it.
type readOnly struct {
	option ReadOnlyOption
	// pending reads in seq order.
	pending []readRequest
	// lastSeq is the sequence number of the newest read.
	lastSeq uint64
	// roundPending reports that reads arrived since the last round was
	// broadcast; the round goes out when the host next collects a Ready.
	roundPending bool
	// acked is the highest round seq each peer acknowledged this term.
	acked map[uint64]uint64
	// leaseRevoked reports that this leader sent MsgTimeoutNow: the
	// target's transfer election overrides the followers' lease and may
	// happen at any time in this term (the message may be delayed), so
	// no read is served from the lease until the next term or role.
	leaseRevoked bool
}

func newReadOnly(option ReadOnlyOption) *readOnly {
	return &readOnly{option: option, acked: map[uint64]uint64{}}
}

// reset forgets every pending read (on a term or role change). Clients of
// those reads time out and retry.
func (ro *readOnly) reset() {
	ro.pending = ro.pending[:0]
	ro.roundPending = false
	clear(ro.acked)
	ro.leaseRevoked = false
}

// revokeLease stops lease-based reads until the next reset.
func (ro *readOnly) revokeLease() { ro.leaseRevoked = true }

// add queues a read taken at commit index.
func (ro *readOnly) add(index, from uint64, ctx []byte) {
	ro.lastSeq++
	ro.pending = append(ro.pending, readRequest{seq: ro.lastSeq, index: index, from: from, ctx: ctx})
	ro.roundPending = true
}

// encodeSeq and decodeSeq put a round's sequence number in a heartbeat's
// Context: eight bytes, whatever the size of the state.
func encodeSeq(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func decodeSeq(ctx []byte) (uint64, bool) {
	if len(ctx) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(ctx), true
}

// committedEntryInCurrentTerm reports whether this leader has committed an
// entry of its own term, after which its commit index is at least that of
// any earlier leader and reads may be served.
func (r *raft) committedEntryInCurrentTerm() bool {
	return r.raftLog.zeroTermOnOutOfBounds(r.raftLog.term(r.raftLog.committed)) == r.Term
}

// handleReadIndex serves a read request on a leader.
func (r *raft) handleReadIndex(m Message) {
	if len(m.Entries) != 1 {
		r.logger.Warn("dropped a read request without exactly one context entry", zap.Uint64("from", m.From))
		return
	}
	if r.trk.isSingleton(r.id) && mutated(mutationSingleVoterReadShortcut) {
		r.answerRead(m.From, r.raftLog.committed, m.Entries[0].Data)
		return
	}
	if !r.committedEntryInCurrentTerm() {
		// Our commit index may still lag the previous leader's (or, for a
		// single voter, what it committed before a restart): wait until
		// the entry of this term commits, whatever the configuration's
		// size.
		r.pendingReadIndexMessages = append(r.pendingReadIndexMessages, m)
		return
	}
	if r.trk.isSingleton(r.id) {
		// No one else can lead: the commit index is the read index.
		r.answerRead(m.From, r.raftLog.committed, m.Entries[0].Data)
		return
	}
	if r.readOnly.option == ReadOnlyLeaseBased && !r.readOnly.leaseRevoked && r.trk.leaseValid(r.id, r.leaseTicks()) {
		r.answerRead(m.From, r.raftLog.committed, m.Entries[0].Data)
		return
	}
	r.readOnly.add(r.raftLog.committed, m.From, m.Entries[0].Data)
}

// releasePendingReadIndexMessages serves the reads that waited for the first
// commit of this leader's term.
func (r *raft) releasePendingReadIndexMessages() {
	if len(r.pendingReadIndexMessages) == 0 || !r.committedEntryInCurrentTerm() {
		return
	}
	msgs := r.pendingReadIndexMessages
	r.pendingReadIndexMessages = nil
	for _, m := range msgs {
		r.handleReadIndex(m)
	}
}

// flushReadRound broadcasts one heartbeat round for all reads queued since
// the last round. The host triggers it by collecting a Ready.
func (r *raft) flushReadRound() {
	if r.state != StateLeader || !r.readOnly.roundPending {
		return
	}
	r.bcastHeartbeat()
}

// startRound begins a heartbeat round for every read queued so far and
// returns its context; self acknowledges it at once.
func (ro *readOnly) startRound(self uint64) []byte {
	ro.roundPending = false
	ro.acked[self] = ro.lastSeq
	return encodeSeq(ro.lastSeq)
}

// handleReadAck records a heartbeat response's round acknowledgement.
func (r *raft) handleReadAck(from uint64, ctx []byte) {
	seq, ok := decodeSeq(ctx)
	if !ok || seq > r.readOnly.lastSeq {
		return
	}
	if seq > r.readOnly.acked[from] {
		r.readOnly.acked[from] = seq
		r.maybeConfirmReads()
	}
}

// maybeConfirmReads answers every read whose round a quorum acknowledged.
func (r *raft) maybeConfirmReads() {
	ro := r.readOnly
	if len(ro.pending) == 0 {
		return
	}
	confirmed := min(r.trk.voters[0].committedIndex(r.ackedSeq), r.trk.voters[1].committedIndex(r.ackedSeq))
	n := 0
	for n < len(ro.pending) && ro.pending[n].seq <= confirmed {
		req := ro.pending[n]
		r.answerRead(req.from, req.index, req.ctx)
		n++
	}
	if n > 0 {
		ro.pending = append(ro.pending[:0], ro.pending[n:]...)
	}
}

func (r *raft) ackedSeq(id uint64) uint64 {
	if pr := r.trk.progress[id]; pr != nil && !pr.counts() {
		return 0 // a recovering peer confirms no leadership
	}
	return r.readOnly.acked[id]
}

// answerRead hands a read's index to the host, or to the follower that
// forwarded it.
func (r *raft) answerRead(to, index uint64, ctx []byte) {
	if to == None || to == r.id {
		r.readStates = append(r.readStates, ReadState{Index: index, RequestCtx: ctx})
		return
	}
	r.send(Message{To: to, Type: MsgReadIndexResp, Index: index, Entries: []Entry{{Data: ctx}}})
}

// forwardReadIndex sends a follower's read request to the leader.
func (r *raft) forwardReadIndex(m Message) {
	if r.lead == None {
		r.logger.Debug("no leader; dropping read request", zap.Uint64("term", r.Term))
		return
	}
	m.To = r.lead
	r.send(m)
}

// handleReadIndexResp records the leader's answer to a forwarded read.
func (r *raft) handleReadIndexResp(m Message) {
	if len(m.Entries) != 1 || m.From != r.lead {
		r.logger.Warn("dropped an unexpected read index response", zap.Uint64("from", m.From), zap.Uint64("leader", r.lead))
		return
	}
	r.readStates = append(r.readStates, ReadState{Index: m.Index, RequestCtx: m.Entries[0].Data})
}
