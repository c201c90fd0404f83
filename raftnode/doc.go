/*
Package raftnode runs the core of package raft for a service: a Node owns
the loop around a raft.RawNode (ticks, the transport, pipelined persistence
with group commit, a separate apply goroutine, automatic snapshots and log
compaction) and offers a blocking client API. Hosts that want to drive
every step themselves use raft.RawNode directly; package raft's
documentation describes that loop.

# Using a Node

Give New the protocol configuration, a durable raft.LogStorage (package wal
on disk, raft.MemoryStorage in tests), a raft.Transport (package
tcptransport between processes, memtransport within one; a single voter
needs none) and the StateMachine to replicate, then Start it:

	n, err := raftnode.New(raftnode.Config{
		Raft:         raft.Config{ID: 1},
		Storage:      storage,
		Transport:    transport,
		StateMachine: sm,
	})
	if err != nil { ... }
	err = n.Start([]raft.Peer{ // nil on a restart, or to join a running cluster
		{ID: 1, Address: "10.0.0.1:7001"}, {ID: 2, Address: "10.0.0.2:7001"}, {ID: 3, Address: "10.0.0.3:7001"},
	})
	if err != nil { ... }
	defer n.Stop()

	result, err := n.Propose(ctx, command) // StateMachine.Apply's result
	err = n.Read(ctx)                      // then read sm: linearizable

The calls:

  - Propose and ProposeBatch work on any node and return the
    StateMachine's results once applied here: the leader appends the
    commands; a follower forwards them to the leader over the transport,
    the leader answers with where it appended them, and the follower
    waits for those entries to apply (a *NotLeaderError only when no
    leader is known or Raft.DisableProposalForwarding is set).
    ProposeBatch reports each entry's outcome (a Result), since a leader
    change may keep some entries of a batch and overwrite the rest.
    ProposeUntracked returns once appended or forwarded, without waiting
    for the result. ErrProposalUnknown says a command's fate was not seen
    (a leader change, a lost answer from the leader, the context, a
    stop): it may still apply; ErrProposalDropped, that it certainly did
    not and will not.
  - Read waits until the local state machine reflects every write
    committed before the call (ReadIndex, or the leader lease with
    raft.ReadOnlyLeaseBased), from any node; WaitApplied and AppliedIndex
    follow the applied index.
  - Barrier waits, on any node, until everything the leader appended
    before it is applied there; VerifyLeader confirms with a quorum that
    this node still leads; WaitLeader waits until a leader is known.
  - Snapshot takes a snapshot now, besides the automatic ones every
    SnapshotEvery entries, and returns its index once it is stored.
  - AddVoter and AddLearner (with the new node's address), Promote and
    Remove change the membership one node at a time and return the
    configuration in force after it (see Membership);
    TransferLeadership hands office to a voter; Status and LeaderID
    report the protocol state. A node that applies a configuration
    without itself answers every call with ErrRemoved, calls OnRemoved,
    and stops with Config.StopWhenRemoved.
  - Stop ends the goroutines; Done is closed once the node stopped, by
    Stop or on its own, and Err then says why (storage, state machine,
    removal); Metrics reports what an exporter publishes.

The transport delivers what it receives with HandleMessage (and, for a
transport that streams snapshots, HandleSnapshot) and reports failures
with ReportUnreachable and ReportSnapshot: a Node is the transport's
raft.TransportHandler and raft.SnapshotStreamHandler.

# Membership

The configuration carries every member's address (raft.ConfState.Addresses):
Start records the first voters' addresses, AddVoter and AddLearner the new
node's (AddVoter of a member with another address moves it), and Remove
drops it. The Node has its transport follow the configuration in force on
its own, on every node: at Start (from the storage, or the bootstrap
peers), after each configuration change it applies and when it installs a
snapshot, it calls AddPeer for each other member whose address the
transport was not given yet or has changed, and RemovePeer for each node
it gave the transport that is no longer a member, an election timeout
later (so that what is still queued for it, the commit of its removal
among it, reaches it first). So a node added on the
leader alone is reached by a later leader too, and a node that joins (Start
with no peers and empty storage) needs only to accept its first leader,
say through the transport's initial peers: the snapshot and log it
receives tell it every other member's address. A host that adds members
without addresses keeps telling its transports itself; the Node leaves
those members, and transport peers it did not add, alone.

# Goroutines and ordering

A started Node runs five goroutines, and no other code of the package
runs concurrently with them besides the transport and the callers of its
methods, whose requests the raft loop serves:

 1. The raft loop owns the RawNode (it is the only goroutine that touches
    it). It ticks every TickInterval (see Time), steps received messages, serves
    client requests, and takes Readies: it sends rd.Messages at once (a
    leader's appends leave before its own write), queues the Ready for
    the persist goroutine and its snapshot and committed entries for the
    apply goroutine.
 2. The persist goroutine writes every Ready queued so far with one
    raft.LogStorage.Save (one fsync), then sends their MessagesAfterPersist,
    then has the loop acknowledge them (AckPersisted) in the order they
    were taken. No vote, vote request or append acknowledgement leaves
    before the state it promises is durable.
 3. The apply goroutine restores snapshots and applies committed entries
    in log order (they are durable locally before they are handed out),
    applies configuration changes through the loop (it waits for the
    resulting configuration before it goes on), completes the proposals
    and waiters, and has the loop acknowledge what it applied
    (AckApplied). Every SnapshotEvery entries it takes a StateMachine
    snapshot.
 4. The snapshotter writes that snapshot (CreateSnapshot, or
    CreateSnapshotFrom to stream it) and compacts the log behind it,
    leaving CompactKeep entries. Snapshot calls take theirs through the
    apply goroutine and the snapshotter too, in order.
 5. The notifier calls OnLeaderChange and OnConfChange in order.

# Snapshots

Snapshot data streams end to end, so that memory does not grow with the
size of the state, when the storage is a raft.SnapshotStore (package wal
opened with wal.Options.StreamSnapshots) and the transport streams
(package tcptransport; memtransport too):

  - The snapshotter copies the reader StateMachine.Snapshot returns into
    the storage (SnapshotStore.CreateSnapshotFrom), chunk by chunk.
  - The storage hands out snapshots whose Data is empty and whose
    raft.SnapshotSource reads its file; the core carries the Source in
    the MsgSnap it sends a lagging follower, and the transport reads the
    data from it as it sends.
  - The receiving transport passes the chunks to HandleSnapshot as they
    arrive; the Node writes them to its storage
    (SnapshotStore.ReceiveSnapshot) and only then queues the MsgSnap,
    carrying the stored data's Source. A stream cut short or failing its
    checksum is refused and leaves nothing behind.
  - Saving the Ready that installs the snapshot moves the received file
    into place, and the apply goroutine restores the state machine from
    it with StateMachine.Restore, reading it to its end, where its
    checksum is checked. Start restores from the storage's snapshot the
    same way.

With a storage that is not a SnapshotStore (raft.MemoryStorage), the data
is read into memory at each step, as a RawNode host would hold it.

A StateMachine that keeps its own durable state implements
DurableStateMachine: on Start, if the applied index it reports is at or
beyond the storage's snapshot, the Node skips Restore and does not apply
again the entries the state machine holds.

# Time

The leader lease follows the monotonic clock (time.Now's monotonic
reading), not the ticker's wake-ups: before the loop handles any event
(a received message, a read, a proposal, an acknowledgement, a ticker
wake-up), it counts the tick intervals elapsed since it last did. It
ticks the RawNode once, as the ticker would, and reports the other
intervals as missed, which the core counts against the lease alone. So
time the process did not see, because it was stopped (SIGSTOP),
descheduled (a virtual machine's stolen CPU time), stalled in a garbage
collection or busy in the loop, still counts: a leader that wakes after
more than its lease serves no lease read before a quorum has
acknowledged a heartbeat sent after the gap (deposed meanwhile, it learns
so from that round and steps down). The election, heartbeat and
CheckQuorum timers still advance one tick per wake-up, as before: slow
timers only delay an election or a step-down (a follower refusing votes
longer is safe for every lease), whereas firing them at once would have
a node whose loop was starved of CPU campaign, or step down, before it
handled the messages its transport queued meanwhile.

This bounds lease reads (ReadOnlyLeaseBased) only as far as the
monotonic clock runs during the pause. On Linux, CLOCK_MONOTONIC
advances while a process is stopped or descheduled and during a
hypervisor's CPU steal, but not while the whole system is suspended
(suspend to RAM or disk); whether it advances while a virtual machine
is paused or migrated depends on the hypervisor's clock source. A leader
whose machine was suspended may serve stale lease reads on resuming;
where that can happen, use ReadOnlySafe. The clock drift bound of
ReadOnlyLeaseBased applies to the monotonic clocks' rates.

# Failure

An error from raft.LogStorage.Save, CreateSnapshot or Compact (other than the
benign ones documented there), from StateMachine.Restore or Snapshot
(or the snapshot reader, or a restored image failing its checksum), or
from DurableStateMachine.AppliedIndex on Start, stops the node: every pending and later call returns an error wrapping
it (Err returns it). A StateMachine panic is not recovered.
*/
package raftnode
