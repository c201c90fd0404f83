package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// DurableStateMachine is implemented by a StateMachine that keeps its own
// durable state (an embedded database, say), as dragonboat's on-disk state
// machines do: its state survives a restart on its own, so a Node that
// starts need not restore it from the storage's snapshot.
//
// On Start, a Node calls AppliedIndex. If the index is at or beyond the
// storage's snapshot, Restore is skipped, and of the committed entries the
// Node replays after the snapshot, those at or below the index are not
// passed to Apply (configuration changes among them still take effect in
// the protocol). If it is below the snapshot, the Node restores the
// snapshot as for any state machine. A snapshot received from a leader
// later is always restored.
//
// AppliedIndex must report the index of the last entry whose effect the
// durable state holds, made durable together with that effect (the same
// transaction): an index ahead of the state loses entries, one behind it
// applies entries twice. A state machine that Restore or Apply (the
// index of the last entry of the batch) has made durable reports that.
type DurableStateMachine interface {
	StateMachine

	// AppliedIndex returns the index of the last entry reflected in the
	// durable state, 0 if none. An error fails Start.
	AppliedIndex() (uint64, error)
}

var _ raft.SnapshotStreamHandler = (*Node)(nil)

// HandleSnapshot implements raft.SnapshotStreamHandler: a transport that
// streams snapshots hands a received MsgSnap over with a reader of its
// data. If the storage is a raft.SnapshotStore (package wal), the data
// goes to it as it arrives (ReceiveSnapshot) and the message carries its
// Source; otherwise it is read into memory. An error (a stream that fails
// its checks, a storage failure) refuses the snapshot and leaves nothing
// behind; nothing is queued.
func (n *Node) HandleSnapshot(m raft.Message, r io.Reader) error {
	if m.Snapshot == nil {
		return errors.New("raftnode: MsgSnap without a snapshot")
	}
	select {
	case <-n.stopc:
		return n.stopErr()
	default:
	}
	snap := *m.Snapshot
	if store, ok := n.storage.(raft.SnapshotStore); ok {
		src, err := store.ReceiveSnapshot(snap.Metadata, r)
		if err != nil {
			return fmt.Errorf("raftnode: receiving snapshot %d: %w", snap.Metadata.Index, err)
		}
		snap.Data, snap.Source = nil, src
	} else {
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("raftnode: receiving snapshot %d: %w", snap.Metadata.Index, err)
		}
		snap.Data, snap.Source = data, nil
	}
	m.Snapshot = &snap
	n.HandleMessage(m)
	return nil
}

// restoreData replaces the state machine's state with snap's image, read
// from its Source or Data, and reads the image to its end, where a
// streamed image is checked. It reports whether it restored: false, with
// no error, when snap's data is gone because the storage already holds a
// newer snapshot (whose restore follows).
func (n *Node) restoreData(snap raft.Snapshot) (bool, error) {
	rc, _, err := snap.OpenData()
	if err != nil {
		if held, herr := n.storage.Snapshot(); herr == nil && held.Metadata.Index > snap.Metadata.Index {
			n.logger.Info("snapshot superseded before it was restored; restoring the newer one",
				zap.Uint64("index", snap.Metadata.Index), zap.Uint64("newer", held.Metadata.Index), zap.Error(err))
			return false, nil
		}
		return false, fmt.Errorf("opening the snapshot data: %w", err)
	}
	defer rc.Close()
	if err := n.sm.Restore(rc); err != nil {
		return false, err
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return false, fmt.Errorf("the snapshot data failed its check after Restore: %w", err)
	}
	return true, nil
}

// durableApplied returns the index a DurableStateMachine reports, or 0.
func (n *Node) durableApplied() (uint64, error) {
	d, ok := n.sm.(DurableStateMachine)
	if !ok {
		return 0, nil
	}
	idx, err := d.AppliedIndex()
	if err != nil {
		return 0, fmt.Errorf("raftnode: reading the state machine's applied index: %w", err)
	}
	return idx, nil
}

// restoreOnStart restores the storage's snapshot on Start unless the state
// machine's own durable state covers it.
func (n *Node) restoreOnStart(snap raft.Snapshot, durable uint64) error {
	if durable >= snap.Metadata.Index {
		n.logger.Info("state machine has its own durable state; snapshot not restored",
			zap.Uint64("applied", durable), zap.Uint64("snapshot", snap.Metadata.Index))
		return nil
	}
	return n.restore(snap)
}

// nodeSnapReq is a Snapshot call waiting for its snapshot.
type nodeSnapReq struct {
	done chan nodeSnapResult // buffered: the snapshotter never waits
}

type nodeSnapResult struct {
	index uint64
	err   error
}

// Snapshot takes a snapshot of the state machine now, at the index applied
// so far, writes it to the storage and compacts the log behind it, as the
// automatic snapshots every SnapshotEvery entries do; it returns the
// snapshot's index once the storage holds it. If nothing was applied since
// the last snapshot, it takes none and returns that one's index (0 if there
// is none). If the storage meanwhile received a newer snapshot from the
// leader, it returns that one's index. Snapshot waits for a snapshot being
// written to finish first; a failure to write stops the node, as for an
// automatic snapshot. If ctx expires first the snapshot still completes.
func (n *Node) Snapshot(ctx context.Context) (uint64, error) {
	req := &nodeSnapReq{done: make(chan nodeSnapResult, 1)}
	select {
	case n.snapReqc <- req:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.stopc:
		return 0, n.stopErr()
	}
	select {
	case r := <-req.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.stopc:
		return 0, n.stopErr()
	}
}

// snapshotNow serves a Snapshot call on the apply goroutine: it takes a
// state machine snapshot at the applied index (none if it has one there
// already) and queues it for the snapshotter, waiting for a free slot. It
// returns false if the node stopped.
func (a *nodeApplier) snapshotNow(req *nodeSnapReq) bool {
	n := a.n
	t := nodeSnapTask{index: a.snapIndex, done: req.done}
	if a.applied > a.snapIndex {
		rc, err := n.sm.Snapshot()
		if err != nil {
			req.done <- nodeSnapResult{err: err}
			n.fail("state machine snapshot", err)
			return false
		}
		t = nodeSnapTask{index: a.applied, cs: a.cs, rc: rc, done: req.done}
	}
	select {
	case n.snapc <- t:
	case <-n.stopc:
		if t.rc != nil {
			_ = t.rc.Close()
		}
		return false
	}
	a.snapIndex = t.index
	return true
}
