package tcptransport

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// testSnapMsg returns a MsgSnap from -> to carrying data.
func testSnapMsg(from, to uint64, data []byte) raft.Message {
	return raft.Message{Type: raft.MsgSnap, From: from, To: to, Term: 4, Snapshot: &raft.Snapshot{
		Metadata: raft.SnapshotMetadata{Index: 100, Term: 3, ConfState: raft.ConfState{Voters: []uint64{1, 2, 3}}},
		Data:     data,
	}}
}

// testRandomData returns n seeded pseudo-random bytes.
func testRandomData(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func TestSnapshotStreaming64MiB(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	data := testRandomData(1, 64<<20)
	want := sha256.Sum256(data)
	snap := testSnapMsg(1, 2, data)
	start := time.Now()
	tc.nodes[1].tr.Send([]raft.Message{snap})
	// Ordinary traffic to node 3 keeps flowing meanwhile.
	tc.sendUntilDelivered(1, testApp(1, 3, 1))

	got := tc.nodes[2].h.next(t)
	require.Equal(t, raft.MsgSnap, got.Type)
	require.NotNil(t, got.Snapshot)
	assert.Equal(t, snap.Snapshot.Metadata, got.Snapshot.Metadata)
	assert.Equal(t, snap.Term, got.Term)
	assert.Equal(t, want, sha256.Sum256(got.Snapshot.Data), "the data arrived intact")
	assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFinish}, tc.nodes[1].h.waitSnapshot(t))
	t.Logf("64 MiB snapshot in %v", time.Since(start))
}

func TestSnapshotToDownPeerFails(t *testing.T) {
	tc := newTestCluster(t, 2, nil)
	require.NoError(t, tc.nodes[2].tr.Close())
	tc.nodes[1].tr.Send([]raft.Message{testSnapMsg(1, 2, []byte("state"))})
	assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFailure}, tc.nodes[1].h.waitSnapshot(t))
}

func TestSnapshotToUnknownPeerFails(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	tc.nodes[1].tr.Send([]raft.Message{testSnapMsg(1, 5, []byte("state"))})
	assert.Equal(t, testSnapStatus{id: 5, status: raft.SnapshotFailure}, tc.nodes[1].h.waitSnapshot(t))
}

func TestSnapshotRateLimit(t *testing.T) {
	const size, rate = 1 << 20, 4 << 20
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		c.SnapshotMinThroughput = 1 << 20
		c.SnapshotRateLimit = rate
		c.SnapshotChunkSize = 64 << 10
	})
	start := time.Now()
	tc.nodes[1].tr.Send([]raft.Message{testSnapMsg(1, 2, testRandomData(2, size))})
	assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFinish}, tc.nodes[1].h.waitSnapshot(t))
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, time.Duration(float64(size)/rate*float64(time.Second))*9/10,
		"1 MiB at 4 MiB/s takes about 250 ms")
	assert.Equal(t, raft.MsgSnap, tc.nodes[2].h.next(t).Type)
}

func TestSnapshotTooManyStreams(t *testing.T) {
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		c.MaxSnapshotStreams = 1
		c.SnapshotMinThroughput = 1 << 20
		c.SnapshotRateLimit = 1 << 20 // the first stream takes a while
	})
	tc.nodes[1].tr.Send([]raft.Message{testSnapMsg(1, 2, make([]byte, 256<<10)), testSnapMsg(1, 2, []byte("x"))})
	assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFailure}, tc.nodes[1].h.waitSnapshot(t), "the second is refused at once")
	assert.Equal(t, testSnapStatus{id: 2, status: raft.SnapshotFinish}, tc.nodes[1].h.waitSnapshot(t))
}

// TestSnapshotStreamRefused drives the sender side by hand: every bad
// stream is refused with a reason, logged, and nothing reaches the handler.
func TestSnapshotStreamRefused(t *testing.T) {
	data := []byte("0123456789abcdef")
	sum := sha256.Sum256(data)
	header := func(tb testing.TB, size uint64) []byte {
		m := testSnapMsg(2, 1, nil)
		return testFrame(tb, &wire.SnapshotStreamHeader{Message: m, Size: size})
	}
	chunk := func(tb testing.TB, b []byte) []byte {
		f, err := testCodec.AppendRawFrame(nil, wire.FrameSnapshotChunk, b)
		require.NoError(tb, err)
		return f
	}
	end := func(tb testing.TB, h []byte) []byte { return testFrame(tb, &wire.SnapshotStreamEnd{SHA256: h}) }
	tests := []struct {
		name   string
		stream func(tb testing.TB) []byte
		reason string // in the ack and the log
	}{
		{
			name: "checksum mismatch",
			stream: func(tb testing.TB) []byte {
				bad := sum
				bad[0] ^= 1
				return bytes.Join([][]byte{header(tb, 16), chunk(tb, data[:8]), chunk(tb, data[8:]), end(tb, bad[:])}, nil)
			},
			reason: "checksum mismatch",
		},
		{
			name: "corrupted chunk",
			stream: func(tb testing.TB) []byte {
				bad := bytes.Clone(data)
				bad[3] = 'X'
				return bytes.Join([][]byte{header(tb, 16), chunk(tb, bad), end(tb, sum[:])}, nil)
			},
			reason: "checksum mismatch",
		},
		{
			name:   "more data than declared",
			stream: func(tb testing.TB) []byte { return bytes.Join([][]byte{header(tb, 8), chunk(tb, data)}, nil) },
			reason: "more data than the declared 8 bytes",
		},
		{
			name: "less data than declared",
			stream: func(tb testing.TB) []byte {
				return bytes.Join([][]byte{header(tb, 32), chunk(tb, data), end(tb, sum[:])}, nil)
			},
			reason: "got 16 bytes, 32 declared",
		},
		{
			name:   "declared size over the maximum",
			stream: func(tb testing.TB) []byte { return header(tb, 1<<40) },
			reason: "exceeds the maximum",
		},
	}
	for _, streaming := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if streaming {
				name += " to a streaming handler"
			}
			t.Run(name, func(t *testing.T) {
				tc := newTestCluster(t, 2, func(id uint64, c *Config) {
					c.MaxSnapshotSize = 1 << 20
					if streaming {
						withStreamHandler(nil)(id, c)
					}
				})
				conn := rawDial(t, tc.nodes[1], wire.Handshake{ClusterID: 0xC1, From: 2, To: 1, Stream: wire.StreamSnapshot})
				defer conn.Close()
				testWrite(t, conn, tt.stream(t))
				ack := testReadAck(t, conn)
				assert.False(t, ack.OK)
				assert.Contains(t, ack.Reason, tt.reason)
				expectClosed(t, conn)
				waitLog(t, tc.nodes[1], tt.reason)
				tc.nodes[1].h.expectNone(t, 0)
			})
		}
	}
}

func TestSnapshotSlowSenderCutOff(t *testing.T) {
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		c.KeepAliveInterval = 100 * time.Millisecond
		c.ReadTimeout = time.Second
	})
	conn := rawDial(t, tc.nodes[1], wire.Handshake{ClusterID: 0xC1, From: 2, To: 1, Stream: wire.StreamSnapshot})
	defer conn.Close()
	hdr := testFrame(t, &wire.SnapshotStreamHeader{Message: testSnapMsg(2, 1, nil), Size: 1000})
	testWrite(t, conn, hdr)
	testWrite(t, conn, testHeader(wire.FrameSnapshotChunk, 1000)) // and never the chunk
	expectClosed(t, conn)
	waitLog(t, tc.nodes[1], "i/o timeout")
	tc.nodes[1].h.expectNone(t, 0)
}

func testReadAck(tb testing.TB, conn net.Conn) wire.SnapshotStreamAck {
	tb.Helper()
	require.NoError(tb, conn.SetReadDeadline(time.Now().Add(waitTimeout)))
	h, p, err := testCodec.ReadFrame(conn, nil)
	require.NoError(tb, err)
	require.Equal(tb, wire.FrameSnapshotAck, h.Type)
	var ack wire.SnapshotStreamAck
	require.NoError(tb, testCodec.Decode(h.Type, p, &ack))
	return ack
}
