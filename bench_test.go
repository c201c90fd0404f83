package raft

import (
	"fmt"
	"testing"
)

// The benchmarks below drive RawNodes with the smallest host loop that keeps
// the Ready contract: persist into a MemoryStorage, collect messages, apply
// by counting, Advance. Unless a benchmark says otherwise, one iteration
// measures the core's work (Step/Propose, Ready, Advance) plus
// MemoryStorage.Append and SetHardState. Log compaction, which a real host
// also does, runs with the timer stopped whenever more than benchLogLimit
// entries are stored.
//
// Reading the numbers: with logging off the core allocates only for the
// entries themselves, one allocation per Propose (its []Entry) and one per
// appended batch (the entries' slots in the unstable log, 48 bytes each).
// Nearly all other B/op is MemoryStorage's: Append allocating a chunk for
// every 1024 entries (48 bytes per stored entry) and Compact copying the
// chunk the log then starts in, amortized to almost no allocations;
// `-memprofile` with `go tool pprof -sample_index=alloc_space` separates
// the two.

// benchPayload is the data of every proposal and replicated entry.
var benchPayload = []byte("0123456789abcdef0123456789abcdef")

// benchLogLimit is how many applied entries a node's storage may hold before
// the benchmark compacts it (timer stopped), so that a long run does not
// hold every entry in memory.
const benchLogLimit = 1 << 12

// benchNode is a RawNode with its storage and a minimal host loop.
type benchNode struct {
	rn      *RawNode
	storage *MemoryStorage
	// applied is the index of the last applied entry or snapshot.
	applied uint64
	// compacted is the index up to which the storage was compacted.
	compacted uint64
	// out collects the messages the node sent; the caller delivers or
	// drops them and truncates out.
	out []Message
	// reads counts the ReadStates the node handed out.
	reads int
}

// benchNewNode returns node id of a cluster of voters, bootstrapped, with its
// first Ready handled.
func benchNewNode(tb testing.TB, id uint64, voters []uint64) *benchNode {
	tb.Helper()
	storage := NewMemoryStorage()
	rn, err := NewRawNode(Config{
		ID:              id,
		ElectionTick:    10,
		HeartbeatTick:   1,
		Storage:         storage,
		MaxInflightMsgs: 256,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := rn.Bootstrap(voters); err != nil {
		tb.Fatal(err)
	}
	n := &benchNode{rn: rn, storage: storage}
	n.handleReadies(tb)
	return n
}

// handleReadies runs the host loop until the node has no Ready: persist the
// snapshot, entries and hard state, collect the messages into out, apply
// the committed entries, Advance.
func (n *benchNode) handleReadies(tb testing.TB) {
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		if !rd.Snapshot.IsEmpty() {
			if err := n.storage.ApplySnapshot(rd.Snapshot); err != nil {
				tb.Fatal(err)
			}
			n.applied = rd.Snapshot.Metadata.Index
		}
		if err := n.storage.Append(rd.Entries); err != nil {
			tb.Fatal(err)
		}
		if !rd.HardState.IsEmpty() {
			if err := n.storage.SetHardState(rd.HardState); err != nil {
				tb.Fatal(err)
			}
		}
		n.reads += len(rd.ReadStates)
		// Messages are copied out before Advance, which may reuse the slices.
		n.out = append(n.out, rd.Messages...)
		n.out = append(n.out, rd.MessagesAfterPersist...)
		for i := range rd.CommittedEntries {
			e := &rd.CommittedEntries[i]
			if e.Index != n.applied+1 {
				tb.Fatalf("applied index %d after %d", e.Index, n.applied)
			}
			n.applied = e.Index
		}
		n.rn.Advance(rd)
	}
}

// compact discards the log up to the applied index.
func (n *benchNode) compact(tb testing.TB) {
	tb.Helper()
	if first, _ := n.storage.FirstIndex(); n.applied < first {
		return
	}
	if err := n.storage.Compact(n.applied); err != nil {
		tb.Fatal(err)
	}
	n.compacted = n.applied
}

// benchMaybeCompact compacts the nodes, with b's timer stopped, once the
// first one holds more than benchLogLimit applied entries.
func benchMaybeCompact(b *testing.B, nodes ...*benchNode) {
	if nodes[0].applied-nodes[0].compacted <= benchLogLimit {
		return
	}
	b.StopTimer()
	for _, n := range nodes {
		n.compact(b)
	}
	b.StartTimer()
}

// benchCluster delivers messages directly between RawNodes: no test
// network, no copies beyond one queue.
type benchCluster struct {
	nodes []*benchNode // nodes[i] has ID i+1
	// queue and spare are swapped on every delivery round so that
	// delivering allocates nothing once they have grown.
	queue, spare []Message
}

func benchNewCluster(tb testing.TB, size int) *benchCluster {
	tb.Helper()
	voters := make([]uint64, size)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	c := &benchCluster{}
	for _, id := range voters {
		c.nodes = append(c.nodes, benchNewNode(tb, id, voters))
	}
	return c
}

func (c *benchCluster) node(id uint64) *benchNode { return c.nodes[id-1] }

// stabilize runs every host loop and delivers messages until none is left.
func (c *benchCluster) stabilize(tb testing.TB) {
	for {
		for _, n := range c.nodes {
			n.handleReadies(tb)
			c.queue = append(c.queue, n.out...)
			clear(n.out)
			n.out = n.out[:0]
		}
		if len(c.queue) == 0 {
			return
		}
		msgs := c.queue
		c.queue = c.spare[:0]
		for i := range msgs {
			if err := c.node(msgs[i].To).rn.Step(msgs[i]); err != nil {
				tb.Fatal(err)
			}
		}
		clear(msgs)
		c.spare = msgs[:0]
	}
}

// elect makes node id campaign and checks that it won.
func (c *benchCluster) elect(tb testing.TB, id uint64) {
	tb.Helper()
	if err := c.node(id).rn.Campaign(); err != nil {
		tb.Fatal(err)
	}
	c.stabilize(tb)
	if st := c.node(id).rn.BasicStatus(); st.RaftState != StateLeader {
		tb.Fatalf("node %d did not win the election: %+v", id, st)
	}
}

// proposeApply proposes benchPayload at node id, stabilizes the cluster
// and checks that every node applied exactly one more entry.
func (c *benchCluster) proposeApply(tb testing.TB, id uint64) {
	want := c.node(id).applied + 1
	if err := c.node(id).rn.Propose(benchPayload); err != nil {
		tb.Fatal(err)
	}
	c.stabilize(tb)
	for _, n := range c.nodes {
		if n.applied != want {
			tb.Fatalf("node applied index %d, want %d", n.applied, want)
		}
	}
}

// benchWarmup is how many cycles run before the timer starts, so that the
// reused buffers (message slices, delivery queues) have their final size.
const benchWarmup = 64

// BenchmarkProposeCommitApplySingleVoter measures one proposal's full cycle
// on a single voter: Propose, a Ready with the entry (persisted, Advance
// counts it durable and commits it), a Ready with the committed entry
// (applied, Advance).
func BenchmarkProposeCommitApplySingleVoter(b *testing.B) {
	c := benchNewCluster(b, 1)
	c.elect(b, 1)
	for range benchWarmup {
		c.proposeApply(b, 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.proposeApply(b, 1)
		benchMaybeCompact(b, c.nodes...)
	}
}

// BenchmarkProposeCommitApply3Nodes measures one proposal's full cycle on
// three voters, all in this goroutine: the leader's Propose, appends to both
// followers, their acknowledgements, the commit, the commit index reaching
// the followers, and every node applying the entry. Allocations are those of
// all three nodes together.
func BenchmarkProposeCommitApply3Nodes(b *testing.B) {
	c := benchNewCluster(b, 3)
	c.elect(b, 1)
	for range benchWarmup {
		c.proposeApply(b, 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.proposeApply(b, 1)
		benchMaybeCompact(b, c.nodes...)
	}
}

// BenchmarkFollowerAppend measures a follower handling one MsgApp in steady
// state: Step, one Ready (new entries, the commit index moved over the
// previous batch, the committed previous batch, the acknowledgement),
// MemoryStorage.Append and SetHardState, Advance. The message's entries are
// written into one reused buffer by the benchmark (the follower copies what
// it appends), so no allocation comes from building the message.
func BenchmarkFollowerAppend(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			c := benchNewCluster(b, 3)
			c.elect(b, 1)
			term := c.node(1).rn.BasicStatus().Term
			f := c.node(2)
			ents := make([]Entry, n)
			for i := range ents {
				ents[i] = Entry{Term: term, Type: EntryNormal, Data: benchPayload}
			}
			step := func() {
				last, _ := f.storage.LastIndex()
				for i := range ents {
					ents[i].Index = last + 1 + uint64(i)
				}
				m := Message{
					Type: MsgApp, From: 1, To: 2, Term: term,
					Index: last, LogTerm: term, Entries: ents, Commit: last,
				}
				if err := f.rn.Step(m); err != nil {
					b.Fatal(err)
				}
				f.handleReadies(b)
				if len(f.out) != 1 || f.out[0].Type != MsgAppResp || f.out[0].Reject {
					b.Fatalf("unexpected answer: %+v", f.out)
				}
				f.out = f.out[:0]
			}
			for range benchWarmup {
				step()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				step()
				benchMaybeCompact(b, f)
			}
		})
	}
}

// benchAckBatch is how many entries the leader benchmark proposes, with the
// timer stopped, before acknowledging them one by one.
const benchAckBatch = 128

// BenchmarkLeaderAppendResponse measures a leader of three handling one
// MsgAppResp that acknowledges one more entry and so commits it: Step, one
// Ready (the new commit index, the committed entry, an empty append to each
// follower carrying the commit index), SetHardState, Advance. The entries
// are proposed and persisted in batches with the timer stopped; follower 2
// acknowledges them one at a time, follower 3 catches up once per batch
// (also untimed) so that its inflight window never fills.
func BenchmarkLeaderAppendResponse(b *testing.B) {
	c := benchNewCluster(b, 3)
	c.elect(b, 1)
	l := c.node(1)
	term := l.rn.BasicStatus().Term
	ack := func(from, index uint64) {
		m := Message{Type: MsgAppResp, From: from, To: 1, Term: term, Index: index}
		if err := l.rn.Step(m); err != nil {
			b.Fatal(err)
		}
		l.handleReadies(b)
		clear(l.out)
		l.out = l.out[:0]
	}
	refill := func() {
		ack(3, l.applied)
		l.compact(b)
		for range benchAckBatch {
			if err := l.rn.Propose(benchPayload); err != nil {
				b.Fatal(err)
			}
			l.handleReadies(b)
			clear(l.out)
			l.out = l.out[:0]
		}
	}
	commitNext := func() {
		want := l.applied + 1
		ack(2, want)
		if l.applied != want {
			b.Fatalf("leader applied %d, want %d", l.applied, want)
		}
	}
	refill()
	for range benchAckBatch {
		commitNext()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%benchAckBatch == 0 {
			b.StopTimer()
			refill()
			b.StartTimer()
		}
		commitNext()
	}
}
