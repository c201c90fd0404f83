package raftnode

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// fwdBatch registers a forwarded batch of n entries sent to node to.
func fwdBatch(ps *nodeProposals, to uint64, n int) (*nodeForward, []*nodeProposal) {
	f := &nodeForward{id: ps.newID(), to: to, live: n}
	for range n {
		f.props = append(f.props, &nodeProposal{leader: to, fwd: f, res: make(chan nodeResult, 1)})
	}
	props := append([]*nodeProposal(nil), f.props...)
	ps.forwarded(f)
	return f, props
}

// fwdResult returns p's result, or fails if it has none yet.
func fwdResult(t *testing.T, p *nodeProposal) nodeResult {
	t.Helper()
	select {
	case r := <-p.res:
		return r
	default:
		t.Fatal("no result")
		return nodeResult{}
	}
}

func fwdPending(t *testing.T, p *nodeProposal) {
	t.Helper()
	select {
	case r := <-p.res:
		t.Fatalf("unexpected result %+v", r)
	default:
	}
}

func noTerm(uint64) (uint64, error) { return 0, errors.New("not read") }

// The answers to forwarded batches are matched by request ID and sender:
// a forged, duplicated or late one is ignored; each entry then has its
// own outcome.
func TestNodeProposalsPlacement(t *testing.T) {
	var ps nodeProposals
	ps.init()
	f, props := fwdBatch(&ps, 1, 3)

	assert.False(t, ps.placed(raft.ProposalPlacement{ID: f.id + 1, From: 1, Index: 10, Term: 2}, noTerm, 2, 1, 100), "unknown ID")
	assert.False(t, ps.placed(raft.ProposalPlacement{ID: f.id, From: 2, Index: 10, Term: 2}, noTerm, 2, 1, 100), "not the leader it went to")
	require.True(t, ps.placed(raft.ProposalPlacement{ID: f.id, From: 1, Index: 10, Term: 2}, noTerm, 2, 1, 100))
	assert.False(t, ps.placed(raft.ProposalPlacement{ID: f.id, From: 1, Index: 20, Term: 2}, noTerm, 2, 1, 100), "duplicate")
	for _, p := range props {
		fwdPending(t, p)
	}

	// Index 10 applies as proposed; a new leader's entry takes 11, which
	// also rules out 12.
	ps.applied(&raft.Entry{Index: 10, Term: 2}, "ten", nil)
	r := fwdResult(t, props[0])
	require.NoError(t, r.err)
	assert.Equal(t, "ten", r.val)
	fwdPending(t, props[1])
	ps.applied(&raft.Entry{Index: 11, Term: 3}, "other", nil)
	for _, p := range props[1:] {
		r := fwdResult(t, p)
		assert.ErrorIs(t, r.err, raft.ErrProposalDropped)
		assert.Nil(t, r.val)
	}
	assert.Empty(t, ps.m)
	assert.Empty(t, ps.fwd)
}

// A refusal fails every entry of the batch as dropped; a withdrawn entry
// gets no second result; a batch withdrawn whole is forgotten.
func TestNodeProposalsRefusalAndWithdrawal(t *testing.T) {
	var ps nodeProposals
	ps.init()
	f, props := fwdBatch(&ps, 1, 2)
	require.True(t, ps.take(props[0]))
	assert.False(t, ps.take(props[0]), "withdrawn once")
	require.True(t, ps.placed(raft.ProposalPlacement{ID: f.id, From: 1, Err: raft.ErrTransferInProgress}, noTerm, 2, 1, 100))
	fwdPending(t, props[0])
	assert.ErrorIs(t, fwdResult(t, props[1]).err, raft.ErrProposalDropped)

	f, props = fwdBatch(&ps, 1, 2)
	require.True(t, ps.take(props[0]))
	require.True(t, ps.take(props[1]))
	assert.Empty(t, ps.fwd, "a batch withdrawn whole is forgotten")
	assert.False(t, ps.placed(raft.ProposalPlacement{ID: f.id, From: 1, Index: 5, Term: 1}, noTerm, 1, 1, 100))
}

// An answer that arrives after its indexes applied here is resolved from
// the log: another term there means overwritten; the proposal's term means
// applied with its result lost (unknown); a compacted index is unknown.
// An answer placing entries in a term older than one applied fails them.
func TestNodeProposalsLateAnswer(t *testing.T) {
	var ps nodeProposals
	ps.init()
	ps.applied(&raft.Entry{Index: 12, Term: 3}, nil, nil)
	f, props := fwdBatch(&ps, 1, 4)
	terms := map[uint64]uint64{10: 2, 11: 3}
	termAt := func(i uint64) (uint64, error) {
		if t, ok := terms[i]; ok {
			return t, nil
		}
		return 0, raft.ErrCompacted
	}
	require.True(t, ps.placed(raft.ProposalPlacement{ID: f.id, From: 1, Index: 10, Term: 3}, termAt, 3, 1, 100))
	assert.ErrorIs(t, fwdResult(t, props[0]).err, raft.ErrProposalDropped, "index 10 holds term 2")
	assert.ErrorIs(t, fwdResult(t, props[1]).err, ErrProposalUnknown, "index 11 holds the proposal")
	assert.ErrorIs(t, fwdResult(t, props[2]).err, ErrProposalUnknown, "index 12 unreadable")
	fwdPending(t, props[3])
	ps.applied(&raft.Entry{Index: 13, Term: 3}, 13, nil)
	assert.Equal(t, 13, fwdResult(t, props[3]).val)

	f, props = fwdBatch(&ps, 1, 1)
	require.True(t, ps.placed(raft.ProposalPlacement{ID: f.id, From: 1, Index: 20, Term: 2}, termAt, 3, 1, 100))
	assert.ErrorIs(t, fwdResult(t, props[0]).err, raft.ErrProposalDropped, "term 3 applied before index 20")
}

// Proposals of two terms may wait at one index: the one whose term
// applies gets the result, the other fails.
func TestNodeProposalsSameIndexTwoTerms(t *testing.T) {
	var ps nodeProposals
	ps.init()
	old := &nodeProposal{index: 7, term: 2, leader: 1, res: make(chan nodeResult, 1)}
	ps.add(old)
	f, props := fwdBatch(&ps, 3, 1)
	require.True(t, ps.placed(raft.ProposalPlacement{ID: f.id, From: 3, Index: 7, Term: 4}, noTerm, 4, 3, 100))
	ps.applied(&raft.Entry{Index: 7, Term: 2}, "old", nil)
	assert.Equal(t, "old", fwdResult(t, old).val)
	assert.ErrorIs(t, fwdResult(t, props[0]).err, raft.ErrProposalDropped)
}

// Stopping completes forwarded batches still waiting for an answer as
// unknown: they may have been appended.
func TestNodeProposalsFailAllForwarded(t *testing.T) {
	var ps nodeProposals
	ps.init()
	_, props := fwdBatch(&ps, 1, 2)
	ps.failAll(ErrStopped)
	for _, p := range props {
		err := fwdResult(t, p).err
		assert.ErrorIs(t, err, ErrProposalUnknown)
		assert.ErrorIs(t, err, ErrStopped)
	}
	assert.Empty(t, ps.fwd)
}
