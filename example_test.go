package raft_test

import (
	"fmt"
	"log"
	"slices"
	"strings"

	"github.com/keelraft/raft"
)

// exampleHost is one node's host: the RawNode, its storage and the
// application state (a list of applied values), with what the host loop
// keeps between Readies.
type exampleHost struct {
	id      uint64
	rn      *raft.RawNode
	storage *raft.MemoryStorage
	values  []string       // the application state
	applied uint64         // the index the state reflects
	conf    raft.ConfState // the membership at applied
	reads   []raft.ReadState
}

// snapshotEvery is how many applied entries the example's hosts keep in
// the log before taking a snapshot and compacting.
const snapshotEvery = 4

// handle carries out every Ready of h's node, each field in its turn, and
// queues the messages it sends on out.
func (h *exampleHost) handle(out *[]raft.Message) {
	for h.rn.HasReady() {
		rd := h.rn.Ready()
		// The leader or role changed.
		if rd.SoftState != nil && rd.RaftState == raft.StateLeader {
			fmt.Printf("node %d leads\n", h.id)
		}
		// 1. Persist: snapshot, entries, then hard state. A real host
		// writes them to disk and, when rd.MustSync, syncs before step 3.
		if !rd.Snapshot.IsEmpty() {
			if err := h.storage.ApplySnapshot(rd.Snapshot); err != nil {
				log.Fatal(err)
			}
		}
		if err := h.storage.Append(rd.Entries); err != nil {
			log.Fatal(err)
		}
		if !rd.HardState.IsEmpty() {
			if err := h.storage.SetHardState(rd.HardState); err != nil {
				log.Fatal(err)
			}
		}
		// 2. rd.Messages may leave at once, even before step 1 is
		// durable. 3. rd.MessagesAfterPersist only once it is.
		*out = append(*out, rd.Messages...)
		*out = append(*out, rd.MessagesAfterPersist...)
		// 4. Apply: first the snapshot's state, then the committed
		// entries in order. Configuration changes go to ApplyConfChange.
		if !rd.Snapshot.IsEmpty() {
			h.values = nil
			if len(rd.Snapshot.Data) > 0 {
				h.values = strings.Split(string(rd.Snapshot.Data), ",")
			}
			h.applied, h.conf = rd.Snapshot.Metadata.Index, rd.Snapshot.Metadata.ConfState
		}
		for _, e := range rd.CommittedEntries {
			switch {
			case e.Type == raft.EntryConfChange:
				var cc raft.ConfChange
				if err := cc.Unmarshal(e.Data); err != nil {
					log.Fatal(err)
				}
				cs, err := h.rn.ApplyConfChange(cc)
				if err != nil {
					log.Fatal(err)
				}
				h.conf = cs
			case len(e.Data) > 0: // empty entries are the leaders' markers
				h.values = append(h.values, string(e.Data))
			}
			h.applied = e.Index
		}
		// 5. Serve the reads whose index the state has reached.
		h.reads = append(h.reads, rd.ReadStates...)
		for len(h.reads) > 0 && h.reads[0].Index <= h.applied {
			fmt.Printf("node %d reads %q for %s\n", h.id, h.values, h.reads[0].RequestCtx)
			h.reads = h.reads[1:]
		}
		// 6. Now and then, snapshot the state and compact the log.
		snap, _ := h.storage.Snapshot()
		if h.applied >= snap.Metadata.Index+snapshotEvery {
			data := []byte(strings.Join(h.values, ","))
			if _, err := h.storage.CreateSnapshot(h.applied, &h.conf, data); err != nil {
				log.Fatal(err)
			}
			if err := h.storage.Compact(h.applied); err != nil {
				log.Fatal(err)
			}
		}
		// 7. Tell the node all of it is done.
		h.rn.Advance(rd)
	}
}

// Three nodes in one process elect a leader, replicate values, serve a
// linearizable read and add a fourth node, which catches up from a
// snapshot. Each node is a RawNode over a MemoryStorage; a real deployment
// runs one node per machine, with durable storage and a network transport
// in place of the slice of messages below. exampleHost.handle is the
// host's side of the Ready contract, every field of Ready included.
func ExampleRawNode() {
	hosts := map[uint64]*exampleHost{}
	start := func(id uint64, bootstrap []uint64) {
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
		// A brand-new cluster: every first node starts from the same
		// membership. A node that joins later starts empty and learns it
		// from the leader.
		if bootstrap != nil {
			if err := rn.Bootstrap(bootstrap); err != nil {
				log.Fatal(err)
			}
		}
		hosts[id] = &exampleHost{id: id, rn: rn, storage: storage}
	}
	for _, id := range []uint64{1, 2, 3} {
		start(id, []uint64{1, 2, 3})
	}

	var inFlight []raft.Message // sent, not yet delivered
	// settle handles every node's Readies and delivers every message until
	// the cluster is quiet.
	settle := func() {
		for _, id := range slices.Sorted(func(yield func(uint64) bool) {
			for id := range hosts {
				if !yield(id) {
					return
				}
			}
		}) {
			hosts[id].handle(&inFlight)
		}
		for len(inFlight) > 0 {
			m := inFlight[0]
			inFlight = inFlight[1:]
			if err := hosts[m.To].rn.Step(m); err != nil {
				log.Printf("node %d: %v", m.To, err)
			}
			hosts[m.To].handle(&inFlight)
		}
	}

	// Tick the clocks until a node's election timeout fires and it wins.
	leader := raft.None
	for leader == raft.None {
		for _, id := range []uint64{1, 2, 3} {
			hosts[id].rn.Tick()
		}
		settle()
		leader = hosts[1].rn.BasicStatus().Lead
	}

	lead := hosts[leader].rn
	for _, v := range []string{"a", "b", "c", "d", "e"} {
		if err := lead.Propose([]byte(v)); err != nil {
			log.Fatal(err)
		}
	}
	settle()
	hosts[2].rn.ReadIndex([]byte("read-1")) // a follower asks the leader
	settle()

	// Node 4 joins: the leader's log was compacted, so it gets a snapshot.
	start(4, nil)
	cc := raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfChangeAddLearnerNode, NodeID: 4}}}
	if err := lead.ProposeConfChange(cc); err != nil {
		log.Fatal(err)
	}
	settle()
	for range 2 { // a heartbeat round reaches the new learner
		lead.Tick()
		settle()
	}
	fmt.Printf("node 4 holds %q, learners %v\n", hosts[4].values, hosts[4].conf.Learners)
	// Output:
	// node 1 leads
	// node 2 reads ["a" "b" "c" "d" "e"] for read-1
	// node 4 holds ["a" "b" "c" "d" "e"], learners [4]
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
	h := &exampleHost{id: 1, rn: rn, storage: storage}
	var none []raft.Message
	h.handle(&none) // persist the bootstrap configuration
	if err := rn.Campaign(); err != nil {
		log.Fatal(err)
	}
	h.handle(&none)
	for _, v := range []string{"x=1", "y=2"} {
		if err := rn.Propose([]byte(v)); err != nil {
			log.Fatal(err)
		}
	}
	h.handle(&none)
	fmt.Printf("applied %q up to index %d\n", h.values, h.applied)
	// Output:
	// node 1 leads
	// applied ["x=1" "y=2"] up to index 4
}
