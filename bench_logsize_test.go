package raft

import (
	"fmt"
	"testing"
)

// benchLogSizeWindow is how many proposals BenchmarkProposeCommitApplyLogSize
// proposes at the leader before running the cluster until they are applied.
const benchLogSizeWindow = 256

// BenchmarkProposeCommitApplyLogSize measures the cycle of
// BenchmarkProposeCommitApply3Nodes, in batches of benchLogSizeWindow
// proposals, on nodes whose MemoryStorage already holds 10 k or 1 M applied
// entries of 128 bytes, as a restarted node would find them. The host keeps
// the log at about that size: once more than benchLogLimit entries beyond it
// are applied, it compacts them away with the timer stopped. An iteration
// is one proposal, so ns/op at 10 k and at 1 M entries should be about
// equal: the cost of a proposal should not depend on how long the log is.
//
// The preloaded payloads are shared by the three nodes (storages never
// modify entries), so that a run holds one copy of them, not three.
func BenchmarkProposeCommitApplyLogSize(b *testing.B) {
	for _, size := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%s", benchCount(size)), func(b *testing.B) {
			c := benchNewPreloadedCluster(b, 3, size)
			c.elect(b, 1)
			leader := c.node(1)
			payload := make([]byte, 128)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				k := min(benchLogSizeWindow, b.N-done)
				want := leader.applied + uint64(k)
				for range k {
					if err := leader.rn.Propose(payload); err != nil {
						b.Fatal(err)
					}
				}
				c.stabilize(b)
				for _, n := range c.nodes {
					if n.applied != want {
						b.Fatalf("node applied index %d, want %d", n.applied, want)
					}
				}
				done += k
				if leader.applied-leader.compacted > uint64(size)+benchLogLimit {
					b.StopTimer()
					for _, n := range c.nodes {
						to := n.applied - uint64(size)
						if err := n.storage.Compact(to); err != nil {
							b.Fatal(err)
						}
						n.compacted = to
					}
					b.StartTimer()
				}
			}
		})
	}
}

// benchCount writes n as "10k" or "1M".
func benchCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return fmt.Sprint(n)
}

// benchNewPreloadedCluster returns a cluster of size voters whose storages
// hold, after a snapshot at index 1 with the configuration, entries 2 to
// entries+1 of term 1, committed and applied (Config.Applied). No node is
// leader yet.
func benchNewPreloadedCluster(tb testing.TB, size, entries int) *benchCluster {
	tb.Helper()
	voters := make([]uint64, size)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	ents := make([]Entry, entries)
	for i := range ents {
		data := make([]byte, 128)
		data[0] = byte(i)
		ents[i] = Entry{Term: 1, Index: uint64(i) + 2, Type: EntryNormal, Data: data}
	}
	last := uint64(entries) + 1
	c := &benchCluster{}
	for _, id := range voters {
		storage := NewMemoryStorage()
		snap := Snapshot{Metadata: SnapshotMetadata{Index: 1, Term: 1, ConfState: ConfState{Voters: voters}}}
		if err := storage.ApplySnapshot(snap); err != nil {
			tb.Fatal(err)
		}
		if err := storage.Append(ents); err != nil {
			tb.Fatal(err)
		}
		if err := storage.SetHardState(HardState{Term: 1, Commit: last}); err != nil {
			tb.Fatal(err)
		}
		rn, err := NewRawNode(Config{
			ID:              id,
			ElectionTick:    10,
			HeartbeatTick:   1,
			Storage:         storage,
			MaxSizePerMsg:   1 << 20,
			MaxInflightMsgs: 256,
			Applied:         last,
		})
		if err != nil {
			tb.Fatal(err)
		}
		c.nodes = append(c.nodes, &benchNode{rn: rn, storage: storage, applied: last, compacted: 1})
	}
	c.stabilize(tb)
	return c
}
