package tcptransport

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// testSecret is the peer secret of the secured test clusters.
var testSecret = []byte("keel test peer secret, 32 bytes")

// withSecret configures a test node to authenticate its peers with secret.
func withSecret(secret []byte) func(id uint64, c *Config) {
	return func(id uint64, c *Config) {
		c.Insecure = false
		c.PeerSecret = secret
	}
}

// recordingConn records what is written to it.
type recordingConn struct {
	net.Conn
	sent bytes.Buffer
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.sent.Write(p)
	return c.Conn.Write(p)
}

// refusalReason returns the reason of a *refusal, or fails.
func refusalReason(tb testing.TB, err error) wire.HandshakeReason {
	tb.Helper()
	var r *refusal
	require.True(tb, errors.As(err, &r), "want a refusal, got %v", err)
	return r.reason
}

// forgedSnapshotStream is a complete, well-formed snapshot stream from
// node 2 at a high term.
func forgedSnapshotStream(tb testing.TB) []byte {
	m := testSnapMsg(2, 1, nil)
	m.Term = 1 << 40
	return bytes.Join([][]byte{
		testFrame(tb, &wire.SnapshotStreamHeader{Message: m, Size: 0}),
		testFrame(tb, &wire.SnapshotStreamEnd{SHA256: testSHA256(nil)}),
	}, nil)
}

// TestStrangerWithClusterIDRefused: with a peer secret, someone who knows
// the cluster ID and the members but not the secret gets no heartbeat and
// no snapshot through, whether it sends no proof, a made-up one, or the
// acceptor's own proof reflected back.
func TestStrangerWithClusterIDRefused(t *testing.T) {
	tc := newTestCluster(t, 2, withSecret(testSecret))
	tc.sendUntilDelivered(2, testApp(2, 1, 1)) // the real node 2 gets through
	hb := testFrame(t, &raft.Message{Type: raft.MsgHeartbeat, From: 2, To: 1, Term: 1 << 40})
	tests := []struct {
		name   string
		stream wire.StreamKind
		secret []byte // what the stranger believes the secret is
		want   wire.HandshakeReason
		reason string // in node 1's log
	}{
		{name: "no secret, heartbeat", stream: wire.StreamHeartbeats, want: wire.HandshakeAuthRequired, reason: "authentication required"},
		{name: "no secret, snapshot", stream: wire.StreamSnapshot, want: wire.HandshakeAuthRequired, reason: "authentication required"},
		{name: "wrong secret, heartbeat", stream: wire.StreamHeartbeats, secret: []byte("a guess at the secret, 32 bytes!"), want: wire.HandshakeAuthFailed, reason: "does not know the peer secret"},
		{name: "wrong secret, snapshot", stream: wire.StreamSnapshot, secret: []byte("a guess at the secret, 32 bytes!"), want: wire.HandshakeAuthFailed, reason: "does not know the peer secret"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc.nodes[1].logs.TakeAll()
			// From a host of its own: warnings are rate-limited per host.
			conn, err := testDialFrom(i).Dial("tcp", tc.nodes[1].addr)
			require.NoError(t, err)
			defer conn.Close()
			err = rawHandshake(t, conn, wire.Handshake{ClusterID: 0xC1, From: 2, To: 1, Stream: tt.stream}, tt.secret)
			assert.Equal(t, tt.want, refusalReason(t, err), "the stranger learns why")
			// Whatever it sends next goes nowhere.
			_, _ = conn.Write(hb)
			_, _ = conn.Write(forgedSnapshotStream(t))
			expectClosed(t, conn)
			text := waitLog(t, tc.nodes[1], tt.reason)
			assert.Contains(t, text, "refused handshake")
			assert.Contains(t, text, "peer=2", "the claimed node ID, in decimal")
			tc.nodes[1].h.expectNone(t, 50*time.Millisecond)
		})
	}

	t.Run("acceptor's proof reflected", func(t *testing.T) {
		conn, err := net.Dial("tcp", tc.nodes[1].addr)
		require.NoError(t, err)
		defer conn.Close()
		hello := wire.Handshake{ClusterID: 0xC1, From: 2, To: 1, Stream: wire.StreamHeartbeats, Version: wire.HandshakeVersion, Nonce: newNonce()}
		testWrite(t, conn, testFrame(t, &hello))
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(waitTimeout)))
		ch, err := testReadHandshake(conn)
		require.NoError(t, err)
		require.Len(t, ch.MAC, wire.HandshakeMACSize)
		testWrite(t, conn, testFrame(t, &wire.Handshake{MAC: ch.MAC}))
		v, err := testReadHandshake(conn)
		require.NoError(t, err)
		assert.Equal(t, wire.HandshakeAuthFailed, v.Reason)
		_, _ = conn.Write(hb)
		expectClosed(t, conn)
		tc.nodes[1].h.expectNone(t, 50*time.Millisecond)
	})
}

// TestReplayedHandshakeRefused records a genuine dialer's handshake and
// replays it byte for byte: the acceptor's fresh nonce makes the recorded
// proof worthless.
func TestReplayedHandshakeRefused(t *testing.T) {
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		withSecret(testSecret)(id, c)
		withPhantom(id, c)
	})
	raw, err := net.Dial("tcp", tc.nodes[1].addr)
	require.NoError(t, err)
	rec := &recordingConn{Conn: raw}
	hello := wire.Handshake{ClusterID: 0xC1, From: testPhantom, To: 1, Stream: wire.StreamHeartbeats}
	require.NoError(t, rawHandshake(t, rec, hello, testSecret), "the genuine handshake succeeds")
	hb := testFrame(t, &raft.Message{Type: raft.MsgHeartbeat, From: testPhantom, To: 1, Term: 1})
	testWrite(t, rec, hb)
	assert.Equal(t, raft.MsgHeartbeat, tc.nodes[1].h.next(t).Type)
	recorded := bytes.Clone(rec.sent.Bytes())
	require.NoError(t, raw.Close())

	replay, err := net.Dial("tcp", tc.nodes[1].addr)
	require.NoError(t, err)
	defer replay.Close()
	testWrite(t, replay, recorded)
	require.NoError(t, replay.SetReadDeadline(time.Now().Add(waitTimeout)))
	ch, err := testReadHandshake(replay)
	require.NoError(t, err)
	assert.Equal(t, wire.HandshakeOK, ch.Reason, "the hello alone proves nothing yet")
	v, err := testReadHandshake(replay)
	require.NoError(t, err)
	assert.Equal(t, wire.HandshakeAuthFailed, v.Reason)
	expectClosed(t, replay)
	waitLog(t, tc.nodes[1], "node 3 does not know the peer secret")
	tc.nodes[1].h.expectNone(t, 50*time.Millisecond)
}

// TestWrongSecretTransportRefused: a whole transport with another secret
// reaches nothing, and both sides say why.
func TestWrongSecretTransportRefused(t *testing.T) {
	tc := newTestCluster(t, 1, withSecret(testSecret))
	tc.nodes[1].tr.AddPeer(2, "127.0.0.1:1")
	h := newTestHandler()
	cfg := Config{ID: 2, ClusterID: 0xC1, ListenAddr: "127.0.0.1:0", Handler: h, Peers: map[uint64]string{1: tc.nodes[1].addr},
		PeerSecret: []byte("another cluster's secret, 32 b.")}
	testFastConfig(&cfg)
	logger, obs := newTestLog(2)
	cfg.Logger = logger
	tr, err := New(cfg)
	require.NoError(t, err)
	defer tr.Close()
	tr.Send([]raft.Message{testApp(2, 1, 1)})
	h.waitUnreachable(t, 1)
	waitLog(t, tc.nodes[1], "authentication failed")
	waitLog(t, obs, "authentication failed")
	tc.nodes[1].h.expectNone(t, 50*time.Millisecond)
}

// TestTLSCertificateMustProveNodeID: with node certificates, a handshake
// must claim the node its certificate names; a client certificate from the
// same CA proves no node; and a dialer refuses an acceptor whose
// certificate names another node than the one it dialled.
func TestTLSCertificateMustProveNodeID(t *testing.T) {
	ca := newTestCA(t, "keel test CA")
	certs := map[uint64]tls.Certificate{}
	for id := uint64(1); id <= 3; id++ {
		certs[id] = ca.issue(t, "node", int64(10+id), NodeURI(0xC1, id))
	}
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		c.TLS = ca.mutualTLS(certs[id])
		c.Insecure = false
		withPhantom(id, c)
	})
	tc.sendUntilDelivered(2, testApp(2, 1, 1))

	tests := []struct {
		name  string
		cert  tls.Certificate
		from  uint64
		given string // in node 1's log
	}{
		{name: "node 3's certificate claiming node 2", cert: certs[3], from: 2, given: "the certificate names node 3, the handshake node 2"},
		{name: "client certificate claiming node 3", cert: ca.issue(t, "client", 50), from: 3, given: "names no node of this cluster"},
		{name: "certificate of another cluster's node 3", cert: ca.issue(t, "node", 51, NodeURI(0xC2, 3)), from: 3, given: "names no node of this cluster"},
		{name: "certificate naming two nodes", cert: ca.issue(t, "node", 52, NodeURI(0xC1, 2), NodeURI(0xC1, 3)), from: 3, given: "names two nodes"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc.nodes[1].logs.TakeAll()
			d := tls.Dialer{NetDialer: testDialFrom(i), Config: ca.mutualTLS(tt.cert)}
			conn, err := d.Dial("tcp", tc.nodes[1].addr)
			require.NoError(t, err)
			defer conn.Close()
			err = rawHandshake(t, conn, wire.Handshake{ClusterID: 0xC1, From: tt.from, To: 1, Stream: wire.StreamSnapshot}, nil)
			assert.Equal(t, wire.HandshakeBadIdentity, refusalReason(t, err))
			_, _ = conn.Write(forgedSnapshotStream(t))
			expectClosed(t, conn)
			assert.Contains(t, waitLog(t, tc.nodes[1], tt.given), "refused handshake")
			tc.nodes[1].h.expectNone(t, 50*time.Millisecond)
		})
	}

	t.Run("acceptor with another node's certificate", func(t *testing.T) {
		// An impostor listens where node 1 believes node 3 is, with node
		// 2's genuine certificate: node 1 refuses to talk to it.
		h := newTestHandler()
		logger, obs := newTestLog(3)
		cfg := Config{ID: 3, ClusterID: 0xC1, ListenAddr: "127.0.0.1:0", Handler: h, Logger: logger,
			Peers: map[uint64]string{1: tc.nodes[1].addr}, TLS: ca.mutualTLS(certs[2]), Insecure: true}
		testFastConfig(&cfg)
		imp, err := New(cfg)
		require.NoError(t, err)
		defer imp.Close()
		tc.nodes[1].tr.AddPeer(testPhantom, imp.Addr().String())
		tc.nodes[1].tr.Send([]raft.Message{testApp(1, testPhantom, 1)})
		waitLog(t, tc.nodes[1], "the certificate names node 2, the handshake node 3")
		waitLog(t, obs, "refused by the peer: certificate does not prove the node ID")
		h.expectNone(t, 50*time.Millisecond)
	})
}

// TestHandshakeFloodBounded opens many connections that never handshake,
// from one address: the node holds at most MaxHandshakesPerHost of them
// (and closes the rest at once), and a real peer still connects and
// delivers.
func TestHandshakeFloodBounded(t *testing.T) {
	const flood = 2000
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		c.MaxHandshakes = 16
		c.MaxHandshakesPerHost = 4
		c.HandshakeTimeout = time.Minute // the flood is never cut by time
		c.WarnInterval = time.Hour
	})
	nd := tc.nodes[1]
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range flood {
		c, err := d.Dial("tcp", nd.addr)
		if err != nil {
			continue // the backlog is full: as good as refused
		}
		conns = append(conns, c)
	}
	// Node 2 (from 127.0.0.1) restarts its streams, and delivers.
	tc.nodes[2].tr.RemovePeer(1)
	tc.nodes[2].tr.AddPeer(1, nd.addr)
	got := tc.sendUntilDelivered(2, testApp(2, 1, 7))
	assert.Equal(t, uint64(7), got.Index)

	nd.tr.mu.RLock()
	pending, inbound := nd.tr.pending, len(nd.tr.inbound)
	nd.tr.mu.RUnlock()
	t.Logf("%d flood connections dialled; node 1 holds %d in their handshake, %d inbound in all", len(conns), pending, inbound)
	assert.LessOrEqual(t, pending, 4+2, "at most MaxHandshakesPerHost from the flood, plus node 2's in progress")
	assert.LessOrEqual(t, inbound, 4+2+3)
	var limitWarnings int
	for _, e := range nd.logs.All() {
		if strings.Contains(e.Message, "too many connections") {
			limitWarnings++
		}
	}
	assert.Equal(t, 1, limitWarnings, "the refusals are logged once per WarnInterval")
}

// TestGarbageWarningsRateLimited: a host sending garbage on connection
// after connection gets one warning logged per WarnInterval, not one per
// connection.
func TestGarbageWarningsRateLimited(t *testing.T) {
	const conns = 200
	tc := newTestCluster(t, 1, func(id uint64, c *Config) { c.WarnInterval = time.Hour })
	nd := tc.nodes[1]
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	for range conns {
		c, err := d.Dial("tcp", nd.addr)
		require.NoError(t, err)
		testWrite(t, c, []byte("\x16\x03\x01 garbage, not a frame"))
		expectClosed(t, c)
		_ = c.Close()
	}
	var warnings int
	for _, e := range nd.logs.All() {
		if e.Level >= zapcore.WarnLevel {
			warnings++
		}
	}
	t.Logf("%d garbage connections, %d warnings", conns, warnings)
	assert.Equal(t, 1, warnings)
}

func TestWarnLimiterReportsSuppressed(t *testing.T) {
	now := time.Unix(1000, 0)
	w := newWarnLimiter(10*time.Second, func() time.Time { return now })
	ok, n := w.allow("host a")
	assert.True(t, ok)
	assert.Zero(t, n)
	for range 5 {
		ok, _ = w.allow("host a")
		assert.False(t, ok)
	}
	ok, _ = w.allow("host b")
	assert.True(t, ok, "keys are limited separately")
	now = now.Add(10 * time.Second)
	ok, n = w.allow("host a")
	assert.True(t, ok)
	assert.Equal(t, 5, n)

	// Beyond maxWarnKeys, new keys share one budget.
	for i := range 2 * maxWarnKeys {
		w.allow("many " + string(rune(i)))
	}
	assert.LessOrEqual(t, len(w.keys), maxWarnKeys+1)
}

func testSHA256(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}

// newTestLog returns a logger observed by the returned testNode, for
// waitLog, for a transport made by hand as node id.
func newTestLog(id uint64) (*zap.Logger, *testNode) {
	obs, logs := observer.New(zapcore.DebugLevel)
	nd := &testNode{id: id, logs: logs, logged: make(chan struct{}, 1)}
	core := zapcore.RegisterHooks(obs, func(zapcore.Entry) error {
		select {
		case nd.logged <- struct{}{}:
		default:
		}
		return nil
	})
	return zap.New(core), nd
}

// testDialFrom returns a dialer from loopback address 127.0.0.(10+i), a
// remote host of its own for the transport's per-host limits.
func testDialFrom(i int) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i))}}
}

// TestSnapshotStreamBoundedInMemory streams a snapshot that would be 1 GiB
// (generated on the fly) from a peer to a receiver whose MaxSnapshotSize is
// 256 MiB: the receiver writes what it accepts to a file, cuts the stream
// at its limit, and its heap never grows by more than 64 MiB. Meanwhile a
// second snapshot from the same peer is refused.
func TestSnapshotStreamBoundedInMemory(t *testing.T) {
	const (
		limit = 256 << 20
		total = 1 << 30
		chunk = 1 << 20
	)
	dir := t.TempDir()
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		c.MaxSnapshotSize = limit
		c.SnapshotDir = dir
		withPhantom(id, c)
	})
	conn := rawDial(t, tc.nodes[1], wire.Handshake{ClusterID: 0xC1, From: testPhantom, To: 1, Stream: wire.StreamSnapshot})
	defer conn.Close()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse

	// The header admits limit bytes; the sender goes on past them.
	testWrite(t, conn, testFrame(t, &wire.SnapshotStreamHeader{Message: testSnapMsg(testPhantom, 1, nil), Size: limit}))
	sent := make(chan int64, 1)
	midway := make(chan struct{})
	go func() {
		payload := bytes.Repeat([]byte{0xA5}, chunk)
		frame, _ := testCodec.AppendFrameHeader(nil, wire.FrameSnapshotChunk, chunk)
		frame = append(frame, payload...)
		var n int64
		for n < total {
			if _, err := conn.Write(frame); err != nil {
				break
			}
			if n += chunk; n == 32<<20 {
				close(midway)
			}
		}
		sent <- n
	}()

	// Sample the heap while the stream runs.
	stopSampling := make(chan struct{})
	peak := make(chan uint64, 1)
	go func() {
		var max uint64
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			max = maxU64(max, ms.HeapInuse)
			select {
			case <-stopSampling:
				peak <- max
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	<-midway
	second, err := net.Dial("tcp", tc.nodes[1].addr)
	require.NoError(t, err)
	defer second.Close()
	err = rawHandshake(t, second, wire.Handshake{ClusterID: 0xC1, From: testPhantom, To: 1, Stream: wire.StreamSnapshot}, nil)
	assert.Equal(t, wire.HandshakeBusy, refusalReason(t, err), "one snapshot stream per peer at a time")

	ack := testReadAck(t, conn)
	assert.False(t, ack.OK)
	assert.Contains(t, ack.Reason, "more data than the declared")
	_ = conn.Close()
	n := <-sent
	close(stopSampling)
	grew := int64(<-peak) - int64(base)
	t.Logf("sent %d MiB of %d MiB before the cut; heap in use grew by at most %.1f MiB", n>>20, total>>20, float64(grew)/(1<<20))
	assert.Less(t, n, int64(total), "cut before the end")
	assert.Less(t, grew, int64(64<<20))
	tc.nodes[1].h.expectNone(t, 0)
	// Nothing is left behind in the snapshot directory.
	tc.closeAll()
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left)
}

func maxU64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// TestUnsendableMessageDroppedNotRetried: a message larger than the frame
// limit is dropped and reported, logged once however often it is sent
// again, and what follows is still delivered; an entry of
// MaxEntryDataSize bytes, with every other field at its largest, is.
func TestUnsendableMessageDroppedNotRetried(t *testing.T) {
	const frame = 64 << 10
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		c.Codec.MaxFrameSize = frame
		c.SnapshotChunkSize = 16 << 10
		c.WarnInterval = time.Hour
	})
	tr := tc.nodes[1].tr
	assert.Equal(t, frame, tr.MaxMessageSize())
	max := tr.MaxEntryDataSize()
	assert.Greater(t, max, frame-256)

	const top = ^uint64(0)
	big := raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: top, LogTerm: top, Index: top, Commit: top,
		Reject: true, RejectHint: top, Entries: []raft.Entry{{Term: top, Index: top, Type: 0xff, Data: make([]byte, max)}}}
	got := tc.sendUntilDelivered(1, big)
	assert.Len(t, got.Entries[0].Data, max)

	tooBig := testApp(1, 2, 5)
	tooBig.Entries = []raft.Entry{{Term: 1, Index: 5, Data: make([]byte, frame)}}
	for range 20 {
		tr.Send([]raft.Message{tooBig})
	}
	tc.nodes[1].h.waitUnreachable(t, 2)
	tr.Send([]raft.Message{testApp(1, 2, 6)})
	assert.Equal(t, uint64(6), tc.nodes[2].h.next(t).Index, "the stream goes on")
	var warnings int
	for _, e := range tc.nodes[1].logs.All() {
		if strings.Contains(e.Message, "can never be sent") {
			warnings++
		}
	}
	assert.Equal(t, 1, warnings)
}

func TestCertNodeIDAcceptsOnlyTheDocumentedForm(t *testing.T) {
	parse := func(s string) *url.URL {
		u, err := url.Parse(s)
		require.NoError(t, err)
		return u
	}
	tests := []struct {
		uris []string
		want uint64 // 0: refused
	}{
		{uris: []string{"keel://cluster/7/node/2"}, want: 2},
		{uris: []string{"spiffe://example.org/x", "keel://cluster/8/node/5", "keel://cluster/7/node/3"}, want: 3},
		{uris: []string{"keel://cluster/7/node/3", "keel://cluster/7/node/3"}, want: 3},
		{uris: []string{"keel://cluster/7/node/3", "keel://cluster/7/node/4"}},
		{uris: []string{"keel://cluster/7/node/02"}},
		{uris: []string{"keel://cluster/07/node/2"}},
		{uris: []string{"keel://cluster/7/node/0"}},
		{uris: []string{"keel://cluster/7/node/2/"}},
		{uris: []string{"keel://cluster/7/node/2?x=1"}},
		{uris: []string{"keel://user@cluster/7/node/2"}},
		{uris: []string{"keel://cluster:1/7/node/2"}},
		{uris: []string{"keel://other/7/node/2"}},
		{uris: []string{"keel://cluster/7/peer/2"}},
		{uris: []string{"keel://cluster/7/node/-2"}},
		{uris: []string{"https://cluster/7/node/2"}},
		{},
	}
	for _, tt := range tests {
		cert := &x509.Certificate{}
		for _, s := range tt.uris {
			cert.URIs = append(cert.URIs, parse(s))
		}
		got, err := CertNodeID(cert, 7)
		if tt.want == 0 {
			assert.Error(t, err, "%v", tt.uris)
			continue
		}
		assert.NoError(t, err, "%v", tt.uris)
		assert.Equal(t, tt.want, got, "%v", tt.uris)
	}
	assert.Equal(t, "keel://cluster/7/node/2", NodeURI(7, 2).String())
	id, err := CertNodeID(&x509.Certificate{URIs: []*url.URL{NodeURI(^uint64(0), 9)}}, ^uint64(0))
	assert.NoError(t, err)
	assert.Equal(t, uint64(9), id)
}
