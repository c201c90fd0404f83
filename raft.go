package raft

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"go.uber.org/zap"
)

// stepFunc handles a message in the current role, after Step has dealt with
// terms and votes.
type stepFunc func(r *raft, m Message) error

// raft is the protocol state machine of one node. It is not safe for
// concurrent use; RawNode wraps it for hosts.
type raft struct {
	id uint64

	// Term and Vote are the durable part of the state (with the log's
	// commit index).
	Term uint64
	Vote uint64

	raftLog *raftLog
	trk     progressTracker

	state StateType
	// lead is the leader of the current term, or None.
	lead uint64
	// stepDownIndex, when not 0, says that this leader applied a change
	// removing it (up to this index) and steps down as soon as a remaining
	// voter knows that index is committed and holds the whole log; until
	// then the rest may still need this leader to learn of the change.
	stepDownIndex uint64
	// removedMembers holds the nodes that a configuration change this node
	// applied removed (since it started): a leader answers their late
	// acknowledgements with the commit index (tellRemovedNodeTheCommit).
	// A node added back leaves it.
	removedMembers map[uint64]bool

	// caretakeAsked reports that this node, not a voter of its
	// configuration, refused a vote request from a voter of it that still
	// counts this node as a voter (it has not applied the change that
	// removed or demoted this node) and whose log is behind this node's:
	// that voter may need this node to lead (see mayCaretake).
	caretakeAsked bool

	// pendingConfIndex is the index of the latest configuration change a
	// leader appended (or a bound on it); no other may be proposed until it
	// is applied.
	pendingConfIndex uint64

	// leadTransferee is the target of a leadership transfer under way.
	leadTransferee uint64

	// readOnly holds reads awaiting leadership confirmation; readStates
	// the answered ones for the next Ready; pendingReadIndexMessages the
	// reads that wait for this leader's first commit.
	readOnly                 *readOnly
	readStates               []ReadState
	pendingReadIndexMessages []Message

	// placements are the answers to tracked proposals for the next Ready.
	placements []ProposalPlacement

	// msgs may be sent as soon as the host has them; msgsAfterPersist only
	// once the host has made the Ready's entries and hard state durable.
	msgs             []Message
	msgsAfterPersist []Message

	maxMsgSize         uint64
	maxUncommittedSize uint64
	maxEntrySize       uint64 // 0: no limit
	// uncommittedSize is the payload size of the leader's entries that
	// have not yet been handed out for applying.
	uncommittedSize uint64

	disableProposalForwarding bool
	preVote                   bool
	checkQuorum               bool
	disableStepDownOnRemoval  bool
	// pipelined is Config.PipelinedAcks: committed entries are handed out
	// only once durable locally.
	pipelined bool

	// incarnation is Config.Incarnation. recovering is HardState.Recovering:
	// this node's storage lost state it had promised (see recovery.go).
	// warnedIncarnations remembers, per peer, the changed incarnation last
	// logged; incarnationsUnrecorded tells a leader that some member's
	// incarnation may still need recording.
	incarnation            uint64
	recovering             bool
	recoveryToken          uint64 // while recovering: see Message.Recovery
	recoveryEpoch          uint64 // HardState.RecoveryEpoch
	incarnationRepaired    bool   // a leader repaired this node since it started
	peersRecovering        bool   // on a leader: some peer said this term that it recovers
	warnedIncarnations     map[uint64]uint64
	incarnationsUnrecorded bool

	// storedHardState is the hard state the storage held at startup. The
	// node's own differs when it took a later term from its log; the first
	// Ready then makes that term durable.
	storedHardState HardState

	// restartLease, with lease-based reads, makes a node that restarted
	// ignore vote requests for its first election timeout, as if it had
	// just heard from a leader: before the crash it may have acknowledged
	// a heartbeat that a leader's lease rests on.
	restartLease bool

	// electionElapsed counts ticks since the last election timeout reset
	// (a follower hearing from its leader, a vote granted) or, on a leader,
	// since the last quorum check.
	electionElapsed  int
	heartbeatElapsed int

	electionTimeout  int
	heartbeatTimeout int
	// randomizedElectionTimeout lies in [electionTimeout, 2*electionTimeout)
	// and is drawn anew at every term change.
	randomizedElectionTimeout int
	rand                      *rand.Rand

	tick func()
	step stepFunc

	logger *zap.Logger
}

// newRaft validates c and builds a node from its storage.
func newRaft(c Config) (*raft, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	raftLog, err := newLog(c.Storage, c.Logger, c.MaxCommittedSizePerReady)
	if err != nil {
		return nil, err
	}
	hs, cs, err := c.Storage.InitialState()
	if err != nil {
		return nil, fmt.Errorf("raft: reading initial state from storage: %w", err)
	}
	r := &raft{
		id:                        c.ID,
		raftLog:                   raftLog,
		trk:                       newProgressTracker(c.MaxInflightMsgs, c.MaxInflightBytes),
		maxMsgSize:                c.MaxSizePerMsg,
		maxUncommittedSize:        c.MaxUncommittedEntriesSize,
		maxEntrySize:              c.MaxEntrySize,
		disableProposalForwarding: c.DisableProposalForwarding,
		preVote:                   !c.DisablePreVote,
		checkQuorum:               !c.DisableCheckQuorum,
		disableStepDownOnRemoval:  c.DisableStepDownOnRemoval,
		pipelined:                 c.PipelinedAcks,
		electionTimeout:           c.ElectionTick,
		heartbeatTimeout:          c.HeartbeatTick,
		rand:                      c.Rand,
		readOnly:                  newReadOnly(c.ReadOnlyOption),
		logger:                    c.Logger.With(zap.Uint64("raft_id", c.ID)),
		incarnation:               c.Incarnation,
	}
	r.raftLog.logger = r.logger
	r.trk.applyConfState(cs, raftLog.lastIndex()+1)
	if err := r.loadState(hs); err != nil {
		return nil, err
	}
	r.restartLease = !hs.IsEmpty() && c.ReadOnlyOption == ReadOnlyLeaseBased
	// What the storage's snapshot covers, whose configuration cs is.
	start := r.raftLog.applied
	if c.Applied > 0 {
		if c.Applied > r.raftLog.committed {
			return nil, fmt.Errorf("%w: Applied (%d) is beyond the durable commit index %d", ErrInvalidConfig, c.Applied, r.raftLog.committed)
		}
		r.raftLog.acceptApplying(c.Applied)
		r.raftLog.appliedTo(c.Applied)
		if err := r.restoreAppliedConfChanges(start, c.Applied); err != nil {
			return nil, err
		}
	}
	if r.recovering && r.trk.isSingleton(r.id) {
		// No peer can hold what it lost: waiting would only stop the
		// cluster for good.
		r.logger.Error("this node's storage lost state it had promised, and it is the only voter: no peer can repair it, " +
			"so it goes on with what it has; writes it had acknowledged may be lost")
		r.recovering, r.recoveryToken = false, 0
	}
	r.becomeFollower(r.Term, None)
	r.logger.Info("raft node started",
		zap.Uint64("term", r.Term), zap.Uint64("commit", r.raftLog.committed),
		zap.Uint64("applied", r.raftLog.applied), zap.Uint64("last_index", r.raftLog.lastIndex()),
		zap.Uint64s("voters", r.trk.voterIDs()))
	return r, nil
}

// loadState restores the durable hard state, checking it against the log.
func (r *raft) loadState(hs HardState) error {
	r.storedHardState = hs
	if hs.IsEmpty() {
		return nil
	}
	if hs.Commit < r.raftLog.committed {
		return fmt.Errorf("raft: stored commit index %d is below the snapshot's index %d: storage is inconsistent",
			hs.Commit, r.raftLog.committed)
	}
	r.recoveryEpoch = hs.RecoveryEpoch
	if hs.Recovering {
		r.recovering, r.recoveryToken = true, r.newRecoveryToken()
		r.logger.Warn("this node recovers from a storage fault: it neither votes nor campaigns nor counts toward "+
			"a quorum until a leader has brought it up to date", zap.Uint64("term", hs.Term),
			zap.Uint64("last_index", r.raftLog.lastIndex()))
	}
	if last := r.raftLog.lastIndex(); hs.Commit > last {
		// The log lost entries this node knew were committed, so also
		// entries it acknowledged.
		r.startRecovering("the stored commit index lies beyond the log",
			zap.Uint64("commit", hs.Commit), zap.Uint64("last_index", last))
		hs.Commit = last
	}
	r.raftLog.committed = max(r.raftLog.committed, hs.Commit)
	r.Term = hs.Term
	r.Vote = hs.Vote
	// A crash between appending a Ready's entries and writing its hard
	// state (allowed by the host contract) can leave entries of a later
	// term than the hard state's. The node promised nothing in that term
	// (votes and acks wait for the hard state), so it takes the term with
	// no vote, as the lost write would have recorded.
	if t := r.raftLog.lastTerm(); t > r.Term {
		r.Term, r.Vote = t, None
	}
	return nil
}

func (r *raft) hardState() HardState {
	return HardState{Term: r.Term, Vote: r.Vote, Commit: r.raftLog.committed,
		Recovering: r.recovering, RecoveryEpoch: r.recoveryEpoch}
}

func (r *raft) softState() SoftState { return SoftState{Lead: r.lead, RaftState: r.state} }

// promotable reports whether this node may campaign: it is a voter.
func (r *raft) promotable() bool {
	pr := r.trk.progress[r.id]
	return pr != nil && !pr.IsLearner && !r.raftLog.hasNextOrInProgressSnapshot()
}

// mayCaretake reports whether this node, though not a voter, may campaign
// as a caretaker. It campaigns only when circumstance asks it to: it refused
// a vote request from a voter that has not yet applied the change that
// removed or demoted this node (so counts votes in an older configuration,
// in which this node's vote is needed) and whose log is behind this node's.
// Without a caretaker, nobody could then be elected: the voter cannot win,
// and this node would not campaign. The configuration this node applied is
// committed, and it counts votes in that configuration only, without its
// own: an election exactly as safe as one by a voter that applied it. It
// pre-campaigns first. A caretaker that wins leads only to bring the voters
// up to date and then hands off, as a leader that removed itself does.
func (r *raft) mayCaretake() bool {
	return r.caretakeAsked && r.preVote && !r.trk.isVoter(r.id) &&
		!r.raftLog.hasNextOrInProgressSnapshot() && len(r.trk.voterIDs()) > 0 && !mutated(mutationNoCaretaker)
}

// mayCampaign reports whether this node may start an election: it is a
// voter, or it may act as a caretaker.
func (r *raft) mayCampaign() bool {
	return (r.promotable() || r.mayCaretake()) && !r.isRecovering()
}

// send queues m, stamping the sender and, for messages that carry the
// current term, the term. Responses that promise durable state (a vote, an
// append acknowledgement) and vote requests (which rely on the candidate's
// own durable vote) wait until the host has persisted the Ready.
func (r *raft) send(m Message) {
	m.From = r.id
	if m.Term == 0 && !m.Type.isForwarded() {
		m.Term = r.Term
	}
	if m.Type == MsgAppResp || m.Type == MsgHeartbeatResp {
		m.Commit = r.raftLog.committed
	}
	if r.incarnation != 0 || r.trk.incarnations != nil || r.recoveryToken != 0 || r.peersRecovering {
		r.stampIncarnations(&m)
	}
	switch m.Type {
	case MsgAppResp, MsgVote, MsgVoteResp:
		r.msgsAfterPersist = append(r.msgsAfterPersist, m)
	default:
		r.msgs = append(r.msgs, m)
	}
}

// sendAppend sends an append (possibly empty) to peer to, or a snapshot.
func (r *raft) sendAppend(to uint64) { r.maybeSendAppend(to, true) }

// maybeSendAppend sends an append to peer to if its flow control allows,
// carrying new entries or, if sendIfEmpty, none (to update its commit
// index). It falls back to a snapshot when the entries were compacted. It
// reports whether a message was sent.
func (r *raft) maybeSendAppend(to uint64, sendIfEmpty bool) bool {
	pr := r.trk.progress[to]
	if pr == nil || pr.isPaused() {
		return false
	}
	prevIndex := pr.Next - 1
	prevTerm, err := r.raftLog.term(prevIndex)
	if err != nil {
		return r.maybeSendSnapshot(to, pr)
	}
	ents, err := r.raftLog.entries(pr.Next, r.maxMsgSize)
	if err != nil {
		return r.maybeSendSnapshot(to, pr)
	}
	if len(ents) == 0 && !sendIfEmpty {
		return false
	}
	r.send(Message{
		To:      to,
		Type:    MsgApp,
		Index:   prevIndex,
		LogTerm: prevTerm,
		Entries: ents,
		Commit:  r.raftLog.committed,
	})
	pr.sentEntries(prevIndex+uint64(len(ents)), entriesSize(ents), len(ents), r.trk.leaseNow())
	pr.sentCommitIndex(r.raftLog.committed)
	return true
}

// maybeSendSnapshot sends the latest snapshot to a peer that needs entries
// the log no longer holds.
func (r *raft) maybeSendSnapshot(to uint64, pr *Progress) bool {
	if !pr.RecentActive {
		if ce := r.logger.Check(zap.DebugLevel, "not sending snapshot to an inactive peer"); ce != nil {
			ce.Write(zap.Uint64("to", to))
		}
		return false
	}
	snapshot, err := r.raftLog.snapshot()
	if err != nil {
		if errors.Is(err, ErrSnapshotTemporarilyUnavailable) {
			if ce := r.logger.Check(zap.DebugLevel, "snapshot temporarily unavailable, will retry"); ce != nil {
				ce.Write(zap.Uint64("to", to))
			}
		} else {
			r.logger.Error("cannot read snapshot", zap.Uint64("to", to), zap.Error(err))
		}
		return false
	}
	if snapshot.IsEmpty() {
		r.logger.Error("peer needs compacted entries but there is no snapshot", zap.Uint64("to", to))
		return false
	}
	r.logger.Info("sending snapshot", zap.Uint64("to", to),
		zap.Uint64("snapshot_index", snapshot.Metadata.Index), zap.Uint64("snapshot_term", snapshot.Metadata.Term),
		zap.Stringer("progress", pr))
	r.send(Message{To: to, Type: MsgSnap, Snapshot: &snapshot})
	pr.becomeSnapshot(snapshot.Metadata.Index)
	return true
}

// sendHeartbeat sends a heartbeat whose commit index is capped at what the
// peer is known to hold, so the peer never commits entries it may not have.
// ctx, if not nil, is the read round the heartbeat carries.
func (r *raft) sendHeartbeat(to uint64, ctx []byte) {
	pr := r.trk.progress[to]
	commit := min(pr.Match, r.raftLog.committed)
	r.send(Message{To: to, Type: MsgHeartbeat, Commit: commit, Index: r.trk.leaseNow(), Context: ctx})
	pr.sentCommitIndex(commit)
}

// bcastAppend sends appends to every peer (empty ones too, to carry the
// commit index).
func (r *raft) bcastAppend() {
	for _, id := range r.trk.memberIDs() {
		if id != r.id {
			r.sendAppend(id)
		}
	}
}

// bcastHeartbeat sends a heartbeat to every peer. While reads wait for
// confirmation, the heartbeats carry the newest read round, so a round lost
// to the network is retried at every heartbeat.
func (r *raft) bcastHeartbeat() {
	var ctx []byte
	if len(r.readOnly.pending) > 0 {
		ctx = r.readOnly.startRound(r.id)
	}
	for _, id := range r.trk.memberIDs() {
		if id != r.id {
			r.sendHeartbeat(id, ctx)
		}
	}
	if ctx != nil {
		r.maybeConfirmReads()
	}
}

// maybeCommit advances the commit index to what a quorum holds, if that
// entry is of the current term. It reports whether it moved.
func (r *raft) maybeCommit() bool {
	return r.raftLog.maybeCommit(r.trk.committed(), r.Term)
}

// reset starts a new term (or restarts the current one in a new role).
func (r *raft) reset(term uint64) {
	if r.Term != term {
		r.Term = term
		r.Vote = None
	}
	r.lead = None
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.peersRecovering = false
	r.resetRandomizedElectionTimeout()
	r.trk.resetVotes()
	last := r.raftLog.lastIndex()
	persisted := r.raftLog.lastPersistedIndex()
	for id, pr := range r.trk.progress {
		if id == r.id {
			pr.resetForTerm(persisted, last+1)
		} else {
			pr.resetForTerm(0, last+1)
		}
		// Everyone gets an election timeout from the start of a term
		// before counting as inactive.
		pr.markActive(r.trk.now)
	}
	r.uncommittedSize = 0
	r.leadTransferee = None
	r.stepDownIndex = 0
	r.readOnly.reset()
	r.pendingReadIndexMessages = nil
}

func (r *raft) resetRandomizedElectionTimeout() {
	r.randomizedElectionTimeout = r.electionTimeout + r.rand.IntN(r.electionTimeout)
}

// pastElectionTimeout reports whether the randomized election timeout ran out.
func (r *raft) pastElectionTimeout() bool {
	return r.electionElapsed >= r.randomizedElectionTimeout
}

func (r *raft) becomeFollower(term, lead uint64) {
	r.step = stepFollower
	r.reset(term)
	r.tick = r.tickElection
	r.lead = lead
	if lead != None {
		r.caretakeAsked = false
	}
	r.state = StateFollower
	r.logger.Debug("became follower", zap.Uint64("term", r.Term), zap.Uint64("leader", lead))
}

func (r *raft) becomeCandidate() {
	if r.state == StateLeader {
		panic(fmt.Sprintf("raft: invalid transition [leader -> candidate] at term %d", r.Term))
	}
	r.step = stepCandidate
	r.reset(r.Term + 1)
	r.tick = r.tickElection
	r.Vote = r.id
	r.state = StateCandidate
	r.logger.Debug("became candidate", zap.Uint64("term", r.Term))
}

// becomePreCandidate asks for pre-votes without changing term or vote.
func (r *raft) becomePreCandidate() {
	if r.state == StateLeader {
		panic(fmt.Sprintf("raft: invalid transition [leader -> pre-candidate] at term %d", r.Term))
	}
	r.step = stepCandidate
	r.trk.resetVotes()
	r.tick = r.tickElection
	r.lead = None
	r.state = StatePreCandidate
	r.logger.Debug("became pre-candidate", zap.Uint64("term", r.Term))
}

func (r *raft) becomeLeader() {
	if r.state == StateFollower {
		panic(fmt.Sprintf("raft: invalid transition [follower -> leader] at term %d", r.Term))
	}
	r.step = stepLeader
	r.reset(r.Term)
	r.tick = r.tickHeartbeat
	r.lead = r.id
	r.state = StateLeader
	// The leader's own progress advances as its writes become durable.
	if pr := r.trk.progress[r.id]; pr != nil {
		pr.becomeReplicate()
	}
	// Configuration changes in the inherited log may not be applied yet:
	// allow no new one before all of them are.
	r.pendingConfIndex = r.raftLog.lastIndex()
	// An empty entry of the new term: committing it commits everything the
	// leader inherited (§5.4.2) and lets it serve reads.
	if !r.appendEntry(Entry{}) {
		panic("raft: the empty entry of a new leader was refused")
	}
	r.logger.Debug("became leader", zap.Uint64("term", r.Term), zap.Uint64("last_index", r.raftLog.lastIndex()))
	r.incarnationsUnrecorded = r.incarnation != 0
	if !r.trk.isVoter(r.id) {
		// A caretaker: hand off once a voter has caught up, as a leader
		// that removed itself does.
		r.stepDownIndex = max(r.raftLog.applied, 1)
		r.logger.Info("leading as a caretaker (not a voter): handing off once a voter has caught up",
			zap.Uint64("term", r.Term))
	}
}

// tickElection is the tick of followers and candidates: campaign once the
// randomized election timeout passes without hearing from a leader.
func (r *raft) tickElection() {
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout {
		r.restartLease = false
	}
	if r.mayCampaign() && r.pastElectionTimeout() {
		r.electionElapsed = 0
		if err := r.Step(Message{From: r.id, Type: MsgHup}); err != nil {
			r.logger.Debug("error occurred during election", zap.Error(err))
		}
	}
}

// tickHeartbeat is the leader's tick: send heartbeats every heartbeat
// interval.
func (r *raft) tickHeartbeat() {
	r.heartbeatElapsed++
	r.electionElapsed++
	r.trk.now++
	if r.checkQuorum {
		// Checked at every tick, so that a leader cut off from a quorum
		// steps down within one election timeout of last hearing from it.
		if err := r.Step(Message{From: r.id, Type: MsgCheckQuorum}); err != nil {
			r.logger.Debug("error occurred during checking quorum", zap.Error(err))
		}
		if r.state != StateLeader {
			return
		}
	}
	if r.electionElapsed >= r.electionTimeout {
		r.electionElapsed = 0
		if r.state == StateLeader {
			r.abortLeaderTransfer()
			if r.stepDownIndex != 0 {
				r.logger.Info("stepping down after removal without a hand-off: no voter caught up in time")
				r.becomeFollower(r.Term, None)
				return
			}
		}
	}
	if r.state != StateLeader {
		return
	}
	if r.heartbeatElapsed >= r.heartbeatTimeout {
		r.heartbeatElapsed = 0
		if err := r.Step(Message{From: r.id, Type: MsgBeat}); err != nil {
			r.logger.Debug("error occurred during heartbeat", zap.Error(err))
		}
	}
}

// appendEntry appends proposed entries to the leader's log, stamping term and
// index. It reports false, appending nothing, if the uncommitted tail would
// grow beyond its limit.
func (r *raft) appendEntry(es ...Entry) bool {
	li := r.raftLog.lastIndex()
	for i := range es {
		es[i].Term = r.Term
		es[i].Index = li + 1 + uint64(i)
	}
	if !r.increaseUncommittedSize(es) {
		return false
	}
	r.raftLog.append(es...)
	return true
}

// increaseUncommittedSize charges es to the uncommitted tail. A tail that is
// empty always accepts, so that one oversized proposal is not refused forever.
func (r *raft) increaseUncommittedSize(es []Entry) bool {
	s := payloadsSize(es)
	if r.uncommittedSize > 0 && s > 0 && r.maxUncommittedSize > 0 && r.uncommittedSize+s > r.maxUncommittedSize {
		return false
	}
	r.uncommittedSize += s
	return true
}

// reduceUncommittedSize releases entries handed out for applying.
func (r *raft) reduceUncommittedSize(s uint64) {
	if s > r.uncommittedSize {
		r.uncommittedSize = 0
		return
	}
	r.uncommittedSize -= s
}

// hup starts an election if this node may.
func (r *raft) hup() {
	if r.state == StateLeader {
		r.logger.Debug("ignoring MsgHup because already leader")
		return
	}
	if r.isRecovering() {
		r.logger.Info("cannot campaign: this node is recovering from a storage fault", zap.Uint64("term", r.Term))
		return
	}
	if !r.mayCampaign() {
		r.logger.Warn("is unpromotable and can not campaign")
		return
	}
	if !r.electionAllowed("cannot campaign") {
		return
	}
	if r.preVote {
		r.campaign(campaignPreElection)
	} else {
		r.campaign(campaignElection)
	}
}

// electionAllowed applies the rules every election obeys, ordinary or at a
// leader's request, and logs the one that forbids it, after what. A node may
// not campaign with committed configuration changes unapplied (the
// configuration the votes would be counted in is about to change, and may
// not even count this node as a voter), nor at the end of the term space.
func (r *raft) electionAllowed(what string) bool {
	if r.Term >= maxCampaignTerm {
		r.logger.Error(what+": the term space is exhausted", zap.Uint64("term", r.Term))
		return false
	}
	if r.isRecovering() {
		r.logger.Info(what+": this node is recovering from a storage fault", zap.Uint64("term", r.Term))
		return false
	}
	if r.hasUnappliedConfChanges() {
		r.logger.Warn(what+": committed configuration changes are not yet applied",
			zap.Uint64("applied", r.raftLog.applied), zap.Uint64("committed", r.raftLog.committed))
		return false
	}
	return true
}

// campaignRefusal says why an election this node starts on the host's
// request would not begin now, or returns "" if it would (or if this node
// leads already, when the request does nothing).
func (r *raft) campaignRefusal() string {
	switch {
	case r.state == StateLeader:
		return ""
	case r.isRecovering():
		return "this node is recovering from a storage fault, until the leader repairs it"
	case r.raftLog.hasNextOrInProgressSnapshot():
		return "its configuration is in a snapshot not yet persisted and applied: handle the pending Ready first"
	case len(r.trk.voterIDs()) == 0:
		return "it has no configuration yet: Bootstrap a new cluster, or wait for the leader's snapshot"
	case !r.mayCampaign():
		return "it is not a voter of its configuration"
	case r.Term >= maxCampaignTerm:
		return "the term space is exhausted"
	case r.hasUnappliedConfChanges():
		return "committed configuration changes are not yet applied"
	}
	return ""
}

// campaignType says which kind of election a node starts.
type campaignType uint8

const (
	// campaignPreElection asks for pre-votes for the next term first.
	campaignPreElection campaignType = iota
	// campaignElection raises the term and asks for votes.
	campaignElection
	// campaignTransfer is an election at the old leader's request; its
	// vote requests override the voters' leader lease.
	campaignTransfer
)

// campaignTransfer starts an election for a leadership transfer.
func (r *raft) campaignTransfer() { r.campaign(campaignTransfer) }

// campaign asks every other voter for its vote: a pre-vote for the next term,
// or a real vote after becoming a candidate.
func (r *raft) campaign(t campaignType) {
	if !r.promotable() {
		r.logger.Info("campaigning as a caretaker: a voter whose log is behind this node's needs a leader",
			zap.Uint64("term", r.Term))
	}
	voteMsg, term := MsgVote, r.Term+1
	if t == campaignPreElection {
		r.becomePreCandidate()
		voteMsg = MsgPreVote
		// A pre-vote promises nothing: it counts at once, and a single
		// voter goes on to the real election.
		if _, _, res := r.poll(r.id, true); res == voteWon {
			r.campaign(campaignElection)
			return
		}
	} else {
		r.becomeCandidate()
		term = r.Term
		// The candidate's own vote counts only once the hard state that
		// records it is durable (onHardStateDurable), as a leader counts
		// its own entries only once they are: otherwise a single voter
		// would lead, and send appends, in a term it may forget in a
		// crash, and lead that term a second time after the restart.
		if mutated(mutationVoteBeforeDurable) {
			if _, _, res := r.poll(r.id, true); res == voteWon {
				r.becomeLeader()
				return
			}
		}
	}
	var ctx []byte
	if t == campaignTransfer {
		ctx = transferContext
	}
	lastIndex, lastTerm := r.raftLog.lastIndex(), r.raftLog.lastTerm()
	for _, id := range r.trk.voterIDs() {
		if id == r.id {
			continue
		}
		r.logger.Debug("sent vote request", zap.Stringer("type", voteMsg), zap.Uint64("to", id),
			zap.Uint64("term", term), zap.Uint64("last_index", lastIndex), zap.Uint64("last_term", lastTerm))
		r.send(Message{To: id, Term: term, Type: voteMsg, Index: lastIndex, LogTerm: lastTerm, Context: ctx})
	}
}

// poll records a vote and returns the tally.
func (r *raft) poll(id uint64, v bool) (granted, rejected int, result voteResult) {
	r.trk.recordVote(id, v)
	return r.trk.tallyVotes()
}

// onHardStateDurable is called when the host confirms hs durable. A
// candidate whose vote for itself in its term is now durable counts it.
func (r *raft) onHardStateDurable(hs HardState) {
	if r.state != StateCandidate || hs.Term != r.Term || hs.Vote != r.id || r.Vote != r.id {
		return
	}
	granted, rejected, res := r.poll(r.id, true)
	r.logger.Debug("own vote is durable", zap.Uint64("term", r.Term),
		zap.Int("granted", granted), zap.Int("rejected_votes", rejected))
	r.actOnVoteResult(res)
}

// onPersisted is called when the host confirms entries up to index (with
// term) durable. A leader counts its own copy only from then on.
func (r *raft) onPersisted(index, term uint64) {
	if !r.raftLog.stableTo(index, term) {
		return
	}
	if r.state != StateLeader {
		return
	}
	if r.trk.progress[r.id] == nil {
		return
	}
	if r.trk.progress[r.id].maybeUpdate(index) && r.maybeCommit() {
		r.bcastAppend()
		r.releasePendingReadIndexMessages()
	}
}

func entriesSize(ents []Entry) uint64 {
	var s uint64
	for i := range ents {
		s += ents[i].size()
	}
	return s
}

func payloadsSize(ents []Entry) uint64 {
	var s uint64
	for i := range ents {
		s += ents[i].payloadSize()
	}
	return s
}
