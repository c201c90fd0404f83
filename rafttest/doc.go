/*
Package rafttest runs a simulated cluster of raft.RawNode under the faults real
networks and disks produce, checks it against Raft's safety properties and the
client history for linearizability, and reproduces any run from its seed.

# The simulator

Run(cfg) builds a cluster of 3, 5 or 7 voters (drawn from the seed unless
Config.Nodes says otherwise) and drives it for Config.Steps logical steps in a
single goroutine, with no wall clock: every random choice — fault rates, message
delays, election jitter, client operations — comes from one math/rand/v2
source seeded with Config.Seed, so a seed replays the run exactly. Each node
ticks at its own rate (0.5x to 2x with Faults.TickSkew).

Each node has a host that follows the Ready contract of package raft to the
letter: send Messages, persist the snapshot, entries and hard state to a
simulated disk (Storage), sync it if the Ready says MustSync, only then send
MessagesAfterPersist, apply CommittedEntries, serve reads, and call Advance. A
Storage keeps a synced watermark: a power loss (Faults.PowerLoss) throws away
what was written after it, keeping a random prefix of the unsynced writes and
possibly tearing the last one. Power can fail between the writes and the sync
of any Ready, and for every node at once.

The faults, enabled by kind in Config.Faults with rates drawn from the seed:
message drop, duplication, delay and reordering; partitions (random splits,
the leader isolated, one-way links, a bridge node); crashes and restarts;
power losses; paused nodes; membership changes (learners, promotions,
demotions, removals, joint replacements); snapshots and log compaction at
random points (so lagging followers need snapshots, which the network may
drop or duplicate), leaving a few entries, many or the whole log below the
snapshot (Config.SnapshotKeep), so that restarts find configuration changes
below their snapshot; bursts that lose every message on one link for up to
an election timeout, with an inflight window drawn as small as one append
(Config.MaxInflightMsgs), so that a burst empties it; host stalls, in which a
node keeps ticking and receiving but handles no Ready, so that entries are
committed but not applied; leadership transfers at random and to the voter a
committing change removes or demotes, whose host may stall meanwhile;
forged heartbeats and vote requests at term 2^62 from a member; and logs
going backwards: a follower crashes and restarts with the tail of its log
cut below what it acknowledged, only when the others hold every entry it
loses on a majority of every configuration in force and no configuration
change is lost. Every enabled kind happens at least once per run (a log
regression and, with membership changes, a transfer only when the cluster
allows one), and Result.CheckInjected reports a run in which one did not.

With Config.MinVoters below 3, membership changes shrink the cluster down to
a single voter, removing the leader itself on the way, grow it again from
learners, and go through joint configurations left at once or by a later
change.

With Config.Pipelined, every node runs with raft.Config.PipelinedAcks: the
host writes each Ready at once but syncs it later, one sync covering several
Readies, and only then sends its MessagesAfterPersist and calls AckPersisted
in order; it applies committed entries (and restores snapshots) later still
and calls AckApplied. Power losses fall between the writes and the
acknowledgements. A single voter with learners in this mode shows any entry
its leader hands out twice at one index.

Every node's disk has a storage incarnation (raft.Config.Incarnation), drawn
from the seed when the disk is first initialised; the hosts apply the
leader's ConfChangeRecordIncarnation entries like any change, and snapshots
carry the recorded incarnations. Faults.StorageFaults (not in AllFaults)
crashes a node and damages its durable state as a storage that salvages
what it can would present it: wiped (a new incarnation; the node restarts
to join, or, an operator's mistake, bootstraps the first voters again), its
log cut at a random point at or after its snapshot (below what it
acknowledged and committed), its snapshot lost (an older backup of the
same storage, or nothing), or an old backup restored (up to three kept per
node). Every kind but a wipe sets HardState.Recovering, as a storage that
detects the loss does; a node is wiped only once every member has applied
the record of its incarnation, so that its peers can tell. A damaged node
counts as such until its core no longer recovers and its configuration
records its current incarnation (for a wiped node, every member's), and
damaged nodes stay at most (voters-1)/2 of the smallest voter set the run
may have. Half the time the nodes holding the entries the damaged node may
have lost are cut off from the rest for a while. A restored backup keeps
its whole log, uncommitted entries that were overwritten since included,
and may predate the record of another member's new incarnation. A damaged
node counts as repaired only once its repair is durable. The damaged
node's host state is rebuilt from its
snapshot, as after any restart; the checks of promised votes and terms
skip its restart, and the outcome checks judge what follows.

# Clients and the state machine

Clients issue one operation at a time on a per-key register store: writes
proposed at a random node (retried with the same sequence number, which the
host deduplicates), linearizable reads by ReadIndex at a random node (answered
once the node has applied the read index), and, with Config.StaleReads, local
reads that may be stale and are checked only for monotonicity within a node's
incarnation. An operation that gets no answer in time is indeterminate: a
write may take effect at any later time or never, and porcupine treats it so.

The store is a StateMachine: MapKV by default, or the user's own through
Config.NewStateMachine, which then runs under every fault above with its
snapshots shipped between nodes and restored after crashes.

# Checks

As the run goes: election safety, log matching, leader append-only, leader
completeness, state-machine safety (same entry and same applied-log digest at
each index on every node, same state in snapshots at the same index), term,
vote and commit monotonicity, one vote per node and term, no node leading one
term in two incarnations, a restarted node kept every vote and term it
promised in a message and came back with its snapshot's configuration, a
leader is a voter of its configuration, a node campaigns only with every
committed configuration change applied, and no message storm (a bounded
number of messages in flight). A node whose log went backwards may forget
entries it acknowledged: the checks judge only the cluster. At the end: the
client history is linearizable (github.com/anishathalye/porcupine, one
register per key). With Config.Liveness, every fault is healed after
Config.Steps and the cluster must elect a leader within three election
timeouts of its slowest node, commit a write, bring every member of the
leader's configuration up to the leader's commit index (committed and
applied, no longer recovering, and repaired if damaged) within two election
timeouts, and then complete every client operation (with a recovering node,
the leader bound is ten election timeouts).

A run stops at the first violation; Result says which property, at which step.
Config.Trace receives a text timeline (roles, terms, faults, drops, client
operations), and Result.WriteVisualization writes porcupine's HTML view of a
non-linearizable history.

# Running the package's tests

	go test ./rafttest                                                 # C1-C6 and the modes, a few hundred seeds each
	go test ./rafttest -run TestChaos -rafttest.seeds=100000   # a soak
	go test ./rafttest -run 'TestChaos/C3$' -rafttest.seed=3000042 -rafttest.trace=out.txt
	go test -tags keelmutations -run TestCoreMutations ./rafttest    # each core fix is needed

TestStorageFaults runs storage faults with every other fault (3 and 5 nodes,
membership changes down to three voters, pipelined) and counts each damage
kind over its seeds.

TestChaosModes runs every kind of fault in four modes — plain, membership
(down to a single voter), pipelined, and both — with 3 and 5 nodes (and a
single voter with learners in the last), each with liveness and catch-up
checked after healing. TestCoreMutations (build tag keelmutations) switches
off, one at a time, the fixes of the core that raft.SetMutationsForTesting
names, and requires the simulator to catch each bug within a bounded number
of seeds; -rafttest.seeds with TestCoreMutationCatchRate measures the catch
rates (and, with -rafttest.baseline, that the same runs find nothing with
every fix in).

A failing run prints its seed, the violated property and the command that
replays it with a trace.
*/
package rafttest
