package tcptransport

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// testApp returns an append from -> to whose Index is seq.
func testApp(from, to, seq uint64) raft.Message {
	return raft.Message{
		Type: raft.MsgApp, From: from, To: to, Term: 2, LogTerm: 2, Index: seq, Commit: seq,
		Entries: []raft.Entry{{Term: 2, Index: seq + 1, Data: []byte("payload")}},
	}
}

func TestOrderedDelivery(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	const n = 2000
	// Every node sends n appends to each other node, in batches.
	for seq := uint64(1); seq <= n; seq += 50 {
		for from := uint64(1); from <= 3; from++ {
			var batch []raft.Message
			for s := seq; s < seq+50; s++ {
				for to := uint64(1); to <= 3; to++ {
					if to != from {
						batch = append(batch, testApp(from, to, s))
					}
				}
			}
			tc.nodes[from].tr.Send(batch)
		}
	}
	for to := uint64(1); to <= 3; to++ {
		next := map[uint64]uint64{}
		for i := 0; i < 2*n; i++ {
			m := tc.nodes[to].h.next(t)
			require.Equal(t, to, m.To)
			require.Equal(t, next[m.From]+1, m.Index, "node %d: message from %d out of order", to, m.From)
			require.Equal(t, []raft.Entry{{Term: 2, Index: m.Index + 1, Data: []byte("payload")}}, m.Entries)
			next[m.From] = m.Index
		}
		for from := uint64(1); from <= 3; from++ {
			if from != to {
				assert.Equal(t, uint64(n), next[from], "node %d got all from %d", to, from)
			}
		}
		assert.Empty(t, tc.nodes[to].h.unreach, "nothing was dropped")
	}
}

func TestHeartbeatsNotStuckBehindAppends(t *testing.T) {
	release := make(chan struct{})
	stalled := make(chan struct{}, 1)
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		if id != 2 {
			return
		}
		h := c.Handler.(*testHandler)
		h.block = func(m raft.Message) {
			if m.Type == raft.MsgApp {
				select {
				case stalled <- struct{}{}:
				default:
				}
				<-release // the message stream stalls here
			}
		}
	})
	defer close(release)
	big := testApp(1, 2, 1)
	big.Entries[0].Data = make([]byte, 1<<20)
	var apps []raft.Message
	for i := 0; i < 8; i++ {
		apps = append(apps, big)
	}
	tc.nodes[1].tr.Send(apps)
	select {
	case <-stalled:
	case <-time.After(waitTimeout):
		t.Fatal("the first append never reached the handler")
	}
	hb := raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 2, Commit: 7}
	tc.nodes[1].tr.Send([]raft.Message{hb})
	got := tc.nodes[2].h.next(t)
	assert.Equal(t, hb, got, "the heartbeat overtakes the stalled appends")
}

func TestReconnectAfterPeerRestart(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	got := tc.sendUntilDelivered(1, testApp(1, 2, 1))
	require.Equal(t, uint64(1), got.Index)

	require.NoError(t, tc.nodes[2].tr.Close())
	waitLog(t, tc.nodes[1], "lost connection to peer")
	tc.nodes[1].tr.Send([]raft.Message{testApp(1, 2, 2)})
	tc.nodes[1].h.waitUnreachable(t, 2)

	// Node 3 is not affected meanwhile.
	got = tc.sendUntilDelivered(1, testApp(1, 3, 3))
	assert.Equal(t, uint64(3), got.Index)

	// Node 2 comes back on the same address; both directions work again.
	tc.start(2, nil, nil)
	got = tc.sendUntilDelivered(1, testApp(1, 2, 4))
	assert.Equal(t, uint64(4), got.Index)
	got = tc.sendUntilDelivered(2, testApp(2, 1, 5))
	assert.Equal(t, uint64(5), got.Index)
	waitLog(t, tc.nodes[1], "peer reachable again")
}

// TestRestartedPeerIsRedialledAtOnce checks that a peer which dials us cuts
// our redial backoff short: node 1 waits a minute between dials, yet reaches
// node 2 as soon as node 2 is back and has connected to node 1.
func TestRestartedPeerIsRedialledAtOnce(t *testing.T) {
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		if id == 1 {
			c.MinBackoff, c.MaxBackoff = time.Minute, time.Minute
		}
	})
	tc.sendUntilDelivered(1, testApp(1, 2, 1))
	require.NoError(t, tc.nodes[2].tr.Close())
	waitLog(t, tc.nodes[1], "lost connection to peer")

	tc.start(2, nil, nil)
	got := tc.sendUntilDelivered(1, testApp(1, 2, 2))
	assert.Equal(t, uint64(2), got.Index)
}

func TestDownPeerDoesNotSlowOthers(t *testing.T) {
	// Node 3's address accepts TCP connections but never answers (a hung
	// process): dials to it time out in the handshake.
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer hung.Close()
	tc := newTestCluster(t, 3, func(id uint64, c *Config) {
		if id == 1 {
			c.Peers[3] = hung.Addr().String()
			c.QueueSize = 256
		}
	})
	require.NoError(t, tc.nodes[3].tr.Close())

	const n = 3000
	var sendTime time.Duration
	for seq := uint64(1); seq <= n; seq += 100 {
		var batch []raft.Message
		for s := seq; s < seq+100; s++ {
			batch = append(batch, testApp(1, 3, s), testApp(1, 2, s))
		}
		start := time.Now()
		tc.nodes[1].tr.Send(batch)
		sendTime += time.Since(start)
		// Let node 2 keep up, so its own queue never fills.
		for s := seq; s < seq+100; s++ {
			m := tc.nodes[2].h.next(t)
			require.Equal(t, s, m.Index)
		}
	}
	tc.nodes[1].h.waitUnreachable(t, 3)
	assert.Less(t, sendTime, time.Second, "Send must not block on a down peer")
}

func TestSendToUnknownOrLocal(t *testing.T) {
	tc := newTestCluster(t, 2, nil)
	tc.nodes[1].tr.Send([]raft.Message{
		{Type: raft.MsgApp, From: 1, To: 9, Term: 1},
		{Type: raft.MsgHup, From: 1, To: 2},
		{Type: raft.MsgApp, From: 1, To: 1, Term: 1},
	})
	tc.nodes[1].h.waitUnreachable(t, 9)
	got := tc.sendUntilDelivered(1, testApp(1, 2, 1))
	assert.Equal(t, raft.MsgApp, got.Type, "the local MsgHup was not sent")
}

func TestRemovePeer(t *testing.T) {
	tc := newTestCluster(t, 2, nil)
	tc.sendUntilDelivered(2, testApp(2, 1, 1))
	tc.nodes[1].tr.RemovePeer(2)
	tc.nodes[1].tr.Send([]raft.Message{testApp(1, 2, 1)})
	tc.nodes[1].h.waitUnreachable(t, 2)
	// Node 2's connections are refused from now on.
	tc.nodes[2].tr.Send([]raft.Message{testApp(2, 1, 2)})
	waitLog(t, tc.nodes[1], "unknown node 2")
	tc.nodes[1].h.expectNone(t, 100*time.Millisecond)
	// Adding it back restores both directions.
	tc.nodes[1].tr.AddPeer(2, tc.peers[2])
	got := tc.sendUntilDelivered(2, testApp(2, 1, 3))
	assert.Equal(t, uint64(3), got.Index)
}

func TestSendAfterClose(t *testing.T) {
	tc := newTestCluster(t, 2, nil)
	require.NoError(t, tc.nodes[1].tr.Close())
	require.NoError(t, tc.nodes[1].tr.Close(), "a second Close returns nil")
	tc.nodes[1].tr.Send([]raft.Message{testApp(1, 2, 1)})
	tc.nodes[1].tr.AddPeer(3, "127.0.0.1:1")
	tc.nodes[1].tr.RemovePeer(2)
	assert.Empty(t, tc.nodes[1].h.unreach)
}

func TestConfigErrors(t *testing.T) {
	h := newTestHandler()
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no ID", cfg: Config{Handler: h, ListenAddr: "127.0.0.1:0"}},
		{name: "no handler", cfg: Config{ID: 1, ListenAddr: "127.0.0.1:0"}},
		{name: "no address", cfg: Config{ID: 1, Handler: h}},
		{name: "self as peer", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", Peers: map[uint64]string{1: "x"}}},
		{name: "read timeout below keepalive", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", ReadTimeout: time.Second, KeepAliveInterval: 2 * time.Second}},
		{name: "chunk above frame size", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", SnapshotChunkSize: 2 << 20, Codec: wire.CodecOptions{MaxFrameSize: 1 << 20}}},
		{name: "rate below min throughput", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", SnapshotRateLimit: 1000}},
		{name: "bad listen address", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:99999", Insecure: true}},
		{name: "missing snapshot directory", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", Insecure: true, SnapshotDir: "/nonexistent/keel"}},
		{name: "no peer authentication", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0"}},
		{name: "short peer secret", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", PeerSecret: []byte("short")}},
		{name: "insecure with a secret", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", Insecure: true, PeerSecret: testSecret}},
		{name: "TLS that verifies nothing", cfg: Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", TLS: &tls.Config{InsecureSkipVerify: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(tt.cfg)
			assert.Error(t, err)
			assert.Nil(t, tr)
		})
	}
}

// An empty secret, as an empty command-line flag gives, is no secret: with
// Insecure the transport starts, without it the error says what is missing.
func TestEmptyPeerSecretIsUnset(t *testing.T) {
	h := newTestHandler()
	tr, err := New(Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", Insecure: true, PeerSecret: []byte("")})
	require.NoError(t, err)
	require.NoError(t, tr.Close())
	_, err = New(Config{ID: 1, Handler: h, ListenAddr: "127.0.0.1:0", PeerSecret: []byte("")})
	assert.ErrorContains(t, err, "no peer authentication")
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	check := goroutineBaseline(t)
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer hung.Close()
	tc := newTestCluster(t, 3, func(id uint64, c *Config) {
		c.Peers[99] = hung.Addr().String() // a peer that never answers
	})
	for from := uint64(1); from <= 3; from++ {
		for to := uint64(1); to <= 3; to++ {
			if from != to {
				tc.sendUntilDelivered(from, testApp(from, to, 1))
			}
		}
	}
	// A snapshot in flight and a stalled raw connection are cut by Close too.
	snap := testSnapMsg(1, 2, make([]byte, 4<<20))
	tc.nodes[1].tr.Send([]raft.Message{snap})
	conn := rawDial(t, tc.nodes[2], wire.Handshake{ClusterID: 0xC1, From: 3, To: 2, Stream: wire.StreamMessages})
	defer conn.Close()
	tc.closeAll()
	check()
}

func TestJitter(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
	}{
		{name: "zero", d: 0},
		{name: "one nanosecond", d: 1},
		{name: "min backoff", d: DefaultMinBackoff},
		{name: "max backoff", d: DefaultMaxBackoff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for i := 0; i < 200; i++ {
				j := jitter(tt.d)
				require.GreaterOrEqual(t, j, tt.d)
				require.LessOrEqual(t, j, tt.d+tt.d/2+1)
				seen[j] = true
			}
			if tt.d >= DefaultMinBackoff {
				assert.Greater(t, len(seen), 100, "waits are spread out")
			}
		})
	}
}

// TestRedialBacksOff points a peer at an address that accepts connections
// and closes them at once: the transport must redial with growing waits,
// not in a tight loop.
func TestRedialBacksOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepts := make(chan struct{}, 1<<16)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepts <- struct{}{}
			_ = conn.Close()
		}
	}()
	h := newTestHandler()
	cfg := Config{ID: 1, ClusterID: 0xC1, ListenAddr: "127.0.0.1:0", Handler: h, Peers: map[uint64]string{2: ln.Addr().String()}, Insecure: true}
	testFastConfig(&cfg)
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	tr, err := New(cfg)
	require.NoError(t, err)
	const window = 700 * time.Millisecond
	<-time.After(window) // the behaviour under test is the rate over time
	require.NoError(t, tr.Close())
	require.NoError(t, ln.Close())
	<-acceptDone
	// Two streams; each waits 10, 20, 40, 80, then 100 ms (+ up to 50%
	// jitter): about 8 dials each in 700 ms. A tight loop would make
	// thousands.
	n := len(accepts)
	t.Logf("%d dials in %v", n, window)
	assert.GreaterOrEqual(t, n, 4, "it keeps trying")
	assert.LessOrEqual(t, n, 40, "it backs off")
	h.waitUnreachable(t, 2)
}
