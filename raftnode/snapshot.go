package raftnode

import (
	"errors"
	"fmt"
	"io"

	"github.com/keelraft/raft"
)

// nodeSnapTask is a state machine image taken at index, to be written.
type nodeSnapTask struct {
	index uint64
	cs    raft.ConfState
	rc    io.ReadCloser
}

// maybeSnapshot takes a state machine snapshot once SnapshotEvery entries
// were applied since the last one, and hands it to the snapshotter. If the
// snapshotter is still busy with the previous one, it tries again after the
// next batch. It returns false if the node stopped on an error.
func (a *nodeApplier) maybeSnapshot() bool {
	n := a.n
	if a.applied-a.snapIndex < n.cfg.SnapshotEvery || len(n.snapc) > 0 {
		return true
	}
	rc, err := n.sm.Snapshot()
	if err != nil {
		n.fail("state machine snapshot", err)
		return false
	}
	select {
	case n.snapc <- nodeSnapTask{index: a.applied, cs: a.cs, rc: rc}:
		a.snapIndex = a.applied
	default:
		_ = rc.Close()
	}
	return true
}

// runSnapshotter writes the snapshots the apply goroutine takes and
// compacts the log behind them, off the apply path.
func (n *Node) runSnapshotter() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stopc:
			return
		case t := <-n.snapc:
			if err := n.writeSnapshot(t); err != nil {
				n.fail("writing a snapshot", err)
				return
			}
		}
	}
}

func (n *Node) writeSnapshot(t nodeSnapTask) error {
	data, err := io.ReadAll(t.rc)
	if cerr := t.rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reading the state machine snapshot at index %d: %w", t.index, err)
	}
	_, err = n.storage.CreateSnapshot(t.index, &t.cs, data)
	if errors.Is(err, raft.ErrSnapOutOfDate) || errors.Is(err, raft.ErrCompacted) {
		return nil // a newer snapshot arrived from the leader meanwhile
	}
	if err != nil {
		return err
	}
	n.counters.snapshotsTaken.Add(1)
	n.counters.snapshotIndex.Store(t.index)
	if t.index <= n.cfg.CompactKeep {
		return nil
	}
	if err := n.storage.Compact(t.index - n.cfg.CompactKeep); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	return nil
}
