// Package nodebench runs the durable workload on this library's
// batteries-included runner: three raftnode.Node on the in-memory transport
// (messages go through the wire codec), each on its own wal.Log, with
// Window proposers calling Node.Propose concurrently on the leader — the
// way a hashicorp/raft user drives raft.Apply.
package nodebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/bench/internal/harness"
	"github.com/keelraft/raft/memtransport"
	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wire"
)

// Name labels this library's rows.
const Name = "keel Node + wal"

// sm is the verifying state machine behind a Node.
type sm struct {
	mu sync.Mutex
	s  harness.SM
}

func (m *sm) Apply(ents []raft.Entry) []any {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range ents {
		if ents[i].Type == raft.EntryNormal && len(ents[i].Data) > 0 {
			m.s.Apply(ents[i].Data)
		}
	}
	return nil
}

// Snapshot and Restore are never used: SnapshotEvery exceeds the run.
func (m *sm) Snapshot() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(nil)), nil }
func (m *sm) Restore(io.Reader) error          { return nil }

func (m *sm) state() harness.SM {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s
}

type member struct {
	node *raftnode.Node
	tr   *memtransport.Transport
	log  *wal.Log
	sm   *sm
}

// Run runs workload w (durable only) and returns what it measured.
func Run(w harness.Workload) (res harness.Result) {
	res = harness.Result{Lib: Name, Workload: w}
	if w.Kind != harness.Durable || w.Dir == "" {
		res.Invalid = "runs only the durable workload"
		return res
	}
	payloads := harness.Payloads(w.N)
	members, err := start(w)
	defer shutdown(members)
	if err != nil {
		res.Invalid = err.Error()
		return res
	}
	leader, err := waitLeader(members)
	if err != nil {
		res.Invalid = err.Error()
		return res
	}
	for _, m := range members {
		m.sm.mu.Lock()
		m.sm.s.Init(w.N)
		m.sm.mu.Unlock()
	}
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	var meter harness.Meter
	meter.Start()
	for range max(w.Window, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(w.N) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := leader.Propose(ctx, payloads[i])
				cancel()
				if err != nil {
					failed.Store(fmt.Errorf("proposal %d: %w", i, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	meter.Stop(&res, w.N)
	if err, _ := failed.Load().(error); err != nil {
		res.Invalid = err.Error()
		return res
	}
	states := func() []harness.SM {
		sms := make([]harness.SM, len(members))
		for i, m := range members {
			sms[i] = m.sm.state()
		}
		return sms
	}
	if err := harness.AwaitVerify(states, w.N, 30*time.Second); err != nil {
		res.Invalid = err.Error()
	}
	return res
}

func start(w harness.Workload) ([]*member, error) {
	net, err := memtransport.NewNetwork(wire.CodecOptions{})
	if err != nil {
		return nil, err
	}
	var members []*member
	peers := make([]raft.Peer, len(harness.Voters)) // in memory: no addresses
	for i, id := range harness.Voters {
		peers[i] = raft.Peer{ID: id}
	}
	for _, id := range harness.Voters {
		log, err := wal.Open(filepath.Join(w.Dir, fmt.Sprintf("node-%d", id)), wal.Options{})
		if err != nil {
			return members, err
		}
		m := &member{log: log, sm: &sm{}}
		members = append(members, m)
		m.node, err = raftnode.New(raftnode.Config{
			Raft:          raft.Config{ID: id, ElectionTick: 20, HeartbeatTick: 2},
			Storage:       log,
			StateMachine:  m.sm,
			TickInterval:  10 * time.Millisecond,
			SnapshotEvery: uint64(2*w.N + 1000),
		})
		if err != nil {
			return members, err
		}
		m.tr, err = net.NewTransport(id, harness.Voters, m.node, memtransport.Options{})
		if err != nil {
			return members, err
		}
		m.node.SetTransport(m.tr)
		if err := m.node.Start(peers); err != nil {
			return members, err
		}
	}
	return members, nil
}

// waitLeader returns the Node that leads, once one does.
func waitLeader(members []*member) (*raftnode.Node, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, m := range members {
			if lead, _ := m.node.LeaderID(); lead == harness.Voters[i] {
				return m.node, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, errors.New("no leader elected in 30 s")
}

func shutdown(members []*member) {
	for _, m := range members {
		if m.node != nil {
			m.node.Stop()
		}
		if m.tr != nil {
			_ = m.tr.Close()
		}
		_ = m.log.Close()
	}
}
