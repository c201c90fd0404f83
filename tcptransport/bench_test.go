package tcptransport

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelraft/raft"
)

// benchHandler counts deliveries and signals when the count reaches want.
type benchHandler struct {
	got     atomic.Int64
	want    atomic.Int64
	reached chan struct{}
	drops   atomic.Int64
}

func (h *benchHandler) HandleMessage(raft.Message) {
	if h.got.Add(1) >= h.want.Load() {
		select {
		case h.reached <- struct{}{}:
		default:
		}
	}
}
func (h *benchHandler) ReportUnreachable(uint64)                   { h.drops.Add(1) }
func (h *benchHandler) ReportSnapshot(uint64, raft.SnapshotStatus) {}

// waitFor blocks until at least n messages were delivered.
func (h *benchHandler) waitFor(tb testing.TB, n int64) {
	h.want.Store(n)
	deadline := time.After(waitTimeout)
	for h.got.Load() < n {
		select {
		case <-h.reached:
		case <-deadline:
			tb.Fatalf("%d of %d messages delivered", h.got.Load(), n)
		}
	}
}

func BenchmarkTransport(b *testing.B) {
	ents := make([]raft.Entry, 64)
	for i := range ents {
		ents[i] = raft.Entry{Term: 5, Index: 101 + uint64(i), Data: bytes.Repeat([]byte{byte(i)}, 128)}
	}
	cases := []struct {
		name string
		m    raft.Message
	}{
		{name: "heartbeat", m: raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 5, Commit: 1000}},
		{name: "append-64x128B", m: raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 5, LogTerm: 5, Index: 100, Commit: 99, Entries: ents}},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			recv, send := &benchHandler{reached: make(chan struct{}, 1)}, &benchHandler{reached: make(chan struct{}, 1)}
			tc := newTestCluster(b, 2, func(id uint64, c *Config) {
				if id == 2 {
					c.Handler = recv
				} else {
					c.Handler = send
				}
				c.HeartbeatQueueSize = DefaultQueueSize
			})
			// Wait for the stream to be up.
			tc.nodes[1].tr.Send([]raft.Message{bc.m})
			recv.waitFor(b, 1)
			recv.got.Store(0)

			frame, _ := testCodec.AppendFrame(nil, &bc.m)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			const batch, window = 64, DefaultQueueSize / 2
			msgs := make([]raft.Message, batch)
			for i := range msgs {
				msgs[i] = bc.m
			}
			b.ResetTimer()
			sent := 0
			for sent < b.N {
				n := min(batch, b.N-sent)
				tc.nodes[1].tr.Send(msgs[:n])
				sent += n
				if lag := int64(sent) - recv.got.Load(); lag > window {
					recv.waitFor(b, int64(sent)-window/2)
				}
			}
			recv.waitFor(b, int64(b.N))
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if d := send.drops.Load(); d > 0 {
				b.Fatalf("%d drops reported", d)
			}
		})
	}
}
