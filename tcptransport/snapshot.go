package tcptransport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// A snapshot stream, after the handshake: the sender writes a
// FrameSnapshotHeader (the MsgSnap without its data, and the data's size),
// the data in FrameSnapshotChunk frames, then a FrameSnapshotEnd with the
// SHA-256 of the data; the receiver checks size and checksum, hands the
// MsgSnap to its handler and answers with a FrameSnapshotAck.

// sendSnapshot starts streaming m to p in a goroutine of its own; the
// outcome is reported through ReportSnapshot. The caller holds t.mu (read).
func (t *Transport) sendSnapshot(p *peer, m raft.Message) {
	select {
	case t.snapSem <- struct{}{}:
	default:
		t.log.Warn("tcptransport: too many snapshot streams, snapshot not sent",
			zap.Uint64("peer", p.id), zap.Int("max", t.cfg.MaxSnapshotStreams))
		t.reporter.snapshotFailed(p.id)
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer func() { <-t.snapSem }()
		log := t.log.With(zap.Uint64("peer", p.id))
		start := time.Now()
		status := raft.SnapshotFinish
		if err := t.streamSnapshot(p, &m); err != nil {
			status = raft.SnapshotFailure
			t.warn(log, peerKey(p.id), "tcptransport: sending a snapshot failed", zap.Error(err))
		} else {
			log.Info("tcptransport: sent a snapshot", zap.Uint64("index", m.Snapshot.Metadata.Index),
				zap.Int("bytes", len(m.Snapshot.Data)), zap.Duration("took", time.Since(start)))
		}
		if !t.closing.Load() {
			t.cfg.Handler.ReportSnapshot(p.id, status)
		}
	}()
}

// streamSnapshot sends m's snapshot over a new connection and waits for the
// receiver's ack, all within a timeout scaled to the snapshot's size.
func (t *Transport) streamSnapshot(p *peer, m *raft.Message) error {
	if m.Snapshot == nil {
		return errors.New("MsgSnap without a snapshot")
	}
	data := m.Snapshot.Data
	ctx, cancel := context.WithTimeout(p.ctx, t.cfg.snapshotTimeout(uint64(len(data))))
	defer cancel()
	conn, err := t.dial(ctx, p.id, p.addr, wire.StreamSnapshot)
	if err != nil {
		return fmt.Errorf("dialing: %w", err)
	}
	defer conn.Close()
	// The whole stream ends with ctx: timeout, peer removed, or Close.
	defer context.AfterFunc(ctx, func() { _ = conn.Close() })()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	if err := t.writeSnapshot(conn, p, m); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return err
	}
	h, payload, err := t.codec.ReadFrameLimit(conn, nil, maxControlFrame)
	if err != nil {
		return fmt.Errorf("reading the ack: %w", err)
	}
	var ack wire.SnapshotStreamAck
	if h.Type != wire.FrameSnapshotAck {
		return fmt.Errorf("%w: got %s, want an ack", wire.ErrBadFrame, h.Type)
	}
	if err := t.codec.Decode(h.Type, payload, &ack); err != nil {
		return err
	}
	if !ack.OK {
		return fmt.Errorf("refused by the receiver: %s", ack.Reason)
	}
	return nil
}

// writeSnapshot writes the header, the chunks (paced by SnapshotRateLimit)
// and the end frame.
func (t *Transport) writeSnapshot(conn net.Conn, p *peer, m *raft.Message) error {
	data := m.Snapshot.Data
	meta := *m.Snapshot
	meta.Data = nil
	hdr := wire.SnapshotStreamHeader{Message: *m, Size: uint64(len(data))}
	hdr.Message.Snapshot = &meta
	bw := bufio.NewWriterSize(conn, 256<<10)
	frame, err := t.codec.AppendFrame(nil, &hdr)
	if err != nil {
		return err
	}
	if _, err := bw.Write(frame); err != nil {
		return err
	}
	sum := sha256.New()
	start := time.Now()
	rate := float64(t.cfg.SnapshotRateLimit)
	for off := 0; off < len(data); {
		chunk := data[off:min(off+t.cfg.SnapshotChunkSize, len(data))]
		frame, err = t.codec.AppendFrameHeader(frame[:0], wire.FrameSnapshotChunk, len(chunk))
		if err != nil {
			return err
		}
		if _, err := bw.Write(frame); err != nil {
			return err
		}
		if _, err := bw.Write(chunk); err != nil {
			return err
		}
		sum.Write(chunk)
		off += len(chunk)
		if rate > 0 {
			due := start.Add(time.Duration(float64(off) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if err := bw.Flush(); err != nil {
					return err
				}
				if !t.wait(d, p.stopc) {
					return errors.New("stopped")
				}
			}
		}
	}
	frame, err = t.codec.AppendFrame(frame[:0], &wire.SnapshotStreamEnd{SHA256: sum.Sum(nil)})
	if err != nil {
		return err
	}
	if _, err := bw.Write(frame); err != nil {
		return err
	}
	return bw.Flush()
}

// receiveSnapshot reads one snapshot stream, verifies its size and checksum,
// hands the MsgSnap to the handler and acks it. A failure is acked with the
// reason (best effort) and returned.
func (t *Transport) receiveSnapshot(conn net.Conn, hs wire.Handshake) error {
	br := bufio.NewReaderSize(conn, 256<<10)
	_ = conn.SetReadDeadline(time.Now().Add(t.cfg.ReadTimeout))
	h, p, err := t.codec.ReadFrame(br, nil)
	if err != nil {
		return fmt.Errorf("reading the snapshot header: %w", err)
	}
	if h.Type != wire.FrameSnapshotHeader {
		return fmt.Errorf("%w: got %s, want a snapshot header", wire.ErrBadFrame, h.Type)
	}
	var hdr wire.SnapshotStreamHeader
	if err := t.codec.Decode(h.Type, p, &hdr); err != nil {
		return err
	}
	m := hdr.Message
	switch {
	case m.Type != raft.MsgSnap || m.Snapshot == nil:
		return fmt.Errorf("snapshot stream opened by %s without a snapshot", m.Type)
	case hdr.Size > t.cfg.MaxSnapshotSize:
		return t.refuseSnapshot(conn, fmt.Errorf("snapshot of %d bytes exceeds the maximum %d", hdr.Size, t.cfg.MaxSnapshotSize))
	}
	if err := t.checkMessage(&m, hs); err != nil {
		return err
	}

	f, err := t.createSnapshotFile()
	if err != nil {
		return t.refuseSnapshot(conn, fmt.Errorf("cannot store the snapshot: %w", err))
	}
	defer f.close()
	end := time.Now().Add(t.cfg.snapshotTimeout(hdr.Size))
	sum := sha256.New()
	var size uint64
	var buf []byte
	for {
		deadline := time.Now().Add(t.cfg.ReadTimeout)
		if end.Before(deadline) {
			deadline = end
		}
		_ = conn.SetReadDeadline(deadline)
		h, p, err := t.codec.ReadFrame(br, buf)
		if err != nil {
			return fmt.Errorf("reading snapshot data (%d of %d bytes): %w", size, hdr.Size, err)
		}
		buf = p[:0]
		switch h.Type {
		case wire.FramePing:
		case wire.FrameSnapshotChunk:
			if size+uint64(len(p)) > hdr.Size {
				return t.refuseSnapshot(conn, fmt.Errorf("more data than the declared %d bytes", hdr.Size))
			}
			if _, err := f.Write(p); err != nil {
				return t.refuseSnapshot(conn, fmt.Errorf("cannot store the snapshot: %w", err))
			}
			size += uint64(len(p))
			sum.Write(p)
		case wire.FrameSnapshotEnd:
			var e wire.SnapshotStreamEnd
			if err := t.codec.Decode(h.Type, p, &e); err != nil {
				return err
			}
			if size != hdr.Size {
				return t.refuseSnapshot(conn, fmt.Errorf("got %d bytes, %d declared", size, hdr.Size))
			}
			if got := sum.Sum(nil); !bytes.Equal(got, e.SHA256) {
				return t.refuseSnapshot(conn, fmt.Errorf("checksum mismatch: data has SHA-256 %x, sender says %x", got, e.SHA256))
			}
			// Whole and verified: only now is it read into memory, for the
			// handler.
			data := make([]byte, size)
			if _, err := f.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
				return t.refuseSnapshot(conn, fmt.Errorf("cannot read the stored snapshot back: %w", err))
			}
			m.Snapshot.Data = data
			t.cfg.Handler.HandleMessage(m)
			return t.ackSnapshot(conn, wire.SnapshotStreamAck{OK: true})
		default:
			return fmt.Errorf("%w: unexpected %s in a snapshot stream", wire.ErrBadFrame, h.Type)
		}
	}
}

// snapshotFile is an incoming snapshot's temporary file.
type snapshotFile struct {
	*os.File
	removed bool // unlinked already
}

// createSnapshotFile creates a temporary file in SnapshotDir and unlinks it
// at once where the system allows, so that nothing is left behind even if
// the process dies.
func (t *Transport) createSnapshotFile() (*snapshotFile, error) {
	dir := t.cfg.SnapshotDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "keel-incoming-snapshot-*")
	if err != nil {
		return nil, err
	}
	sf := &snapshotFile{File: f}
	sf.removed = os.Remove(f.Name()) == nil
	return sf, nil
}

func (f *snapshotFile) close() {
	_ = f.File.Close()
	if !f.removed {
		_ = os.Remove(f.Name())
	}
}

// refuseSnapshot tells the sender why its snapshot was refused and returns
// the reason.
func (t *Transport) refuseSnapshot(conn net.Conn, reason error) error {
	_ = t.ackSnapshot(conn, wire.SnapshotStreamAck{Reason: reason.Error()})
	return fmt.Errorf("refused a snapshot: %w", reason)
}

func (t *Transport) ackSnapshot(conn net.Conn, ack wire.SnapshotStreamAck) error {
	frame, err := t.codec.AppendFrame(nil, &ack)
	if err != nil {
		return err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	_, err = conn.Write(frame)
	return err
}
