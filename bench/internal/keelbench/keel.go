// Package keelbench runs the workloads on this library (Keel): RawNode and
// MemoryStorage, driven by the harness's one-goroutine host loop; and, for
// the durable workload, RawNode on the library's own write-ahead log
// (package wal) as its Storage.
package keelbench

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/bench/internal/harness"
	"github.com/keelraft/raft/wal"
)

// Lib is this library for the harness.
var Lib = harness.RawLib{Name: "keel", New: newCluster}

// WALLib is this library with its wal.Log as every node's Storage (durable
// workload only): each Ready is one wal.Log.Save, which writes and syncs.
var WALLib = harness.RawLib{Name: "keel + wal", New: newWALCluster}

type node struct {
	rn      *raft.RawNode
	storage *raft.MemoryStorage // nil with a wal
	log     *harness.FileLog    // nil in memory mode and with a wal
	wal     *wal.Log            // nil unless the node runs on a wal
	rd      raft.Ready
	has     bool
}

type cluster struct {
	nodes        []*node
	wal          bool // nodes run on wal.Log; they Save concurrently
	saveErrs     []error
	sms          []harness.SM
	logs         []*harness.FileLog
	need         []bool
	queue, spare []raft.Message
}

func newCluster(logSize int, dir string) (harness.RawCluster, error) {
	return build(logSize, dir, false)
}

func newWALCluster(logSize int, dir string) (harness.RawCluster, error) {
	if dir == "" || logSize > 0 {
		return nil, errors.New("keel + wal runs only the durable workload")
	}
	return build(logSize, dir, true)
}

func build(logSize int, dir string, useWAL bool) (harness.RawCluster, error) {
	n := len(harness.Voters)
	c := &cluster{sms: make([]harness.SM, n), need: make([]bool, n), wal: useWAL, saveErrs: make([]error, n)}
	for _, id := range harness.Voters {
		nd := &node{}
		var storage raft.Storage
		if useWAL {
			var err error
			nd.wal, err = wal.Open(filepath.Join(dir, fmt.Sprintf("wal%d", id)), wal.Options{})
			if err != nil {
				return nil, err
			}
			storage = nd.wal
		} else {
			nd.storage = raft.NewMemoryStorage()
			storage = nd.storage
		}
		cfg := raft.Config{
			ID:              id,
			ElectionTick:    10,
			HeartbeatTick:   1,
			Storage:         storage,
			MaxSizePerMsg:   1 << 20,
			MaxInflightMsgs: 256,
		}
		if logSize > 0 {
			if err := preload(nd.storage, logSize); err != nil {
				return nil, err
			}
			cfg.Applied = uint64(logSize) + 1
		}
		rn, err := raft.NewRawNode(cfg)
		if err != nil {
			return nil, err
		}
		if logSize == 0 {
			if err := rn.Bootstrap(harness.Voters); err != nil {
				return nil, err
			}
		}
		nd.rn = rn
		if dir != "" && !useWAL {
			if nd.log, err = harness.OpenFileLog(dir, id); err != nil {
				return nil, err
			}
		}
		c.nodes = append(c.nodes, nd)
		c.logs = append(c.logs, nd.log)
	}
	if err := harness.Settle(c, 100); err != nil {
		return nil, err
	}
	if err := c.nodes[0].rn.Campaign(); err != nil {
		return nil, err
	}
	if err := harness.Settle(c, 100); err != nil {
		return nil, err
	}
	if st := c.nodes[0].rn.BasicStatus(); st.RaftState != raft.StateLeader {
		return nil, fmt.Errorf("node 1 did not win the election: %v", st.RaftState)
	}
	return c, nil
}

// preload fills storage as a restarted node would find it: the cluster's
// configuration at index 1 and n committed entries after it.
func preload(storage *raft.MemoryStorage, n int) error {
	snap := raft.Snapshot{Metadata: raft.SnapshotMetadata{
		Index: 1, Term: 1, ConfState: raft.ConfState{Voters: harness.Voters},
	}}
	if err := storage.ApplySnapshot(snap); err != nil {
		return err
	}
	ents := make([]raft.Entry, n)
	for i := range ents {
		ents[i] = raft.Entry{Term: 1, Index: uint64(i) + 2, Data: harness.PreloadPayload(i)}
	}
	if err := storage.Append(ents); err != nil {
		return err
	}
	return storage.SetHardState(raft.HardState{Term: 1, Commit: uint64(n) + 1})
}

func (c *cluster) Propose(data []byte) error { return c.nodes[0].rn.Propose(data) }

func (c *cluster) SMs() []harness.SM { return c.sms }

func (c *cluster) Idle() bool {
	for _, n := range c.nodes {
		if n.rn.HasReady() {
			return false
		}
	}
	return len(c.queue) == 0
}

func (c *cluster) Round() error {
	durable := false
	for i, n := range c.nodes {
		n.has = n.rn.HasReady()
		if !n.has {
			continue
		}
		n.rd = n.rn.Ready()
		if c.wal {
			continue // saved below, concurrently
		}
		if err := n.persist(); err != nil {
			return err
		}
		if n.log != nil {
			durable = true
			c.need[i] = n.rd.MustSync
		}
	}
	if durable {
		if err := harness.SyncAll(c.logs, c.need); err != nil {
			return err
		}
	}
	if c.wal {
		if err := c.saveAll(); err != nil {
			return err
		}
	}
	for i, n := range c.nodes {
		if !n.has {
			continue
		}
		rd := &n.rd
		c.queue = append(c.queue, rd.Messages...)
		c.queue = append(c.queue, rd.MessagesAfterPersist...)
		sm := &c.sms[i]
		for j := range rd.CommittedEntries {
			e := &rd.CommittedEntries[j]
			if e.Type == raft.EntryNormal && len(e.Data) > 0 {
				sm.Apply(e.Data)
			}
		}
		n.rn.Advance(*rd)
		n.rd = raft.Ready{}
	}
	msgs := c.queue
	c.queue = c.spare[:0]
	for i := range msgs {
		if err := c.nodes[msgs[i].To-1].rn.Step(msgs[i]); err != nil &&
			!errors.Is(err, raft.ErrProposalDropped) {
			return err
		}
	}
	clear(msgs)
	c.spare = msgs[:0]
	return nil
}

// saveAll saves every node's Ready to its wal, the three concurrently (as
// on three machines).
func (c *cluster) saveAll() error {
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if !n.has {
			continue
		}
		wg.Go(func() {
			c.saveErrs[i] = n.wal.Save(n.rd.HardState, n.rd.Entries, n.rd.Snapshot)
		})
	}
	wg.Wait()
	err := errors.Join(c.saveErrs...)
	clear(c.saveErrs)
	return err
}

// persist writes the Ready's snapshot, entries and hard state to the
// MemoryStorage and, in durable mode, to the node's file.
func (n *node) persist() error {
	rd := &n.rd
	if !rd.Snapshot.IsEmpty() {
		if err := n.storage.ApplySnapshot(rd.Snapshot); err != nil {
			return err
		}
		if n.log != nil {
			n.log.Snapshot(rd.Snapshot.Metadata.Index, rd.Snapshot.Metadata.Term)
		}
	}
	if err := n.storage.Append(rd.Entries); err != nil {
		return err
	}
	if !rd.HardState.IsEmpty() {
		if err := n.storage.SetHardState(rd.HardState); err != nil {
			return err
		}
	}
	if n.log == nil {
		return nil
	}
	for i := range rd.Entries {
		e := &rd.Entries[i]
		n.log.Entry(e.Term, e.Index, uint8(e.Type), e.Data)
	}
	if !rd.HardState.IsEmpty() {
		n.log.HardState(rd.HardState.Term, rd.HardState.Vote, rd.HardState.Commit)
	}
	return n.log.Write()
}

func (c *cluster) Close() error {
	var errs []error
	for _, n := range c.nodes {
		if n.log != nil {
			errs = append(errs, n.log.Close())
		}
		if n.wal != nil {
			errs = append(errs, n.wal.Close())
		}
	}
	return errors.Join(errs...)
}
