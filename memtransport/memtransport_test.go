package memtransport

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

const waitTimeout = 10 * time.Second

type memTestHandler struct {
	msgs    chan raft.Message
	unreach chan uint64
	snaps   chan raft.SnapshotStatus
}

func newMemTestHandler() *memTestHandler {
	return &memTestHandler{msgs: make(chan raft.Message, 1<<14), unreach: make(chan uint64, 1<<14), snaps: make(chan raft.SnapshotStatus, 16)}
}

func (h *memTestHandler) HandleMessage(m raft.Message)                   { h.msgs <- m }
func (h *memTestHandler) ReportUnreachable(id uint64)                    { h.unreach <- id }
func (h *memTestHandler) ReportSnapshot(_ uint64, s raft.SnapshotStatus) { h.snaps <- s }

func recv[T any](tb testing.TB, c chan T) T {
	tb.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(waitTimeout):
		tb.Fatalf("nothing received within %v", waitTimeout)
		var zero T
		return zero
	}
}

// newMemTestCluster opens n transports that know each other.
func newMemTestCluster(tb testing.TB, n int, opts Options) (*Network, []*Transport, []*memTestHandler) {
	tb.Helper()
	nw, err := NewNetwork(wire.CodecOptions{})
	require.NoError(tb, err)
	var ids []uint64
	for id := uint64(1); id <= uint64(n); id++ {
		ids = append(ids, id)
	}
	trs := make([]*Transport, n+1)
	hs := make([]*memTestHandler, n+1)
	for _, id := range ids {
		hs[id] = newMemTestHandler()
		trs[id], err = nw.NewTransport(id, ids, hs[id], opts)
		require.NoError(tb, err)
		tb.Cleanup(func() { _ = trs[id].Close() })
	}
	return nw, trs, hs
}

func memApp(from, to, seq uint64) raft.Message {
	return raft.Message{Type: raft.MsgApp, From: from, To: to, Term: 1, Index: seq,
		Entries: []raft.Entry{{Term: 1, Index: seq + 1, Data: []byte{byte(seq)}}}}
}

func TestMemOrderedDelivery(t *testing.T) {
	_, trs, hs := newMemTestCluster(t, 3, Options{})
	const n = 1000
	for s := uint64(1); s <= n; s++ {
		trs[1].Send([]raft.Message{memApp(1, 2, s), memApp(1, 3, s)})
	}
	for _, to := range []uint64{2, 3} {
		for s := uint64(1); s <= n; s++ {
			m := recv(t, hs[to].msgs)
			require.Equal(t, s, m.Index)
			require.Equal(t, []byte{byte(s)}, m.Entries[0].Data)
		}
	}
}

func TestMemReceiverGetsACopy(t *testing.T) {
	_, trs, hs := newMemTestCluster(t, 2, Options{})
	m := memApp(1, 2, 1)
	trs[1].Send([]raft.Message{m})
	got := recv(t, hs[2].msgs)
	got.Entries[0].Data[0] = 0xff
	assert.Equal(t, byte(1), m.Entries[0].Data[0])
}

func TestMemDrops(t *testing.T) {
	tests := []struct {
		name  string
		setup func(nw *Network, trs []*Transport)
		to    uint64
	}{
		{name: "unknown peer", setup: func(*Network, []*Transport) {}, to: 7},
		{name: "cut link", setup: func(nw *Network, _ []*Transport) { nw.Cut(1, 2) }, to: 2},
		{name: "closed peer", setup: func(_ *Network, trs []*Transport) { require.NoError(t, trs[2].Close()) }, to: 2},
		{name: "removed peer", setup: func(_ *Network, trs []*Transport) { trs[1].RemovePeer(2) }, to: 2},
		{name: "receiver does not know the sender", setup: func(_ *Network, trs []*Transport) { trs[2].RemovePeer(1) }, to: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nw, trs, hs := newMemTestCluster(t, 2, Options{})
			tt.setup(nw, trs)
			trs[1].Send([]raft.Message{memApp(1, tt.to, 1)})
			assert.Equal(t, tt.to, recv(t, hs[1].unreach))
			if tt.to == 2 {
				assert.Empty(t, hs[2].msgs)
			}
		})
	}
}

func TestMemFullQueueDrops(t *testing.T) {
	nw, trs, hs := newMemTestCluster(t, 2, Options{QueueSize: 4})
	// Block the receiver so the queue fills: the drain goroutine waits on a
	// full handler channel.
	blocked := &memBlockingHandler{release: make(chan struct{}), got: make(chan raft.Message, 100)}
	require.NoError(t, trs[2].Close())
	tr2, err := nw.NewTransport(2, []uint64{1}, blocked, Options{})
	require.NoError(t, err)
	defer tr2.Close()
	var batch []raft.Message
	for s := uint64(1); s <= 50; s++ {
		batch = append(batch, memApp(1, 2, s))
	}
	trs[1].Send(batch) // returns at once although the receiver is stuck
	assert.Equal(t, uint64(2), recv(t, hs[1].unreach))
	close(blocked.release)
	for s := uint64(1); s <= 5; s++ { // one in the handler plus four queued
		assert.Equal(t, s, recv(t, blocked.got).Index)
	}
}

type memBlockingHandler struct {
	release chan struct{}
	got     chan raft.Message
}

func (h *memBlockingHandler) HandleMessage(m raft.Message) {
	<-h.release
	h.got <- m
}
func (h *memBlockingHandler) ReportUnreachable(uint64)                   {}
func (h *memBlockingHandler) ReportSnapshot(uint64, raft.SnapshotStatus) {}

func TestMemSnapshot(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("SkipCodec=%v", skip), func(t *testing.T) {
			memSnapshot(t, Options{SkipCodec: skip})
		})
	}
}

func memSnapshot(t *testing.T, opts Options) {
	nw, trs, hs := newMemTestCluster(t, 2, opts)
	snap := raft.Message{Type: raft.MsgSnap, From: 1, To: 2, Term: 2, Snapshot: &raft.Snapshot{
		Metadata: raft.SnapshotMetadata{Index: 5, Term: 1, ConfState: raft.ConfState{Voters: []uint64{1, 2}}}, Data: []byte("state")}}
	trs[1].Send([]raft.Message{snap})
	assert.Equal(t, snap, recv(t, hs[2].msgs))
	assert.Equal(t, raft.SnapshotFinish, recv(t, hs[1].snaps))
	nw.Cut(1, 2)
	trs[1].Send([]raft.Message{snap})
	assert.Equal(t, raft.SnapshotFailure, recv(t, hs[1].snaps))
	nw.HealAll()
	trs[1].Send([]raft.Message{snap})
	assert.Equal(t, raft.SnapshotFinish, recv(t, hs[1].snaps))
}

func TestMemDuplicateID(t *testing.T) {
	nw, _, _ := newMemTestCluster(t, 1, Options{})
	_, err := nw.NewTransport(1, nil, newMemTestHandler(), Options{})
	assert.ErrorIs(t, err, ErrDuplicateID)
}

func TestMemCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	nw, err := NewNetwork(wire.CodecOptions{})
	require.NoError(t, err)
	h1, h2 := newMemTestHandler(), newMemTestHandler()
	t1, err := nw.NewTransport(1, []uint64{2}, h1, Options{})
	require.NoError(t, err)
	t2, err := nw.NewTransport(2, []uint64{1}, h2, Options{})
	require.NoError(t, err)
	t1.Send([]raft.Message{memApp(1, 2, 1)})
	recv(t, h2.msgs)
	require.NoError(t, t1.Close())
	require.NoError(t, t2.Close())
	t1.Send([]raft.Message{memApp(1, 2, 2)}) // after Close: dropped, no panic
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		require.True(t, time.Now().Before(deadline), "%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
		<-time.After(time.Millisecond) // polling the count: there is no event to wait on
	}
}

// printHandler prints what node 2 receives.
type printHandler struct{ done chan struct{} }

func (h printHandler) HandleMessage(m raft.Message) {
	fmt.Printf("%d -> %d: %s term %d commit %d\n", m.From, m.To, m.Type, m.Term, m.Commit)
	close(h.done)
}
func (printHandler) ReportUnreachable(id uint64)                { fmt.Println("unreachable:", id) }
func (printHandler) ReportSnapshot(uint64, raft.SnapshotStatus) {}

func Example() {
	nw, _ := NewNetwork(wire.CodecOptions{})
	t1, _ := nw.NewTransport(1, []uint64{2}, printHandler{done: make(chan struct{})}, Options{})
	h2 := printHandler{done: make(chan struct{})}
	t2, _ := nw.NewTransport(2, []uint64{1}, h2, Options{})
	defer t1.Close()
	defer t2.Close()

	t1.Send([]raft.Message{{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 3, Commit: 10}})
	<-h2.done
	// Output: 1 -> 2: MsgHeartbeat term 3 commit 10
}

// With SkipCodec, messages arrive as sent but share nothing with the
// sender's: changing what was sent afterwards leaves the copy alone.
func TestMemSkipCodecCopies(t *testing.T) {
	_, trs, hs := newMemTestCluster(t, 2, Options{SkipCodec: true})
	sent := raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 3, LogTerm: 2, Index: 7, Commit: 6,
		Entries: []raft.Entry{
			{Term: 3, Index: 8, Data: []byte("eight")},
			{Term: 3, Index: 9},
			{Term: 3, Index: 10, Type: raft.EntryConfChange, Data: []byte("ten")},
		},
		Context: []byte("ctx")}
	want := raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 3, LogTerm: 2, Index: 7, Commit: 6,
		Entries: []raft.Entry{
			{Term: 3, Index: 8, Data: []byte("eight")},
			{Term: 3, Index: 9},
			{Term: 3, Index: 10, Type: raft.EntryConfChange, Data: []byte("ten")},
		},
		Context: []byte("ctx")}
	trs[1].Send([]raft.Message{sent})
	got := recv(t, hs[2].msgs)
	require.Equal(t, want, got)
	sent.Entries[0].Data[0] = 'X'
	sent.Entries[2].Data[0] = 'X'
	sent.Entries[1].Index = 99
	sent.Context[0] = 'X'
	require.Equal(t, want, got, "the copy shares memory with the sent message")
	// Appending to one entry's data must not run into the next entry's.
	_ = append(got.Entries[0].Data, "!!!"...)
	require.Equal(t, want, got)
	trs[1].Send([]raft.Message{{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 3}})
	hb := recv(t, hs[2].msgs)
	require.Equal(t, raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 3}, hb)
}

// A stream's messages arrive in order with SkipCodec too.
func TestMemSkipCodecOrderedDelivery(t *testing.T) {
	_, trs, hs := newMemTestCluster(t, 2, Options{SkipCodec: true})
	const n = 200
	for s := uint64(1); s <= n; s++ {
		trs[1].Send([]raft.Message{memApp(1, 2, s)})
	}
	for s := uint64(1); s <= n; s++ {
		m := recv(t, hs[2].msgs)
		require.Equal(t, s, m.Index)
		require.Equal(t, []byte{byte(s)}, m.Entries[0].Data)
	}
}
