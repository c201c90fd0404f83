package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/keelraft/raft"
)

// The wire format: every frame is an 8-byte header followed by a payload.
//
//	offset  size  field
//	0       2     magic "KL"
//	2       1     version (FrameVersion)
//	3       1     frame type (FrameType)
//	4       4     payload length, big-endian uint32
//	8       n     payload
//
// The payload of a FrameSnapshotChunk is raw snapshot bytes and a FramePing has
// none; every other payload is one msgpack-encoded value of the concrete type
// the frame type names (see FrameType). Structs are encoded as maps keyed by
// their short `msgpack` tags, so a reader skips fields it does not know.

const (
	// FrameHeaderSize is the size in bytes of a frame header.
	FrameHeaderSize = 8
	// FrameVersion is the version of the wire format written by this package.
	// A frame of another version is refused.
	FrameVersion = 1
	// DefaultMaxFrameSize bounds a frame's payload when
	// CodecOptions.MaxFrameSize is zero.
	DefaultMaxFrameSize = 16 << 20
	// DefaultMaxFrameElements bounds the number of msgpack array and map
	// elements in one payload when CodecOptions.MaxElements is zero.
	DefaultMaxFrameElements = 1 << 19
)

// codecMagic opens every frame.
var codecMagic = [2]byte{'K', 'L'}

// codecMaxDepth bounds the nesting of msgpack containers in one payload. The
// deepest legitimate value (Message → Snapshot → metadata → ConfState →
// voters) nests five levels.
const codecMaxDepth = 8

// FrameType says what a frame's payload holds.
type FrameType uint8

const (
	// FrameHandshake carries a Handshake. It is the first frame on every
	// connection, in both directions.
	FrameHandshake FrameType = iota + 1
	// FrameMessage carries one Message.
	FrameMessage
	// FramePing has no payload; it keeps an idle connection alive.
	FramePing
	// FrameSnapshotHeader carries a SnapshotStreamHeader: it opens a
	// snapshot stream.
	FrameSnapshotHeader
	// FrameSnapshotChunk carries raw snapshot bytes.
	FrameSnapshotChunk
	// FrameSnapshotEnd carries a SnapshotStreamEnd: it closes a snapshot
	// stream with its checksum.
	FrameSnapshotEnd
	// FrameSnapshotAck carries a SnapshotStreamAck: the receiver's verdict
	// on a snapshot stream.
	FrameSnapshotAck

	codecNumFrameTypes
)

// String returns the frame type's name.
func (t FrameType) String() string {
	switch t {
	case FrameHandshake:
		return "FrameHandshake"
	case FrameMessage:
		return "FrameMessage"
	case FramePing:
		return "FramePing"
	case FrameSnapshotHeader:
		return "FrameSnapshotHeader"
	case FrameSnapshotChunk:
		return "FrameSnapshotChunk"
	case FrameSnapshotEnd:
		return "FrameSnapshotEnd"
	case FrameSnapshotAck:
		return "FrameSnapshotAck"
	}
	return fmt.Sprintf("FrameType(%d)", uint8(t))
}

// StreamKind names the purpose of a connection, announced in its handshake.
type StreamKind uint8

const (
	// StreamMessages carries Messages other than heartbeats, in order.
	StreamMessages StreamKind = iota + 1
	// StreamHeartbeats carries MsgHeartbeat and MsgHeartbeatResp only, so
	// they never wait behind a large append.
	StreamHeartbeats
	// StreamSnapshot carries one snapshot: a header, chunks, an end frame,
	// and the receiver's ack.
	StreamSnapshot
)

// String returns the stream kind's name.
func (k StreamKind) String() string {
	switch k {
	case StreamMessages:
		return "StreamMessages"
	case StreamHeartbeats:
		return "StreamHeartbeats"
	case StreamSnapshot:
		return "StreamSnapshot"
	}
	return fmt.Sprintf("StreamKind(%d)", uint8(k))
}

// HandshakeVersion is the version of the handshake exchange written by this
// package, carried in Handshake.Version. Version 2 (the first to carry the
// field; a version 1 handshake decodes with Version 0) opens every
// connection with four FrameHandshake frames:
//
//  1. hello, dialer to acceptor: ClusterID, From (dialer), To (acceptor),
//     Stream, Version, and Nonce (the dialer's nonce).
//  2. challenge, acceptor to dialer: From and To swapped, the same Stream,
//     Version, Nonce (the acceptor's nonce) and MAC (the acceptor's proof),
//     or a non-zero Reason when it refuses the connection.
//  3. proof, dialer to acceptor: MAC (the dialer's proof), or a non-zero
//     Reason when the dialer refuses the acceptor.
//  4. verdict, acceptor to dialer: Reason, zero when the connection is
//     accepted.
//
// Either side closes the connection after sending a non-zero Reason. Nonce
// and MAC are empty unless the nodes share a secret; what the MACs cover is
// up to the transport (package tcptransport documents its construction).
const HandshakeVersion = 2

// HandshakeNonceSize and HandshakeMACSize are the lengths of a non-empty
// Handshake.Nonce and Handshake.MAC; the decoder refuses other lengths.
const (
	HandshakeNonceSize = 32
	HandshakeMACSize   = 32
)

// HandshakeReason is why a side refused a connection during the handshake;
// zero means it did not.
type HandshakeReason uint8

const (
	// HandshakeOK: not refused.
	HandshakeOK HandshakeReason = iota
	// HandshakeBadVersion: another handshake version.
	HandshakeBadVersion
	// HandshakeWrongCluster: another cluster ID.
	HandshakeWrongCluster
	// HandshakeWrongNode: the connection is meant for another node, or the
	// answer came from another node.
	HandshakeWrongNode
	// HandshakeUnknownPeer: the sender is not a known peer.
	HandshakeUnknownPeer
	// HandshakeBadStream: unknown stream kind.
	HandshakeBadStream
	// HandshakeAuthRequired: the other side sent no proof of the shared
	// secret, and this side requires one.
	HandshakeAuthRequired
	// HandshakeAuthFailed: the proof of the shared secret is wrong.
	HandshakeAuthFailed
	// HandshakeBadIdentity: the TLS certificate does not prove the node ID
	// the handshake claims.
	HandshakeBadIdentity
	// HandshakeBusy: too many connections or streams; try again later.
	HandshakeBusy
	// HandshakeProtocol: a malformed or out-of-order handshake.
	HandshakeProtocol

	numHandshakeReasons
)

// String returns the reason's name.
func (r HandshakeReason) String() string {
	names := [...]string{"ok", "bad version", "wrong cluster", "wrong node", "unknown peer",
		"bad stream kind", "authentication required", "authentication failed",
		"certificate does not prove the node ID", "busy", "protocol error"}
	if r < numHandshakeReasons {
		return names[r]
	}
	return fmt.Sprintf("HandshakeReason(%d)", uint8(r))
}

// Handshake is every frame of the handshake that opens a connection (see
// HandshakeVersion for the exchange); a frame leaves the fields it does not
// use at their zero value.
type Handshake struct {
	ClusterID uint64          `msgpack:"c"`
	From      uint64          `msgpack:"f"`
	To        uint64          `msgpack:"o"`
	Stream    StreamKind      `msgpack:"s"`
	Version   uint8           `msgpack:"v"`
	Nonce     []byte          `msgpack:"n"`
	MAC       []byte          `msgpack:"a"`
	Reason    HandshakeReason `msgpack:"r"`
}

// SnapshotStreamHeader opens a snapshot stream. Message is the MsgSnap being
// sent with its Snapshot.Data left empty; Size is the length of the data that
// follows in FrameSnapshotChunk frames.
type SnapshotStreamHeader struct {
	Message raft.Message `msgpack:"m"`
	Size    uint64       `msgpack:"n"`
}

// SnapshotStreamEnd closes a snapshot stream: SHA256 is the SHA-256 digest of
// the snapshot data.
type SnapshotStreamEnd struct {
	SHA256 []byte `msgpack:"h"`
}

// SnapshotStreamAck is the receiver's verdict on a snapshot stream: OK when
// the data arrived whole with a matching checksum and was handed to the host.
type SnapshotStreamAck struct {
	OK     bool   `msgpack:"k"`
	Reason string `msgpack:"r"`
}

// FramePayload is a value that travels as a frame's msgpack payload: a
// *raft.Message, *Handshake, *SnapshotStreamHeader, *SnapshotStreamEnd or
// *SnapshotStreamAck. The set is closed: the codec encodes and decodes only
// these, and refuses anything else with an error.
type FramePayload any

// frameTypeOf returns the frame type that carries v, or false if no frame
// carries values of v's type.
func frameTypeOf(v FramePayload) (FrameType, bool) {
	switch v.(type) {
	case *raft.Message:
		return FrameMessage, true
	case *Handshake:
		return FrameHandshake, true
	case *SnapshotStreamHeader:
		return FrameSnapshotHeader, true
	case *SnapshotStreamEnd:
		return FrameSnapshotEnd, true
	case *SnapshotStreamAck:
		return FrameSnapshotAck, true
	}
	return 0, false
}

// CodecOptions configures a Codec. The zero value gives the defaults.
type CodecOptions struct {
	// MaxFrameSize bounds a frame's payload length, checked before the
	// payload is read or allocated. Default DefaultMaxFrameSize.
	MaxFrameSize uint32
	// MaxElements bounds the total number of msgpack array elements and map
	// entries in one payload (a Message with n entries uses about 9n).
	// Together with MaxFrameSize it bounds the memory decoding can take.
	// The default, DefaultMaxFrameElements, admits a MaxSizePerMsg-sized
	// append of empty entries.
	MaxElements int
}

// Codec encodes and decodes frames. It is safe for concurrent use.
//
// Decoding is bounded: a header's length is checked against MaxFrameSize
// before anything is allocated; a payload is decoded only from a buffer of
// that checked size, after a scan that rejects any declared length longer
// than the bytes left, nesting deeper than a fixed limit, and more elements
// than MaxElements. The decoder (go-msgpack) then never allocates from a
// declared length that the bytes do not back: decoding one payload allocates
// at most a few hundred bytes per element (about 300 in the worst case, a
// list of nil entries) plus the payload's size.
type Codec struct {
	maxFrame uint32
	maxElems int
	handle   *codec.MsgpackHandle
	encoders sync.Pool // *codecEncoder
	decoders sync.Pool // *codec.Decoder
}

type codecEncoder struct {
	buf []byte
	enc *codec.Encoder
}

// NewCodec returns a Codec with the given options, or an error wrapping
// raft.ErrInvalidConfig for negative limits.
func NewCodec(opts CodecOptions) (*Codec, error) {
	if opts.MaxElements < 0 {
		return nil, fmt.Errorf("%w: CodecOptions.MaxElements is %d, want >= 0", raft.ErrInvalidConfig, opts.MaxElements)
	}
	c := &Codec{maxFrame: opts.MaxFrameSize, maxElems: opts.MaxElements}
	if c.maxFrame == 0 {
		c.maxFrame = DefaultMaxFrameSize
	}
	if c.maxElems == 0 {
		c.maxElems = DefaultMaxFrameElements
	}
	h := &codec.MsgpackHandle{WriteExt: true}
	h.TypeInfos = codec.NewTypeInfos([]string{"msgpack"})
	// Allocate a byte string or array at its declared length at once:
	// codecScan has checked every declared length against the bytes that
	// back it (and the element count against MaxElements) before the
	// decoder runs. A small MaxInitLen would not make decoding safer, only
	// slower: go-msgpack grows a byte string by MaxInitLen at a time with
	// a copy each step, which takes seconds for an entry of a few MiB.
	h.MaxInitLen = int(c.maxFrame)
	c.handle = h
	c.encoders.New = func() any {
		e := &codecEncoder{}
		e.enc = codec.NewEncoderBytes(&e.buf, h)
		return e
	}
	c.decoders.New = func() any { return codec.NewDecoderBytes(nil, h) }
	return c, nil
}

// MaxFrameSize returns the largest payload length the codec accepts.
func (c *Codec) MaxFrameSize() uint32 { return c.maxFrame }

// AppendFrame appends a frame carrying v to dst and returns the extended
// slice. It fails if the encoded payload exceeds the maximum frame size;
// dst is then returned unchanged.
func (c *Codec) AppendFrame(dst []byte, v FramePayload) ([]byte, error) {
	t, ok := frameTypeOf(v)
	if !ok {
		return dst, fmt.Errorf("wire: no frame carries a %T", v)
	}
	e := c.encoders.Get().(*codecEncoder)
	e.buf = e.buf[:0]
	e.enc.ResetBytes(&e.buf)
	if err := e.enc.Encode(v); err != nil {
		return dst, fmt.Errorf("wire: encoding %s: %w", t, err) // e is not reused
	}
	out, err := c.AppendRawFrame(dst, t, e.buf)
	if cap(e.buf) <= 1<<20 { // don't keep huge buffers in the pool
		c.encoders.Put(e)
	}
	return out, err
}

// AppendRawFrame appends a frame of type t whose payload is p, as is, to dst.
// It is how FrameSnapshotChunk and FramePing frames are written.
func (c *Codec) AppendRawFrame(dst []byte, t FrameType, p []byte) ([]byte, error) {
	out, err := c.AppendFrameHeader(dst, t, len(p))
	if err != nil {
		return dst, err
	}
	return append(out, p...), nil
}

// AppendFrameHeader appends the header of a frame of type t with an n-byte
// payload to dst, for a writer that sends the payload itself (a large
// snapshot chunk, without copying it). It fails if n exceeds the maximum
// frame size.
func (c *Codec) AppendFrameHeader(dst []byte, t FrameType, n int) ([]byte, error) {
	if n < 0 || uint64(n) > uint64(c.maxFrame) {
		return dst, fmt.Errorf("%w: %s payload of %d bytes exceeds the maximum %d", ErrFrameTooLarge, t, n, c.maxFrame)
	}
	var hdr [FrameHeaderSize]byte
	hdr[0], hdr[1] = codecMagic[0], codecMagic[1]
	hdr[2] = FrameVersion
	hdr[3] = byte(t)
	binary.BigEndian.PutUint32(hdr[4:], uint32(n))
	return append(dst, hdr[:]...), nil
}

// FrameHeader is a decoded frame header.
type FrameHeader struct {
	Type   FrameType
	Length uint32 // payload length, at most the codec's MaxFrameSize
}

// ParseHeader decodes the first FrameHeaderSize bytes of b. It checks the
// magic, the version, the type and the length bound.
func (c *Codec) ParseHeader(b []byte) (FrameHeader, error) {
	if len(b) < FrameHeaderSize {
		return FrameHeader{}, fmt.Errorf("%w: header of %d bytes, want %d", ErrBadFrame, len(b), FrameHeaderSize)
	}
	if b[0] != codecMagic[0] || b[1] != codecMagic[1] {
		return FrameHeader{}, fmt.Errorf("%w: bad magic %#x %#x", ErrBadFrame, b[0], b[1])
	}
	if b[2] != FrameVersion {
		return FrameHeader{}, fmt.Errorf("%w: unsupported version %d, want %d", ErrBadFrame, b[2], FrameVersion)
	}
	h := FrameHeader{Type: FrameType(b[3]), Length: binary.BigEndian.Uint32(b[4:8])}
	if h.Type == 0 || h.Type >= codecNumFrameTypes {
		return FrameHeader{}, fmt.Errorf("%w: unknown frame type %d", ErrBadFrame, b[3])
	}
	if h.Length > c.maxFrame {
		return FrameHeader{}, fmt.Errorf("%w: %w: %s declares %d bytes, the maximum is %d", ErrBadFrame, ErrFrameTooLarge, h.Type, h.Length, c.maxFrame)
	}
	if h.Type == FramePing && h.Length != 0 {
		return FrameHeader{}, fmt.Errorf("%w: ping with a %d-byte payload", ErrBadFrame, h.Length)
	}
	return h, nil
}

// ReadFrame reads one frame from r. The payload is read into buf when it
// fits; otherwise into a new slice that grows as the bytes arrive (at most
// doubling what was received), so a peer that declares a large frame and
// stalls does not make the reader allocate the declared size. The returned
// payload aliases buf's memory when it fit. Errors from r are returned as
// they are (io.EOF before a header, io.ErrUnexpectedEOF inside a frame);
// malformed headers wrap ErrBadFrame.
func (c *Codec) ReadFrame(r io.Reader, buf []byte) (FrameHeader, []byte, error) {
	return c.ReadFrameLimit(r, buf, c.maxFrame)
}

// codecReadStep is the first allocation, and the growth unit, for a payload
// that does not fit the caller's buffer.
const codecReadStep = 64 << 10

// ReadFrameLimit is ReadFrame with a tighter bound on the payload length for
// this one frame (the smaller of limit and MaxFrameSize), for example for a
// handshake from a peer not yet authenticated.
func (c *Codec) ReadFrameLimit(r io.Reader, buf []byte, limit uint32) (FrameHeader, []byte, error) {
	var hb [FrameHeaderSize]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return FrameHeader{}, nil, err
	}
	h, err := c.ParseHeader(hb[:])
	if err != nil {
		return FrameHeader{}, nil, err
	}
	if h.Length > limit {
		return FrameHeader{}, nil, fmt.Errorf("%w: %w: %s declares %d bytes, %d allowed here", ErrBadFrame, ErrFrameTooLarge, h.Type, h.Length, limit)
	}
	n := int(h.Length)
	if cap(buf) >= n {
		p := buf[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return FrameHeader{}, nil, codecUnexpectedEOF(err)
		}
		return h, p, nil
	}
	p := make([]byte, 0, min(n, codecReadStep))
	for len(p) < n {
		if len(p) == cap(p) {
			p = append(p, make([]byte, min(n-len(p), cap(p)))...)[:len(p)]
		}
		m := min(n, cap(p))
		if _, err := io.ReadFull(r, p[len(p):m]); err != nil {
			return FrameHeader{}, nil, codecUnexpectedEOF(err)
		}
		p = p[:m]
	}
	return h, p, nil
}

func codecUnexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// SplitFrame parses the frame at the start of data and returns its header,
// its payload (aliasing data) and the bytes after it. A frame cut short wraps
// ErrBadFrame and io.ErrUnexpectedEOF.
func (c *Codec) SplitFrame(data []byte) (FrameHeader, []byte, []byte, error) {
	h, err := c.ParseHeader(data)
	if err != nil {
		if len(data) < FrameHeaderSize {
			err = fmt.Errorf("%w: %w", err, io.ErrUnexpectedEOF)
		}
		return FrameHeader{}, nil, nil, err
	}
	end := FrameHeaderSize + int(h.Length)
	if len(data) < end {
		return FrameHeader{}, nil, nil, fmt.Errorf("%w: %s payload has %d of %d bytes: %w", ErrBadFrame, h.Type, len(data)-FrameHeaderSize, h.Length, io.ErrUnexpectedEOF)
	}
	return h, data[FrameHeaderSize:end], data[end:], nil
}

// Decode decodes the payload p of a frame of type t into v, which must be a
// zeroed value of the concrete type t names. Decoded byte slices never alias
// p. An error wraps ErrBadFrame.
func (c *Codec) Decode(t FrameType, p []byte, v FramePayload) error {
	if vt, ok := frameTypeOf(v); !ok || vt != t {
		return fmt.Errorf("%w: %s payload cannot be decoded as %T", ErrBadFrame, t, v)
	}
	if uint64(len(p)) > uint64(c.maxFrame) {
		return fmt.Errorf("%w: %w: %s payload of %d bytes exceeds the maximum %d", ErrBadFrame, ErrFrameTooLarge, t, len(p), c.maxFrame)
	}
	if err := codecScan(p, c.maxElems); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadFrame, t, err)
	}
	d := c.decoders.Get().(*codec.Decoder)
	d.ResetBytes(p)
	err := d.Decode(v)
	if err == nil {
		d.ResetBytes(nil) // drop the reference to p
		c.decoders.Put(d) // a failed decoder is not reused
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadFrame, t, err)
	}
	if m, ok := v.(*raft.Message); ok && !m.Type.Valid() {
		return fmt.Errorf("%w: unknown message type %d", ErrBadFrame, uint8(m.Type))
	}
	if h, ok := v.(*SnapshotStreamHeader); ok && !h.Message.Type.Valid() {
		return fmt.Errorf("%w: unknown message type %d", ErrBadFrame, uint8(h.Message.Type))
	}
	if h, ok := v.(*Handshake); ok {
		switch {
		case len(h.Nonce) != 0 && len(h.Nonce) != HandshakeNonceSize:
			return fmt.Errorf("%w: handshake nonce of %d bytes", ErrBadFrame, len(h.Nonce))
		case len(h.MAC) != 0 && len(h.MAC) != HandshakeMACSize:
			return fmt.Errorf("%w: handshake MAC of %d bytes", ErrBadFrame, len(h.MAC))
		case h.Reason >= numHandshakeReasons:
			return fmt.Errorf("%w: unknown handshake reason %d", ErrBadFrame, uint8(h.Reason))
		}
	}
	return nil
}

// codecScan walks the single msgpack value that p must consist of, without
// allocating. It rejects a declared length longer than the bytes left (each
// element takes at least one byte), nesting deeper than codecMaxDepth, more
// than maxElems elements in all, and trailing bytes.
func codecScan(p []byte, maxElems int) error {
	s := codecScanner{p: p, elems: maxElems}
	if err := s.value(0); err != nil {
		return err
	}
	if s.off != len(p) {
		return fmt.Errorf("%d trailing bytes after the value", len(p)-s.off)
	}
	return nil
}

type codecScanner struct {
	p     []byte
	off   int
	elems int // elements still allowed
}

var errCodecShort = errors.New("msgpack value cut short")

// take consumes n bytes, failing when fewer are left.
func (s *codecScanner) take(n uint64) ([]byte, error) {
	if n > uint64(len(s.p)-s.off) {
		return nil, errCodecShort
	}
	b := s.p[s.off : s.off+int(n)]
	s.off += int(n)
	return b, nil
}

// length reads a big-endian length of size bytes.
func (s *codecScanner) length(size int) (uint64, error) {
	b, err := s.take(uint64(size))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n, nil
}

func (s *codecScanner) value(depth int) error {
	b, err := s.take(1)
	if err != nil {
		return err
	}
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return nil // fixint, nil, bool
	case c >= 0xa0 && c <= 0xbf: // fixstr
		_, err = s.take(uint64(c & 0x1f))
		return err
	case c >= 0x90 && c <= 0x9f: // fixarray
		return s.container(depth, uint64(c&0x0f), 1)
	case c >= 0x80 && c <= 0x8f: // fixmap
		return s.container(depth, uint64(c&0x0f), 2)
	}
	var n uint64
	switch c {
	case 0xcc, 0xd0: // uint8, int8
		_, err = s.take(1)
	case 0xcd, 0xd1:
		_, err = s.take(2)
	case 0xce, 0xd2, 0xca: // 32-bit ints, float32
		_, err = s.take(4)
	case 0xcf, 0xd3, 0xcb:
		_, err = s.take(8)
	case 0xc4, 0xd9: // bin8, str8
		if n, err = s.length(1); err == nil {
			_, err = s.take(n)
		}
	case 0xc5, 0xda:
		if n, err = s.length(2); err == nil {
			_, err = s.take(n)
		}
	case 0xc6, 0xdb:
		if n, err = s.length(4); err == nil {
			_, err = s.take(n)
		}
	case 0xdc, 0xde: // array16, map16
		if n, err = s.length(2); err == nil {
			err = s.container(depth, n, 1+uint64(c-0xdc)/2)
		}
	case 0xdd, 0xdf: // array32, map32
		if n, err = s.length(4); err == nil {
			err = s.container(depth, n, 1+uint64(c-0xdd)/2)
		}
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 (+ type byte)
		_, err = s.take(1 + 1<<(c-0xd4))
	case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32 (+ type byte)
		if n, err = s.length(1 << (c - 0xc7)); err == nil {
			_, err = s.take(1 + n)
		}
	default: // 0xc1 is never used
		return fmt.Errorf("invalid msgpack byte %#x at offset %d", c, s.off-1)
	}
	return err
}

// container walks n entries of per values each (1 for arrays, 2 for maps).
func (s *codecScanner) container(depth int, n, per uint64) error {
	if depth >= codecMaxDepth {
		return fmt.Errorf("msgpack nesting deeper than %d", codecMaxDepth)
	}
	total := n * per // n < 2^32, per <= 2: no overflow
	if total > uint64(len(s.p)-s.off) {
		return fmt.Errorf("msgpack container declares %d elements with %d bytes left", total, len(s.p)-s.off)
	}
	if total > uint64(s.elems) {
		return fmt.Errorf("%w: more than the allowed number of msgpack elements", ErrFrameTooLarge)
	}
	s.elems -= int(total)
	for i := uint64(0); i < total; i++ {
		if err := s.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}
