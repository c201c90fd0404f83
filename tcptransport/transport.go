// Package tcptransport implements raft.Transport over TCP, optionally with
// mutual TLS, so that a host needs no network code of its own.
//
// Each node keeps, for every peer, two long-lived outbound connections: one
// for heartbeats and their responses, one for every other message, so that a
// heartbeat never waits behind a large append. Each has a bounded queue and a
// writer goroutine that batches whatever is queued into one write. A
// snapshot travels on a connection of its own, in checksummed chunks, with a
// rate limit and a timeout scaled to its size. Inbound connections only
// carry frames towards this node; replies travel on this node's own outbound
// connections.
//
// Snapshots stream end to end, so that neither side's memory grows with
// their size. The sender reads a snapshot's data from its raft.Snapshot
// Source when it has one (the snapshot file of a package wal log opened
// with StreamSnapshots), one chunk at a time, and from Data otherwise; a
// Source whose reader fails (a damaged file) cuts the stream, which the
// receiver refuses. A receiver whose Handler implements
// raft.SnapshotStreamHandler (as raftnode.Node does) hands it the MsgSnap
// and a reader of the chunks as they arrive; the reader checks the
// declared size and the SHA-256 before it returns io.EOF, and the stream is
// acknowledged only once the handler took the whole verified data. Any
// other handler gets the MsgSnap with the data in Data, read into memory
// once it is complete and verified in a file of SnapshotDir.
//
// Every connection starts with a handshake (see wire.HandshakeVersion) that
// names the cluster, the sender and the receiver, and authenticates both
// ends: with TLS, by node certificates (see NodeURI); with a shared secret,
// by challenge and response (see Config.PeerSecret); or not at all, if the
// host says so (Config.Insecure). A refused side is told why (a
// wire.HandshakeReason) and both log it. Frames are those of wire.Codec. A
// connection from another cluster or an unknown node, or carrying a
// malformed, oversized or stalled frame, is closed with a log line saying
// why; such warnings are rate-limited per remote host and per peer.
//
// Inbound resources are bounded: connections still in their handshake (in
// total, and per remote address, within HandshakeTimeout), one
// authenticated connection per peer and stream kind, one incoming snapshot
// per peer, streamed to the handler or to a file in SnapshotDir and limited
// to MaxSnapshotSize.
package tcptransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// ErrClosed is returned by calls on a closed Transport.
var ErrClosed = errors.New("tcptransport: transport closed")

// Transport is a raft.Transport over TCP. It is safe for concurrent use. Its
// handler is called from the transport's goroutines as raft.TransportHandler
// describes.
type Transport struct {
	cfg   Config
	codec *wire.Codec
	log   *zap.Logger
	ln    net.Listener

	closing  atomic.Bool
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup
	snapSem  chan struct{} // one token per outgoing snapshot stream
	reporter reporter

	warns    *warnLimiter
	maxEntry int // see MaxEntryDataSize

	mu            sync.RWMutex
	peers         map[uint64]*peer
	inbound       map[net.Conn]*inboundConn // every accepted connection
	pending       int                       // accepted connections still in their handshake
	pendingByHost map[string]int            // the same, per remote IP address
	streams       map[streamKey]net.Conn    // authenticated inbound streams
}

var _ raft.Transport = (*Transport)(nil)

// New starts a transport: it listens for peers and starts connecting to the
// peers in cfg.Peers. It returns an error for a bad Config or when it cannot
// listen.
func New(cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c, err := wire.NewCodec(cfg.Codec)
	if err != nil {
		return nil, fmt.Errorf("tcptransport: %w", err)
	}
	ln := cfg.Listener
	if ln == nil {
		lc := net.ListenConfig{KeepAlive: cfg.KeepAliveInterval}
		if ln, err = lc.Listen(context.Background(), "tcp", cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("tcptransport: listen: %w", err)
		}
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	t := &Transport{
		cfg:     cfg,
		codec:   c,
		log:     cfg.Logger.With(zap.Uint64("raft_id", cfg.ID)),
		ln:      ln,
		done:    make(chan struct{}),
		snapSem: make(chan struct{}, cfg.MaxSnapshotStreams),
		peers:   make(map[uint64]*peer),
		inbound: make(map[net.Conn]*inboundConn),

		pendingByHost: make(map[string]int),
		streams:       make(map[streamKey]net.Conn),
		warns:         newWarnLimiter(cfg.WarnInterval, time.Now),
	}
	if t.maxEntry, err = maxEntryDataSize(c); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("tcptransport: %w", err)
	}
	t.reporter.init()
	// Peers first: a connection accepted before they are known would be
	// refused.
	for id, addr := range cfg.Peers {
		t.AddPeer(id, addr)
	}
	t.wg.Add(2)
	go t.acceptLoop()
	go t.reportLoop()
	return t, nil
}

// Addr returns the address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.ln.Addr() }

// Send queues msgs for their peers; see raft.Transport. It never blocks.
func (t *Transport) Send(msgs []raft.Message) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closing.Load() { // checked under the lock: Close takes it before waiting
		return
	}
	for i := range msgs {
		m := &msgs[i]
		if m.To == t.cfg.ID || isLocal(m.Type) {
			continue
		}
		p := t.peers[m.To]
		switch {
		case p == nil:
			t.reporter.unreachable(m.To)
			if m.Type == raft.MsgSnap {
				t.reporter.snapshotFailed(m.To)
			}
		case m.Type == raft.MsgSnap:
			t.sendSnapshot(p, *m)
		case m.Type == raft.MsgHeartbeat || m.Type == raft.MsgHeartbeatResp:
			p.heartbeats.enqueue(m)
		default:
			p.messages.enqueue(m)
		}
	}
}

// isLocal reports whether messages of type mt never leave a node.
func isLocal(mt raft.MessageType) bool {
	switch mt {
	case raft.MsgHup, raft.MsgBeat, raft.MsgUnreachable, raft.MsgSnapStatus, raft.MsgCheckQuorum:
		return true
	}
	return false
}

// AddPeer makes node id known at addr ("host:port") and starts connecting to
// it; for a known peer with a new address, the old connections are closed
// and new ones made.
func (t *Transport) AddPeer(id uint64, addr string) {
	if id == raft.None || id == t.cfg.ID {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing.Load() {
		return
	}
	if old := t.peers[id]; old != nil {
		if old.addr == addr {
			return
		}
		old.stop()
	}
	p := newPeer(t, id, addr)
	t.peers[id] = p
	p.start()
}

// RemovePeer forgets node id: its queued messages are dropped and its
// connections, outbound and inbound, closed.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		p.stop()
		delete(t.peers, id)
	}
	for conn, ic := range t.inbound {
		if ic.peer == id {
			_ = conn.Close()
		}
	}
}

// Close closes the listener and every connection and waits for every
// goroutine of the transport to return. It must not be called from a
// handler method.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closing.Swap(true) {
		t.mu.Unlock()
		return nil
	}
	close(t.done)
	err := t.ln.Close()
	for _, p := range t.peers {
		p.stop()
	}
	for conn := range t.inbound {
		_ = conn.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return err
}

// peerKnown reports whether id is a current peer.
func (t *Transport) peerKnown(id uint64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.peers[id] != nil
}

// MaxMessageSize returns the largest encoded message the transport carries:
// the codec's MaxFrameSize. A message that encodes larger is never sent: it
// is dropped, the peer is reported unreachable, and a warning logged (at
// most once per WarnInterval per peer).
func (t *Transport) MaxMessageSize() int { return int(t.codec.MaxFrameSize()) }

// MaxEntryDataSize returns the largest Entry.Data that the transport can
// always carry: a MsgApp holding one entry of at most this many bytes (and
// no Context) encodes within MaxMessageSize, whatever its other fields
// hold. A host should refuse a proposal whose data is larger, since it
// could be appended but never replicated. (Raft's MaxSizePerMsg should not
// exceed it either, so that batches of small entries fit too.)
func (t *Transport) MaxEntryDataSize() int { return t.maxEntry }

// maxEntryDataSize computes MaxEntryDataSize for c: the frame limit less
// the encoding of the largest MsgApp with one empty entry, less the longest
// header of a byte string.
func maxEntryDataSize(c *wire.Codec) (int, error) {
	const top = ^uint64(0)
	m := raft.Message{Type: raft.MsgApp, From: top, To: top, Term: top, LogTerm: top, Index: top,
		Commit: top, Reject: true, RejectHint: top,
		Entries: []raft.Entry{{Term: top, Index: top, Type: raft.EntryType(0xff)}}}
	b, err := c.AppendFrame(nil, &m)
	if err != nil {
		return 0, err
	}
	const binHeader = 5 // bin32: marker and 4 length bytes
	n := int(c.MaxFrameSize()) - (len(b) - wire.FrameHeaderSize) - binHeader
	if n <= 0 {
		return 0, fmt.Errorf("MaxFrameSize %d cannot carry an entry", c.MaxFrameSize())
	}
	return n, nil
}

// wait waits for d, or until stop or the transport is closed; it reports
// whether the full time passed.
func (t *Transport) wait(d time.Duration, stop <-chan struct{}) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-stop:
	case <-t.done:
	}
	return false
}

// jitter returns d plus up to half of d, at random.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + rand.N(d/2+1)
}

// reporter coalesces delivery reports so that Send, which must not block or
// call the handler, can hand them to reportLoop.
type reporter struct {
	mu       sync.Mutex
	unreach  map[uint64]struct{}
	snapFail map[uint64]int
	signal   chan struct{} // capacity 1
}

func (r *reporter) init() {
	r.unreach = make(map[uint64]struct{})
	r.snapFail = make(map[uint64]int)
	r.signal = make(chan struct{}, 1)
}

func (r *reporter) unreachable(id uint64) {
	r.mu.Lock()
	r.unreach[id] = struct{}{}
	r.mu.Unlock()
	r.wake()
}

func (r *reporter) snapshotFailed(id uint64) {
	r.mu.Lock()
	r.snapFail[id]++
	r.mu.Unlock()
	r.wake()
}

func (r *reporter) wake() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// reportLoop passes coalesced reports to the handler until Close.
func (t *Transport) reportLoop() {
	defer t.wg.Done()
	r := &t.reporter
	for {
		select {
		case <-t.done:
			return
		case <-r.signal:
		}
		r.mu.Lock()
		unreach, snapFail := r.unreach, r.snapFail
		r.unreach, r.snapFail = make(map[uint64]struct{}), make(map[uint64]int)
		r.mu.Unlock()
		for id := range unreach {
			if t.closing.Load() {
				return
			}
			t.cfg.Handler.ReportUnreachable(id)
		}
		for id, n := range snapFail {
			for range n {
				if t.closing.Load() {
					return
				}
				t.cfg.Handler.ReportSnapshot(id, raft.SnapshotFailure)
			}
		}
	}
}
