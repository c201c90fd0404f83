// Package memtransport implements raft.Transport in memory, for tests and
// examples. It keeps the semantics of package tcptransport: Send never
// blocks; each peer has a bounded queue per stream (heartbeats apart from
// other messages) drained in order by a goroutine of its own; a message to a
// down, unknown or cut-off peer, or beyond a full queue, is dropped and
// reported through ReportUnreachable; messages travel through wire.Codec, so
// the receiver gets its own copy and the same size bounds apply (unless
// Options.SkipCodec, which copies them instead, for benchmarks); a MsgSnap
// is reported through ReportSnapshot. A snapshot's data does not go through
// the codec (so its size is not bounded by the frame size): it is read from
// the snapshot's Source, or Data, and handed to a receiving
// raft.SnapshotStreamHandler as a stream (HandleSnapshot), or to any other
// handler in Data.
//
// Nodes find each other through a Network, which can also cut links to
// simulate partitions.
package memtransport

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// ErrDuplicateID is returned by Network.NewTransport when a transport with
// that ID is open on the network.
var ErrDuplicateID = errors.New("memtransport: a transport with this ID is already open")

// Network connects the in-memory transports of one cluster. It is safe for
// concurrent use.
type Network struct {
	codec *wire.Codec

	mu    sync.Mutex
	nodes map[uint64]*Transport
	cut   map[[2]uint64]bool // directed links that drop everything
}

// NewNetwork returns an empty network whose messages are bounded by opts.
func NewNetwork(opts wire.CodecOptions) (*Network, error) {
	c, err := wire.NewCodec(opts)
	if err != nil {
		return nil, err
	}
	return &Network{codec: c, nodes: map[uint64]*Transport{}, cut: map[[2]uint64]bool{}}, nil
}

// Cut drops every message from -> to until Heal.
func (n *Network) Cut(from, to uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]uint64{from, to}] = true
}

// Heal restores the link from -> to.
func (n *Network) Heal(from, to uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cut, [2]uint64{from, to})
}

// HealAll restores every link.
func (n *Network) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]uint64]bool{}
}

// route returns the open transport for to if from may reach it.
func (n *Network) route(from, to uint64) *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut[[2]uint64{from, to}] {
		return nil
	}
	return n.nodes[to]
}

// Options tunes a Transport; zero fields take tcptransport's defaults.
type Options struct {
	QueueSize          int // default 4096
	HeartbeatQueueSize int // default 256
	// SkipCodec has the messages this transport sends copied instead of
	// encoded and decoded: the receiver still gets its own copy of their
	// entries, entry data and context, but nothing checks that they would
	// encode, and the codec's size bounds do not apply. It is for
	// benchmarks of what runs above the transport; tests leave it off, so
	// that every message goes through wire.Codec as over TCP. A MsgSnap's
	// metadata goes through the codec either way.
	SkipCodec bool
}

// NewTransport opens the transport of node id on the network. peers are the
// IDs it may talk to (AddPeer and RemovePeer change them); h receives its
// messages and reports.
func (n *Network) NewTransport(id uint64, peers []uint64, h raft.TransportHandler, opts Options) (*Transport, error) {
	if id == raft.None || h == nil {
		return nil, fmt.Errorf("memtransport: invalid node ID %d or nil handler", id)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.HeartbeatQueueSize <= 0 {
		opts.HeartbeatQueueSize = 256
	}
	t := &Transport{net: n, id: id, h: h, opts: opts, peers: map[uint64]*peer{}, done: make(chan struct{}),
		signal: make(chan struct{}, 1), unreach: map[uint64]struct{}{}}
	t.wg.Add(1)
	go t.reportLoop()
	for _, p := range peers {
		t.AddPeer(p, "")
	}
	n.mu.Lock()
	taken := n.nodes[id] != nil
	if !taken {
		n.nodes[id] = t
	}
	n.mu.Unlock()
	if taken {
		_ = t.Close()
		return nil, fmt.Errorf("%w: %d", ErrDuplicateID, id)
	}
	return t, nil
}

// Transport is an in-memory raft.Transport. It is safe for concurrent use;
// its handler is called as raft.TransportHandler describes.
type Transport struct {
	net  *Network
	id   uint64
	h    raft.TransportHandler
	opts Options
	wg   sync.WaitGroup
	done chan struct{}

	// mu guards peers and closed; it is held (read) while a message is
	// handed to h, so that Close waits for deliveries in progress.
	mu     sync.RWMutex
	peers  map[uint64]*peer
	closed bool

	rmu      sync.Mutex
	unreach  map[uint64]struct{}
	snapFail []uint64
	snapOK   []uint64
	signal   chan struct{}
}

var _ raft.Transport = (*Transport)(nil)

type peer struct {
	id         uint64
	messages   chan raft.Message
	heartbeats chan raft.Message
	stop       chan struct{}
}

// Send queues msgs; see raft.Transport. It never blocks.
func (t *Transport) Send(msgs []raft.Message) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return
	}
	for i := range msgs {
		m := msgs[i]
		if m.To == t.id || isLocal(m.Type) {
			continue
		}
		p := t.peers[m.To]
		if p == nil || t.net.route(t.id, m.To) == nil {
			t.report(m.To, m.Type == raft.MsgSnap, false)
			continue
		}
		q := p.messages
		if m.Type == raft.MsgHeartbeat || m.Type == raft.MsgHeartbeatResp {
			q = p.heartbeats
		}
		if m.Type == raft.MsgSnap {
			t.sendSnapshot(m, p)
			continue
		}
		select {
		case q <- m:
		default:
			t.report(m.To, false, false)
		}
	}
}

// sendSnapshot delivers a MsgSnap on a goroutine of its own: snapshots
// travel apart from the other messages, as over TCP. It is a function of
// its own so that only a MsgSnap, which its goroutine keeps, is moved to
// the heap, not every message Send queues.
func (t *Transport) sendSnapshot(m raft.Message, p *peer) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		var s deliveryScratch
		t.report(m.To, true, t.deliver(&m, p.stop, &s))
	}()
}

func isLocal(mt raft.MessageType) bool {
	switch mt {
	case raft.MsgHup, raft.MsgBeat, raft.MsgUnreachable, raft.MsgSnapStatus, raft.MsgCheckQuorum:
		return true
	}
	return false
}

// AddPeer lets the transport talk to node id; addr is ignored.
func (t *Transport) AddPeer(id uint64, _ string) {
	if id == raft.None || id == t.id {
		return
	}
	t.closedOrLocked(func() {
		if t.peers[id] != nil {
			return
		}
		p := &peer{id: id, messages: make(chan raft.Message, t.opts.QueueSize),
			heartbeats: make(chan raft.Message, t.opts.HeartbeatQueueSize), stop: make(chan struct{})}
		t.peers[id] = p
		t.wg.Add(2)
		go t.drain(p, p.messages)
		go t.drain(p, p.heartbeats)
	})
}

// RemovePeer forgets node id, dropping what is queued for it.
func (t *Transport) RemovePeer(id uint64) {
	t.closedOrLocked(func() {
		if p := t.peers[id]; p != nil {
			close(p.stop)
			delete(t.peers, id)
		}
	})
}

// closedOrLocked runs f under the write lock unless the transport is closed
// (then it reports true).
func (t *Transport) closedOrLocked(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return true
	}
	f()
	return false
}

// knows reports whether id is a peer, for the receiving side.
func (t *Transport) knows(id uint64) bool { return t.peers[id] != nil }

// Close leaves the network, stops every goroutine and waits for them.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for _, p := range t.peers {
		close(p.stop)
	}
	close(t.done)
	t.mu.Unlock()
	t.net.mu.Lock()
	if t.net.nodes[t.id] == t {
		delete(t.net.nodes, t.id)
	}
	t.net.mu.Unlock()
	t.wg.Wait()
	return nil
}

// deliveryScratch is what one stream's deliveries reuse: the message being
// delivered, its copy and the frame buffer. A drain goroutine keeps one,
// so that a delivery allocates only what the receiver may keep (the
// decoded entries and byte slices).
type deliveryScratch struct {
	m, cp raft.Message
	frame []byte
}

// maxScratchFrame bounds the frame buffer a stream keeps between
// deliveries.
const maxScratchFrame = 1 << 20

// drain delivers one stream's messages in order.
func (t *Transport) drain(p *peer, q chan raft.Message) {
	defer t.wg.Done()
	s := new(deliveryScratch)
	for {
		select {
		case <-p.stop:
			return
		case s.m = <-q:
			if !t.deliver(&s.m, p.stop, s) {
				t.report(p.id, false, false)
			}
			s.m = raft.Message{} // drop the references to the sender's slices
		}
	}
}

// deliver copies m through the codec and hands it to the receiver; it
// reports whether the receiver got it. s is the stream's scratch space.
func (t *Transport) deliver(m *raft.Message, stop chan struct{}, s *deliveryScratch) bool {
	if m.Type == raft.MsgSnap && m.Snapshot != nil {
		return t.deliverSnapshot(m, stop)
	}
	if t.opts.SkipCodec && m.Snapshot == nil {
		return t.handOver(copyMessage(m), stop)
	}
	frame, err := t.net.codec.AppendFrame(s.frame[:0], m)
	if cap(frame) <= maxScratchFrame {
		s.frame = frame[:0]
	}
	if err != nil {
		return false
	}
	// The receiver keeps the copy: decode into a zero message, so that it
	// shares nothing with an earlier one.
	s.cp = raft.Message{}
	err = t.net.codec.Decode(wire.FrameMessage, frame[wire.FrameHeaderSize:], &s.cp)
	cp := s.cp
	s.cp = raft.Message{}
	if err != nil {
		return false
	}
	return t.handOver(cp, stop)
}

// handOver hands cp, a copy of a message this transport sends, to its
// receiver unless the stream stopped; it reports whether the receiver got
// it.
func (t *Transport) handOver(cp raft.Message, stop chan struct{}) bool {
	return t.toReceiver(cp.To, stop, func(dst *Transport) bool {
		dst.h.HandleMessage(cp)
		return true
	})
}

// toReceiver calls deliver with node to's transport, held open for the
// call (its read lock), unless the stream stopped, to is unreachable or
// closed, or does not know this node; it reports what deliver reports, or
// false.
func (t *Transport) toReceiver(to uint64, stop chan struct{}, deliver func(dst *Transport) bool) bool {
	select {
	case <-stop:
		return false
	default:
	}
	dst := t.net.route(t.id, to)
	if dst == nil {
		return false
	}
	dst.mu.RLock()
	defer dst.mu.RUnlock()
	if dst.closed || !dst.knows(t.id) {
		return false
	}
	return deliver(dst)
}

// copyMessage returns a copy of m, which carries no snapshot, that shares
// nothing with it: the entries in a slice of their own, and the entries'
// data and the context in one buffer.
func copyMessage(m *raft.Message) raft.Message {
	cp := *m
	size := len(m.Context)
	for i := range m.Entries {
		size += len(m.Entries[i].Data)
	}
	var buf []byte
	if size > 0 {
		buf = make([]byte, 0, size)
	}
	// carve copies b to the end of buf and returns that part of it, nil
	// for nil.
	carve := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	if m.Entries != nil {
		cp.Entries = make([]raft.Entry, len(m.Entries))
		for i, e := range m.Entries {
			e.Data = carve(e.Data)
			cp.Entries[i] = e
		}
	}
	cp.Context = carve(m.Context)
	return cp
}

// report records a drop or a snapshot outcome for reportLoop.
func (t *Transport) report(id uint64, snap, ok bool) {
	t.rmu.Lock()
	switch {
	case !snap:
		t.unreach[id] = struct{}{}
	case ok:
		t.snapOK = append(t.snapOK, id)
	default:
		t.snapFail = append(t.snapFail, id)
		t.unreach[id] = struct{}{}
	}
	t.rmu.Unlock()
	select {
	case t.signal <- struct{}{}:
	default:
	}
}

func (t *Transport) reportLoop() {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case <-t.signal:
		}
		t.rmu.Lock()
		unreach, fail, ok := t.unreach, t.snapFail, t.snapOK
		t.unreach, t.snapFail, t.snapOK = map[uint64]struct{}{}, nil, nil
		t.rmu.Unlock()
		for id := range unreach {
			t.h.ReportUnreachable(id)
		}
		for _, id := range fail {
			t.h.ReportSnapshot(id, raft.SnapshotFailure)
		}
		for _, id := range ok {
			t.h.ReportSnapshot(id, raft.SnapshotFinish)
		}
	}
}

// deliverSnapshot hands a MsgSnap to the receiver: the message copied
// through the codec without its data, and the data read from the
// snapshot's Source or Data, as a stream to a raft.SnapshotStreamHandler
// or in Data to any other handler. It reports whether the receiver took
// it.
func (t *Transport) deliverSnapshot(m *raft.Message, stop chan struct{}) bool {
	meta := *m.Snapshot
	meta.Data, meta.Source = nil, nil
	bare := *m
	bare.Snapshot = &meta
	frame, err := t.net.codec.AppendFrame(nil, &bare)
	if err != nil {
		return false
	}
	var cp raft.Message
	if err := t.net.codec.Decode(wire.FrameMessage, frame[wire.FrameHeaderSize:], &cp); err != nil || cp.Snapshot == nil {
		return false
	}
	return t.toReceiver(m.To, stop, func(dst *Transport) bool {
		data, _, err := m.Snapshot.OpenData()
		if err != nil {
			return false
		}
		defer data.Close()
		if sh, ok := dst.h.(raft.SnapshotStreamHandler); ok {
			return sh.HandleSnapshot(cp, data) == nil
		}
		b, err := io.ReadAll(data)
		if err != nil {
			return false
		}
		cp.Snapshot.Data = b
		dst.h.HandleMessage(cp)
		return true
	})
}
