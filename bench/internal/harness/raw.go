package harness

import (
	"fmt"
	"time"
)

// Voters are the IDs of the three nodes of every cluster; node 1 leads.
var Voters = []uint64{1, 2, 3}

// RawCluster is three RawNode-style nodes (this library, etcd raft) run by
// one host loop in one goroutine, the way these libraries' own benchmarks
// and single-process tests drive them: no goroutine per node, messages
// handed over in memory without encoding.
type RawCluster interface {
	// Propose proposes data at node 1, the leader.
	Propose(data []byte) error
	// Round lets every node that has a Ready handle one: persist it (and
	// sync, in durable mode, the three nodes' files concurrently), queue
	// its messages, apply its committed entries, Advance. Then it steps
	// every queued message into its destination.
	Round() error
	// Idle reports whether no node has a Ready.
	Idle() bool
	// SMs returns the nodes' state machines, node 1 first. The slice
	// shares the cluster's storage, so it stays current.
	SMs() []SM
	// Close releases files.
	Close() error
}

// RawLib builds clusters of one RawNode-style library.
type RawLib struct {
	Name string
	// New builds a 3-node cluster with node 1 elected and the cluster
	// idle. Every node's log holds logSize preloaded entries, committed
	// and applied. With dir set, every node also writes its log to a
	// FileLog in dir and syncs it as its Readies ask.
	New func(logSize int, dir string) (RawCluster, error)
}

// Settle runs rounds until the cluster is idle, at most limit rounds.
func Settle(c RawCluster, limit int) error {
	for range limit {
		if c.Idle() {
			return nil
		}
		if err := c.Round(); err != nil {
			return err
		}
	}
	return fmt.Errorf("cluster not idle after %d rounds", limit)
}

// Run runs workload w on lib and returns what it measured.
func (lib RawLib) Run(w Workload) Result {
	res := Result{Lib: lib.Name, Workload: w}
	payloads := Payloads(w.N)
	heapBefore := HeapInUse()
	c, err := lib.New(w.LogSize, w.Dir)
	if err != nil {
		res.Invalid = err.Error()
		return res
	}
	defer c.Close()
	if w.LogSize > 0 {
		held := float64(HeapInUse()) - float64(heapBefore)
		res.BytesPerEntry = held / float64(len(Voters)*w.LogSize)
	}
	window := w.Window
	var lat []time.Duration
	if w.Kind == Latency {
		window = 1
		lat = make([]time.Duration, 0, w.N)
	}
	sms := c.SMs()
	for i := range sms {
		sms[i].Init(w.N)
	}
	var m Meter
	m.Start()
	proposed, stalled := 0, 0
	var t0 time.Time
	for int(sms[0].Applied) < w.N {
		for proposed < w.N && proposed-int(sms[0].Applied) < window {
			if lat != nil {
				t0 = time.Now()
			}
			if err := c.Propose(payloads[proposed]); err != nil {
				res.Invalid = fmt.Sprintf("proposal %d: %v", proposed, err)
				return res
			}
			proposed++
		}
		before := sms[0].Applied
		if err := c.Round(); err != nil {
			res.Invalid = err.Error()
			return res
		}
		switch {
		case sms[0].Applied != before:
			stalled = 0
			if lat != nil {
				lat = append(lat, time.Since(t0))
			}
		case c.Idle():
			stalled++
			if stalled > 100 {
				res.Invalid = fmt.Sprintf("stalled at %d applied", before)
				return res
			}
		}
	}
	m.Stop(&res, w.N)
	if lat != nil {
		Latencies(&res, lat)
	}
	// Followers learn the last commit index one round later.
	if err := Settle(c, 1000); err != nil {
		res.Invalid = err.Error()
		return res
	}
	if err := Verify(sms, w.N); err != nil {
		res.Invalid = err.Error()
	}
	return res
}
