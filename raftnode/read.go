package raftnode

import (
	"context"
	"encoding/binary"
	"sync"

	"github.com/keelraft/raft"
)

// nodeRead is a linearizable read waiting for its read index.
type nodeRead struct {
	rctx []byte
	res  chan nodeReadResult // capacity 1
	age  int                 // ticks since the request was (re)sent
}

type nodeReadResult struct {
	index uint64
	err   error
}

// nodeReads tracks reads by request context.
type nodeReads struct {
	mu   sync.Mutex
	next uint64
	m    map[string]*nodeRead
}

func (rs *nodeReads) init() { rs.m = map[string]*nodeRead{} }

// add registers a new read with a context unique to this node.
func (rs *nodeReads) add(id uint64) *nodeRead {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.next++
	rctx := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, id), rs.next)
	rd := &nodeRead{rctx: rctx, res: make(chan nodeReadResult, 1)}
	rs.m[string(rctx)] = rd
	return rd
}

func (rs *nodeReads) remove(rd *nodeRead) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m[string(rd.rctx)] == rd {
		delete(rs.m, string(rd.rctx))
	}
}

// answer completes the read that state answers, if it still waits.
func (rs *nodeReads) answer(state raft.ReadState) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rd := rs.m[string(state.RequestCtx)]
	if rd == nil {
		return
	}
	delete(rs.m, string(state.RequestCtx))
	rd.res <- nodeReadResult{index: state.Index}
}

// retry re-sends, on the loop, the read requests unanswered for an election
// timeout: the core drops a request silently when no leader can serve it.
func (rs *nodeReads) retry(n *Node) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, rd := range rs.m {
		rd.age++
		if rd.age >= n.cfg.Raft.ElectionTick {
			rd.age = 0
			n.rn.ReadIndex(rd.rctx)
		}
	}
}

func (rs *nodeReads) failAll(err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for k, rd := range rs.m {
		delete(rs.m, k)
		rd.res <- nodeReadResult{err: err}
	}
}

// Read waits until a read of this node's state machine reflects every
// write committed before Read was called (a linearizable read, through
// ReadIndex): when it returns nil, read the state machine. It works on
// followers too (the leader confirms the read index). It returns ctx's
// error if no leader answered in time (requests are re-sent every
// election timeout meanwhile), or the stop error.
func (n *Node) Read(ctx context.Context) error {
	if err := n.removedErr(); err != nil {
		return err
	}
	index, err := n.readIndex(ctx)
	if err != nil {
		return err
	}
	return n.WaitApplied(ctx, index)
}

// readIndex asks for a read index (ReadIndex) and waits for the answer: the
// commit index at the call, confirmed by a leader.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	var rd *nodeRead
	err := n.do(ctx, func() {
		rd = n.reads.add(n.id)
		n.rn.ReadIndex(rd.rctx)
	})
	if err != nil {
		return 0, err
	}
	select {
	case res := <-rd.res:
		return res.index, res.err
	case <-ctx.Done():
		n.reads.remove(rd)
		return 0, ctx.Err()
	case <-n.donec:
		return 0, n.stopErr()
	}
}

// AppliedIndex returns the index up to which the state machine has applied
// the log. A stale read needs no call: read the state machine directly; it
// reflects at least the entries up to AppliedIndex, but possibly not the
// latest committed writes.
func (n *Node) AppliedIndex() uint64 { return n.watch.appliedIndex() }

// WaitApplied waits until the state machine has applied the log up to
// index. It returns ctx's error or the stop error otherwise.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	for {
		applied, ch := n.watch.appliedAndChan()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return n.stopErr()
		}
	}
}

// nodeWatch publishes the applied index and the leader to other goroutines;
// waiters wait on a channel that is closed (and replaced) on every change.
type nodeWatch struct {
	mu      sync.Mutex
	applied uint64
	leader  uint64
	term    uint64
	changed chan struct{}
	// handed is whether changed was handed to a waiter: a change replaces
	// only a channel someone may wait on, so that applying entries no one
	// waits for allocates nothing.
	handed bool
}

func (w *nodeWatch) init() { w.changed = make(chan struct{}) }

func (w *nodeWatch) broadcastLocked() {
	if !w.handed {
		return
	}
	close(w.changed)
	w.changed = make(chan struct{})
	w.handed = false
}

// chanLocked returns the channel the next change closes.
func (w *nodeWatch) chanLocked() chan struct{} {
	w.handed = true
	return w.changed
}

func (w *nodeWatch) setApplied(i uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i > w.applied {
		w.applied = i
		w.broadcastLocked()
	}
}

func (w *nodeWatch) setLeader(lead, term uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.leader, w.term = lead, term
	w.broadcastLocked()
}

func (w *nodeWatch) appliedIndex() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied
}

func (w *nodeWatch) appliedAndChan() (uint64, chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied, w.chanLocked()
}

func (w *nodeWatch) leaderAndChan() (uint64, chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leader, w.chanLocked()
}
