package raftnode

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/keelraft/raft"
)

// Metrics is a snapshot of a Node's measurements, for an exporter to
// publish: a Prometheus collector, say, calls Node.Metrics on every scrape
// and reports the counters as counters and the rest as gauges. Counters
// and totals are cumulative since Start.
type Metrics struct {
	// ID is this node's; Term, Leader and State are its protocol state.
	ID, Term, Leader uint64
	State            raft.StateType
	// CommitIndex is the highest index known committed here, AppliedIndex
	// the highest applied to the state machine, LastIndex the last in the
	// log, SnapshotIndex that of the last snapshot taken or restored.
	CommitIndex, AppliedIndex, LastIndex, SnapshotIndex uint64
	// Recovering is set while this node recovers from a storage fault.
	Recovering bool

	// Persist counts the storage writes (one Save, one fsync, per batch of
	// Readies); PersistedReadies the Readies they covered.
	Persist          Timing
	PersistedReadies uint64
	// Apply counts the batches handed to StateMachine.Apply; AppliedEntries
	// the entries in them.
	Apply          Timing
	AppliedEntries uint64
	// SnapshotsTaken counts the snapshots written; SnapshotsRestored those
	// restored from a Ready (the leader's, or the bootstrap configuration).
	SnapshotsTaken, SnapshotsRestored uint64
	// DroppedMessages counts the received messages dropped because the
	// loop's queue was full (Raft recovers from the loss).
	DroppedMessages uint64

	// Peers holds, on the leader only, the replication state of every
	// other member.
	Peers map[uint64]PeerMetrics
}

// Timing is a count of operations and the time they took in total, from
// which an exporter derives a rate and a mean latency.
type Timing struct {
	Count uint64
	Total time.Duration
}

// PeerMetrics is the leader's view of one peer.
type PeerMetrics struct {
	// Match is the highest index known replicated to the peer; Lag how
	// far it is behind the leader's last index.
	Match, Lag uint64
	// State is the replication state (probe, replicate, snapshot).
	State raft.ProgressState
	// RecentActive says whether the peer answered within an election
	// timeout; Learner and Recovering describe its role.
	RecentActive, Learner, Recovering bool
}

// nodeCounters are the cumulative measurements the goroutines update.
type nodeCounters struct {
	persistCount, persistNanos, persistedReadies atomic.Uint64
	applyCount, applyNanos, appliedEntries       atomic.Uint64
	snapshotsTaken, snapshotsRestored            atomic.Uint64
	snapshotIndex, droppedMessages               atomic.Uint64
}

// timing returns the count and total nanoseconds as a Timing.
func timing(count, nanos *atomic.Uint64) Timing {
	return Timing{Count: count.Load(), Total: time.Duration(nanos.Load())}
}

// Metrics returns the node's measurements. It asks the loop for the
// protocol state, so it returns ctx's error or the stop error if the loop
// does not answer.
func (n *Node) Metrics(ctx context.Context) (Metrics, error) {
	var st raft.Status
	if err := n.do(ctx, func() { st = n.rn.Status() }); err != nil {
		return Metrics{}, err
	}
	last, err := n.storage.LastIndex()
	if err != nil {
		return Metrics{}, err
	}
	c := &n.counters
	m := Metrics{
		ID: st.ID, Term: st.Term, Leader: st.Lead, State: st.RaftState,
		CommitIndex: st.Commit, AppliedIndex: n.AppliedIndex(), LastIndex: last,
		SnapshotIndex: c.snapshotIndex.Load(), Recovering: st.Recovering,
		Persist: timing(&c.persistCount, &c.persistNanos), PersistedReadies: c.persistedReadies.Load(),
		Apply: timing(&c.applyCount, &c.applyNanos), AppliedEntries: c.appliedEntries.Load(),
		SnapshotsTaken: c.snapshotsTaken.Load(), SnapshotsRestored: c.snapshotsRestored.Load(),
		DroppedMessages: c.droppedMessages.Load(),
	}
	if st.Progress != nil {
		m.Peers = make(map[uint64]PeerMetrics, len(st.Progress))
		for id, pr := range st.Progress {
			if id == st.ID {
				continue
			}
			m.Peers[id] = PeerMetrics{
				Match: pr.Match, Lag: last - min(pr.Match, last), State: pr.State,
				RecentActive: pr.RecentActive, Learner: pr.IsLearner, Recovering: pr.Recovering,
			}
		}
	}
	return m, nil
}
