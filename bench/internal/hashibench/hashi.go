// Package hashibench runs the workloads on hashicorp/raft, driven as its
// users drive it: one *raft.Raft per node with its own goroutines,
// InmemStore and InmemTransport in memory, raft-boltdb (behind the
// LogCache its documentation recommends) for the durable workload, and
// proposals through Raft.Apply from one goroutine that keeps the workload's
// number of futures outstanding (waiting on the oldest), with BatchApplyCh
// on. (Proposing from as many goroutines as proposals outstanding, as a
// server's request handlers would, was slower on this 2-core machine.)
package hashibench

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/keelraft/raft/bench/internal/harness"
)

// Name is how the tables call this library.
var Name = "hashicorp " + harness.ModuleVersion("github.com/hashicorp/raft")

// fsm wraps the harness's state machine; hashicorp applies from its own
// goroutine.
type fsm struct {
	mu sync.Mutex
	sm harness.SM
}

func (f *fsm) Apply(l *raft.Log) any {
	f.mu.Lock()
	f.sm.Apply(l.Data)
	f.mu.Unlock()
	return nil
}

func (f *fsm) state() harness.SM {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sm
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return &fsmSnap{sm: f.state()}, nil }

// Restore restores the snapshot that preload writes; the bench's runs are
// too short for hashicorp to take or send one of its own.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var n uint64
	if _, err := fmt.Fscanf(rc, "preloaded %d", &n); err != nil {
		return fmt.Errorf("bench fsm restores only preloaded logs: %w", err)
	}
	f.mu.Lock()
	f.sm.Preloaded = n
	f.mu.Unlock()
	return nil
}

type fsmSnap struct{ sm harness.SM }

func (s *fsmSnap) Persist(sink raft.SnapshotSink) error {
	_, err := fmt.Fprintf(sink, "%d %d", s.sm.Applied, s.sm.Hash)
	return errors.Join(err, sink.Close())
}

func (s *fsmSnap) Release() {}

type node struct {
	id     raft.ServerID
	addr   raft.ServerAddress
	trans  *raft.InmemTransport
	logs   raft.LogStore
	stable raft.StableStore
	snaps  raft.SnapshotStore
	bolt   *raftboltdb.BoltStore
	fsm    *fsm
	r      *raft.Raft
}

func config(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.Logger = hclog.NewNullLogger()
	// Let Apply hand proposals to the leader through a buffer, so that
	// one proposer's outstanding proposals are batched into one disk write
	// and one append: the documented option for throughput. Without it the
	// leader takes them one by one from an unbuffered channel, and hashicorp
	// ran about 10x slower durable and 3x slower in memory on the bench's
	// machine. The timeouts stay at their defaults (shorter ones lost
	// leadership under disk load).
	c.BatchApplyCh = true
	return c
}

// prepare builds the nodes' stores and transports, bootstrapped, with
// logSize entries preloaded into every log, without starting Raft.
func prepare(w harness.Workload) ([]*node, error) {
	var nodes []*node
	var servers []raft.Server
	for _, id := range harness.Voters {
		n := &node{id: raft.ServerID(fmt.Sprint(id)), fsm: &fsm{}}
		n.addr, n.trans = raft.NewInmemTransport("")
		if w.Kind == harness.Durable {
			var err error
			n.bolt, err = raftboltdb.NewBoltStore(filepath.Join(w.Dir, fmt.Sprintf("node%d.bolt", id)))
			if err != nil {
				return nil, err
			}
			if n.logs, err = raft.NewLogCache(512, n.bolt); err != nil {
				return nil, err
			}
			n.stable = n.bolt
			snapDir := filepath.Join(w.Dir, fmt.Sprintf("snap%d", id))
			if n.snaps, err = raft.NewFileSnapshotStore(snapDir, 1, io.Discard); err != nil {
				return nil, err
			}
		} else {
			store := raft.NewInmemStore()
			n.logs, n.stable, n.snaps = store, store, raft.NewInmemSnapshotStore()
		}
		nodes = append(nodes, n)
		servers = append(servers, raft.Server{ID: n.id, Address: n.addr})
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
	for _, n := range nodes {
		err := raft.BootstrapCluster(config(n.id), n.logs, n.stable, n.snaps, n.trans,
			raft.Configuration{Servers: servers})
		if err != nil {
			return nil, err
		}
		if w.LogSize > 0 {
			if err := preload(n, w.LogSize, raft.Configuration{Servers: servers}); err != nil {
				return nil, err
			}
		}
	}
	return nodes, nil
}

// preload appends n commands at term 1 after the bootstrap configuration,
// and a snapshot at the last of them that tells the state machine they are
// applied: the log a restarted node finds, with hashicorp's equivalent of
// the applied index the other libraries are given (Config.Applied).
func preload(nd *node, n int, conf raft.Configuration) error {
	store := nd.logs
	const batch = 4096
	logs := make([]*raft.Log, 0, batch)
	for i := 0; i < n; i++ {
		logs = append(logs, &raft.Log{Index: uint64(i) + 2, Term: 1, Type: raft.LogCommand,
			Data: harness.PreloadPayload(i)})
		if len(logs) == batch || i == n-1 {
			if err := store.StoreLogs(logs); err != nil {
				return err
			}
			logs = logs[:0]
		}
	}
	sink, err := nd.snaps.Create(raft.SnapshotVersionMax, uint64(n)+1, 1, conf, 1, nd.trans)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(sink, "preloaded %d", n); err != nil {
		return errors.Join(err, sink.Cancel())
	}
	return sink.Close()
}

// start starts every node and waits until one leads and every node
// applied the preloaded log.
func start(nodes []*node, logSize int) (*raft.Raft, error) {
	for _, n := range nodes {
		var err error
		n.r, err = raft.NewRaft(config(n.id), n.fsm, n.logs, n.stable, n.snaps, n.trans)
		if err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		if time.Now().After(deadline) {
			return nil, errors.New("no leader elected, or preloaded log not applied, in 120 s")
		}
		var leader *raft.Raft
		ready := true
		for _, n := range nodes {
			if n.r.State() == raft.Leader {
				leader = n.r
			}
			if n.fsm.state().Preloaded != uint64(logSize) {
				ready = false
			}
		}
		if leader != nil && ready {
			// Wait until the leader committed an entry of its term.
			if err := leader.Barrier(10 * time.Second).Error(); err != nil {
				return nil, err
			}
			return leader, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shutdown(nodes []*node) {
	for _, n := range nodes {
		if n.r != nil {
			_ = n.r.Shutdown().Error()
		}
		_ = n.trans.Close()
		if n.bolt != nil {
			_ = n.bolt.Close()
		}
	}
}

// Run runs workload w and returns what it measured.
func Run(w harness.Workload) (res harness.Result) {
	res = harness.Result{Lib: Name, Workload: w}
	payloads := harness.Payloads(w.N)
	heapBefore := harness.HeapInUse()
	nodes, err := prepare(w)
	defer func() { shutdown(nodes) }()
	if err != nil {
		res.Invalid = err.Error()
		return res
	}
	if w.LogSize > 0 {
		held := float64(harness.HeapInUse()) - float64(heapBefore)
		res.BytesPerEntry = held / float64(len(harness.Voters)*w.LogSize)
	}
	for _, n := range nodes {
		n.fsm.sm.Init(w.N)
	}
	leader, err := start(nodes, w.LogSize)
	if err != nil {
		res.Invalid = err.Error()
		return res
	}
	window := w.Window
	var lat []time.Duration
	if w.Kind == harness.Latency {
		window = 1
		lat = make([]time.Duration, w.N)
	}
	var t0 time.Time // when the newest proposal was made
	futures := make([]raft.ApplyFuture, w.N)
	var m harness.Meter
	m.Start()
	done := 0
	for i := range w.N {
		if i-done == window {
			if err := futures[done].Error(); err != nil {
				res.Invalid = fmt.Sprintf("proposal %d: %v", done, err)
				return res
			}
			if lat != nil {
				lat[done] = time.Since(t0)
			}
			done++
		}
		t0 = time.Now()
		futures[i] = leader.Apply(payloads[i], 0)
	}
	for ; done < w.N; done++ {
		if err := futures[done].Error(); err != nil {
			res.Invalid = fmt.Sprintf("proposal %d: %v", done, err)
			return res
		}
		if lat != nil {
			lat[done] = time.Since(t0)
		}
	}
	m.Stop(&res, w.N)
	if lat != nil {
		harness.Latencies(&res, lat)
	}
	// Followers apply once a later append or heartbeat carries the commit.
	states := func() []harness.SM {
		sms := make([]harness.SM, len(nodes))
		for i, n := range nodes {
			sms[i] = n.fsm.state()
		}
		return sms
	}
	if err := harness.AwaitVerify(states, w.N, 30*time.Second); err != nil {
		res.Invalid = err.Error()
	}
	return res
}
