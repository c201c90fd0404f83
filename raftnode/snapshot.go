package raftnode

import (
	"errors"
	"fmt"
	"io"

	"github.com/keelraft/raft"
)

// nodeSnapTask is a state machine image taken at index, to be written; a
// task without an image (rc nil) only reports index once the tasks before
// it are done. done, if set, receives the outcome (a Snapshot call).
type nodeSnapTask struct {
	index uint64
	cs    raft.ConfState
	rc    io.ReadCloser
	done  chan nodeSnapResult
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
			index, err := n.writeSnapshot(t)
			if t.done != nil {
				t.done <- nodeSnapResult{index: index, err: err}
			}
			if err != nil {
				n.fail("writing a snapshot", err)
				return
			}
		}
	}
}

// writeSnapshot writes t's image to the storage, streaming it if the
// storage is a raft.SnapshotStore, and compacts the log behind it. It
// returns the index of the snapshot the storage holds.
func (n *Node) writeSnapshot(t nodeSnapTask) (uint64, error) {
	if t.rc == nil {
		return t.index, nil
	}
	var err error
	if store, ok := n.storage.(raft.SnapshotStore); ok {
		_, err = store.CreateSnapshotFrom(t.index, &t.cs, t.rc)
		if cerr := t.rc.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing the state machine snapshot at index %d: %w", t.index, cerr)
		}
	} else {
		var data []byte
		data, err = io.ReadAll(t.rc)
		if cerr := t.rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("reading the state machine snapshot at index %d: %w", t.index, err)
		}
		_, err = n.storage.CreateSnapshot(t.index, &t.cs, data)
	}
	if errors.Is(err, raft.ErrSnapOutOfDate) || errors.Is(err, raft.ErrCompacted) {
		// A newer snapshot arrived from the leader meanwhile.
		held, herr := n.storage.Snapshot()
		if herr != nil {
			return 0, herr
		}
		return held.Metadata.Index, nil
	}
	if err != nil {
		return 0, err
	}
	n.counters.snapshotsTaken.Add(1)
	n.counters.snapshotIndex.Store(t.index)
	if t.index <= n.cfg.CompactKeep {
		return t.index, nil
	}
	if err := n.storage.Compact(t.index - n.cfg.CompactKeep); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return 0, err
	}
	return t.index, nil
}
