package raft_test

import (
	"fmt"
	"log"

	"github.com/keelraft/raft"
)

// Three nodes in one process elect a leader and replicate a value. Each node
// is a RawNode over a MemoryStorage; a real deployment runs one node per
// machine, with durable storage and a network transport in place of the
// slice of messages below. The loop in handle is the host's side of the
// Ready contract: persist, send, apply, Advance.
func ExampleRawNode() {
	ids := []uint64{1, 2, 3}
	nodes := map[uint64]*raft.RawNode{}
	storages := map[uint64]*raft.MemoryStorage{}
	for _, id := range ids {
		storage := raft.NewMemoryStorage()
		rn, err := raft.NewRawNode(raft.Config{
			ID:            id,
			ElectionTick:  10,
			HeartbeatTick: 1,
			Storage:       storage,
			// Seeded election jitter: every run elects the same leader.
			Seed: id,
		})
		if err != nil {
			log.Fatal(err)
		}
		// A brand-new cluster: every node starts from the same membership.
		if err := rn.Bootstrap(ids); err != nil {
			log.Fatal(err)
		}
		nodes[id], storages[id] = rn, storage
	}

	var inFlight []raft.Message // sent, not yet delivered
	applied := map[uint64][]string{}

	// handle does everything node id asks for in its Readies.
	handle := func(id uint64) {
		rn, storage := nodes[id], storages[id]
		for rn.HasReady() {
			rd := rn.Ready()
			// 1. Persist: snapshot, entries, then hard state. (Here
			// in memory; a real host writes them to disk and syncs
			// when rd.MustSync.)
			if !rd.Snapshot.IsEmpty() {
				if err := storage.ApplySnapshot(rd.Snapshot); err != nil {
					log.Fatal(err)
				}
			}
			if err := storage.Append(rd.Entries); err != nil {
				log.Fatal(err)
			}
			if !rd.HardState.IsEmpty() {
				if err := storage.SetHardState(rd.HardState); err != nil {
					log.Fatal(err)
				}
			}
			// 2. Send. rd.Messages may even leave before step 1;
			// rd.MessagesAfterPersist only once it is durable.
			inFlight = append(inFlight, rd.Messages...)
			inFlight = append(inFlight, rd.MessagesAfterPersist...)
			// 3. Apply committed entries to the state machine, in
			// order. Empty entries are the leaders' own markers.
			for _, e := range rd.CommittedEntries {
				if e.Type == raft.EntryNormal && len(e.Data) > 0 {
					applied[id] = append(applied[id], string(e.Data))
				}
			}
			// 4. Tell the node all of it is done.
			rn.Advance(rd)
		}
	}

	// deliver hands every message to its target until the cluster is quiet.
	deliver := func() {
		for len(inFlight) > 0 {
			m := inFlight[0]
			inFlight = inFlight[1:]
			if err := nodes[m.To].Step(m); err != nil {
				log.Printf("node %d: %v", m.To, err)
			}
			handle(m.To)
		}
	}

	// Tick the clocks until a node's election timeout fires and it wins.
	leader := raft.None
	for leader == raft.None {
		for _, id := range ids {
			nodes[id].Tick()
			handle(id)
		}
		deliver()
		for _, id := range ids {
			if nodes[id].BasicStatus().RaftState == raft.StateLeader {
				leader = id
			}
		}
	}
	fmt.Printf("node %d is the leader\n", leader)

	if err := nodes[leader].Propose([]byte("hello")); err != nil {
		log.Fatal(err)
	}
	handle(leader)
	deliver()

	for _, id := range ids {
		fmt.Printf("node %d applied %q\n", id, applied[id])
	}
	// Output:
	// node 1 is the leader
	// node 1 applied ["hello"]
	// node 2 applied ["hello"]
	// node 3 applied ["hello"]
}

// A single voter commits on its own: no messages, only the host loop. It
// commits an entry once the host has made it durable and called Advance,
// so the entry comes back as committed in the Ready after the one that
// asked to persist it.
func ExampleRawNode_singleVoter() {
	storage := raft.NewMemoryStorage()
	rn, err := raft.NewRawNode(raft.Config{ID: 1, Storage: storage})
	if err != nil {
		log.Fatal(err)
	}
	if err := rn.Bootstrap([]uint64{1}); err != nil {
		log.Fatal(err)
	}

	handle := func() {
		for rn.HasReady() {
			rd := rn.Ready()
			if !rd.Snapshot.IsEmpty() {
				if err := storage.ApplySnapshot(rd.Snapshot); err != nil {
					log.Fatal(err)
				}
			}
			if err := storage.Append(rd.Entries); err != nil {
				log.Fatal(err)
			}
			if !rd.HardState.IsEmpty() {
				if err := storage.SetHardState(rd.HardState); err != nil {
					log.Fatal(err)
				}
			}
			for _, e := range rd.CommittedEntries {
				if len(e.Data) > 0 {
					fmt.Printf("applied %q at index %d\n", e.Data, e.Index)
				}
			}
			rn.Advance(rd)
		}
	}

	handle() // persist the bootstrap configuration
	if err := rn.Campaign(); err != nil {
		log.Fatal(err)
	}
	handle()
	for _, v := range []string{"x=1", "y=2"} {
		if err := rn.Propose([]byte(v)); err != nil {
			log.Fatal(err)
		}
	}
	handle()
	fmt.Println("leader:", rn.BasicStatus().Lead)
	// Output:
	// applied "x=1" at index 3
	// applied "y=2" at index 4
	// leader: 1
}
