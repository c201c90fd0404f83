package tcptransport

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wire"
)

// Defaults for the zero fields of a Config.
const (
	DefaultQueueSize             = 4096
	DefaultHeartbeatQueueSize    = 256
	DefaultDialTimeout           = 2 * time.Second
	DefaultMinBackoff            = 50 * time.Millisecond
	DefaultMaxBackoff            = 2 * time.Second
	DefaultKeepAliveInterval     = time.Second
	DefaultReadTimeout           = 10 * time.Second
	DefaultWriteTimeout          = 10 * time.Second
	DefaultSnapshotChunkSize     = 1 << 20
	DefaultSnapshotBaseTimeout   = 10 * time.Second
	DefaultSnapshotMinThroughput = 1 << 20 // bytes per second
	DefaultMaxSnapshotSize       = 4 << 30
	DefaultMaxSnapshotStreams    = 4
	DefaultHandshakeTimeout      = 5 * time.Second
	DefaultMaxHandshakes         = 64
	DefaultMaxHandshakesPerHost  = 8
	DefaultWarnInterval          = 10 * time.Second
)

// Config configures a Transport. ID, ClusterID, Handler and one of Listener
// or ListenAddr are required; every other zero field takes its default.
type Config struct {
	// ID is this node's ID; ClusterID identifies the cluster. Both are sent
	// in every handshake, and connections from another cluster, from an
	// unknown node or meant for another node are refused.
	ID        uint64
	ClusterID uint64

	// Listener accepts the peers' connections. If nil, the transport
	// listens on ListenAddr (for example "127.0.0.1:7000"). The transport
	// closes it on Close.
	Listener   net.Listener
	ListenAddr string

	// Peers maps the other nodes' IDs to their addresses ("host:port").
	// AddPeer and RemovePeer change the set later.
	Peers map[uint64]string

	// Handler receives incoming messages and the delivery reports.
	Handler raft.TransportHandler

	// TLS, if set, wraps every connection in TLS with this configuration,
	// used both to accept (as a server) and to dial (as a client; ServerName
	// defaults to the peer's host). Set Certificates (this node's
	// certificate, see NodeURI), RootCAs and ClientCAs. Unless Insecure is
	// set, TLS is mutual (ClientAuth is raised to
	// tls.RequireAndVerifyClientCert) and each side's certificate must name
	// the node ID its handshake claims, in this cluster (see CertNodeID).
	TLS *tls.Config

	// PeerSecret, if set (an empty one counts as unset), is a secret shared
	// by every node of the cluster, at least MinPeerSecretSize bytes (32
	// random bytes are good). Both sides of every connection prove they
	// know it by challenge and response (see handshakeMAC); it never
	// crosses the wire. It may be combined with TLS.
	PeerSecret []byte

	// Insecure must be set to run with neither TLS nor PeerSecret: then
	// anyone who can reach the listener and guess the cluster ID and a
	// member's ID can speak for that member. With TLS, Insecure keeps the
	// encryption but checks no node identity. It is for local development
	// and tests; it cannot be combined with PeerSecret.
	Insecure bool

	// Logger receives connection events; nil means zap.NewNop().
	Logger *zap.Logger

	// Codec bounds the frames this node accepts (see wire.CodecOptions).
	// All nodes should use the same bounds.
	Codec wire.CodecOptions

	// QueueSize bounds the messages waiting for one peer's message stream;
	// HeartbeatQueueSize bounds its heartbeat stream. When a queue is full,
	// Send drops the message and reports the peer unreachable.
	QueueSize          int
	HeartbeatQueueSize int

	// DialTimeout bounds connecting to a peer, TLS and handshake included.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed dials, which
	// doubles after each failure and is jittered by up to half its length.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// KeepAliveInterval: a stream idle for this long sends a ping frame (and
	// TCP keep-alive probes are sent at this period).
	KeepAliveInterval time.Duration
	// ReadTimeout bounds the wait for each whole frame, header to last byte,
	// including the gap before it. A peer that goes silent, or starts a
	// frame and never finishes it, is cut off. It must exceed
	// KeepAliveInterval.
	ReadTimeout time.Duration
	// WriteTimeout bounds one batched write to a peer.
	WriteTimeout time.Duration

	// SnapshotChunkSize is the size of the frames a snapshot is cut into; it
	// must not exceed the codec's MaxFrameSize.
	SnapshotChunkSize int
	// SnapshotRateLimit caps the bytes per second of each outgoing snapshot
	// stream; zero means unlimited.
	SnapshotRateLimit int64
	// A snapshot stream, either side, must finish within SnapshotBaseTimeout
	// plus its size divided by SnapshotMinThroughput (bytes per second). A
	// SnapshotRateLimit below SnapshotMinThroughput is refused.
	SnapshotBaseTimeout   time.Duration
	SnapshotMinThroughput int64
	// MaxSnapshotSize bounds the size of an incoming snapshot.
	MaxSnapshotSize uint64
	// MaxSnapshotStreams bounds the snapshots sent at once; a MsgSnap beyond
	// it fails at once (reported with SnapshotFailure). A node receives at
	// most one snapshot from each peer at a time.
	MaxSnapshotStreams int
	// SnapshotDir is where an incoming snapshot is written while it
	// streams in (a host usually names its data directory); empty means
	// os.TempDir(). The file is unlinked as soon as it is created where the
	// system allows (so a crash leaves nothing behind), and removed after
	// the stream otherwise. Only a complete, verified snapshot is read into
	// memory, to be handed to the handler. It is not used when the Handler
	// is a raft.SnapshotStreamHandler, which takes the data as it streams
	// in (and stores it where it likes).
	SnapshotDir string

	// HandshakeTimeout bounds an inbound connection's handshake, TLS
	// included.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the inbound connections still in their
	// handshake; MaxHandshakesPerHost bounds those from one remote IP
	// address. A connection beyond either is closed as soon as it is
	// accepted. Authenticated connections are not counted: each peer has at
	// most one per stream kind (a new one replaces the old, except for
	// snapshots, which are refused while one is streaming).
	MaxHandshakes        int
	MaxHandshakesPerHost int
	// WarnInterval: warnings about one remote host or peer (refused
	// handshakes, bad frames, undeliverable messages) are logged the first
	// time, then at most once per WarnInterval with the count of those
	// suppressed meanwhile.
	WarnInterval time.Duration
}

// withDefaults returns a copy of c with its zero fields set, or an error
// naming the first bad field.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("tcptransport: invalid config: "+format, args...)
	}
	switch {
	case c.ID == raft.None:
		return bad("ID is 0")
	case c.Handler == nil:
		return bad("Handler is nil")
	case c.Listener == nil && c.ListenAddr == "":
		return bad("neither Listener nor ListenAddr is set")
	}
	for id := range c.Peers {
		if id == raft.None || id == c.ID {
			return bad("Peers holds ID %d", id)
		}
	}
	setInt := func(p *int, def int) {
		if *p == 0 {
			*p = def
		}
	}
	setDur := func(p *time.Duration, def time.Duration) {
		if *p == 0 {
			*p = def
		}
	}
	setInt(&c.QueueSize, DefaultQueueSize)
	setInt(&c.HeartbeatQueueSize, DefaultHeartbeatQueueSize)
	setInt(&c.SnapshotChunkSize, DefaultSnapshotChunkSize)
	setInt(&c.MaxSnapshotStreams, DefaultMaxSnapshotStreams)
	setDur(&c.DialTimeout, DefaultDialTimeout)
	setDur(&c.MinBackoff, DefaultMinBackoff)
	setDur(&c.MaxBackoff, DefaultMaxBackoff)
	setDur(&c.KeepAliveInterval, DefaultKeepAliveInterval)
	setDur(&c.ReadTimeout, DefaultReadTimeout)
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.SnapshotBaseTimeout, DefaultSnapshotBaseTimeout)
	setDur(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDur(&c.WarnInterval, DefaultWarnInterval)
	setInt(&c.MaxHandshakes, DefaultMaxHandshakes)
	setInt(&c.MaxHandshakesPerHost, DefaultMaxHandshakesPerHost)
	if c.SnapshotMinThroughput == 0 {
		c.SnapshotMinThroughput = DefaultSnapshotMinThroughput
	}
	if c.MaxSnapshotSize == 0 {
		c.MaxSnapshotSize = DefaultMaxSnapshotSize
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if len(c.PeerSecret) == 0 {
		c.PeerSecret = nil // an empty flag's []byte(""): unset, not a 0-byte secret
	}
	maxFrame := c.Codec.MaxFrameSize
	if maxFrame == 0 {
		maxFrame = wire.DefaultMaxFrameSize
	}
	switch {
	case c.QueueSize < 0 || c.HeartbeatQueueSize < 0 || c.MaxSnapshotStreams < 0:
		return bad("negative queue size or stream count")
	case c.DialTimeout < 0 || c.MinBackoff < 0 || c.WriteTimeout < 0 || c.SnapshotBaseTimeout < 0:
		return bad("negative timeout")
	case c.MaxBackoff < c.MinBackoff:
		return bad("MaxBackoff %v is less than MinBackoff %v", c.MaxBackoff, c.MinBackoff)
	case c.KeepAliveInterval <= 0 || c.ReadTimeout <= c.KeepAliveInterval:
		return bad("ReadTimeout %v must exceed KeepAliveInterval %v > 0", c.ReadTimeout, c.KeepAliveInterval)
	case c.SnapshotChunkSize <= 0 || uint64(c.SnapshotChunkSize) > uint64(maxFrame):
		return bad("SnapshotChunkSize %d not in [1, %d]", c.SnapshotChunkSize, maxFrame)
	case c.SnapshotMinThroughput < 0:
		return bad("negative SnapshotMinThroughput")
	case c.SnapshotRateLimit != 0 && c.SnapshotRateLimit < c.SnapshotMinThroughput:
		return bad("SnapshotRateLimit %d is below SnapshotMinThroughput %d", c.SnapshotRateLimit, c.SnapshotMinThroughput)
	case c.HandshakeTimeout < 0 || c.WarnInterval < 0 || c.MaxHandshakes < 0 || c.MaxHandshakesPerHost < 0:
		return bad("negative HandshakeTimeout, WarnInterval, MaxHandshakes or MaxHandshakesPerHost")
	case c.PeerSecret != nil && len(c.PeerSecret) < MinPeerSecretSize:
		return bad("PeerSecret has %d bytes, want at least %d", len(c.PeerSecret), MinPeerSecretSize)
	case c.Insecure && c.PeerSecret != nil:
		return bad("Insecure and PeerSecret both set")
	case !c.Insecure && c.PeerSecret == nil && c.TLS == nil:
		return bad("no peer authentication: set PeerSecret or TLS (or Insecure, for development only)")
	case !c.Insecure && c.TLS != nil && c.TLS.InsecureSkipVerify:
		return bad("TLS.InsecureSkipVerify is set: node certificates cannot be verified (set Insecure to run without node identities)")
	}
	if c.SnapshotDir != "" {
		if fi, err := os.Stat(c.SnapshotDir); err != nil || !fi.IsDir() {
			return bad("SnapshotDir %q is not a directory", c.SnapshotDir)
		}
	}
	if c.PeerSecret != nil {
		c.PeerSecret = append([]byte(nil), c.PeerSecret...)
	}
	if c.TLS != nil && !c.Insecure && c.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		c.TLS = c.TLS.Clone()
		c.TLS.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// snapshotTimeout returns how long a snapshot stream of size bytes may take,
// on either side.
func (c *Config) snapshotTimeout(size uint64) time.Duration {
	return c.SnapshotBaseTimeout + time.Duration(float64(size)/float64(c.SnapshotMinThroughput)*float64(time.Second))
}
