package tcptransport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// dial connects to peer id at addr for a stream of the given kind and runs
// the handshake, all within DialTimeout (or ctx's earlier deadline). The
// returned connection has no deadline set.
func (t *Transport) dial(ctx context.Context, id uint64, addr string, kind raft.StreamKind) (net.Conn, error) {
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

func (t *Transport) clientHandshake(ctx context.Context, conn net.Conn, id uint64, kind raft.StreamKind) error {
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	hs := raft.Handshake{ClusterID: t.cfg.ClusterID, From: t.cfg.ID, To: id, Stream: kind}
	frame, err := t.codec.AppendFrame(nil, &hs)
	if err != nil {
		return err
	}
	if _, err := conn.Write(frame); err != nil {
		return fmt.Errorf("sending handshake: %w", err)
	}
	reply, err := t.readHandshake(conn)
	if err != nil {
		return fmt.Errorf("reading handshake reply: %w", err)
	}
	want := raft.Handshake{ClusterID: t.cfg.ClusterID, From: id, To: t.cfg.ID, Stream: kind}
	if reply != want {
		return fmt.Errorf("handshake reply %+v, want %+v", reply, want)
	}
	return nil
}

// maxControlFrame bounds handshake and ack frames, which may come from a peer
// not yet authenticated: far below MaxFrameSize.
const maxControlFrame = 4 << 10

// readHandshake reads a handshake frame from r, which must not be buffered
// beyond it.
func (t *Transport) readHandshake(r io.Reader) (raft.Handshake, error) {
	var hs raft.Handshake
	h, p, err := t.codec.ReadFrameLimit(r, nil, maxControlFrame)
	if err != nil {
		return hs, err
	}
	if h.Type != raft.FrameHandshake {
		return hs, fmt.Errorf("%w: got %s, want a handshake", raft.ErrBadFrame, h.Type)
	}
	err = t.codec.Decode(h.Type, p, &hs)
	return hs, err
}

// acceptLoop accepts connections until the listener is closed.
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
			t.log.Warn("tcptransport: accept failed", zap.Error(err))
			if !t.wait(delay, nil) {
				return
			}
			delay = min(2*delay, maxDelay)
			continue
		}
		delay = 5 * time.Millisecond
		if !t.trackInbound(conn, raft.None, false) {
			_ = conn.Close()
			return
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
	defer t.trackInbound(conn, raft.None, true)
	defer conn.Close()
	log := t.log.With(zap.String("remote", conn.RemoteAddr().String()))

	// The handshake (TLS included) must finish within ReadTimeout.
	_ = conn.SetDeadline(time.Now().Add(t.cfg.ReadTimeout))
	hs, err := t.readHandshake(conn)
	if err == nil {
		err = t.checkHandshake(hs)
	}
	if err != nil {
		if !t.closing.Load() {
			log.Warn("tcptransport: closing connection: refused handshake", zap.Error(err))
		}
		return
	}
	log = log.With(zap.Uint64("peer", hs.From), zap.Stringer("stream", hs.Stream))
	if !t.trackInbound(conn, hs.From, false) {
		log.Info("tcptransport: closing connection: peer removed or transport closing")
		return
	}
	reply := raft.Handshake{ClusterID: t.cfg.ClusterID, From: t.cfg.ID, To: hs.From, Stream: hs.Stream}
	frame, err := t.codec.AppendFrame(nil, &reply)
	if err == nil {
		_, err = conn.Write(frame)
	}
	if err != nil {
		log.Info("tcptransport: closing connection: cannot reply to the handshake", zap.Error(err))
		return
	}
	_ = conn.SetDeadline(time.Time{})

	if hs.Stream == raft.StreamSnapshot {
		err = t.receiveSnapshot(conn, hs)
	} else {
		err = t.readMessages(conn, hs)
	}
	switch {
	case t.closing.Load():
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		log.Debug("tcptransport: connection closed", zap.Error(err))
	case err != nil:
		log.Warn("tcptransport: closing connection", zap.Error(err))
	}
}

// checkHandshake accepts a connection only from a known peer of this
// cluster, meant for this node.
func (t *Transport) checkHandshake(hs raft.Handshake) error {
	switch {
	case hs.ClusterID != t.cfg.ClusterID:
		return fmt.Errorf("cluster ID %#x, want %#x", hs.ClusterID, t.cfg.ClusterID)
	case hs.To != t.cfg.ID:
		return fmt.Errorf("connection for node %d, this is node %d", hs.To, t.cfg.ID)
	case !t.peerKnown(hs.From):
		return fmt.Errorf("unknown node %d", hs.From)
	case hs.Stream < raft.StreamMessages || hs.Stream > raft.StreamSnapshot:
		return fmt.Errorf("unknown stream kind %d", uint8(hs.Stream))
	}
	return nil
}

// readMessages reads message frames and passes them to the handler, one at a
// time and in order, until the connection ends. Every frame, and the idle
// time before it, must take at most ReadTimeout.
func (t *Transport) readMessages(conn net.Conn, hs raft.Handshake) error {
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
		case raft.FramePing:
		case raft.FrameMessage:
			var m raft.Message
			if err := t.codec.Decode(h.Type, p, &m); err != nil {
				return err
			}
			if err := t.checkMessage(&m, hs); err != nil {
				return err
			}
			t.cfg.Handler.HandleMessage(m)
		default:
			return fmt.Errorf("%w: unexpected %s on a %s", raft.ErrBadFrame, h.Type, hs.Stream)
		}
	}
}

// checkMessage refuses a message not from the connection's peer, not for
// this node, of a local-only type, or a MsgSnap outside a snapshot stream.
func (t *Transport) checkMessage(m *raft.Message, hs raft.Handshake) error {
	switch {
	case m.From != hs.From:
		return fmt.Errorf("message from %d on a connection from %d", m.From, hs.From)
	case m.To != t.cfg.ID:
		return fmt.Errorf("message for %d, this is node %d", m.To, t.cfg.ID)
	case isLocal(m.Type):
		return fmt.Errorf("local message type %s from the network", m.Type)
	case m.Type == raft.MsgSnap && hs.Stream != raft.StreamSnapshot:
		return fmt.Errorf("MsgSnap on a %s", hs.Stream)
	}
	return nil
}
