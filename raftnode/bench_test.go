package raftnode_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelraft/raft/memtransport"
	"github.com/keelraft/raft/raftnode"
)

// nodeBenchCluster starts a 3-Node memtransport cluster with MemoryStorage
// and returns its leader.
func nodeBenchCluster(b *testing.B, opts ...clusterOption) (*nodeCluster, *raftnode.Node) {
	b.Helper()
	opts = append([]clusterOption{withConfig(func(cfg *raftnode.Config) { cfg.TickInterval = 10 * time.Millisecond }), withCountingStateMachines()}, opts...)
	c := newNodeCluster(b, 3, opts...)
	leader := c.members[c.waitLeader()].node
	// Not c.propose: the counting state machines return no results.
	if _, err := leader.Propose(nodeCtx(b), []byte("warm-up")); err != nil {
		b.Fatalf("warm-up proposal failed: %v", err)
	}
	return c, leader
}

// BenchmarkNodePropose measures committed-and-applied proposals per second
// (128-byte payloads) for concurrent proposers on the leader, with
// MemoryStorage and, under storage=wal, with wal in temporary directories
// (every Save fsyncs). Under storage=memory-skipcodec the storage is
// MemoryStorage and memtransport copies the messages instead of encoding
// them (memtransport.Options.SkipCodec), which leaves the Node's own costs
// to compare with RawNode's (BenchmarkProposeCommitApply3Nodes in package
// raft). cpu-ns/op is the CPU time of the whole process (all three nodes)
// per proposal.
func BenchmarkNodePropose(b *testing.B) {
	for _, storage := range []string{"memory", "memory-skipcodec", "wal"} {
		for _, proposers := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("storage=%s/proposers=%d", storage, proposers), func(b *testing.B) {
				benchNodePropose(b, storage, proposers)
			})
		}
	}
}

func benchNodePropose(b *testing.B, storage string, proposers int) {
	leader := nodeBenchLeader(b, storage)
	payload := make([]byte, 128)
	var next atomic.Int64
	var failed atomic.Value
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), processCPU(b)
	var wg sync.WaitGroup
	for range proposers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := leader.Propose(ctx, payload); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if cpu >= 0 {
		cpu = processCPU(b) - cpu
	}
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("proposal failed: %v", err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "proposals/s")
	if cpu >= 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// nodeBenchLeader starts a 3-Node cluster on the given storage and returns
// its leader.
func nodeBenchLeader(b *testing.B, storage string) *raftnode.Node {
	b.Helper()
	if storage == "wal" {
		c := newNodeCluster(b, 3, onWAL(), withConfig(func(cfg *raftnode.Config) { cfg.TickInterval = 10 * time.Millisecond }))
		lead := c.waitLeader()
		c.propose("warm-up")
		return c.members[lead].node
	}
	var opts []clusterOption
	if storage == "memory-skipcodec" {
		opts = append(opts, withTransportOptions(memtransport.Options{SkipCodec: true}))
	}
	_, leader := nodeBenchCluster(b, opts...)
	return leader
}

// BenchmarkNodeProposeLatency measures one sequential proposer's latency
// from Propose to the leader's applied result.
func BenchmarkNodeProposeLatency(b *testing.B) {
	_, leader := nodeBenchCluster(b)
	payload := make([]byte, 128)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := leader.Propose(ctx, payload); err != nil {
			b.Fatalf("proposal failed: %v", err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)*90/100].Microseconds()), "p90-µs")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds()), "p95-µs")
}
