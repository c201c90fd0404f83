package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// badInput reads a fuzz input as a stream of choices; past its end every
// choice is 0.
type badInput struct {
	data []byte
	pos  int
}

func (in *badInput) done() bool { return in.pos >= len(in.data) }

func (in *badInput) byte() byte {
	if in.done() {
		return 0
	}
	b := in.data[in.pos]
	in.pos++
	return b
}

func (in *badInput) intn(n int) int { return int(in.byte()) % n }

func (in *badInput) uint64() uint64 {
	var buf [8]byte
	for i := range buf {
		buf[i] = in.byte()
	}
	return binary.LittleEndian.Uint64(buf[:])
}

// index picks an index around a log whose last index is last, or an absurd
// one.
func (in *badInput) index(last uint64) uint64 {
	switch in.intn(8) {
	case 0:
		return 0
	case 1:
		return last
	case 2:
		return last + 1 + uint64(in.intn(4))
	case 3:
		return last - min(last, uint64(in.intn(4)))
	case 4:
		return math.MaxUint64 - uint64(in.intn(3))
	case 5:
		return uint64(in.byte())
	case 6:
		return maxTerm - 1 + uint64(in.intn(3))
	default:
		return in.uint64()
	}
}

// term picks a term around cur, or an absurd one.
func (in *badInput) term(cur uint64) uint64 {
	switch in.intn(8) {
	case 0:
		return 0
	case 1, 2:
		return cur
	case 3:
		return cur - min(cur, 1+uint64(in.intn(2)))
	case 4:
		return cur + 1 + uint64(in.intn(3))
	case 5:
		return maxTerm - 1 + uint64(in.intn(3))
	case 6:
		return math.MaxUint64 - uint64(in.intn(2))
	default:
		return in.uint64()
	}
}

// badFuzzNodes is the cluster size; senders 0 and badFuzzNodes+1 are a
// missing and an unknown node.
const badFuzzNodes = 3

// message builds a message for node to from the input: any type (unknown
// ones too), sender, term, indexes and entries, mostly but not always
// shaped like something a peer could send. badMessageBytes is its inverse.
func (in *badInput) message(to uint64, r *raft) Message {
	last := r.raftLog.lastIndex()
	var m Message
	m.Type = MessageType(in.intn(int(numMessageTypes) + 2))
	m.From = uint64(in.intn(badFuzzNodes + 2))
	m.To = to
	if in.intn(8) == 0 {
		m.To = uint64(in.intn(badFuzzNodes + 2))
	}
	m.Term = in.term(r.Term)
	m.Index = in.index(last)
	if in.intn(4) == 0 {
		m.LogTerm = in.term(r.Term)
	} else {
		// Usually the term the receiver has at Index, so that appends
		// and votes pass the consistency checks.
		m.LogTerm = min(m.Term, r.raftLog.zeroTermOnOutOfBounds(r.raftLog.term(m.Index)))
	}
	m.Commit = in.index(last)
	m.Reject = in.intn(2) == 0
	m.RejectHint = in.index(last)
	next, prevTerm := m.Index+1, max(m.LogTerm, 1)
	for range in.intn(5) {
		e := Entry{Type: EntryType(in.intn(16) / 7), Data: []byte{in.byte()}}
		e.Index = next
		if in.intn(8) == 0 {
			e.Index = in.index(last)
		}
		switch in.intn(8) {
		case 0:
			e.Term = in.term(r.Term)
		case 1:
			e.Term = m.Term
		default:
			e.Term = prevTerm
		}
		m.Entries = append(m.Entries, e)
		next, prevTerm = e.Index+1, e.Term
	}
	if (m.Type == MsgSnap || in.intn(16) == 0) && in.intn(6) != 0 {
		var voters []uint64
		for id, bits := uint64(0), in.byte(); id <= badFuzzNodes+1; id++ {
			if bits&(1<<id) != 0 {
				voters = append(voters, id)
			}
		}
		m.Snapshot = &Snapshot{Metadata: SnapshotMetadata{ConfState: ConfState{Voters: voters}}}
		m.Snapshot.Metadata.Index = in.index(last)
		m.Snapshot.Metadata.Term = in.term(m.Term)
	}
	return m
}

// badMessageBytes encodes m (addressed to to) so that message decodes it
// exactly; it is how the seed corpus spells forged messages.
func badMessageBytes(to uint64, m Message) []byte {
	raw := func(v uint64) []byte { return binary.LittleEndian.AppendUint64([]byte{7}, v) }
	b := []byte{byte(m.Type), byte(m.From)}
	if m.To == to {
		b = append(b, 1)
	} else {
		b = append(b, 0, byte(m.To))
	}
	b = append(b, raw(m.Term)...)
	b = append(b, raw(m.Index)...)
	b = append(append(b, 0), raw(m.LogTerm)...)
	b = append(b, raw(m.Commit)...)
	b = append(b, map[bool]byte{true: 0, false: 1}[m.Reject])
	b = append(b, raw(m.RejectHint)...)
	b = append(b, byte(len(m.Entries)))
	for _, e := range m.Entries {
		b = append(b, byte(e.Type)*7, e.Data[0], 0)
		b = append(b, raw(e.Index)...)
		b = append(append(b, 0), raw(e.Term)...)
	}
	if m.Type != MsgSnap {
		b = append(b, map[bool]byte{true: 0, false: 1}[m.Snapshot != nil])
	}
	if s := m.Snapshot; s != nil {
		var bits byte
		for _, id := range s.Metadata.ConfState.Voters {
			bits |= 1 << id
		}
		b = append(b, 1, bits)
		b = append(b, raw(s.Metadata.Index)...)
		b = append(b, raw(s.Metadata.Term)...)
	} else if m.Type == MsgSnap {
		b = append(b, 0)
	}
	return b
}

// badFuzzer drives a 3-node test network from a fuzz input and checks the
// safety properties after every operation.
type badFuzzer struct {
	t    testing.TB
	nw   *testCluster
	logs map[uint64]*observer.ObservedLogs

	// byzantine is set once a forged message that can carry a leader's or
	// a voter's authority (an append, heartbeat, snapshot, append ack,
	// vote or vote grant of a current or later term) was accepted. No
	// consensus protocol survives forged authority: from then on only each
	// node's own invariants are checked, not agreement between nodes.
	byzantine bool

	// Per node: the highest commit index and term seen, the vote seen in
	// that term, and the term of every committed index.
	commit    map[uint64]uint64
	term      map[uint64]uint64
	vote      map[uint64]uint64
	committed map[uint64]map[uint64]uint64

	leaderTerms map[uint64]bool
	stats       badFuzzStats
}

type badFuzzStats struct {
	ops, delivered, injected, rejected, leaders, commits int
}

// newBadFuzzer builds the cluster; the low bits of opts turn off PreVote and
// CheckQuorum.
func newBadFuzzer(t testing.TB, opts byte) *badFuzzer {
	t.Helper()
	f := &badFuzzer{
		t:         t,
		logs:      map[uint64]*observer.ObservedLogs{},
		commit:    map[uint64]uint64{},
		term:      map[uint64]uint64{},
		vote:      map[uint64]uint64{},
		committed: map[uint64]map[uint64]uint64{},

		leaderTerms: map[uint64]bool{},
	}
	cores := map[uint64]zapcore.Core{}
	for id := uint64(1); id <= badFuzzNodes; id++ {
		cores[id], f.logs[id] = observer.New(zapcore.WarnLevel)
		f.committed[id] = map[uint64]uint64{}
	}
	f.nw = newCluster(t, badFuzzNodes, func(c *Config) {
		c.Logger = zap.New(cores[c.ID])
		c.Seed = c.ID * 7919
		c.DisablePreVote = opts&1 != 0
		c.DisableCheckQuorum = opts&2 != 0
	})
	f.check()
	return f
}

// run performs the operations the input encodes, then lets the cluster
// settle, checking after every step.
func (f *badFuzzer) run(in *badInput) {
	for ops := 0; !in.done() && ops < 500; ops++ {
		f.step(in)
		f.stats.ops++
		f.check()
	}
	// Settle: tick and deliver in order so that pending entries commit
	// and are compared.
	for range 30 {
		for _, id := range f.nw.ids {
			f.nw.tick(id, 1)
			f.check()
		}
		for i := 0; i < 1000 && len(f.nw.queue) > 0; i++ {
			f.deliver(0, false)
			f.check()
		}
	}
}

// step performs one operation.
func (f *badFuzzer) step(in *badInput) {
	nw := f.nw
	id := uint64(1 + in.intn(badFuzzNodes))
	switch op := in.intn(12); op {
	case 0, 1, 2, 3:
		if len(nw.queue) > 0 {
			f.deliver(in.intn(len(nw.queue)), false)
		}
	case 4:
		if len(nw.queue) > 0 {
			f.deliver(in.intn(len(nw.queue)), true)
		}
	case 5:
		if len(nw.queue) > 0 {
			k := in.intn(len(nw.queue))
			nw.queue = slices.Delete(nw.queue, k, k+1)
		}
	case 6:
		nw.tick(id, 1+in.intn(4))
	case 7:
		err := nw.node(id).Propose([]byte{'p', in.byte()})
		if err != nil && !errors.Is(err, ErrProposalDropped) {
			f.t.Fatalf("Propose at node %d: %v", id, err)
		}
		nw.handleReady(id)
	case 8:
		if err := nw.node(id).Campaign(); err != nil && !errors.Is(err, ErrCannotCampaign) {
			f.t.Fatalf("Campaign at node %d: %v", id, err)
		}
		nw.handleReady(id)
	case 9:
		nw.crash(id)
	default:
		f.inject(id, in.message(id, nw.raft(id)))
	}
}

// deliver steps the k-th queued message into its receiver; with dup, a copy
// stays queued (a duplicate on the wire).
func (f *badFuzzer) deliver(k int, dup bool) {
	nw := f.nw
	m := nw.queue[k]
	if !dup {
		nw.queue = slices.Delete(nw.queue, k, k+1)
	}
	n, ok := nw.nodes[m.To]
	if !ok {
		return
	}
	err := n.rn.Step(m)
	f.stats.delivered++
	// A message from a correct node is never refused (terms beyond
	// maxTerm, reachable only through forged messages, are accepted in
	// bounded steps and are not checked here).
	if err != nil && !errors.Is(err, ErrProposalDropped) && !f.byzantine && m.Term <= maxTerm {
		f.t.Fatalf("node %d refused a message from a correct node: %v\n%+v", m.To, err, m)
	}
	nw.handleReady(n.id)
}

// inject steps a forged message into node id and checks that a refused one
// changed nothing and was logged.
func (f *badFuzzer) inject(id uint64, m Message) {
	n := f.nw.nodes[id]
	f.logs[id].TakeAll()
	before := captureBadState(n.rn)
	termBefore := n.rn.raft.Term
	err := n.rn.Step(m)
	f.stats.injected++
	switch {
	case errors.Is(err, ErrInvalidMessage), errors.Is(err, ErrStepLocalMsg), errors.Is(err, ErrStepPeerNotFound):
		f.stats.rejected++
		if after := captureBadState(n.rn); !badStatesEqual(before, after) {
			f.t.Fatalf("refused message changed node %d (%v): %+v\nbefore %+v\nafter  %+v", id, err, m, before, after)
		}
		if f.logs[id].Len() == 0 {
			f.t.Fatalf("refused message was not logged (%v): %+v", err, m)
		}
	case err == nil, errors.Is(err, ErrProposalDropped), errors.Is(err, ErrInvalidConfChange),
		errors.Is(err, ErrPendingConfChange), errors.Is(err, ErrInvalidTransfer), errors.Is(err, ErrNotLeader):
		// Refused requests (a garbage configuration change, a transfer to
		// a non-voter) change nothing; accepted messages may.
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap, MsgAppResp, MsgVote, MsgVoteResp:
			if m.Term >= termBefore && !f.byzantine {
				f.byzantine = true
				f.forgetAgreement()
			}
		}
	default:
		f.t.Fatalf("unexpected error from Step: %v\n%+v", err, m)
	}
	f.nw.handleReady(n.id)
}

func badStatesEqual(a, b badState) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

// forgetAgreement turns off the network's checks across nodes (election and
// state-machine safety) for a byzantine run; the check is reset after
// every operation so it never compares a node with a forged past. A
// forged append may also commit a configuration change that does not
// decode, which the hosts then refuse.
func (f *badFuzzer) forgetAgreement() {
	clear(f.nw.leaders)
	clear(f.nw.committed)
	f.nw.forged = true
}

// check asserts each node's own invariants, which hold whatever it was fed.
// Agreement between nodes (one leader per term, the same entry applied at
// each index) is checked by the network on every Ready unless byzantine.
func (f *badFuzzer) check() {
	if f.byzantine {
		f.forgetAgreement()
	}
	for _, id := range f.nw.ids {
		r := f.nw.raft(id)
		l := r.raftLog
		switch {
		case r.Term < f.term[id]:
			f.t.Fatalf("node %d: term went back from %d to %d", id, f.term[id], r.Term)
		case r.Term == f.term[id] && f.vote[id] != None && r.Vote != f.vote[id]:
			f.t.Fatalf("node %d: vote changed from %d to %d in term %d", id, f.vote[id], r.Vote, r.Term)
		case l.committed < f.commit[id]:
			f.t.Fatalf("node %d: commit went back from %d to %d", id, f.commit[id], l.committed)
		case l.committed > l.lastIndex():
			f.t.Fatalf("node %d: commit %d beyond last index %d", id, l.committed, l.lastIndex())
		case l.applied > l.committed:
			f.t.Fatalf("node %d: applied %d beyond commit %d", id, l.applied, l.committed)
		}
		if r.state == StateLeader && !f.leaderTerms[r.Term] {
			f.leaderTerms[r.Term] = true
			f.stats.leaders++
		}
		f.term[id], f.vote[id] = r.Term, r.Vote
		// Committed entries still in the log keep their terms.
		seen := f.committed[id]
		for i := max(l.firstIndex()-1, 1); i <= l.committed && i != 0; i++ {
			t, err := l.term(i)
			if err != nil {
				f.t.Fatalf("node %d: committed index %d unreadable: %v", id, i, err)
			}
			if prev, ok := seen[i]; ok && prev != t {
				f.t.Fatalf("node %d: committed entry %d changed term from %d to %d", id, i, prev, t)
			}
			seen[i] = t
		}
		if l.committed > f.commit[id] {
			f.stats.commits++
		}
		f.commit[id] = l.committed
	}
}

// badFuzzSeed encodes operations for the seed corpus.
type badFuzzSeed []byte

func (s badFuzzSeed) campaign(id byte) badFuzzSeed { return append(s, id-1, 8) }
func (s badFuzzSeed) propose(id byte) badFuzzSeed  { return append(s, id-1, 7, 'x') }
func (s badFuzzSeed) tick(id, n byte) badFuzzSeed  { return append(s, id-1, 6, n-1) }
func (s badFuzzSeed) crash(id byte) badFuzzSeed    { return append(s, id-1, 9) }
func (s badFuzzSeed) deliver(k byte) badFuzzSeed   { return append(s, 0, 0, k) }
func (s badFuzzSeed) duplicate(k byte) badFuzzSeed { return append(s, 0, 4, k) }
func (s badFuzzSeed) drop(k byte) badFuzzSeed      { return append(s, 0, 5, k) }
func (s badFuzzSeed) inject(id byte, m Message) badFuzzSeed {
	m.To = uint64(id)
	return append(append(s, id-1, 10), badMessageBytes(uint64(id), m)...)
}

func (s badFuzzSeed) deliverAll(n int) badFuzzSeed {
	for range n {
		s = s.deliver(0)
	}
	return s
}

func badFuzzSeeds() [][]byte {
	const maxU = math.MaxUint64
	// The first byte is the cluster's options.
	elect := badFuzzSeed{0}.campaign(1).deliverAll(12)
	x := []byte("x")
	return [][]byte{
		elect,
		elect.propose(1).deliverAll(10).propose(2).deliverAll(10),
		elect.propose(1).deliver(1).drop(0).duplicate(0).deliverAll(8).crash(2).tick(2, 4).deliverAll(8),
		elect.propose(1).
			// A heartbeat from a follower with commit MaxUint64 (after
			// election and one proposal the term is 2, last index 3).
			inject(3, Message{Type: MsgHeartbeat, From: 2, Term: 2, Commit: maxU}).
			// A term-0 heartbeat from the same follower.
			inject(3, Message{Type: MsgHeartbeat, From: 2, Commit: maxU}).
			propose(1).deliverAll(20),
		elect.
			// A vote request for term 2^62 from an unknown node.
			inject(2, Message{Type: MsgVote, From: 4, Term: maxTerm, Index: 3, LogTerm: 2}).
			inject(2, Message{Type: MsgPreVote, From: 4, Term: maxTerm + 1, Index: 3, LogTerm: 2}).
			campaign(3).deliverAll(20).propose(3).deliverAll(20),
		elect.propose(1).
			// Appends with a gap, a decreasing term, an overflowing index.
			inject(2, Message{Type: MsgApp, From: 1, Term: 2, Index: 3, LogTerm: 2,
				Entries: []Entry{{Index: 4, Term: 2, Data: x}, {Index: 6, Term: 2, Data: x}}}).
			inject(2, Message{Type: MsgApp, From: 1, Term: 3, Index: 3, LogTerm: 2,
				Entries: []Entry{{Index: 4, Term: 3, Data: x}, {Index: 5, Term: 2, Data: x}}}).
			inject(2, Message{Type: MsgApp, From: 1, Term: 2, Index: maxU, LogTerm: 2,
				Entries: []Entry{{Index: 0, Term: 2, Data: x}}}).
			deliverAll(20),
		elect.campaign(2).tick(3, 4).tick(3, 4).tick(3, 4).deliverAll(30).propose(2).deliverAll(30),
		// Without PreVote and CheckQuorum, a forged vote request at a
		// higher term deposes the leader.
		badFuzzSeed{3}.campaign(1).deliverAll(12).propose(1).
			inject(3, Message{Type: MsgVote, From: 2, Term: 9, Index: 2, LogTerm: 2}).
			deliverAll(10).campaign(2).deliverAll(20).propose(2).deliverAll(20),
		elect.
			// Acknowledgements and rejections beyond the leader's log.
			inject(1, Message{Type: MsgAppResp, From: 2, Term: 2, Index: maxU}).
			inject(1, Message{Type: MsgAppResp, From: 3, Term: 2, Index: 2, Reject: true, RejectHint: maxU, LogTerm: 2}).
			inject(1, Message{Type: MsgAppResp, From: 4, Term: 2, Index: 2}).
			propose(1).deliverAll(20),
		elect.
			// Snapshots: far ahead, near the end of the index space, with
			// garbage voters.
			inject(3, Message{Type: MsgSnap, From: 1, Term: 2, Snapshot: &Snapshot{Metadata: SnapshotMetadata{
				Index: 100, Term: 2, ConfState: ConfState{Voters: []uint64{1, 2, 3}}}}}).
			inject(2, Message{Type: MsgSnap, From: 1, Term: 2, Snapshot: &Snapshot{Metadata: SnapshotMetadata{
				Index: maxU, Term: 2, ConfState: ConfState{Voters: []uint64{0, 4}}}}}).
			propose(1).deliverAll(20).tick(2, 4).tick(3, 4).deliverAll(20),
	}
}

// FuzzStep feeds a 3-node cluster a sequence of deliveries (reordered,
// duplicated, dropped), ticks, proposals, campaigns, crashes and forged
// messages decoded from the input, and checks that nothing panics, that no
// safety property breaks, and that every refused message changed nothing.
func FuzzStep(f *testing.F) {
	for _, s := range badFuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &badInput{data: data}
		newBadFuzzer(t, in.byte()).run(in)
	})
}

// TestStepRandomGarbage runs FuzzStep's property on pseudo-random inputs from
// fixed seeds, so that plain `go test` covers more than the seed corpus.
func TestStepRandomGarbage(t *testing.T) {
	var total badFuzzStats
	byzantine := 0
	const seeds = 300
	for seed := uint64(1); seed <= seeds; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0xbad))
		data := make([]byte, 200+rng.IntN(600))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		ok := t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			in := &badInput{data: data}
			f := newBadFuzzer(t, in.byte())
			f.run(in)
			total.ops += f.stats.ops
			total.injected += f.stats.injected
			total.rejected += f.stats.rejected
			total.delivered += f.stats.delivered
			total.commits += f.stats.commits
			total.leaders += f.stats.leaders
			if f.byzantine {
				byzantine++
			}
		})
		if !ok {
			t.Fatalf("failed with seed %d; input %x", seed, data)
		}
	}
	t.Logf("%+v, byzantine runs: %d", total, byzantine)
	// The run counts only if it exercised what it claims to.
	if total.injected == 0 || total.rejected == 0 || total.commits == 0 || total.leaders == 0 ||
		total.rejected == total.injected || byzantine == 0 || byzantine > seeds/2 {
		t.Fatalf("random inputs did not exercise the node: %+v, byzantine runs: %d", total, byzantine)
	}
}

// TestBadMessageBytes checks that the seed corpus's forged messages decode to
// exactly what the seeds say.
func TestBadMessageBytes(t *testing.T) {
	nw := newCluster(t, 3)
	r := nw.raft(2)
	for _, m := range []Message{
		{Type: MsgHeartbeat, From: 2, To: 2, Term: 2, Commit: math.MaxUint64},
		{Type: MsgApp, From: 1, To: 3, Term: 7, Index: 3, LogTerm: 2, Reject: true, RejectHint: 9,
			Entries: []Entry{{Index: 4, Term: 2, Data: []byte("a")}, {Index: 9, Term: 5, Type: 2, Data: []byte("b")}}},
		{Type: MsgSnap, From: 4, To: 2, Term: maxTerm, Snapshot: &Snapshot{Metadata: SnapshotMetadata{
			Index: math.MaxUint64, Term: 1, ConfState: ConfState{Voters: []uint64{0, 3}}}}},
		{Type: MsgSnap, From: 1, To: 2, Term: 2},
		{Type: numMessageTypes + 1, From: 0, To: 0, Term: 0, Snapshot: &Snapshot{Metadata: SnapshotMetadata{
			ConfState: ConfState{Voters: []uint64{1}}}}},
	} {
		in := &badInput{data: badMessageBytes(2, m)}
		assert.Equal(t, m, in.message(2, r))
		assert.True(t, in.done(), "%d bytes left over", len(in.data)-in.pos)
	}
}
