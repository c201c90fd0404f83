package raftnode

import (
	"context"
	"fmt"
	"time"

	"github.com/keelraft/raft"
)

// nodeApplyTask is what one Ready hands to the apply goroutine.
type nodeApplyTask struct {
	snap raft.Snapshot
	ents []raft.Entry
}

// nodeApplier is the state of the apply goroutine.
type nodeApplier struct {
	n *Node
	// applied is the last index applied; snapIndex that of the last
	// snapshot taken or restored; cs the membership at applied.
	applied, snapIndex uint64
	cs                 raft.ConfState
	batch              []raft.Entry
	// member is whether this node belonged to a configuration applied
	// so far (see noteMembership).
	member bool
	// durable is the index a DurableStateMachine reported on Start:
	// normal entries up to it are not applied again.
	durable uint64
}

func (a *nodeApplier) run() {
	defer a.n.wg.Done()
	for {
		select {
		case <-a.n.stopc:
			return
		case t := <-a.n.applyc:
			if !a.apply(t) {
				return
			}
		case req := <-a.n.snapReqc:
			if !a.snapshotNow(req) {
				return
			}
		}
	}
}

// apply restores t's snapshot and applies its entries, in order, then
// reports the applied index. It returns false once the node stops.
func (a *nodeApplier) apply(t nodeApplyTask) bool {
	n := a.n
	if !t.snap.IsEmpty() {
		if err := n.restore(t.snap); err != nil {
			return false
		}
		idx := t.snap.Metadata.Index
		a.applied, a.snapIndex, a.cs, a.durable = idx, idx, t.snap.Metadata.ConfState, 0
		n.counters.snapshotsRestored.Add(1)
		n.counters.snapshotIndex.Store(idx)
		n.props.restored(t.snap.Metadata)
		n.notifier.confChanged(a.cs)
		a.noteMembership(a.cs, idx)
	}
	for i := range t.ents {
		e := &t.ents[i]
		switch {
		case e.Type == raft.EntryConfChange:
			a.flush()
			if !a.applyConfChange(e) {
				return false
			}
		case len(e.Data) == 0 || e.Index <= a.durable:
			a.flush() // complete proposals in log order
			n.props.applied(e, nil, nil)
		default:
			a.batch = append(a.batch, *e)
		}
	}
	a.flush()
	if k := len(t.ents); k > 0 {
		a.applied = t.ents[k-1].Index
	}
	n.watch.setApplied(a.applied)
	n.appliedc <- a.applied // never blocks: one report per in-flight task
	return a.maybeSnapshot()
}

// flush applies the batched normal entries and completes their proposals.
func (a *nodeApplier) flush() {
	if len(a.batch) == 0 {
		return
	}
	c := &a.n.counters
	start := time.Now()
	results := a.n.sm.Apply(a.batch)
	c.applyNanos.Add(uint64(time.Since(start)))
	c.applyCount.Add(1)
	c.appliedEntries.Add(uint64(len(a.batch)))
	for i := range a.batch {
		var val any
		if i < len(results) {
			val = results[i]
		}
		a.n.props.applied(&a.batch[i], val, nil)
	}
	clear(a.batch)
	a.batch = a.batch[:0]
}

// applyConfChange applies a configuration change entry through the loop
// (which owns the RawNode) and completes its proposal with the resulting
// ConfState, or with the error if every node refuses the change. It
// returns false once the node stops.
func (a *nodeApplier) applyConfChange(e *raft.Entry) bool {
	n := a.n
	var (
		cc  raft.ConfChange
		cs  raft.ConfState
		err = cc.Unmarshal(e.Data)
	)
	if err == nil {
		if derr := n.do(context.Background(), func() {
			if cs, err = n.rn.ApplyConfChange(cc); err == nil {
				n.followConf(cs)
			}
		}); derr != nil {
			return false
		}
	}
	if err != nil {
		n.props.applied(e, nil, err)
		return true
	}
	a.cs = cs
	n.notifier.confChanged(cs)
	a.noteMembership(cs, e.Index)
	n.props.applied(e, cs, nil)
	return true
}

// restore replaces the state machine's state with snap's image.
func (n *Node) restore(snap raft.Snapshot) error {
	if _, err := n.restoreData(snap); err != nil {
		err = fmt.Errorf("restoring the snapshot at index %d: %w", snap.Metadata.Index, err)
		n.fail("state machine", err)
		return err
	}
	return nil
}
