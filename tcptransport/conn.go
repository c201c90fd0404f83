package tcptransport

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// dial connects to peer id at addr for a stream of the given kind and runs
// the handshake, all within DialTimeout (or ctx's earlier deadline). The
// returned connection has no deadline set.
func (t *Transport) dial(ctx context.Context, id uint64, addr string, kind wire.StreamKind) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	nd := &net.Dialer{KeepAlive: t.cfg.KeepAliveInterval}
	var conn net.Conn
	var err error
	if t.cfg.TLS != nil {
		conn, err = (&tls.Dialer{NetDialer: nd, Config: t.cfg.TLS}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = nd.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	// Closing the connection when ctx ends unblocks the handshake.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	if err := t.clientHandshake(ctx, conn, id, kind); err != nil {
		stop()
		_ = conn.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return nil, err
	}
	if !stop() {
		return nil, ctx.Err() // closed meanwhile
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// clientHandshake runs the dialer's side of the handshake (see
// wire.HandshakeVersion) on conn, under ctx's deadline. A refusal, either
// way, is a *refusal.
func (t *Transport) clientHandshake(ctx context.Context, conn net.Conn, id uint64, kind wire.StreamKind) error {
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	hello := wire.Handshake{ClusterID: t.cfg.ClusterID, From: t.cfg.ID, To: id, Stream: kind, Version: wire.HandshakeVersion}
	if t.cfg.PeerSecret != nil {
		hello.Nonce = newNonce()
	}
	if err := t.writeHandshake(conn, &hello); err != nil {
		return fmt.Errorf("sending handshake: %w", err)
	}
	ch, err := t.readHandshake(conn)
	if err != nil {
		return fmt.Errorf("reading the handshake challenge: %w", err)
	}
	if ch.Reason != wire.HandshakeOK {
		return &refusal{reason: ch.Reason, byPeer: true}
	}
	proof := wire.Handshake{}
	ref := t.checkChallenge(conn, &hello, &ch)
	if ref != nil {
		proof.Reason = ref.reason
	} else if t.cfg.PeerSecret != nil {
		proof.MAC = handshakeMAC(t.cfg.PeerSecret, roleDialer, t.cfg.ClusterID, t.cfg.ID, id, kind, hello.Nonce, ch.Nonce)
	}
	if err := t.writeHandshake(conn, &proof); err != nil {
		if ref != nil {
			return ref
		}
		return fmt.Errorf("sending handshake proof: %w", err)
	}
	if ref != nil {
		return ref
	}
	verdict, err := t.readHandshake(conn)
	if err != nil {
		return fmt.Errorf("reading the handshake verdict: %w", err)
	}
	if verdict.Reason != wire.HandshakeOK {
		return &refusal{reason: verdict.Reason, byPeer: true}
	}
	return nil
}

// checkChallenge checks the acceptor's answer to hello: that it comes from
// the node dialled, for this stream, and that it proves its identity (TLS
// certificate) and the shared secret.
func (t *Transport) checkChallenge(conn net.Conn, hello, ch *wire.Handshake) *refusal {
	switch {
	case ch.Version != wire.HandshakeVersion:
		return refuse(wire.HandshakeBadVersion, "handshake version %d, want %d", ch.Version, wire.HandshakeVersion)
	case ch.ClusterID != hello.ClusterID:
		return refuse(wire.HandshakeWrongCluster, "cluster ID %d, want %d", ch.ClusterID, hello.ClusterID)
	case ch.From != hello.To || ch.To != hello.From:
		return refuse(wire.HandshakeWrongNode, "answer from node %d to node %d, want from %d to %d", ch.From, ch.To, hello.To, hello.From)
	case ch.Stream != hello.Stream:
		return refuse(wire.HandshakeProtocol, "answer for %s, want %s", ch.Stream, hello.Stream)
	}
	if ref := t.checkCertificate(conn, hello.To); ref != nil {
		return ref
	}
	if t.cfg.PeerSecret != nil {
		if len(ch.MAC) == 0 || len(ch.Nonce) == 0 {
			return refuse(wire.HandshakeAuthRequired, "node %d sent no proof of the peer secret", hello.To)
		}
		want := handshakeMAC(t.cfg.PeerSecret, roleAcceptor, hello.ClusterID, hello.From, hello.To, hello.Stream, hello.Nonce, ch.Nonce)
		if !hmac.Equal(want, ch.MAC) {
			return refuse(wire.HandshakeAuthFailed, "node %d does not know the peer secret", hello.To)
		}
	}
	return nil
}

// checkCertificate checks, when node identities are required, that the
// peer's verified TLS certificate names node id of this cluster.
func (t *Transport) checkCertificate(conn net.Conn, id uint64) *refusal {
	if t.cfg.TLS == nil || t.cfg.Insecure {
		return nil
	}
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return refuse(wire.HandshakeBadIdentity, "not a TLS connection")
	}
	cs := tc.ConnectionState()
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return refuse(wire.HandshakeBadIdentity, "no verified certificate")
	}
	got, err := CertNodeID(cs.PeerCertificates[0], t.cfg.ClusterID)
	if err != nil {
		return refuse(wire.HandshakeBadIdentity, "%v", err)
	}
	if got != id {
		return refuse(wire.HandshakeBadIdentity, "the certificate names node %d, the handshake node %d", got, id)
	}
	return nil
}

// newNonce returns a fresh random handshake nonce.
func newNonce() []byte {
	b := make([]byte, wire.HandshakeNonceSize)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

// maxControlFrame bounds handshake and ack frames, which may come from a peer
// not yet authenticated: far below MaxFrameSize.
const maxControlFrame = 4 << 10

// readHandshake reads a handshake frame from r, which must not be buffered
// beyond it.
func (t *Transport) readHandshake(r io.Reader) (wire.Handshake, error) {
	var hs wire.Handshake
	h, p, err := t.codec.ReadFrameLimit(r, nil, maxControlFrame)
	if err != nil {
		return hs, err
	}
	if h.Type != wire.FrameHandshake {
		return hs, fmt.Errorf("%w: got %s, want a handshake", wire.ErrBadFrame, h.Type)
	}
	err = t.codec.Decode(h.Type, p, &hs)
	return hs, err
}

func (t *Transport) writeHandshake(w io.Writer, hs *wire.Handshake) error {
	frame, err := t.codec.AppendFrame(nil, hs)
	if err == nil {
		_, err = w.Write(frame)
	}
	return err
}

// acceptLoop accepts connections until the listener is closed. A connection
// beyond the handshake limits is closed at once.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	const maxDelay = time.Second
	delay := 5 * time.Millisecond
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			if t.closing.Load() {
				return
			}
			// Most likely out of file descriptors: wait, and try again.
			t.warn(t.log, "accept", "tcptransport: accept failed", zap.Error(err))
			if !t.wait(delay, nil) {
				return
			}
			delay = min(2*delay, maxDelay)
			continue
		}
		delay = 5 * time.Millisecond
		ok, full := t.admit(conn)
		if !ok {
			_ = conn.Close()
			if !full {
				return // closing
			}
			t.warn(t.log, "handshake limit", "tcptransport: too many connections in their handshake, closed a new one",
				zap.String("remote", conn.RemoteAddr().String()), zap.Int("max", t.cfg.MaxHandshakes),
				zap.Int("max_per_host", t.cfg.MaxHandshakesPerHost))
			continue
		}
		t.wg.Add(1)
		go t.serveInbound(conn)
	}
}

// serveInbound runs the acceptor's side of the handshake, then reads the
// stream until it ends. Any protocol violation closes the connection with a
// log line giving the reason.
func (t *Transport) serveInbound(conn net.Conn) {
	defer t.wg.Done()
	defer t.release(conn)
	defer conn.Close()
	log := t.log.With(zap.String("remote", conn.RemoteAddr().String()))

	// The handshake, TLS included, must finish within HandshakeTimeout.
	_ = conn.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	hs, err := t.serverHandshake(conn)
	if err != nil {
		if !t.closing.Load() {
			fields := []zap.Field{zap.Error(err)}
			if hs.From != raft.None {
				fields = append(fields, zap.Uint64("peer", hs.From))
			}
			t.warn(log, hostKey(conn.RemoteAddr()), "tcptransport: closing connection: refused handshake", fields...)
		}
		return
	}
	log = log.With(zap.Uint64("peer", hs.From), zap.Stringer("stream", hs.Stream))
	_ = conn.SetDeadline(time.Time{})

	if hs.Stream == wire.StreamSnapshot {
		err = t.receiveSnapshot(conn, hs)
	} else {
		err = t.readMessages(conn, hs)
	}
	switch {
	case t.closing.Load():
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		log.Debug("tcptransport: connection closed", zap.Error(err))
	case err != nil:
		t.warn(log, peerKey(hs.From), "tcptransport: closing connection", zap.Error(err))
	}
}

// serverHandshake runs the acceptor's side of the handshake (see
// wire.HandshakeVersion) and returns the dialer's hello once the connection
// is authenticated and registered. The hello is returned with an error too,
// as far as it was read.
func (t *Transport) serverHandshake(conn net.Conn) (wire.Handshake, error) {
	if tc, ok := conn.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return wire.Handshake{}, fmt.Errorf("TLS handshake: %w", err)
		}
	}
	hello, err := t.readHandshake(conn)
	if err != nil {
		return wire.Handshake{}, err
	}
	// Refuse with a reason, then close.
	refuseWith := func(ref *refusal) (wire.Handshake, error) {
		_ = t.writeHandshake(conn, &wire.Handshake{ClusterID: t.cfg.ClusterID, From: t.cfg.ID, To: hello.From,
			Stream: hello.Stream, Version: wire.HandshakeVersion, Reason: ref.reason})
		return hello, ref
	}
	if ref := t.checkHello(conn, &hello); ref != nil {
		return refuseWith(ref)
	}
	ch := wire.Handshake{ClusterID: t.cfg.ClusterID, From: t.cfg.ID, To: hello.From, Stream: hello.Stream, Version: wire.HandshakeVersion}
	if t.cfg.PeerSecret != nil {
		ch.Nonce = newNonce()
		ch.MAC = handshakeMAC(t.cfg.PeerSecret, roleAcceptor, t.cfg.ClusterID, hello.From, t.cfg.ID, hello.Stream, hello.Nonce, ch.Nonce)
	}
	if err := t.writeHandshake(conn, &ch); err != nil {
		return hello, fmt.Errorf("sending the handshake challenge: %w", err)
	}
	proof, err := t.readHandshake(conn)
	if err != nil {
		return hello, fmt.Errorf("reading the handshake proof: %w", err)
	}
	if proof.Reason != wire.HandshakeOK {
		return hello, &refusal{reason: proof.Reason, byPeer: true}
	}
	if t.cfg.PeerSecret != nil {
		want := handshakeMAC(t.cfg.PeerSecret, roleDialer, t.cfg.ClusterID, hello.From, t.cfg.ID, hello.Stream, hello.Nonce, ch.Nonce)
		if !hmac.Equal(want, proof.MAC) {
			return verdictRefusal(t, conn, hello, refuse(wire.HandshakeAuthFailed, "node %d does not know the peer secret", hello.From))
		}
	}
	if r := t.promote(conn, hello.From, hello.Stream); r != wire.HandshakeOK {
		detail := "node removed meanwhile"
		if r == wire.HandshakeBusy {
			detail = "a snapshot from this node is already streaming"
		}
		return verdictRefusal(t, conn, hello, refuse(r, "%s", detail))
	}
	if err := t.writeHandshake(conn, &wire.Handshake{}); err != nil {
		return hello, fmt.Errorf("sending the handshake verdict: %w", err)
	}
	return hello, nil
}

// verdictRefusal sends ref's reason as the handshake verdict and returns
// it.
func verdictRefusal(t *Transport, conn net.Conn, hello wire.Handshake, ref *refusal) (wire.Handshake, error) {
	_ = t.writeHandshake(conn, &wire.Handshake{Reason: ref.reason})
	return hello, ref
}

// checkHello accepts a hello only from a known peer of this cluster, meant
// for this node, proving its identity as configured.
func (t *Transport) checkHello(conn net.Conn, hs *wire.Handshake) *refusal {
	switch {
	case hs.Version != wire.HandshakeVersion:
		return refuse(wire.HandshakeBadVersion, "handshake version %d, want %d", hs.Version, wire.HandshakeVersion)
	case hs.ClusterID != t.cfg.ClusterID:
		return refuse(wire.HandshakeWrongCluster, "cluster ID %d, want %d", hs.ClusterID, t.cfg.ClusterID)
	case hs.To != t.cfg.ID:
		return refuse(wire.HandshakeWrongNode, "connection for node %d, this is node %d", hs.To, t.cfg.ID)
	case !t.peerKnown(hs.From):
		return refuse(wire.HandshakeUnknownPeer, "unknown node %d", hs.From)
	case hs.Stream < wire.StreamMessages || hs.Stream > wire.StreamSnapshot:
		return refuse(wire.HandshakeBadStream, "unknown stream kind %d", uint8(hs.Stream))
	case len(hs.MAC) != 0 || hs.Reason != wire.HandshakeOK:
		return refuse(wire.HandshakeProtocol, "hello carries a MAC or a reason")
	}
	if ref := t.checkCertificate(conn, hs.From); ref != nil {
		return ref
	}
	if t.cfg.PeerSecret != nil && len(hs.Nonce) == 0 {
		return refuse(wire.HandshakeAuthRequired, "node %d sent no nonce: it has no peer secret", hs.From)
	}
	return nil
}

// readMessages reads message frames and passes them to the handler, one at a
// time and in order, until the connection ends. Every frame, and the idle
// time before it, must take at most ReadTimeout.
func (t *Transport) readMessages(conn net.Conn, hs wire.Handshake) error {
	br := bufio.NewReaderSize(conn, 64<<10)
	var buf []byte
	for {
		_ = conn.SetReadDeadline(time.Now().Add(t.cfg.ReadTimeout))
		h, p, err := t.codec.ReadFrame(br, buf)
		if err != nil {
			return fmt.Errorf("reading a frame: %w", err)
		}
		if cap(p) <= 1<<20 {
			buf = p[:0] // reuse moderate buffers
		}
		switch h.Type {
		case wire.FramePing:
		case wire.FrameMessage:
			var m raft.Message
			if err := t.codec.Decode(h.Type, p, &m); err != nil {
				return err
			}
			if err := t.checkMessage(&m, hs); err != nil {
				return err
			}
			t.cfg.Handler.HandleMessage(m)
		default:
			return fmt.Errorf("%w: unexpected %s on a %s", wire.ErrBadFrame, h.Type, hs.Stream)
		}
	}
}

// checkMessage refuses a message not from the connection's peer, not for
// this node, of a local-only type, or a MsgSnap outside a snapshot stream.
func (t *Transport) checkMessage(m *raft.Message, hs wire.Handshake) error {
	switch {
	case m.From != hs.From:
		return fmt.Errorf("message from %d on a connection from %d", m.From, hs.From)
	case m.To != t.cfg.ID:
		return fmt.Errorf("message for %d, this is node %d", m.To, t.cfg.ID)
	case isLocal(m.Type):
		return fmt.Errorf("local message type %s from the network", m.Type)
	case m.Type == raft.MsgSnap && hs.Stream != wire.StreamSnapshot:
		return fmt.Errorf("MsgSnap on a %s", hs.Stream)
	}
	return nil
}
