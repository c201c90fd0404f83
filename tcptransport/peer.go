package tcptransport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// maxBatch bounds the messages written between two flushes, so that a busy
// stream still flushes (and checks for stop) regularly.
const maxBatch = 1024

// peer is one remote node: its address and its two outbound streams.
type peer struct {
	t          *Transport
	id         uint64
	addr       string
	ctx        context.Context // cancelled by stop: aborts dials and snapshot streams
	cancel     context.CancelFunc
	stopc      chan struct{}
	stopOnce   sync.Once
	messages   *lane
	heartbeats *lane
}

func newPeer(t *Transport, id uint64, addr string) *peer {
	p := &peer{t: t, id: id, addr: addr, stopc: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.messages = &lane{p: p, kind: wire.StreamMessages, queue: make(chan raft.Message, t.cfg.QueueSize), wakec: make(chan struct{}, 1)}
	p.heartbeats = &lane{p: p, kind: wire.StreamHeartbeats, queue: make(chan raft.Message, t.cfg.HeartbeatQueueSize), wakec: make(chan struct{}, 1)}
	return p
}

// wake ends any redial backoff of the peer's streams: it has just
// authenticated a connection to us, so it is up again. Without this a
// restarted peer would stay unreachable from here for up to MaxBackoff
// (plus jitter), long enough for it to start elections it cannot win.
func (p *peer) wake() {
	p.messages.wake()
	p.heartbeats.wake()
}

// start starts the streams' writer goroutines. The caller holds t.mu.
func (p *peer) start() {
	p.t.wg.Add(2)
	go p.messages.run()
	go p.heartbeats.run()
}

// stop ends the peer's goroutines and closes its connections; it does not
// wait for them.
func (p *peer) stop() {
	p.stopOnce.Do(func() {
		close(p.stopc)
		p.cancel()
		p.messages.closeConn()
		p.heartbeats.closeConn()
	})
}

func (p *peer) stopped() bool {
	select {
	case <-p.stopc:
		return true
	default:
		return false
	}
}

// lane is one outbound stream to a peer: a bounded queue drained by a writer
// goroutine over one long-lived connection, redialled when it breaks.
type lane struct {
	p     *peer
	kind  wire.StreamKind
	queue chan raft.Message
	// down is set while the peer cannot be reached: from a failed dial or a
	// broken connection until the next successful dial. Send drops at once
	// meanwhile.
	down atomic.Bool
	// wakec (capacity 1) cuts a redial backoff short: the peer has just
	// dialled us, so it is evidently back.
	wakec chan struct{}

	mu   sync.Mutex
	conn net.Conn // the current connection, closed by stop
}

// enqueue queues m, or drops it and reports the peer unreachable. It never
// blocks.
func (l *lane) enqueue(m *raft.Message) {
	if !l.down.Load() {
		select {
		case l.queue <- *m:
			return
		default:
		}
	}
	l.p.t.reporter.unreachable(l.p.id)
}

// setConn records the current connection; it refuses (false) once the peer
// is stopped.
func (l *lane) setConn(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c != nil && l.p.stopped() {
		return false
	}
	l.conn = c
	return true
}

func (l *lane) closeConn() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		_ = l.conn.Close()
	}
}

func (l *lane) wake() {
	select {
	case l.wakec <- struct{}{}:
	default:
	}
}

// pause waits out a redial backoff of d. It reports whether to go on
// (false: the peer or the transport stopped) and whether the peer woke the
// lane early.
func (l *lane) pause(d time.Duration) (goOn, woken bool) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true, false
	case <-l.wakec:
		return true, true
	case <-l.p.stopc:
	case <-l.p.t.done:
	}
	return false, false
}

// backoff waits before the next dial, and returns the wait to use after
// that one: doubled up to MaxBackoff, or back to MinBackoff if the peer woke
// the lane.
func (l *lane) backoff(d time.Duration) (next time.Duration, goOn bool) {
	cfg := &l.p.t.cfg
	goOn, woken := l.pause(jitter(d))
	if woken {
		return cfg.MinBackoff, goOn
	}
	return min(2*d, cfg.MaxBackoff), goOn
}

// setDown marks the peer down and drops (and reports) what is queued.
func (l *lane) setDown() {
	l.down.Store(true)
	for {
		select {
		case <-l.queue:
			continue
		default:
		}
		break
	}
	l.p.t.reporter.unreachable(l.p.id)
}

// run dials, writes until the connection breaks, and redials with
// exponential backoff and jitter, until the peer is stopped.
func (l *lane) run() {
	t := l.p.t
	defer t.wg.Done()
	log := t.log.With(zap.Uint64("peer", l.p.id), zap.Stringer("stream", l.kind))
	// everUp is whether a connection ever succeeded: until then, failures
	// are the peers of a starting cluster coming up one by one, which is
	// no news for an operator (Debug, not Info).
	everUp := false
	backoff := t.cfg.MinBackoff
	for {
		conn, err := t.dial(l.p.ctx, l.p.id, l.p.addr, l.kind)
		if err == nil && !l.setConn(conn) {
			_ = conn.Close()
			return
		}
		if err != nil {
			if l.p.stopped() {
				return
			}
			var ref *refusal
			switch {
			case errors.As(err, &ref):
				// A misconfiguration (cluster ID, secret, certificate)
				// that waiting will not cure: always worth a warning.
				t.warn(log, peerKey(l.p.id)+" refused "+l.kind.String(), "tcptransport: peer refused the connection",
					zap.String("addr", l.p.addr), zap.Error(err))
			case !l.down.Load():
				lvl := zap.DebugLevel
				if everUp {
					lvl = zap.InfoLevel
				}
				log.Log(lvl, "tcptransport: peer unreachable", zap.String("addr", l.p.addr), zap.Error(err))
			}
			l.setDown()
			var goOn bool
			if backoff, goOn = l.backoff(backoff); !goOn {
				return
			}
			continue
		}
		select {
		case <-l.wakec: // connected: an earlier wake-up is moot
		default:
		}
		if l.down.Swap(false) && everUp {
			log.Info("tcptransport: peer reachable again", zap.String("addr", l.p.addr))
		}
		everUp = true
		connected := time.Now()
		err = l.serve(conn)
		l.setConn(nil)
		_ = conn.Close()
		if l.p.stopped() {
			return
		}
		t.warn(log, peerKey(l.p.id)+" lost "+l.kind.String(), "tcptransport: lost connection to peer", zap.String("addr", l.p.addr), zap.Error(err))
		l.setDown()
		if time.Since(connected) >= t.cfg.MaxBackoff {
			backoff = t.cfg.MinBackoff // it was a healthy connection: redial at once
			continue
		}
		// A connection that breaks soon after it is made counts as a failed
		// dial, so a peer that keeps dropping us is not redialled in a loop.
		var goOn bool
		if backoff, goOn = l.backoff(backoff); !goOn {
			return
		}
	}
}

// serve writes queued messages to conn, batching whatever is queued into one
// flush, and pings when idle. It returns why the connection ended (nil when
// the peer was stopped).
func (l *lane) serve(conn net.Conn) error {
	t := l.p.t
	// The peer never writes on this connection: a read returns only when it
	// closes the connection (or the connection breaks).
	gone := make(chan error, 1)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		var b [1]byte
		_, err := conn.Read(b[:])
		if err == nil {
			err = errors.New("unexpected data from the peer")
		}
		gone <- err
	}()

	bw := bufio.NewWriterSize(conn, 64<<10)
	ka := time.NewTicker(t.cfg.KeepAliveInterval)
	defer ka.Stop()
	var buf []byte
	active := false // something was written since the last tick
	for {
		select {
		case <-l.p.stopc:
			return nil
		case err := <-gone:
			return fmt.Errorf("connection closed by the peer: %w", err)
		case <-ka.C:
			if !active {
				buf, _ = t.codec.AppendRawFrame(buf[:0], wire.FramePing, nil)
				_ = conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
				if _, err := bw.Write(buf); err != nil {
					return err
				}
				if err := bw.Flush(); err != nil {
					return err
				}
			}
			active = false
		case m := <-l.queue:
			_ = conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
			for n := 1; ; n++ {
				var err error
				if buf, err = l.write(conn, bw, buf, &m); err != nil {
					return err
				}
				if n == maxBatch {
					break
				}
				var ok bool
				select {
				case m = <-l.queue:
					ok = true
				default:
				}
				if !ok {
					break
				}
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if cap(buf) > 1<<20 {
				buf = nil
			}
			active = true
		}
	}
}

// write encodes m into bw, using buf as scratch space. A message that cannot
// be encoded (too large) is dropped and reported; only a write error is
// returned.
func (l *lane) write(conn net.Conn, bw *bufio.Writer, buf []byte, m *raft.Message) ([]byte, error) {
	t := l.p.t
	out, err := t.codec.AppendFrame(buf[:0], m)
	if err != nil {
		// It would fail the same way every time: drop it, never retry it.
		// The host should have refused it (see MaxEntryDataSize).
		t.warn(t.log, peerKey(l.p.id)+" unsendable", "tcptransport: dropping a message that can never be sent",
			zap.Uint64("peer", l.p.id), zap.Stringer("type", m.Type), zap.Int("entries", len(m.Entries)),
			zap.Int("max_message_size", t.MaxMessageSize()), zap.Error(err))
		t.reporter.unreachable(l.p.id)
		return buf, nil
	}
	if len(out) > bw.Available() {
		// This write reaches the network: give it a fresh deadline, so that
		// a long batch is bounded per write, not as a whole.
		_ = conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	}
	_, err = bw.Write(out)
	return out, err
}
