// Package etcd36 runs the workloads on etcd raft (the version the bench module
// requires, v3.6.0): RawNode and MemoryStorage, driven by the harness's
// one-goroutine host loop, like this library.
package etcd36

import (
	"errors"
	"fmt"
	"io"
	"log"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/keelraft/raft/bench/internal/harness"
)

// Lib is etcd raft for the harness.
var Lib = harness.RawLib{Name: "etcd " + harness.ModuleVersion("go.etcd.io/raft/v3"), New: newCluster}

var discard = &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}

type node struct {
	rn      *raft.RawNode
	storage *raft.MemoryStorage
	log     *harness.FileLog // nil in memory mode
	rd      raft.Ready
	has     bool
}

type cluster struct {
	nodes        []*node
	sms          []harness.SM
	logs         []*harness.FileLog
	need         []bool
	queue, spare []pb.Message
}

func newCluster(logSize int, dir string) (harness.RawCluster, error) {
	c := &cluster{sms: make([]harness.SM, len(harness.Voters)), need: make([]bool, len(harness.Voters))}
	for _, id := range harness.Voters {
		storage := raft.NewMemoryStorage()
		cfg := raft.Config{
			ID:              id,
			ElectionTick:    10,
			HeartbeatTick:   1,
			Storage:         storage,
			MaxSizePerMsg:   1 << 20,
			MaxInflightMsgs: 256,
			// On by default in this library; etcd's server turns them on.
			CheckQuorum: true,
			PreVote:     true,
			Logger:      discard,
		}
		// etcd recommends bootstrapping through the storage: the
		// configuration at index 1, as this library's Bootstrap does.
		if err := preload(storage, logSize); err != nil {
			return nil, err
		}
		if logSize > 0 {
			cfg.Applied = uint64(logSize) + 1
		}
		rn, err := raft.NewRawNode(&cfg)
		if err != nil {
			return nil, err
		}
		n := &node{rn: rn, storage: storage}
		if dir != "" {
			if n.log, err = harness.OpenFileLog(dir, id); err != nil {
				return nil, err
			}
		}
		c.nodes = append(c.nodes, n)
		c.logs = append(c.logs, n.log)
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
	snap := pb.Snapshot{Metadata: pb.SnapshotMetadata{
		Index: 1, Term: 1, ConfState: pb.ConfState{Voters: harness.Voters},
	}}
	if err := storage.ApplySnapshot(snap); err != nil {
		return err
	}
	if n == 0 {
		return storage.SetHardState(pb.HardState{Term: 1, Commit: 1})
	}
	ents := make([]pb.Entry, n)
	for i := range ents {
		ents[i] = pb.Entry{Term: 1, Index: uint64(i) + 2, Data: harness.PreloadPayload(i)}
	}
	if err := storage.Append(ents); err != nil {
		return err
	}
	return storage.SetHardState(pb.HardState{Term: 1, Commit: uint64(n) + 1})
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
	for i, n := range c.nodes {
		if !n.has {
			continue
		}
		rd := &n.rd
		c.queue = append(c.queue, rd.Messages...)
		sm := &c.sms[i]
		for j := range rd.CommittedEntries {
			e := &rd.CommittedEntries[j]
			if e.Type == pb.EntryNormal && len(e.Data) > 0 {
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

// persist writes the Ready's snapshot, entries and hard state to the
// MemoryStorage and, in durable mode, to the node's file.
func (n *node) persist() error {
	rd := &n.rd
	if !raft.IsEmptySnap(rd.Snapshot) {
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
	if !raft.IsEmptyHardState(rd.HardState) {
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
	if !raft.IsEmptyHardState(rd.HardState) {
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
	}
	return errors.Join(errs...)
}
