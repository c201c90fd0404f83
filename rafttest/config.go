package rafttest

import (
	"fmt"
	"io"
	"strings"

	"github.com/keelraft/raft"
)

// Faults selects the kinds of fault a run injects. The rates and durations
// are drawn from the run's seed (and printed in Result.Params), so that
// different seeds explore different mixes.
type Faults struct {
	// Network drops (0-30%), duplicates (0-10%) and delays messages by a
	// random number of steps, which also reorders them.
	Network bool
	// TickSkew gives every node its own tick rate, 0.5x to 2x.
	TickSkew bool
	// Partitions cuts links: random splits, the leader isolated, one-way
	// links and a bridge node that sees both sides.
	Partitions bool
	// Crashes stops nodes and restarts them later from their disk. A crash
	// is a process kill: written data survives.
	Crashes bool
	// PowerLoss crashes nodes in the middle of handling a Ready, losing
	// unsynced writes (possibly tearing the last one), and sometimes crashes
	// every node at once.
	PowerLoss bool
	// Pauses freezes nodes: no ticks, no messages, no Ready handling.
	Pauses bool
	// Membership adds learners, promotes, demotes, removes and replaces
	// voters (single-step and joint changes).
	Membership bool
	// Snapshots makes nodes snapshot and compact their logs at random
	// points, so lagging followers need snapshots from the leader. How
	// much of the log a snapshot leaves behind is drawn from the seed (see
	// Config.SnapshotKeep): a few entries, many, or the whole log, as a
	// host that snapshots without compacting does.
	Snapshots bool
	// Bursts loses every message on one link (most often from the leader
	// to a follower) for up to an election timeout: a dropped connection
	// that takes a whole inflight window of appends with it. The inflight
	// window is drawn small (1 to 32 appends, see Config.MaxInflightMsgs)
	// so that a burst can empty it.
	Bursts bool
	// Stalls freezes a node's host loop for a few steps while the node
	// keeps ticking and receiving messages: a slow disk or a slow state
	// machine, so that entries are committed but not yet applied, and
	// messages pile up unanswered.
	Stalls bool
	// Transfers asks the leader to hand leadership to another voter at
	// random, and, while a membership change that removes or demotes a
	// voter is committing, to that very voter.
	Transfers bool
	// ExtremeTerms injects, rarely, a forged heartbeat or vote request at
	// term 2^62 (the largest a message may carry) from a member; the
	// cluster must still elect leaders afterwards.
	ExtremeTerms bool
	// LogRegression crashes a node and cuts the tail of its durable log
	// below what it acknowledged (a damaged tail cut off, a backup
	// restored), only when the other members still hold every committed
	// entry it loses on a majority of every configuration. Such a node
	// may legitimately forget entries it acknowledged; the checks judge
	// the cluster's safety and that the node is brought up to date again.
	LogRegression bool
	// StorageFaults crashes a node and damages its durable state as a real
	// storage (package wal with salvage on) would present it: wiped (a new
	// incarnation; the node rejoins, or bootstraps the first voters again
	// by mistake), its log cut at or after its snapshot (below what it
	// acknowledged and committed), its snapshot lost (an older state of
	// the same storage, or nothing), or replaced by a backup taken earlier
	// in the run. Every kind but the wipe marks the node recovering
	// (raft.HardState.Recovering), as a storage that detects the loss
	// does; a wiped node learns it from its peers, so a node is wiped only
	// once every member has recorded its incarnation. Damaged nodes stay
	// a minority of the smallest voter set the run may have ((voters-1)/2
	// of Nodes, or of MinVoters with Membership) until they are repaired;
	// with LogRegression too, a node whose log went back counts as damaged
	// until it has caught up.
	StorageFaults bool
}

// AllFaults enables every kind of fault but StorageFaults, which needs
// three voters or more throughout (Config.MinVoters) and a run of its own.
var AllFaults = Faults{
	Network: true, TickSkew: true, Partitions: true, Crashes: true,
	PowerLoss: true, Pauses: true, Membership: true, Snapshots: true,
	Bursts: true, Stalls: true, Transfers: true, ExtremeTerms: true,
	LogRegression: true,
}

// String lists the enabled kinds.
func (f Faults) String() string {
	var s []string
	add := func(on bool, name string) {
		if on {
			s = append(s, name)
		}
	}
	add(f.Network, "network")
	add(f.TickSkew, "skew")
	add(f.Partitions, "partitions")
	add(f.Crashes, "crashes")
	add(f.PowerLoss, "powerloss")
	add(f.Pauses, "pauses")
	add(f.Membership, "membership")
	add(f.Snapshots, "snapshots")
	add(f.Bursts, "bursts")
	add(f.Stalls, "stalls")
	add(f.Transfers, "transfers")
	add(f.ExtremeTerms, "extremeterms")
	add(f.LogRegression, "logregression")
	add(f.StorageFaults, "storagefaults")
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// Bugs injects known host bugs, to check that the simulator's checkers
// catch them. A correct host sets none.
type Bugs struct {
	// SendBeforePersist sends MessagesAfterPersist (votes, acks) before the
	// Ready's writes are persisted and synced.
	SendBeforePersist bool
	// SkipSync never syncs the disk: acknowledgements go out for writes a
	// power loss may undo.
	SkipSync bool
	// ForgetVote loses the vote from the hard state when a node restarts,
	// so it may vote twice in a term.
	ForgetVote bool
	// ApplyUncommitted applies entries to the state machine as soon as they
	// are persisted, before they commit.
	ApplyUncommitted bool
	// ForgeCommit makes a leader's host rewrite the commit index of outgoing
	// appends and heartbeats to its last index: commit without a quorum.
	ForgeCommit bool
	// ForgeVoteLog makes a candidate's host overstate its log in vote and
	// pre-vote requests, as if voters did not check that a candidate's log
	// is up to date.
	ForgeVoteLog bool
	// ReadBeforeApplied serves a ReadIndex read as soon as the read index
	// arrives, without waiting for the state machine to apply it.
	ReadBeforeApplied bool
}

// Config describes one simulated run. The zero value of every field but Seed
// means a default, mostly drawn from the seed.
type Config struct {
	// Seed determines everything about the run.
	Seed uint64
	// Nodes is the initial number of voters; 0 draws 3, 5 or 7.
	Nodes int
	// Steps is the number of simulated steps with faults; default 400.
	// A node ticks about once per step.
	Steps int
	// ElectionTick is every node's election timeout in ticks; default 10.
	ElectionTick int
	// Faults selects the faults to inject.
	Faults Faults
	// Clients is the number of concurrent clients (default drawn 1-8) and
	// Keys the number of keys they use (default drawn 1-10).
	Clients, Keys int
	// StaleReads adds local reads that bypass ReadIndex; they may be stale
	// and are checked only for monotonicity per node incarnation.
	StaleReads bool
	// Linearizability checks the client history with porcupine.
	Linearizability bool
	// Liveness heals every fault after Steps and requires a leader and a
	// committed write within a bound, and client operations to complete.
	Liveness bool
	// ReadOnlyOption is every node's read mode. ReadOnlyLeaseBased is safe
	// only while clocks drift within its documented bound: a paused node's
	// clock stops in the simulator, and TickSkew exceeds the bound.
	ReadOnlyOption raft.ReadOnlyOption
	// NewStateMachine builds each node's state machine; default NewMapKV.
	NewStateMachine func() StateMachine
	// Bugs injects host bugs (for the simulator's own tests).
	Bugs Bugs
	// PowerLossRate overrides the per-Ready probability of a power loss
	// (when Faults.PowerLoss is set); 0 means the default.
	PowerLossRate float64
	// Pipelined runs every node with raft.Config.PipelinedAcks: the host
	// writes each Ready at once but syncs and acknowledges it
	// (AckPersisted) later, several Readies per sync, and applies
	// committed entries later still (AckApplied). Power losses then fall
	// between the writes and the acknowledgements.
	Pipelined bool
	// MinVoters is the fewest voters membership changes leave; default 3.
	// With 1, configurations shrink to a single voter (removing the leader
	// itself on the way) and grow again from learners.
	MinVoters int
	// MaxInflightMsgs is every node's raft.Config.MaxInflightMsgs; 0 means
	// 32, or, with Faults.Bursts, a window of 1 to 32 drawn from the seed.
	MaxInflightMsgs int
	// SnapshotKeep is how many entries below a snapshot's index stay in
	// the log when a node snapshots (Faults.Snapshots); negative keeps the
	// whole log (snapshots without compaction), 0 draws from the seed.
	SnapshotKeep int
	// Trace, if set, receives a text timeline of the run.
	Trace io.Writer

	// skipRestartAudit turns off the check that a restarted node kept the
	// votes and terms it promised, so that the package's tests can show
	// that the outcome checks (double vote, election safety) catch a lost
	// vote too.
	skipRestartAudit bool
}

// Counts are what a run did: the faults that actually happened and the
// client operations.
type Counts struct {
	Steps              int
	LeaderChanges      int
	Crashes            int
	PowerLosses        int
	ClusterCrashes     int
	LostWrites         int
	Partitions         int
	Pauses             int
	ConfProposals      int
	ConfChanges        int
	SnapshotsCreated   int
	SnapshotsInstalled int
	Delivered          int
	Dropped            int
	Duplicated         int
	Writes             int
	Reads              int
	StaleReads         int
	Indeterminate      int
	// BurstDrops are the messages lost to Bursts.
	Bursts, BurstDrops int
	Stalls             int
	// Transfers counts leadership transfers the leader accepted;
	// TransfersToLeaving those aimed at a voter being removed or demoted.
	Transfers, TransfersToLeaving int
	ExtremeTerms                  int
	// LogRegressions counts nodes restarted with a shorter log;
	// TruncatedEntries the entries they lost.
	LogRegressions, TruncatedEntries int
	// SingleVoterConfs counts applied changes that left a single voter.
	SingleVoterConfs int
	// Syncs and AckedReadies count the pipelined host's syncs and the
	// Readies they acknowledged.
	Syncs, AckedReadies int
	// CaughtUp counts the members checked to catch up after healing.
	CaughtUp int
	// IncarnationRecords counts the applied changes that record members'
	// storage incarnations (raft.ConfChangeRecordIncarnation), which the
	// leader proposes on its own; ConfChanges does not count them.
	IncarnationRecords int
	// StorageFaults counts nodes whose storage was damaged: Wipes (the node
	// rejoins), WipeBootstraps (it bootstraps again), Truncations,
	// LostSnapshots and BackupRestores; Repairs counts damaged nodes that
	// were repaired (TruncatedEntries includes the truncations' entries).
	StorageFaults, Wipes, WipeBootstraps, Truncations, LostSnapshots, BackupRestores, Repairs int
	// SpuriousRecoveries counts nodes that started recovering although
	// the run had not damaged their storage.
	SpuriousRecoveries int
}

// Add accumulates o into c.
func (c *Counts) Add(o Counts) {
	c.Steps += o.Steps
	c.LeaderChanges += o.LeaderChanges
	c.Crashes += o.Crashes
	c.PowerLosses += o.PowerLosses
	c.ClusterCrashes += o.ClusterCrashes
	c.LostWrites += o.LostWrites
	c.Partitions += o.Partitions
	c.Pauses += o.Pauses
	c.ConfProposals += o.ConfProposals
	c.ConfChanges += o.ConfChanges
	c.SnapshotsCreated += o.SnapshotsCreated
	c.SnapshotsInstalled += o.SnapshotsInstalled
	c.Delivered += o.Delivered
	c.Dropped += o.Dropped
	c.Duplicated += o.Duplicated
	c.Writes += o.Writes
	c.Reads += o.Reads
	c.StaleReads += o.StaleReads
	c.Indeterminate += o.Indeterminate
	c.Bursts += o.Bursts
	c.BurstDrops += o.BurstDrops
	c.Stalls += o.Stalls
	c.Transfers += o.Transfers
	c.TransfersToLeaving += o.TransfersToLeaving
	c.ExtremeTerms += o.ExtremeTerms
	c.LogRegressions += o.LogRegressions
	c.TruncatedEntries += o.TruncatedEntries
	c.SingleVoterConfs += o.SingleVoterConfs
	c.Syncs += o.Syncs
	c.AckedReadies += o.AckedReadies
	c.CaughtUp += o.CaughtUp
	c.IncarnationRecords += o.IncarnationRecords
	c.StorageFaults += o.StorageFaults
	c.Wipes += o.Wipes
	c.WipeBootstraps += o.WipeBootstraps
	c.Truncations += o.Truncations
	c.LostSnapshots += o.LostSnapshots
	c.BackupRestores += o.BackupRestores
	c.Repairs += o.Repairs
	c.SpuriousRecoveries += o.SpuriousRecoveries
}

// String summarises the counts on one line.
func (c Counts) String() string {
	return fmt.Sprintf("steps=%d leader_changes=%d crashes=%d power_losses=%d cluster_crashes=%d lost_writes=%d partitions=%d pauses=%d "+
		"conf_changes=%d/%d(proposed/applied) snapshots=%d/%d(created/installed) msgs=%d dropped=%d dup=%d writes=%d reads=%d stale_reads=%d indeterminate=%d",
		c.Steps, c.LeaderChanges, c.Crashes, c.PowerLosses, c.ClusterCrashes, c.LostWrites, c.Partitions, c.Pauses,
		c.ConfProposals, c.ConfChanges, c.SnapshotsCreated, c.SnapshotsInstalled, c.Delivered, c.Dropped, c.Duplicated,
		c.Writes, c.Reads, c.StaleReads, c.Indeterminate) +
		fmt.Sprintf(" bursts=%d/%d(links/msgs) stalls=%d transfers=%d/%d(all/to_leaving) extreme_terms=%d log_regressions=%d/%d(nodes/entries) "+
			"single_voter_confs=%d syncs=%d/%d(syncs/readies) caught_up=%d incarnation_records=%d",
			c.Bursts, c.BurstDrops, c.Stalls, c.Transfers, c.TransfersToLeaving, c.ExtremeTerms, c.LogRegressions, c.TruncatedEntries,
			c.SingleVoterConfs, c.Syncs, c.AckedReadies, c.CaughtUp, c.IncarnationRecords) +
		fmt.Sprintf(" storage_faults=%d(wipe=%d wipe_bootstrap=%d truncate=%d lost_snapshot=%d backup=%d) repairs=%d spurious_recoveries=%d",
			c.StorageFaults, c.Wipes, c.WipeBootstraps, c.Truncations, c.LostSnapshots, c.BackupRestores, c.Repairs, c.SpuriousRecoveries)
}

// Violation is a property the run broke.
type Violation struct {
	// Property names the property, e.g. "election safety".
	Property string
	// Step is the simulated step at which it was detected.
	Step int64
	// Detail describes what was seen.
	Detail string
}

// String describes the violation: the property, the step and the detail.
func (v Violation) String() string {
	return fmt.Sprintf("%s at step %d: %s", v.Property, v.Step, v.Detail)
}
