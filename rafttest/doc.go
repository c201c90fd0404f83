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
drop or duplicate). Every enabled kind happens at least once per run, and
Result.CheckInjected reports a run in which one did not.

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
vote and commit monotonicity, one vote per node and term, and that a restarted
node kept every vote and term it promised in a message. At the end: the client
history is linearizable (github.com/anishathalye/porcupine, one register per
key). With Config.Liveness, every fault is healed after Config.Steps and the
cluster must elect a leader within three election timeouts of its slowest
node, commit a write, and then complete every client operation.

A run stops at the first violation; Result says which property, at which step.
Config.Trace receives a text timeline (roles, terms, faults, drops, client
operations), and Result.WriteVisualization writes porcupine's HTML view of a
non-linearizable history.

# Running the package's tests

	go test ./rafttest                                                 # C1-C6, a few hundred seeds
	go test ./rafttest -run TestChaos -rafttest.seeds=100000   # a soak
	go test ./rafttest -run 'TestChaos/C3$' -rafttest.seed=3000042 -rafttest.trace=out.txt

A failing run prints its seed, the violated property and the command that
replays it with a trace.
*/
package rafttest
