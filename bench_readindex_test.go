package raft

import (
	"fmt"
	"testing"
)

// BenchmarkReadIndex measures linearizable reads on a 3-node cluster with
// 1, 16 and 256 reads outstanding at once: all of them are confirmed by one
// heartbeat round. It reports the cost per read and the heartbeats sent per
// round.
func BenchmarkReadIndex(b *testing.B) {
	for _, outstanding := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("outstanding=%d", outstanding), func(b *testing.B) {
			c := benchNewCluster(b, 3)
			c.elect(b, 1)
			leader := c.node(1)
			ctxs := make([][]byte, outstanding)
			for i := range ctxs {
				ctxs[i] = fmt.Appendf(nil, "read-%d", i)
			}
			heartbeats := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				want := leader.reads + outstanding
				for _, ctx := range ctxs {
					leader.rn.ReadIndex(ctx)
				}
				leader.handleReadies(b)
				for _, m := range leader.out {
					if m.Type == MsgHeartbeat {
						heartbeats++
					}
				}
				c.stabilize(b)
				if leader.reads != want {
					b.Fatalf("%d reads answered, want %d", leader.reads, want)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*outstanding), "ns/read")
			b.ReportMetric(float64(heartbeats)/float64(b.N), "heartbeats/round")
		})
	}
}

// BenchmarkFollowerRestoreSnapshot measures a follower receiving a snapshot
// with a 1 MiB payload: Step, the Ready carrying it, persisting it into
// MemoryStorage, Advance.
func BenchmarkFollowerRestoreSnapshot(b *testing.B) {
	n := benchNewNode(b, 2, []uint64{1, 2, 3})
	data := make([]byte, 1<<20)
	cs := ConfState{Voters: []uint64{1, 2, 3}}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		snap := Snapshot{Metadata: SnapshotMetadata{Index: uint64(10 + 10*i), Term: 2, ConfState: cs}, Data: data}
		if err := n.rn.Step(Message{Type: MsgSnap, From: 1, To: 2, Term: 2, Snapshot: &snap}); err != nil {
			b.Fatal(err)
		}
		n.handleReadies(b)
		if n.applied != snap.Metadata.Index {
			b.Fatalf("applied %d, want %d", n.applied, snap.Metadata.Index)
		}
		n.out = n.out[:0]
	}
}
