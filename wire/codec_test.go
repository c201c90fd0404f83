package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/keelraft/raft"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func codecTestNew(tb testing.TB, opts CodecOptions) *Codec {
	tb.Helper()
	c, err := NewCodec(opts)
	require.NoError(tb, err)
	return c
}

// codecTestEntries returns n entries following index prev at term 3, each
// with size bytes of data.
func codecTestEntries(prev uint64, n, size int) []raft.Entry {
	ents := make([]raft.Entry, n)
	for i := range ents {
		data := bytes.Repeat([]byte{byte(i)}, size)
		ents[i] = raft.Entry{Term: 3, Index: prev + 1 + uint64(i), Type: raft.EntryType(i % 2), Data: data}
	}
	return ents
}

// codecTestMessages returns one filled-in message of every type.
func codecTestMessages() []raft.Message {
	snap := &raft.Snapshot{
		Metadata: raft.SnapshotMetadata{Index: 40, Term: 2, ConfState: raft.ConfState{
			Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, VotersOutgoing: []uint64{1, 2, 5},
			LearnersNext: []uint64{5}, AutoLeave: true,
		}},
		Data: []byte("application state"),
	}
	var msgs []raft.Message
	for t := raft.MessageType(0); t.Valid(); t++ {
		m := raft.Message{Type: t, From: 1, To: 2, Term: 7, LogTerm: 6, Index: 41, Commit: 40, RejectHint: 9}
		switch t {
		case raft.MsgApp, raft.MsgProp:
			m.Entries = codecTestEntries(41, 5, 100)
		case raft.MsgSnap:
			m.Snapshot = snap
		case raft.MsgReadIndex, raft.MsgReadIndexResp:
			m.Entries = []raft.Entry{{Data: []byte("read-ctx")}}
		case raft.MsgAppResp, raft.MsgVoteResp, raft.MsgPreVoteResp, raft.MsgSnapStatus:
			m.Reject = true
		case raft.MsgHeartbeat, raft.MsgHeartbeatResp:
			m.Context = []byte{0, 1, 2, 0xff}
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestCodecRoundTripMessages(t *testing.T) {
	c := codecTestNew(t, CodecOptions{})
	for _, m := range codecTestMessages() {
		t.Run(m.Type.String(), func(t *testing.T) {
			frame, err := c.AppendFrame([]byte("prefix"), &m)
			require.NoError(t, err)
			require.Equal(t, "prefix", string(frame[:6]))
			h, p, rest, err := c.SplitFrame(frame[6:])
			require.NoError(t, err)
			assert.Equal(t, FrameMessage, h.Type)
			assert.Empty(t, rest)
			var got raft.Message
			require.NoError(t, c.Decode(h.Type, p, &got))
			assert.Equal(t, m, got)
			if len(got.Entries) > 0 && len(got.Entries[0].Data) > 0 {
				p[len(p)-1] ^= 0xff // decoded slices do not alias the payload
				for i := range p {
					p[i] = 0
				}
				assert.Equal(t, m, got)
			}
		})
	}
}

func TestCodecRoundTripControlFrames(t *testing.T) {
	c := codecTestNew(t, CodecOptions{})
	tests := []struct {
		name string
		v    FramePayload
		zero FramePayload
	}{
		{name: "handshake", v: &Handshake{ClusterID: 0xdeadbeef, From: 1, To: 3, Stream: StreamHeartbeats}, zero: &Handshake{}},
		{
			name: "snapshot header",
			v:    &SnapshotStreamHeader{Message: codecTestMessages()[raft.MsgSnap], Size: 64 << 20},
			zero: &SnapshotStreamHeader{},
		},
		{name: "snapshot end", v: &SnapshotStreamEnd{SHA256: bytes.Repeat([]byte{7}, 32)}, zero: &SnapshotStreamEnd{}},
		{name: "snapshot ack ok", v: &SnapshotStreamAck{OK: true}, zero: &SnapshotStreamAck{}},
		{name: "snapshot ack failure", v: &SnapshotStreamAck{Reason: "checksum mismatch"}, zero: &SnapshotStreamAck{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, err := c.AppendFrame(nil, tt.v)
			require.NoError(t, err)
			h, p, err := c.ReadFrame(bytes.NewReader(frame), nil)
			require.NoError(t, err)
			want, ok := frameTypeOf(tt.v)
			require.True(t, ok)
			assert.Equal(t, want, h.Type)
			require.NoError(t, c.Decode(h.Type, p, tt.zero))
			assert.Equal(t, tt.v, tt.zero)
		})
	}
}

func TestCodecRawFrames(t *testing.T) {
	c := codecTestNew(t, CodecOptions{MaxFrameSize: 1024})
	var stream []byte
	stream, err := c.AppendRawFrame(stream, FrameSnapshotChunk, bytes.Repeat([]byte{9}, 1024))
	require.NoError(t, err)
	stream, err = c.AppendRawFrame(stream, FramePing, nil)
	require.NoError(t, err)
	_, err = c.AppendRawFrame(stream, FrameSnapshotChunk, make([]byte, 1025))
	require.ErrorIs(t, err, ErrFrameTooLarge)

	r := bytes.NewReader(stream)
	buf := make([]byte, 2048)
	h, p, err := c.ReadFrame(r, buf)
	require.NoError(t, err)
	assert.Equal(t, FrameHeader{Type: FrameSnapshotChunk, Length: 1024}, h)
	assert.Equal(t, bytes.Repeat([]byte{9}, 1024), p)
	assert.Same(t, &buf[0], &p[0], "the payload is read into the caller's buffer")
	h, p, err = c.ReadFrame(r, buf)
	require.NoError(t, err)
	assert.Equal(t, FrameHeader{Type: FramePing}, h)
	assert.Empty(t, p)
	_, _, err = c.ReadFrame(r, buf)
	assert.Equal(t, io.EOF, err)
}

func TestCodecEncodeTooLarge(t *testing.T) {
	c := codecTestNew(t, CodecOptions{MaxFrameSize: 4096})
	m := raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 3, Entries: codecTestEntries(0, 10, 1000)}
	out, err := c.AppendFrame([]byte{1}, &m)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	assert.Equal(t, []byte{1}, out)
}

// codecTestHeader builds a frame header by hand.
func codecTestHeader(magic0, magic1, version, typ byte, length uint32) []byte {
	h := []byte{magic0, magic1, version, typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[4:], length)
	return h
}

func TestCodecRejectsBadFrames(t *testing.T) {
	c := codecTestNew(t, CodecOptions{MaxFrameSize: 1 << 20, MaxElements: 1000})
	good, err := c.AppendFrame(nil, &raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 2, Entries: codecTestEntries(0, 2, 3)})
	require.NoError(t, err)
	payload := good[FrameHeaderSize:]
	deep := bytes.Repeat([]byte{0x91}, 100) // [[[[...]]]]
	deep = append(deep, 0xc0)
	tests := []struct {
		name    string
		data    []byte
		tooBig  bool
		wantEOF bool
	}{
		{name: "empty", data: nil, wantEOF: true},
		{name: "short header", data: good[:5], wantEOF: true},
		{name: "garbage", data: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{name: "bad magic", data: append(codecTestHeader('K', 'X', 1, 2, 0), payload...)},
		{name: "future version", data: append(codecTestHeader('K', 'L', 2, 2, uint32(len(payload))), payload...)},
		{name: "unknown frame type", data: codecTestHeader('K', 'L', 1, 99, 0)},
		{name: "frame type zero", data: codecTestHeader('K', 'L', 1, 0, 0)},
		{name: "ping with payload", data: append(codecTestHeader('K', 'L', 1, byte(FramePing), 1), 0)},
		{name: "oversized length", data: codecTestHeader('K', 'L', 1, byte(FrameMessage), 1<<31), tooBig: true},
		{name: "truncated payload", data: good[:len(good)-3], wantEOF: true},
		{name: "payload not msgpack", data: append(codecTestHeader('K', 'L', 1, byte(FrameMessage), 3), 0xc1, 0xc1, 0xc1)},
		{name: "payload wrong shape", data: append(codecTestHeader('K', 'L', 1, byte(FrameMessage), 1), 0x05)},
		{
			name: "declared bin longer than payload",
			data: append(codecTestHeader('K', 'L', 1, byte(FrameMessage), 8), 0x81, 0xa1, 'x', 0xc6, 0x7f, 0xff, 0xff, 0xff),
		},
		{
			name:   "declared array longer than allowed",
			data:   append(codecTestHeader('K', 'L', 1, byte(FrameMessage), 5), 0xdd, 0x7f, 0xff, 0xff, 0xff),
			tooBig: false,
		},
		{name: "nesting too deep", data: append(codecTestHeader('K', 'L', 1, byte(FrameMessage), uint32(len(deep))), deep...)},
		{name: "trailing bytes", data: append(codecTestHeader('K', 'L', 1, byte(FrameMessage), uint32(len(payload)+1)), append(payload, 0xc0)...)},
		{name: "message type out of range", data: append(codecTestHeader('K', 'L', 1, byte(FrameMessage), 4), 0x81, 0xa1, 'y', 0x7f)},
		{name: "message type overflows uint8", data: append(codecTestHeader('K', 'L', 1, byte(FrameMessage), 5), 0x81, 0xa1, 'y', 0xcd, 0x01)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := codecTestDecodeAll(c, tt.data)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrBadFrame)
			assert.Equal(t, tt.tooBig, errors.Is(err, ErrFrameTooLarge), "ErrFrameTooLarge: %v", err)
			assert.Equal(t, tt.wantEOF, errors.Is(err, io.ErrUnexpectedEOF), "io.ErrUnexpectedEOF: %v", err)
		})
	}
}

func TestCodecElementLimit(t *testing.T) {
	m := raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 3, Entries: codecTestEntries(0, 100, 0)}
	big := codecTestNew(t, CodecOptions{})
	frame, err := big.AppendFrame(nil, &m)
	require.NoError(t, err)
	small := codecTestNew(t, CodecOptions{MaxElements: 500})
	err = codecTestDecodeAll(small, frame)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	require.NoError(t, codecTestDecodeAll(big, frame))
}

// TestCodecHostileAllocation checks that payloads declaring huge lengths
// allocate in proportion to their real size, not to what they declare.
func TestCodecHostileAllocation(t *testing.T) {
	c := codecTestNew(t, CodecOptions{})
	nilEntries := append([]byte{0x81, 0xa1, 'e', 0xdd, 0, 0x01, 0, 0}, bytes.Repeat([]byte{0xc0}, 1<<16)...)
	tests := []struct {
		name     string
		payload  []byte
		maxAlloc uint64
	}{
		{name: "array32 of 4G entries with 4 bytes", payload: []byte{0x81, 0xa1, 'e', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0, 0xc0}, maxAlloc: 64 << 10},
		{name: "bin32 of 2 GiB with 3 bytes", payload: []byte{0x81, 0xa1, 'x', 0xc6, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3}, maxAlloc: 64 << 10},
		{name: "64K nil entries", payload: nilEntries, maxAlloc: 400 << 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m raft.Message
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_ = c.Decode(FrameMessage, tt.payload, &m)
			runtime.ReadMemStats(&after)
			assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, tt.maxAlloc)
		})
	}
}

func TestCodecDecodeWrongType(t *testing.T) {
	c := codecTestNew(t, CodecOptions{})
	frame, err := c.AppendFrame(nil, &Handshake{ClusterID: 1, From: 1, To: 2, Stream: StreamMessages})
	require.NoError(t, err)
	var m raft.Message
	err = c.Decode(FrameHandshake, frame[FrameHeaderSize:], &m)
	assert.ErrorIs(t, err, ErrBadFrame)
}

func TestNewCodecRejectsNegativeElements(t *testing.T) {
	_, err := NewCodec(CodecOptions{MaxElements: -1})
	assert.ErrorIs(t, err, raft.ErrInvalidConfig)
}

// codecTestDecodeAll decodes every frame in data and returns the first error.
func codecTestDecodeAll(c *Codec, data []byte) error {
	for {
		h, p, rest, err := c.SplitFrame(data)
		if err != nil {
			return err
		}
		var v FramePayload
		switch h.Type {
		case FrameMessage:
			v = &raft.Message{}
		case FrameHandshake:
			v = &Handshake{}
		case FrameSnapshotHeader:
			v = &SnapshotStreamHeader{}
		case FrameSnapshotEnd:
			v = &SnapshotStreamEnd{}
		case FrameSnapshotAck:
			v = &SnapshotStreamAck{}
		}
		if v != nil {
			if err := c.Decode(h.Type, p, v); err != nil {
				return err
			}
		}
		if len(rest) == 0 {
			return nil
		}
		data = rest
	}
}

func FuzzDecodeFrame(f *testing.F) {
	c := codecTestNew(f, CodecOptions{MaxFrameSize: 1 << 20, MaxElements: 1 << 16})
	for _, m := range codecTestMessages() {
		frame, err := c.AppendFrame(nil, &m)
		require.NoError(f, err)
		f.Add(frame)
	}
	for _, v := range []FramePayload{
		&Handshake{ClusterID: 9, From: 2, To: 1, Stream: StreamSnapshot},
		&SnapshotStreamHeader{Message: codecTestMessages()[raft.MsgSnap], Size: 10},
		&SnapshotStreamEnd{SHA256: make([]byte, 32)},
		&SnapshotStreamAck{OK: true, Reason: "x"},
	} {
		frame, err := c.AppendFrame(nil, v)
		require.NoError(f, err)
		f.Add(frame)
	}
	f.Add(codecTestHeader('K', 'L', 1, byte(FrameMessage), 1<<30))
	f.Add(append(codecTestHeader('K', 'L', 1, byte(FrameMessage), 5), 0xdd, 0xff, 0xff, 0xff, 0xff))
	f.Add([]byte("garbage that is not a frame"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for len(data) > 0 {
			h, p, rest, err := c.SplitFrame(data)
			rh, rp, rerr := c.ReadFrame(bytes.NewReader(data), nil)
			if err != nil {
				require.ErrorIs(t, err, ErrBadFrame)
				require.Error(t, rerr, "ReadFrame agrees with SplitFrame")
				return
			}
			require.NoError(t, rerr)
			require.Equal(t, h, rh)
			require.True(t, bytes.Equal(p, rp), "same payload")
			require.LessOrEqual(t, h.Length, c.MaxFrameSize())
			if h.Type == FrameMessage {
				var m raft.Message
				if err := c.Decode(h.Type, p, &m); err != nil {
					require.ErrorIs(t, err, ErrBadFrame)
					return
				}
				// What decodes re-encodes and decodes to the same message.
				again, err := c.AppendFrame(nil, &m)
				require.NoError(t, err)
				var m2 raft.Message
				require.NoError(t, c.Decode(FrameMessage, again[FrameHeaderSize:], &m2))
				require.Equal(t, codecTestNormalize(m), codecTestNormalize(m2))
			} else if err := codecTestDecodeAll(c, data[:FrameHeaderSize+int(h.Length)]); err != nil {
				require.ErrorIs(t, err, ErrBadFrame)
				return
			}
			data = rest
		}
	})
}

// FuzzHandshake feeds arbitrary payloads to the handshake decoder: it either
// refuses them with ErrBadFrame or yields a handshake whose nonce, MAC and
// reason are well formed and which survives re-encoding unchanged.
func FuzzHandshake(f *testing.F) {
	c := codecTestNew(f, CodecOptions{})
	nonce := bytes.Repeat([]byte{7}, HandshakeNonceSize)
	for _, hs := range []Handshake{
		{ClusterID: 1, From: 2, To: 1, Stream: StreamMessages, Version: HandshakeVersion, Nonce: nonce},
		{ClusterID: 1, From: 1, To: 2, Stream: StreamSnapshot, Version: HandshakeVersion, Nonce: nonce, MAC: nonce},
		{MAC: nonce},
		{Reason: HandshakeAuthFailed},
		{ClusterID: 9, From: 2, To: 1, Stream: StreamHeartbeats}, // version 1
	} {
		frame, err := c.AppendFrame(nil, &hs)
		require.NoError(f, err)
		f.Add(frame[FrameHeaderSize:])
	}
	f.Add([]byte{0x81, 0xa1, 'n', 0xc4, 0x03, 1, 2, 3}) // a 3-byte nonce
	f.Add([]byte{0x81, 0xa1, 'r', 0xcc, 0xff})          // an unknown reason
	f.Fuzz(func(t *testing.T, p []byte) {
		var hs Handshake
		if err := c.Decode(FrameHandshake, p, &hs); err != nil {
			require.ErrorIs(t, err, ErrBadFrame)
			return
		}
		require.Contains(t, []int{0, HandshakeNonceSize}, len(hs.Nonce))
		require.Contains(t, []int{0, HandshakeMACSize}, len(hs.MAC))
		require.Less(t, hs.Reason, numHandshakeReasons)
		require.NotContains(t, hs.Reason.String(), "HandshakeReason(")
		again, err := c.AppendFrame(nil, &hs)
		require.NoError(t, err)
		var hs2 Handshake
		require.NoError(t, c.Decode(FrameHandshake, again[FrameHeaderSize:], &hs2))
		norm := func(h Handshake) Handshake {
			if len(h.Nonce) == 0 {
				h.Nonce = nil
			}
			if len(h.MAC) == 0 {
				h.MAC = nil
			}
			return h
		}
		require.Equal(t, norm(hs), norm(hs2))
	})
}

// codecTestNormalize maps empty slices to nil: msgpack does not distinguish
// them.
func codecTestNormalize(m raft.Message) raft.Message {
	if len(m.Entries) == 0 {
		m.Entries = nil
	}
	for i := range m.Entries {
		if len(m.Entries[i].Data) == 0 {
			m.Entries[i].Data = nil
		}
	}
	if len(m.Context) == 0 {
		m.Context = nil
	}
	if s := m.Snapshot; s != nil {
		cp := *s
		if len(cp.Data) == 0 {
			cp.Data = nil
		}
		cs := &cp.Metadata.ConfState
		for _, p := range []*[]uint64{&cs.Voters, &cs.Learners, &cs.VotersOutgoing, &cs.LearnersNext} {
			if len(*p) == 0 {
				*p = nil
			}
		}
		m.Snapshot = &cp
	}
	return m
}

func BenchmarkCodec(b *testing.B) {
	c := codecTestNew(b, CodecOptions{})
	cases := []struct {
		name string
		m    raft.Message
	}{
		{name: "heartbeat", m: raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 5, Commit: 1000}},
		{name: "append-64x128B", m: raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 5, LogTerm: 5, Index: 100, Commit: 99, Entries: codecTestEntries(100, 64, 128)}},
	}
	for _, tc := range cases {
		frame, err := c.AppendFrame(nil, &tc.m)
		require.NoError(b, err)
		b.Run("encode/"+tc.name, func(b *testing.B) {
			buf := make([]byte, 0, len(frame))
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				buf, _ = c.AppendFrame(buf[:0], &tc.m)
			}
		})
		b.Run("decode/"+tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var m raft.Message
				if err := c.Decode(FrameMessage, frame[FrameHeaderSize:], &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestCodecReadFrameGrowsWithData(t *testing.T) {
	c := codecTestNew(t, CodecOptions{})
	t.Run("large payload in small reads", func(t *testing.T) {
		payload := bytes.Repeat([]byte("0123456789"), 30000)
		frame, err := c.AppendRawFrame(nil, FrameSnapshotChunk, payload)
		require.NoError(t, err)
		h, p, err := c.ReadFrame(iotest.HalfReader(bytes.NewReader(frame)), nil)
		require.NoError(t, err)
		assert.Equal(t, uint32(len(payload)), h.Length)
		assert.Equal(t, payload, p)
	})
	t.Run("declared 16 MiB, sent 10 bytes", func(t *testing.T) {
		data := append(codecTestHeader('K', 'L', 1, byte(FrameSnapshotChunk), 16<<20), make([]byte, 10)...)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, _, err := c.ReadFrame(bytes.NewReader(data), nil)
		runtime.ReadMemStats(&after)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, uint64(256<<10))
	})
	t.Run("limit below the maximum", func(t *testing.T) {
		frame, err := c.AppendFrame(nil, &raft.Message{Type: raft.MsgApp, Entries: codecTestEntries(0, 4, 100)})
		require.NoError(t, err)
		_, _, err = c.ReadFrameLimit(bytes.NewReader(frame), nil, 64)
		assert.ErrorIs(t, err, ErrFrameTooLarge)
	})
}
