package raft

// mutation names one safety or liveness fix of the core that a test build
// can switch off, so that the simulator's tests (package rafttest) can show
// that they would catch the bug the fix prevents. Normal builds compile every
// check of a mutation to a constant false; only a build with the tag
// keelmutations can turn one on (see SetMutationsForTesting there).
type mutation uint8

const (
	// mutationStalledWindow keeps a follower's inflight window closed after
	// every append in it was lost: heartbeat responses no longer reopen it.
	mutationStalledWindow mutation = iota
	// mutationReapplySnapshotConf re-applies, at restart, the
	// configuration changes that lie in the log below the snapshot's index
	// on top of the snapshot's configuration.
	mutationReapplySnapshotConf
	// mutationTransferIgnoresConfChanges lets a leadership-transfer target
	// campaign with committed but unapplied configuration changes.
	mutationTransferIgnoresConfChanges
	// mutationSingleVoterReadShortcut lets a single-voter leader answer a
	// read before it has committed an entry of its term.
	mutationSingleVoterReadShortcut
	// mutationVoteBeforeDurable counts a candidate's own vote before the
	// hard state carrying it is durable.
	mutationVoteBeforeDurable
	// mutationTermCeiling refuses every term above maxTerm, so that a node
	// at maxTerm can never campaign again.
	mutationTermCeiling
	// mutationIgnoreLogRegression ignores a follower's report that its log
	// is shorter than the leader's Match for it.
	mutationIgnoreLogRegression
	// mutationLeaseVoteFromLeader refuses a vote request within the leader
	// lease even when it comes from the leader the lease belongs to.
	mutationLeaseVoteFromLeader
	// mutationSnapshotOvertakesConfChange restores a snapshot while
	// configuration changes handed out for applying are still unapplied.
	mutationSnapshotOvertakesConfChange
	// mutationLeaseMissedTicks has a Node (package raftnode) tick once per
	// wake-up of its ticker and count no time missed against the leader
	// lease, so that a leader paused for longer than its lease still serves
	// lease reads on waking.
	mutationLeaseMissedTicks
	// mutationNoCaretaker never lets a node that is not a voter campaign
	// as a caretaker.
	mutationNoCaretaker
	// mutationIgnoreRecovering lets a node whose storage lost state vote,
	// campaign and count toward quorums as if nothing had been lost.
	mutationIgnoreRecovering
	// mutationIgnoreIncarnation accepts votes and acknowledgements from a
	// member whose storage incarnation changed.
	mutationIgnoreIncarnation
	// mutationSilentToRemoved leaves a late acknowledgement from a node
	// that a change removed unanswered, so that the node never learns of
	// its removal.
	mutationSilentToRemoved

	numMutations
)

// mutationNames are the names SetMutationsForTesting takes.
var mutationNames = [numMutations]string{
	mutationStalledWindow:               "stalled-window",
	mutationReapplySnapshotConf:         "reapply-snapshot-conf",
	mutationTransferIgnoresConfChanges:  "transfer-ignores-conf-changes",
	mutationSingleVoterReadShortcut:     "single-voter-read-shortcut",
	mutationVoteBeforeDurable:           "vote-before-durable",
	mutationTermCeiling:                 "term-ceiling",
	mutationIgnoreLogRegression:         "ignore-log-regression",
	mutationLeaseVoteFromLeader:         "lease-vote-from-leader",
	mutationSnapshotOvertakesConfChange: "snapshot-overtakes-conf-change",
	mutationLeaseMissedTicks:            "lease-missed-ticks",
	mutationNoCaretaker:                 "no-caretaker",
	mutationIgnoreRecovering:            "ignore-recovering",
	mutationIgnoreIncarnation:           "ignore-incarnation",
	mutationSilentToRemoved:             "silent-to-removed",
}

// String returns the mutation's name.
func (m mutation) String() string {
	if m < numMutations {
		return mutationNames[m]
	}
	return "unknown-mutation"
}
