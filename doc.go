/*
Package raft implements the Raft consensus protocol as a pure state machine.

A RawNode holds one node's protocol state. It does no I/O, starts no
goroutine, takes no lock and reads no clock: time is the Tick method, input is
Step (messages from peers), Propose and Campaign, and output is a Ready batch
that the host carries out. Storage and transport belong to the host, which
makes every run of the core reproducible: tests drive it with logical ticks
and a seeded random source.

# Node or RawNode

Most hosts want raftnode.Node (package raftnode): it owns the loop around a
RawNode — ticks, the transport, pipelined persistence with group commit, a
separate apply goroutine, automatic snapshots — and offers a blocking client
API (Propose returns the state machine's result, Read is linearizable from
any node). Hosts that want to drive everything themselves use RawNode, as
described below; the rest of this page is about RawNode. This package holds
the core alone: it imports no serialisation library (package wire holds
the frame format the transports share) and starts no goroutine.

# Starting a node

Create the storage, then the node:

	storage := raft.NewMemoryStorage()
	rn, err := raft.NewRawNode(raft.Config{ID: 1, Storage: storage})
	if err != nil { ... }                   // a bad Config is an error, never a panic
	err = rn.BootstrapPeers([]raft.Peer{    // only for a brand-new cluster
		{ID: 1, Address: "10.0.0.1:7001"}, {ID: 2, Address: "10.0.0.2:7001"}, {ID: 3, Address: "10.0.0.3:7001"},
	})

A restarting node passes the storage that holds what it persisted before, and
does not call Bootstrap. Bootstrap only when told to create a new cluster:
an empty storage may also belong to a node whose data was lost, which must
rejoin instead (see Storage faults). Bootstrap hands the initial membership to the host as
the Snapshot of the first Ready, to be persisted like any snapshot.

# The host loop

The host runs a loop that calls Tick at a regular interval (say every 100 ms;
ElectionTick and HeartbeatTick are counted in ticks; a host that finds more
intervals elapsed than it ticked, after a pause of its process, reports the
extra ones with RecordMissedTicks so that they count against the leader
lease), passes every message
received from a peer to Step, and, whenever HasReady reports true, handles a
Ready in these steps, in this order:

 1. Persist. If rd.Snapshot is not empty, write it and restore the application
    state from it. Append rd.Entries to the log, replacing any stored entries
    at the same or higher indexes. Then write rd.HardState if it is not empty.
    If rd.MustSync is set, sync (fsync) before step 3.
 2. Send rd.Messages. These may leave before step 1 finishes, in parallel with
    the disk write: they are a leader's appends and heartbeats, whose safety
    does not depend on the leader's own disk (the leader counts its own copy
    of an entry only after Advance reports it durable).
 3. Send rd.MessagesAfterPersist, only once step 1 is durable. These are vote
    requests, votes and append acknowledgements: each promises state that
    must survive a crash, so sending one before its state is on disk can elect
    two leaders in one term or lose committed entries.
 4. Apply. If rd.Snapshot is not empty, replace the application state with
    its data first. Then apply rd.CommittedEntries in order (they may include
    entries from rd.Entries, which is why they apply only after step 1): an
    EntryNormal with data goes to the state machine (an empty one is a new
    leader's marker); an EntryConfChange is decoded with
    ConfChange.Unmarshal and passed to ApplyConfChange, which changes the
    membership the node counts votes and replicates in (and whose
    Addresses the host's transport follows, with the snapshot's; see
    Membership). A host that applies
    it like any other entry runs with a stale membership: the node logs a
    warning when such an entry is acknowledged as applied (and panics in
    builds with the invariants tag).
 5. Serve rd.ReadStates: each answers a ReadIndex call (matched by its
    RequestCtx), and the read may be served from the state machine once it
    has applied the ReadState's Index.
 6. Now and then (say every few thousand entries) take a snapshot of the
    application state at the applied index, with the membership in force
    there, and compact the log behind it (MemoryStorage.CreateSnapshot and
    Compact; package wal does the same on disk). A follower that lags behind
    the compacted log then gets the snapshot from the leader.
 7. Call Advance(rd). The node then counts what was persisted (a leader's own
    log, a candidate's own vote) and applied, and may reuse the Ready's
    message slices.

rd.SoftState, when not nil, says that the leader or this node's role
changed; it needs no action. ExampleRawNode runs this loop, every step
included.

A candidate counts its own vote only once the hard state recording it is
durable: a single voter that campaigns therefore leads only after the Ready
carrying its new term has been persisted and acknowledged, and sends nothing
of that term before.

Messages to one peer may be sent in any order and may be lost; Raft tolerates
both. A leader presumes lost the appends a follower has not acknowledged when
it answers a later heartbeat, and sends them again: a dropped connection or a
full receive queue delays a follower by one heartbeat interval, not until the
next election. If sending fails, ReportUnreachable tells a leader to probe
the peer at once; ReportSnapshot reports the outcome of sending a snapshot.

# Pipelined acknowledgement

With Config.PipelinedAcks the host acknowledges the two halves of a Ready
separately, so that disk writes, network sends and application overlap:

 1. Take a Ready and send rd.Messages at once. Queue its writes; the host may
    take further Readies before the earlier ones are durable.
 2. Write queued Readies in order. One sync may cover several of them. Once
    a Ready's writes are durable, send its rd.MessagesAfterPersist and call
    AckPersisted(rd); acknowledge Readies in the order they were handed out.
 3. Apply rd.CommittedEntries (which in this mode are always durable
    locally) and restore rd.Snapshot on the apply path, in order, then call
    AckApplied with the index applied.

The node hands out no entry twice, counts a leader's own entries only after
AckPersisted, and never hands out committed entries beyond what is durable.

# Crashes

If the process crashes at any point of the loop, the node restarts from its
storage with no loss of safety provided the storage returns a prefix of what
was written (entries are durable no later than the hard state that commits
them) and steps 3 to 7 never ran ahead of step 1 as described above.
Config.Applied tells a restarted node how far the state machine got, so that
committed entries are not handed out again; the node restores its
configuration as of that index from the snapshot's ConfState and the
configuration changes after the snapshot (entries a storage keeps below its
snapshot are part of the snapshot's state, and are neither handed out nor
re-applied). A follower that comes back with fewer entries than it had
acknowledged (a damaged tail cut off, an old backup) is noticed by the leader,
which logs it once and sends it what it lacks.

# Storage faults

Raft's guarantees rest on every node keeping what it made durable. When one
node's storage loses some of it — a damaged or truncated log, a wiped
directory, a restored backup — the rest of the cluster still loses no
committed entry, elects no leader without one and serves no stale read, as
long as a majority of the voters keep their storage intact:

  - A node that knows it lost state is recovering (HardState.Recovering,
    persisted like the rest of the hard state). Its storage says so (package
    wal sets it when it salvages a damaged log; a host restoring a backup
    sets it too), or the node finds out itself: a commit index beyond its
    log at startup, or a peer that knows it by another incarnation. A
    recovering node neither votes nor campaigns, and the leader counts it
    toward no quorum (commit, reads, lease, quorum check) and refuses to
    transfer leadership to it.
  - The leader repairs it on its own: it appends an entry of its term after
    learning that the node recovers, and once that entry is committed
    without the node and the node holds it, tells the node, which votes and
    counts again (Message.Recovery). A single voter has no one to repair it
    and goes on with what it has, logging what may be lost.
  - Config.Incarnation names a storage's contents: a random number drawn
    when the storage is first initialised (wal.Identity). The leader records
    every member's incarnation in the configuration (an automatic
    ConfChangeRecordIncarnation, applied by the host like any change). A
    node that comes back with another incarnation — its directory was wiped,
    even if the host bootstraps it again by mistake — is refused (its votes
    and acknowledgements are dropped, with one warning) and, told by its
    peers, starts recovering; once repaired, its new incarnation is recorded.

# Membership

A configuration change takes effect on each node when its host applies the
entry with ApplyConfChange. A node campaigns only once every committed change
is applied, and defers a snapshot from the leader while committed changes
wait to be applied. A node that a change removed or demoted stays quiet,
with one exception: when a voter that has not yet applied that change asks
for its vote and has a shorter log, nobody else could be elected, and the
removed node campaigns as a caretaker. It counts votes in the configuration
it applied, leads only to bring the voters up to date, takes no proposal,
and hands leadership to a caught-up voter, as a leader that removed itself
does.

The configuration carries each member's address (ConfChangeSingle.Address,
recorded in ConfState.Addresses; BootstrapPeers records the first voters'),
so that every node learns where every member is from the log, or from a
snapshot's ConfState, including a later leader and a node that joins
afterwards. The core never dials anything: the host follows the applied
configuration with its transport's AddPeer and RemovePeer, as
raftnode.Node does on its own. Addresses are checked like any input
(MaxAddressSize): a change or a snapshot with a malformed one is refused.

# Proposals

Propose appends data on a leader, and forwards it from a follower unless
Config.DisableProposalForwarding is set. It returns ErrProposalDropped when
the proposal certainly went nowhere (no leader known, forwarding disabled, the
uncommitted tail full); a nil error does not promise that the entry commits.
The host learns the outcome by watching CommittedEntries.

A follower that wants to learn where its forwarded proposal lands calls
ProposeTracked with a request ID: the leader answers, and a later Ready's
ProposalPlacements say at which index and term it appended the entries, or
why it did not. Only the leader of a term creates entries of that term, so
the entry at that index is the proposed one if and only if it is committed
with that term; the host follows it as the leader's own proposals
(package raftnode does).

# Errors

Sentinel errors are documented in errors.go and are matched with errors.Is.
Step validates every message before it touches any state: a malformed or
unexpected message is dropped with an error and a log line, never a panic.
If the Storage fails (an error other than ErrCompacted or ErrUnavailable),
the node stops: the call returns an error wrapping ErrStorage, Err reports
it, and every later call returns it and changes nothing. The core panics
only on a broken internal invariant, which is a bug.

# Storage and transport duties

A host's storage must return what was written, as a prefix after a crash;
persisting a snapshot must also raise the stored commit index to the
snapshot's index (MemoryStorage.ApplySnapshot does). A host's transport must
report the outcome of every MsgSnap with ReportSnapshot, lost ones included:
until it does, the leader sends that follower nothing else.
*/
package raft
