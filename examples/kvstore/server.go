package main

import (
	"cmp"
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/tcptransport"
	"github.com/keelraft/raft/wal"
)

// config is one node's configuration, from the flags.
type config struct {
	ID       uint64
	Peers    map[uint64]string // raft addresses, this node's included
	RESPAddr string
	HTTPAddr string
	DataDir  string
	// Bootstrap lets a node whose storage is empty start a new cluster of
	// the Peers; Join lets it start empty and wait to be added to a running
	// cluster (POST /members on any member), which is also how a node whose
	// data was lost rejoins. With neither, an empty storage is an error.
	// With data present, both are ignored.
	Bootstrap bool
	Join      bool
	// Recover marks the storage as recovering before the node starts (see
	// raft.HardState.Recovering): the last step of restoring a backup.
	Recover bool
	// DiskQuota, if positive, makes the log's writes fail with ENOSPC once
	// it wrote that many bytes in this process (tests only).
	DiskQuota int64
	// SegmentSize is the size of a write-ahead log segment, preallocated
	// (0: the wal's default).
	SegmentSize     int64
	Auth            string
	TLSCert, TLSKey string
	TLSCA           string
	SnapshotEntries uint64
	LeaseReads      bool
	Tick            time.Duration
	RequestTimeout  time.Duration
	ClientTimeout   time.Duration // a started command must arrive within it
	// AuthTimeout is how long a RESP connection may stay open without
	// authenticating (when Auth is set); IdleTimeout how long an
	// authenticated one may wait between commands (0: no limit).
	AuthTimeout time.Duration
	IdleTimeout time.Duration
	// AuthAttempts is how many failed authentications (RESP AUTH, HTTP
	// token) one remote address gets a minute, in a burst of as many.
	AuthAttempts int
	MaxBulk      int64
	MaxClients   int
	ClusterID    uint64
	PeerSecret   []byte // authenticates the raft peers (see peersec.go)
	Logger       *zap.Logger
}

// server is one kvstore node: a raftnode.Node on a wal.Log and a TCP transport,
// with the RESP and HTTP front ends. Its methods are safe for concurrent
// use.
type server struct {
	cfg     config
	log     *zap.Logger
	wal     *wal.Log
	tr      *tcptransport.Transport
	node    *raftnode.Node
	kv      *kvStore
	metrics *metrics

	respLn  net.Listener
	httpLn  net.Listener
	httpSrv *http.Server
	client  *http.Client // for forwarding to the leader's HTTP API
	scheme  string

	stopc chan struct{}
	// halted is closed when the node stopped on an error (haltErr) rather
	// than by Close: the process must then exit.
	halted  chan struct{}
	haltErr error
	wg      sync.WaitGroup
	// base is cancelled when the server stops, ending every request.
	base       context.Context
	cancelBase context.CancelFunc

	authLimit *authLimiter

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// preAuth lists the RESP connections not yet authenticated, oldest
	// first; preAuthAt finds a connection's element.
	preAuth   list.List
	preAuthAt map[net.Conn]*list.Element
	members   raft.ConfState
}

// Defaults of the client-facing limits.
const (
	defaultAuthTimeout  = 10 * time.Second
	defaultIdleTimeout  = 5 * time.Minute
	defaultAuthAttempts = 20
)

// errUnavailable is returned when a request could not be served in time
// (no leader, no quorum).
var errUnavailable = errors.New("TRYAGAIN no leader or no quorum")

func loadTLS(cfg config) (*tls.Config, error) {
	if cfg.TLSCert == "" && cfg.TLSKey == "" && cfg.TLSCA == "" {
		return nil, nil
	}
	if cfg.TLSCert == "" || cfg.TLSKey == "" || cfg.TLSCA == "" {
		return nil, errors.New("--tls-cert, --tls-key and --tls-ca go together")
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(cfg.TLSCA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", cfg.TLSCA)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12,
	}, nil
}

// newServer opens the node's storage and listeners and starts it.
func newServer(cfg config) (*server, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if _, ok := cfg.Peers[cfg.ID]; !ok {
		return nil, fmt.Errorf("--cluster has no address for --id %d", cfg.ID)
	}
	if cfg.MaxBulk == 0 {
		cfg.MaxBulk = defaultMaxBulk
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = defaultAuthTimeout
	}
	if cfg.AuthAttempts <= 0 {
		cfg.AuthAttempts = defaultAuthAttempts
	}
	if cfg.MaxBulk < 0 || cfg.MaxBulk > defaultMaxBulk {
		return nil, fmt.Errorf("--max-bulk %d is not in [1, %d]: a value must fit in one log entry (%d bytes) with its key",
			cfg.MaxBulk, int64(defaultMaxBulk), int64(raft.DefaultMaxEntrySize))
	}
	s := &server{
		cfg: cfg, log: cfg.Logger.With(zap.Uint64("raft_id", cfg.ID)), metrics: newMetrics(),
		stopc: make(chan struct{}), halted: make(chan struct{}), conns: map[net.Conn]struct{}{}, scheme: "http",
		preAuthAt: map[net.Conn]*list.Element{}, authLimit: newAuthLimiter(cfg.AuthAttempts),
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	tlsCfg, err := loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	// On failure, close what was opened, in reverse order.
	var closers []func() error
	ok := false
	defer func() {
		if !ok {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()
	if s.wal, _, err = openStorage(cfg, s.log); err != nil {
		return nil, err
	}
	closers = append(closers, s.wal.Close)
	// Listen before starting raft, so a busy port fails fast.
	if s.respLn, err = net.Listen("tcp", cfg.RESPAddr); err != nil {
		return nil, fmt.Errorf("RESP listener: %w", err)
	}
	closers = append(closers, s.respLn.Close)
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("HTTP listener: %w", err)
	}
	closers = append(closers, s.httpLn.Close)
	raftLn, err := net.Listen("tcp", cfg.Peers[cfg.ID])
	if err != nil {
		return nil, fmt.Errorf("raft listener: %w", err)
	}
	closers = append(closers, raftLn.Close) // the transport closes it once it owns it
	if tlsCfg != nil {
		s.respLn = tls.NewListener(s.respLn, tlsCfg)
		s.httpLn = tls.NewListener(s.httpLn, tlsCfg)
		s.scheme = "https"
	}
	s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 64}}

	s.kv = newKVStore()
	rcfg := raft.Config{
		ID: cfg.ID, ElectionTick: 10, HeartbeatTick: 1, Logger: cfg.Logger, // the core adds raft_id
		Seed: uint64(time.Now().UnixNano()), Incarnation: s.wal.Identity().Incarnation,
	}
	if cfg.LeaseReads {
		rcfg.ReadOnlyOption = raft.ReadOnlyLeaseBased
	}
	s.node, err = raftnode.New(raftnode.Config{
		Raft: rcfg, Storage: s.wal, StateMachine: s.kv, TickInterval: cfg.Tick,
		SnapshotEvery: cfg.SnapshotEntries, CompactKeep: min(cfg.SnapshotEntries, raftnode.DefaultCompactKeep),
		OnLeaderChange: s.onLeaderChange, OnConfChange: s.onConfChange,
		StopWhenRemoved: true,
	})
	if err != nil {
		return nil, err
	}
	// --cluster only seeds the transport, so that a joining node accepts
	// its first leader: from then on the Node has it follow the raft
	// configuration, which records every member's address.
	peers := map[uint64]string{}
	for id, addr := range cfg.Peers {
		if id != cfg.ID {
			peers[id] = addr
		}
	}
	var raftTLS *tls.Config
	if tlsCfg != nil {
		// Between nodes, TLS is mutual: a peer must present a certificate
		// that the CA signed. Clients of RESP and HTTP need not.
		raftTLS = tlsCfg.Clone()
		raftTLS.ClientAuth = tls.RequireAndVerifyClientCert
	}
	s.tr, err = tcptransport.New(tcptransport.Config{
		ID: cfg.ID, ClusterID: cfg.ClusterID, Listener: raftLn, Peers: peers,
		Handler: s.node, TLS: raftTLS, Logger: cfg.Logger, // the transport adds raft_id
		PeerSecret: cfg.PeerSecret, Insecure: peerAuthInsecure(cfg, raftTLS, s.log), SnapshotDir: cfg.DataDir,
	})
	if err != nil {
		return nil, err
	}
	closers = append(closers, s.tr.Close)
	s.node.SetTransport(s.tr)
	var voters []raft.Peer // the first configuration records their addresses
	if cfg.Bootstrap {
		for id, addr := range cfg.Peers {
			voters = append(voters, raft.Peer{ID: id, Address: addr})
		}
		slices.SortFunc(voters, func(a, b raft.Peer) int { return cmp.Compare(a.ID, b.ID) })
	}
	if err := s.node.Start(voters); err != nil {
		return nil, err
	}
	ok = true

	s.httpSrv = &http.Server{
		Handler: s.routes(), ReadHeaderTimeout: cfg.ClientTimeout, ReadTimeout: cfg.ClientTimeout,
		IdleTimeout: 2 * time.Minute, ErrorLog: zap.NewStdLog(s.log),
	}
	s.httpLn = newLimitListener(s.httpLn, cfg.MaxClients)
	s.wg.Add(4)
	go s.watchHalt()
	go func() {
		defer s.wg.Done()
		_ = s.httpSrv.Serve(s.httpLn)
	}()
	go s.acceptRESP()
	go s.expireLoop()
	s.announce()
	return s, nil
}

// Close stops the node cleanly: no new requests, raft stopped, storage
// closed. Writes acknowledged before are durable.
func (s *server) Close() {
	close(s.stopc)
	s.cancelBase()
	_ = s.respLn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = s.httpSrv.Shutdown(ctx)
	cancel()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.node.Stop()
	_ = s.tr.Close()
	s.wg.Wait()
	_ = s.wal.Close()
}

// watchHalt waits for the node to stop on an error of its own (a storage
// write or sync that failed, a full disk, a data directory deleted under
// it). Such a node serves nothing correct any more, not even stale reads:
// it stops serving clients and closes halted, and the process exits with
// an error so that a supervisor restarts it (the restart recovers the
// storage, or fails with the reason).
func (s *server) watchHalt() {
	defer s.wg.Done()
	select {
	case <-s.stopc:
		return
	case <-s.node.Done():
	}
	select {
	case <-s.stopc:
		return // Close stopped it
	default:
	}
	err := s.node.Err()
	if errors.Is(err, raftnode.ErrRemoved) {
		s.log.Info("this node was removed from the cluster; exiting")
	} else {
		s.log.Error("the node stopped on an error; exiting so that it is restarted (the data directory is checked and recovered at start)",
			zap.Error(err))
	}
	s.haltErr = err
	_ = s.respLn.Close()
	_ = s.httpLn.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	close(s.halted)
}

func (s *server) onLeaderChange(leader, term uint64) {
	s.metrics.leaderChanges.Add(1)
	s.log.Debug("leader", zap.Uint64("leader", leader), zap.Uint64("term", term)) // the core logs changes at Info
	if leader != s.cfg.ID {
		return
	}
	// Announce our client addresses again, so that followers can forward
	// writes to us (the log may hold an older address, or none yet).
	s.announce()
}

// announce records this node's client addresses in the log, retrying
// until the log holds them or the server stops. WAIT uses everyone's to
// ask each node how far it applied. The record is an internal command: a follower has the leader
// append it over the raft transport (ProposeUntracked), whose peers are
// authenticated, never over the HTTP API that clients use.
func (s *server) announce() {
	addrs := []string{s.httpLn.Addr().String(), s.respLn.Addr().String()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for !s.waitAnnounced(addrs, 0) {
			c := &command{Op: opNode, Now: time.Now().UnixMilli(), ID: s.cfg.ID, Addrs: addrs}
			ctx, cancel := s.ctx(s.cfg.RequestTimeout)
			err := s.node.ProposeUntracked(ctx, c.encode())
			cancel()
			wait := time.Second // for the record to apply; then propose again
			if err != nil {
				wait = 200 * time.Millisecond // no leader yet, probably
			}
			if s.waitAnnounced(addrs, wait) {
				return
			}
			select {
			case <-s.stopc:
				return
			default:
			}
		}
	}()
}

// waitAnnounced waits up to d for the log to record addrs as this node's
// client addresses, and reports whether it does (or the server stopped).
func (s *server) waitAnnounced(addrs []string, d time.Duration) bool {
	timeout := time.After(d)
	for {
		_, changed := s.kv.revision("")
		if ni, ok := s.kv.nodeInfo(s.cfg.ID); ok && ni.HTTP == addrs[0] && ni.RESP == addrs[1] {
			return true
		}
		select {
		case <-s.stopc:
			return true
		case <-changed:
		case <-timeout:
			return false
		}
	}
}

// onConfChange records the membership. The transport follows it on its
// own: the Node adds every member at the address the configuration
// records and removes those that leave.
func (s *server) onConfChange(cs raft.ConfState) {
	s.mu.Lock()
	old := s.members
	s.members = cs
	s.mu.Unlock()
	if !slices.Equal(old.Voters, cs.Voters) || !slices.Equal(old.Learners, cs.Learners) {
		s.log.Info("membership", zap.Uint64s("voters", cs.Voters), zap.Uint64s("learners", cs.Learners))
	}
}

// ctx returns a context that ends after d or when the server stops.
func (s *server) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.base, d)
}

// expireLoop has the leader remove expired keys through the log.
func (s *server) expireLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
		}
		now := time.Now().UnixMilli()
		if lead, _ := s.node.LeaderID(); lead != s.cfg.ID || !s.kv.hasExpired(now) {
			continue
		}
		ctx, cancel := s.ctx(s.cfg.RequestTimeout)
		_, _ = s.node.Propose(ctx, (&command{Op: opExpire, Now: now}).encode())
		cancel()
	}
}
