package raftnode

import (
	"time"

	"github.com/keelraft/raft"
)

// Defaults of Config.
const (
	// DefaultTickInterval is Config.TickInterval when zero.
	DefaultTickInterval = 100 * time.Millisecond
	// DefaultSnapshotEvery is Config.SnapshotEvery when zero.
	DefaultSnapshotEvery = 10000
	// DefaultCompactKeep is Config.CompactKeep when zero.
	DefaultCompactKeep = 1000
)

// Config holds a Node's parameters.
type Config struct {
	// Raft configures the protocol. PipelinedAcks is forced on; Applied is
	// set by Start from the storage's snapshot. A zero Raft.MaxEntrySize is
	// DefaultMaxEntrySize, which fits the default frame limit of package
	// tcptransport: a Node never appends an entry its transport cannot
	// carry (proposals of larger entries fail with ErrProposalTooLarge).
	// With a larger frame limit in the transport (wire.CodecOptions), raise
	// it to match.
	Raft raft.Config

	// Storage is the node's durable state; Raft.Storage is set to it. The
	// Node never closes it: the host does, after Stop.
	Storage raft.LogStorage

	// Transport sends the node's messages. It may be nil at New, for
	// transports whose constructor needs the Node as their handler: set it
	// with SetTransport before Start. A node that is the single voter of
	// its cluster needs none: left nil, Start accepts it for such a node
	// only. The Node never closes it.
	Transport raft.Transport

	// StateMachine is the replicated application state.
	StateMachine StateMachine

	// TickInterval is the duration of one tick (Raft.ElectionTick and
	// Raft.HeartbeatTick count ticks), on the monotonic clock: a pause of
	// the process still counts against the leader lease (see the
	// package documentation, section Time). Default DefaultTickInterval.
	TickInterval time.Duration

	// SnapshotEvery is how many entries are applied between two automatic
	// snapshots. Default DefaultSnapshotEvery.
	SnapshotEvery uint64

	// CompactKeep is how many entries before a snapshot's index stay in the
	// log after compaction, so that a follower lagging by less catches up
	// from the log rather than from a snapshot. Default DefaultCompactKeep,
	// or SnapshotEvery if that is smaller.
	CompactKeep uint64

	// OnLeaderChange, if set, is called when the node learns of a new
	// leader (None when it knows of none) or term. OnConfChange, if set,
	// is called with the membership after each configuration change or
	// snapshot is applied. Both are called in order from a goroutine of
	// their own, never from the raft loop, so a slow callback delays only
	// later callbacks; they must not call Stop.
	OnLeaderChange func(leader, term uint64)
	OnConfChange   func(cs raft.ConfState)

	// OnRemoved, if set, is called once when this node applies a
	// configuration that leaves it out, having belonged to one before
	// (from the notifier goroutine, as the callbacks above). From then on
	// the node's calls return ErrRemoved.
	OnRemoved func()

	// StopWhenRemoved makes a removed node stop itself (Err then returns
	// ErrRemoved), once it no longer leads: a leader that removed itself
	// first hands office to a remaining voter. Without it, a removed node
	// keeps running, answering every call with ErrRemoved, until Stop.
	StopWhenRemoved bool
}
