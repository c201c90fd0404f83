package tcptransport

import (
	"net"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// maxWarnKeys bounds the keys a warnLimiter remembers, so that an attacker
// with many addresses cannot grow it without bound: beyond it, every new key
// shares one budget.
const maxWarnKeys = 1024

// warnOverflowKey is the key shared by the keys beyond maxWarnKeys.
const warnOverflowKey = "(other hosts)"

// warnLimiter rate-limits warnings per key (a remote host or a peer): the
// first is logged, then at most one per interval, carrying how many were
// suppressed since the last one logged.
type warnLimiter struct {
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*warnState
}

type warnState struct {
	last       time.Time // when the last warning was logged
	suppressed int
}

func newWarnLimiter(interval time.Duration, now func() time.Time) *warnLimiter {
	return &warnLimiter{interval: interval, now: now, keys: make(map[string]*warnState)}
}

// allow reports whether a warning about key may be logged now and, if so,
// how many were suppressed since the last one.
func (w *warnLimiter) allow(key string) (bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	st := w.keys[key]
	if st == nil {
		if len(w.keys) >= maxWarnKeys {
			w.prune(now)
		}
		if len(w.keys) >= maxWarnKeys {
			key = warnOverflowKey
			st = w.keys[key]
		}
	}
	if st == nil {
		w.keys[key] = &warnState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < w.interval {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return true, n
}

// prune forgets the keys whose interval has passed with nothing
// suppressed: their next warning is logged anyway.
func (w *warnLimiter) prune(now time.Time) {
	for k, st := range w.keys {
		if st.suppressed == 0 && now.Sub(st.last) >= w.interval {
			delete(w.keys, k)
		}
	}
}

// warn logs msg at warning level unless a warning about key was logged less
// than WarnInterval ago.
func (t *Transport) warn(log *zap.Logger, key, msg string, fields ...zap.Field) {
	ok, n := t.warns.allow(key)
	if !ok {
		return
	}
	if n > 0 {
		fields = append(fields, zap.Int("suppressed", n))
	}
	log.Warn(msg, fields...)
}

// hostKey is the warn key of a remote host; peerKey that of a peer.
func hostKey(addr net.Addr) string { return "host " + remoteHost(addr) }
func peerKey(id uint64) string     { return "peer " + strconv.FormatUint(id, 10) }

// remoteHost returns the IP address of addr, or its whole string.
func remoteHost(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// inboundConn is the state of one accepted connection.
type inboundConn struct {
	host   string
	peer   uint64 // 0 until authenticated
	stream wire.StreamKind
}

// streamKey names a peer's inbound stream.
type streamKey struct {
	peer   uint64
	stream wire.StreamKind
}

// admit records a newly accepted connection as in its handshake, or
// refuses it (the caller closes it) when the handshake limits are reached
// or the transport is closing.
func (t *Transport) admit(conn net.Conn) (ok, full bool) {
	host := remoteHost(conn.RemoteAddr())
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing.Load() {
		return false, false
	}
	if t.pending >= t.cfg.MaxHandshakes || t.pendingByHost[host] >= t.cfg.MaxHandshakesPerHost {
		return false, true
	}
	t.pending++
	t.pendingByHost[host]++
	t.inbound[conn] = &inboundConn{host: host}
	return true, false
}

// promote records conn as peer's authenticated stream. It refuses when the
// peer is gone or the transport closing (HandshakeUnknownPeer), or when a
// snapshot from that peer is already streaming (HandshakeBusy). An older
// message or heartbeat stream of the peer is closed: the new one replaces
// it. The peer's outbound streams stop waiting to redial it.
func (t *Transport) promote(conn net.Conn, peer uint64, stream wire.StreamKind) wire.HandshakeReason {
	t.mu.Lock()
	defer t.mu.Unlock()
	ic := t.inbound[conn]
	switch {
	case ic == nil || t.closing.Load() || t.peers[peer] == nil:
		return wire.HandshakeUnknownPeer
	case stream == wire.StreamSnapshot && t.streams[streamKey{peer, stream}] != nil:
		return wire.HandshakeBusy
	}
	t.unpend(ic)
	if old := t.streams[streamKey{peer, stream}]; old != nil {
		_ = old.Close()
	}
	ic.peer, ic.stream = peer, stream
	t.streams[streamKey{peer, stream}] = conn
	t.peers[peer].wake()
	return wire.HandshakeOK
}

// unpend drops ic from the handshake counts. The caller holds t.mu.
func (t *Transport) unpend(ic *inboundConn) {
	if ic.peer != raft.None {
		return
	}
	t.pending--
	if t.pendingByHost[ic.host]--; t.pendingByHost[ic.host] == 0 {
		delete(t.pendingByHost, ic.host)
	}
}

// release forgets conn when it ends.
func (t *Transport) release(conn net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ic := t.inbound[conn]
	if ic == nil {
		return
	}
	delete(t.inbound, conn)
	if ic.peer == raft.None {
		t.unpend(ic)
		return
	}
	if k := (streamKey{ic.peer, ic.stream}); t.streams[k] == conn {
		delete(t.streams, k)
	}
}
