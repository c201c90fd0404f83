package tcptransport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

var testCodec = func() *wire.Codec {
	c, err := wire.NewCodec(wire.CodecOptions{})
	if err != nil {
		panic(err)
	}
	return c
}()

// testFrame encodes v as a frame.
func testFrame(tb testing.TB, v wire.FramePayload) []byte {
	tb.Helper()
	b, err := testCodec.AppendFrame(nil, v)
	require.NoError(tb, err)
	return b
}

// testHeader builds a frame header by hand.
func testHeader(t wire.FrameType, length uint32) []byte {
	h := []byte{'K', 'L', wire.FrameVersion, byte(t), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[4:], length)
	return h
}

// rawDial connects to nd as a hand-driven client and completes the
// handshake hello (without a secret), which nd must accept.
func rawDial(tb testing.TB, nd *testNode, hello wire.Handshake) net.Conn {
	tb.Helper()
	conn, err := net.Dial("tcp", nd.addr)
	require.NoError(tb, err)
	require.NoError(tb, rawHandshake(tb, conn, hello, nil))
	return conn
}

// rawHandshake drives the dialer's side of the handshake by hand on conn:
// it sends hello (with Version and, if secret is set, a nonce added), then
// the proof, and returns an error if the acceptor refuses.
func rawHandshake(tb testing.TB, conn net.Conn, hello wire.Handshake, secret []byte) error {
	tb.Helper()
	require.NoError(tb, conn.SetDeadline(time.Now().Add(waitTimeout)))
	defer func() { _ = conn.SetDeadline(time.Time{}) }()
	if hello.Version == 0 {
		hello.Version = wire.HandshakeVersion
	}
	if secret != nil && hello.Nonce == nil {
		hello.Nonce = newNonce()
	}
	testWrite(tb, conn, testFrame(tb, &hello))
	ch, err := testReadHandshake(conn)
	if err != nil {
		return err
	}
	if ch.Reason != wire.HandshakeOK {
		return &refusal{reason: ch.Reason, byPeer: true}
	}
	var proof wire.Handshake
	if secret != nil {
		proof.MAC = handshakeMAC(secret, roleDialer, hello.ClusterID, hello.From, hello.To, hello.Stream, hello.Nonce, ch.Nonce)
	}
	testWrite(tb, conn, testFrame(tb, &proof))
	v, err := testReadHandshake(conn)
	if err != nil {
		return err
	}
	if v.Reason != wire.HandshakeOK {
		return &refusal{reason: v.Reason, byPeer: true}
	}
	return nil
}

// testReadHandshake reads one handshake frame.
func testReadHandshake(conn net.Conn) (wire.Handshake, error) {
	var hs wire.Handshake
	h, p, err := testCodec.ReadFrameLimit(conn, nil, maxControlFrame)
	if err != nil {
		return hs, err
	}
	if h.Type != wire.FrameHandshake {
		return hs, fmt.Errorf("got %s, want a handshake", h.Type)
	}
	return hs, testCodec.Decode(h.Type, p, &hs)
}

// expectClosed waits until the other side closes conn (reading returns EOF
// or a reset, never our own timeout).
func expectClosed(tb testing.TB, conn net.Conn) {
	tb.Helper()
	require.NoError(tb, conn.SetReadDeadline(time.Now().Add(waitTimeout)))
	buf := make([]byte, 4096)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue
		}
		require.False(tb, errors.Is(err, os.ErrDeadlineExceeded), "connection still open after %v", waitTimeout)
		return
	}
}

func TestHandshakeRefused(t *testing.T) {
	const cluster = 0xC1
	tests := []struct {
		name   string
		data   func(tb testing.TB) []byte
		reason string
	}{
		{
			name: "another cluster",
			data: func(tb testing.TB) []byte {
				return testFrame(tb, &wire.Handshake{ClusterID: 0xBAD, From: 2, To: 1, Stream: wire.StreamMessages, Version: wire.HandshakeVersion})
			},
			reason: "cluster ID 2989, want 193",
		},
		{
			name: "unknown node",
			data: func(tb testing.TB) []byte {
				return testFrame(tb, &wire.Handshake{ClusterID: cluster, From: 7, To: 1, Stream: wire.StreamMessages, Version: wire.HandshakeVersion})
			},
			reason: "unknown node 7",
		},
		{
			name: "meant for another node",
			data: func(tb testing.TB) []byte {
				return testFrame(tb, &wire.Handshake{ClusterID: cluster, From: 2, To: 3, Stream: wire.StreamMessages, Version: wire.HandshakeVersion})
			},
			reason: "connection for node 3",
		},
		{
			name: "unknown stream kind",
			data: func(tb testing.TB) []byte {
				return testFrame(tb, &wire.Handshake{ClusterID: cluster, From: 2, To: 1, Stream: 9, Version: wire.HandshakeVersion})
			},
			reason: "unknown stream kind 9",
		},
		{
			name: "version 1 handshake",
			data: func(tb testing.TB) []byte {
				return testFrame(tb, &wire.Handshake{ClusterID: cluster, From: 2, To: 1, Stream: wire.StreamMessages})
			},
			reason: "handshake version 0, want 2",
		},
		{
			name: "message before handshake",
			data: func(tb testing.TB) []byte {
				return testFrame(tb, &raft.Message{Type: raft.MsgApp, From: 2, To: 1, Term: 1})
			},
			reason: "want a handshake",
		},
		{
			name:   "garbage",
			data:   func(testing.TB) []byte { return []byte("GET / HTTP/1.1\r\nHost: raft\r\n\r\n") },
			reason: "bad magic",
		},
		{
			name:   "oversized handshake before authentication",
			data:   func(testing.TB) []byte { return testHeader(wire.FrameHandshake, 1<<20) },
			reason: "4096 allowed here",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestCluster(t, 2, nil)
			conn, err := net.Dial("tcp", tc.nodes[1].addr)
			require.NoError(t, err)
			defer conn.Close()
			_, err = conn.Write(tt.data(t))
			require.NoError(t, err)
			expectClosed(t, conn)
			text := waitLog(t, tc.nodes[1], tt.reason)
			assert.Contains(t, text, "refused handshake")
			tc.nodes[1].h.expectNone(t, 0)
		})
	}
}

func TestOtherClusterTransportRefused(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	h := newTestHandler()
	cfg := Config{ID: 2, ClusterID: 0xBAD, ListenAddr: "127.0.0.1:0", Handler: h, Peers: map[uint64]string{1: tc.nodes[1].addr}, Insecure: true}
	testFastConfig(&cfg)
	tr, err := New(cfg)
	require.NoError(t, err)
	defer tr.Close()
	tr.Send([]raft.Message{testApp(2, 1, 1)})
	h.waitUnreachable(t, 1)
	waitLog(t, tc.nodes[1], "cluster ID 2989")
	tc.nodes[1].h.expectNone(t, 0)
}

// TestBadInput sends bad bytes over an accepted message stream: each case
// closes the connection with a logged reason, and the node keeps working.
func TestBadInput(t *testing.T) {
	huge := raft.Message{Type: raft.MsgApp, From: testPhantom, To: 1, Term: 1}
	tests := []struct {
		name   string
		send   func(tb testing.TB, conn net.Conn)
		reason string
	}{
		{
			name:   "garbage bytes",
			send:   func(tb testing.TB, conn net.Conn) { testWrite(tb, conn, []byte("\x00\xffnot a frame at all")) },
			reason: "bad magic",
		},
		{
			name: "truncated frame",
			send: func(tb testing.TB, conn net.Conn) {
				f := testFrame(tb, &huge)
				testWrite(tb, conn, f[:len(f)-2])
				require.NoError(tb, conn.(*net.TCPConn).CloseWrite())
			},
			reason: "unexpected EOF",
		},
		{
			name:   "oversized length",
			send:   func(tb testing.TB, conn net.Conn) { testWrite(tb, conn, testHeader(wire.FrameMessage, 1<<31)) },
			reason: "frame too large",
		},
		{
			name: "slow sender never finishes a frame",
			send: func(tb testing.TB, conn net.Conn) {
				testWrite(tb, conn, append(testHeader(wire.FrameMessage, 100), 0x8a, 0xa1))
			},
			reason: "i/o timeout",
		},
		{
			name: "undecodable payload",
			send: func(tb testing.TB, conn net.Conn) {
				testWrite(tb, conn, append(testHeader(wire.FrameMessage, 2), 0xc1, 0xc1))
			},
			reason: "invalid msgpack byte",
		},
		{
			name: "forged sender",
			send: func(tb testing.TB, conn net.Conn) {
				testWrite(tb, conn, testFrame(tb, &raft.Message{Type: raft.MsgApp, From: 2, To: 1, Term: 1}))
			},
			reason: "message from 2 on a connection from 3",
		},
		{
			name: "local message type",
			send: func(tb testing.TB, conn net.Conn) {
				testWrite(tb, conn, testFrame(tb, &raft.Message{Type: raft.MsgHup, From: testPhantom, To: 1}))
			},
			reason: "local message type MsgHup",
		},
		{
			name: "snapshot outside a snapshot stream",
			send: func(tb testing.TB, conn net.Conn) {
				testWrite(tb, conn, testFrame(tb, &raft.Message{Type: raft.MsgSnap, From: testPhantom, To: 1, Term: 1, Snapshot: &raft.Snapshot{}}))
			},
			reason: "MsgSnap on a StreamMessages",
		},
		{
			name:   "snapshot frame on a message stream",
			send:   func(tb testing.TB, conn net.Conn) { testWrite(tb, conn, testHeader(wire.FrameSnapshotChunk, 0)) },
			reason: "unexpected FrameSnapshotChunk",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestCluster(t, 2, func(id uint64, c *Config) {
				c.KeepAliveInterval = 100 * time.Millisecond
				c.ReadTimeout = time.Second
				withPhantom(id, c)
			})
			// Node 3 exists for node 1 but runs no transport: the test
			// speaks for it (a raw stream claiming to be node 2 would
			// replace, and be replaced by, node 2's own).
			conn := rawDial(t, tc.nodes[1], wire.Handshake{ClusterID: 0xC1, From: testPhantom, To: 1, Stream: wire.StreamMessages})
			defer conn.Close()
			// A good frame first: it is delivered.
			testWrite(t, conn, testFrame(t, &raft.Message{Type: raft.MsgHeartbeat, From: testPhantom, To: 1, Term: 1}))
			assert.Equal(t, raft.MsgHeartbeat, tc.nodes[1].h.next(t).Type)
			tt.send(t, conn)
			expectClosed(t, conn)
			text := waitLog(t, tc.nodes[1], tt.reason)
			assert.Contains(t, text, "closing connection")
			tc.nodes[1].h.expectNone(t, 0)
			// The node still talks to its real peer.
			got := tc.sendUntilDelivered(2, testApp(2, 1, 9))
			assert.Equal(t, uint64(9), got.Index)
		})
	}
}

// TestIdleConnectionKeptAlive checks that pings keep a quiet stream open
// well past ReadTimeout.
func TestIdleConnectionKeptAlive(t *testing.T) {
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		c.KeepAliveInterval = 40 * time.Millisecond
		c.ReadTimeout = 400 * time.Millisecond
	})
	tc.sendUntilDelivered(1, testApp(1, 2, 1))
	// Stay idle for three read timeouts; the connection must survive.
	<-time.After(1200 * time.Millisecond)
	tc.nodes[1].tr.Send([]raft.Message{testApp(1, 2, 2)})
	got := tc.nodes[2].h.next(t)
	assert.Equal(t, uint64(2), got.Index, "delivered on the first try")
	for _, e := range tc.nodes[1].logs.All() {
		assert.NotContains(t, e.Message, "lost connection")
	}
}

func testWrite(tb testing.TB, conn net.Conn, b []byte) {
	tb.Helper()
	_, err := conn.Write(b)
	require.NoError(tb, err)
}

// TestSilentConnectionCutOff checks that a connection that never sends its
// handshake is closed after HandshakeTimeout.
func TestSilentConnectionCutOff(t *testing.T) {
	tc := newTestCluster(t, 1, func(id uint64, c *Config) { c.HandshakeTimeout = 500 * time.Millisecond })
	conn, err := net.Dial("tcp", tc.nodes[1].addr)
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	expectClosed(t, conn)
	assert.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond)
	assert.Contains(t, waitLog(t, tc.nodes[1], "i/o timeout"), "refused handshake")
}
