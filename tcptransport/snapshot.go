package tcptransport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
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
//
// The sender reads the data from the snapshot's Source when it has one
// (package wal's snapshot file, say), from its Data otherwise, one chunk at
// a time. A receiver whose handler is a raft.SnapshotStreamHandler passes
// the chunks on to it as they arrive, through a reader that checks the
// size and the checksum before it returns io.EOF; otherwise it writes them
// to a temporary file and reads the verified data into the MsgSnap.

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
		if size, err := t.streamSnapshot(p, &m); err != nil {
			status = raft.SnapshotFailure
			t.warn(log, peerKey(p.id), "tcptransport: sending a snapshot failed", zap.Error(err))
		} else {
			log.Info("tcptransport: sent a snapshot", zap.Uint64("index", m.Snapshot.Metadata.Index),
				zap.Int64("bytes", size), zap.Duration("took", time.Since(start)))
		}
		if !t.closing.Load() {
			t.cfg.Handler.ReportSnapshot(p.id, status)
		}
	}()
}

// streamSnapshot sends m's snapshot over a new connection and waits for the
// receiver's ack, all within a timeout scaled to the snapshot's size. It
// returns the size of the data.
func (t *Transport) streamSnapshot(p *peer, m *raft.Message) (int64, error) {
	if m.Snapshot == nil {
		return 0, errors.New("MsgSnap without a snapshot")
	}
	data, size, err := m.Snapshot.OpenData()
	if err != nil {
		return 0, fmt.Errorf("opening the snapshot data: %w", err)
	}
	defer data.Close()
	ctx, cancel := context.WithTimeout(p.ctx, t.cfg.snapshotTimeout(uint64(size)))
	defer cancel()
	conn, err := t.dial(ctx, p.id, p.addr, wire.StreamSnapshot)
	if err != nil {
		return size, fmt.Errorf("dialing: %w", err)
	}
	defer conn.Close()
	// The whole stream ends with ctx: timeout, peer removed, or Close.
	defer context.AfterFunc(ctx, func() { _ = conn.Close() })()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	if err := t.writeSnapshot(conn, p, m, data, size); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return size, err
	}
	h, payload, err := t.codec.ReadFrameLimit(conn, nil, maxControlFrame)
	if err != nil {
		return size, fmt.Errorf("reading the ack: %w", err)
	}
	var ack wire.SnapshotStreamAck
	if h.Type != wire.FrameSnapshotAck {
		return size, fmt.Errorf("%w: got %s, want an ack", wire.ErrBadFrame, h.Type)
	}
	if err := t.codec.Decode(h.Type, payload, &ack); err != nil {
		return size, err
	}
	if !ack.OK {
		return size, fmt.Errorf("refused by the receiver: %s", ack.Reason)
	}
	return size, nil
}

// writeSnapshot writes the header, the size bytes data reads in chunks
// (paced by SnapshotRateLimit) and the end frame. If data fails, or does
// not end at size, the stream is cut before its end frame, so the receiver
// refuses it.
func (t *Transport) writeSnapshot(conn net.Conn, p *peer, m *raft.Message, data io.Reader, size int64) error {
	meta := *m.Snapshot
	meta.Data, meta.Source = nil, nil
	hdr := wire.SnapshotStreamHeader{Message: *m, Size: uint64(size)}
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
	buf := make([]byte, min(int64(t.cfg.SnapshotChunkSize), size))
	for off := int64(0); off < size; {
		chunk := buf[:min(int64(len(buf)), size-off)]
		if _, err := io.ReadFull(data, chunk); err != nil {
			return fmt.Errorf("reading the snapshot data at byte %d of %d: %w", off, size, err)
		}
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
		off += int64(len(chunk))
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
	// The source must end here, and its reader verifies the data at its
	// end: read on to io.EOF.
	var one [1]byte
	switch n, err := io.ReadFull(data, one[:]); {
	case n > 0:
		return fmt.Errorf("the snapshot data is longer than its declared %d bytes", size)
	case err != io.EOF:
		return fmt.Errorf("reading the snapshot data at its end: %w", err)
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
	m.Snapshot.Data, m.Snapshot.Source = nil, nil
	sr := &snapStreamReader{
		t: t, conn: conn, br: br, size: hdr.Size, sum: sha256.New(),
		end: time.Now().Add(t.cfg.snapshotTimeout(hdr.Size)),
	}
	if sh, ok := t.cfg.Handler.(raft.SnapshotStreamHandler); ok {
		return t.handOverSnapshot(conn, sh, m, sr)
	}

	f, err := t.createSnapshotFile()
	if err != nil {
		return t.refuseSnapshot(conn, fmt.Errorf("cannot store the snapshot: %w", err))
	}
	defer f.close()
	if _, err := io.Copy(storeWriter{f.File}, sr); err != nil {
		return t.refuseStream(conn, sr, err)
	}
	// Whole and verified: only now is it read into memory, for the
	// handler.
	data := make([]byte, hdr.Size)
	if _, err := f.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && hdr.Size == 0) {
		return t.refuseSnapshot(conn, fmt.Errorf("cannot read the stored snapshot back: %w", err))
	}
	m.Snapshot.Data = data
	t.cfg.Handler.HandleMessage(m)
	return t.ackSnapshot(conn, wire.SnapshotStreamAck{OK: true})
}

// handOverSnapshot passes a snapshot's data to a streaming handler as it
// arrives, and acks the stream once the handler took the whole verified
// data.
func (t *Transport) handOverSnapshot(conn net.Conn, sh raft.SnapshotStreamHandler, m raft.Message, sr *snapStreamReader) error {
	err := sh.HandleSnapshot(m, sr)
	switch {
	case sr.err != nil && sr.err != io.EOF:
		return t.refuseStream(conn, sr, sr.err)
	case err != nil:
		return t.refuseSnapshot(conn, fmt.Errorf("the node did not take it: %w", err))
	case sr.err != io.EOF:
		return t.refuseSnapshot(conn, errors.New("the node did not read it to its end"))
	}
	return t.ackSnapshot(conn, wire.SnapshotStreamAck{OK: true})
}

// refuseStream refuses a stream that failed with err: with a reason if
// the sender broke the protocol, without one if the connection failed.
func (t *Transport) refuseStream(conn net.Conn, sr *snapStreamReader, err error) error {
	var ref *snapRefusal
	if errors.As(err, &ref) {
		return t.refuseSnapshot(conn, ref.reason)
	}
	if errors.As(err, new(*snapStoreError)) {
		return t.refuseSnapshot(conn, err)
	}
	return fmt.Errorf("reading snapshot data (%d of %d bytes): %w", sr.got, sr.size, err)
}

// snapRefusal is a stream the sender got wrong: it is refused with reason.
type snapRefusal struct{ reason error }

func (e *snapRefusal) Error() string { return e.reason.Error() }
func (e *snapRefusal) Unwrap() error { return e.reason }

// snapStoreError is a failure to store the data locally.
type snapStoreError struct{ err error }

func (e *snapStoreError) Error() string { return "cannot store the snapshot: " + e.err.Error() }
func (e *snapStoreError) Unwrap() error { return e.err }

// storeWriter writes to w and marks its errors as *snapStoreError.
type storeWriter struct{ w io.Writer }

func (s storeWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		err = &snapStoreError{err}
	}
	return n, err
}

// snapStreamReader reads the data of a snapshot stream from its chunk
// frames, under the stream's deadlines. It returns io.EOF once the end
// frame arrived with the declared size and a matching checksum, and an
// error otherwise (a *snapRefusal if the sender got the stream wrong).
type snapStreamReader struct {
	t         *Transport
	conn      net.Conn
	br        *bufio.Reader
	size, got uint64
	sum       hash.Hash
	end       time.Time
	buf, cur  []byte // the frame buffer; the part of the last chunk not read yet
	err       error  // sticky
}

// Read implements io.Reader.
func (r *snapStreamReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// next reads the next frame: a chunk becomes cur; the end frame is
// checked.
func (r *snapStreamReader) next() error {
	deadline := time.Now().Add(r.t.cfg.ReadTimeout)
	if r.end.Before(deadline) {
		deadline = r.end
	}
	_ = r.conn.SetReadDeadline(deadline)
	h, p, err := r.t.codec.ReadFrame(r.br, r.buf)
	if err == io.EOF {
		// The connection ended before the end frame: never a complete
		// snapshot, whatever the reader's user makes of io.EOF.
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	r.buf = p[:0]
	switch h.Type {
	case wire.FramePing:
	case wire.FrameSnapshotChunk:
		if r.got+uint64(len(p)) > r.size {
			return &snapRefusal{fmt.Errorf("more data than the declared %d bytes", r.size)}
		}
		r.got += uint64(len(p))
		r.sum.Write(p)
		r.cur = p
	case wire.FrameSnapshotEnd:
		var e wire.SnapshotStreamEnd
		if err := r.t.codec.Decode(h.Type, p, &e); err != nil {
			return err
		}
		if r.got != r.size {
			return &snapRefusal{fmt.Errorf("got %d bytes, %d declared", r.got, r.size)}
		}
		if got := r.sum.Sum(nil); !bytes.Equal(got, e.SHA256) {
			return &snapRefusal{fmt.Errorf("checksum mismatch: data has SHA-256 %x, sender says %x", got, e.SHA256)}
		}
		return io.EOF
	default:
		return fmt.Errorf("%w: unexpected %s in a snapshot stream", wire.ErrBadFrame, h.Type)
	}
	return nil
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
