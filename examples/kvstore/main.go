// Command kvstore is a replicated key-value server built on Keel: any
// Redis client (RESP2) or HTTP client can use it, and every write is
// committed by a Raft quorum and applied before it is acknowledged.
//
// With no flags it runs a local 3-node cluster in one process, with its
// data under ./kvstore-data. With --id and --cluster it runs one node per
// process; the first start of a new cluster's members says --bootstrap (a
// node added later, or one whose data was lost, says --join instead):
//
//	kvstore --id 1 --cluster 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
//	    --resp 127.0.0.1:6381 --http 127.0.0.1:8081 --data DIR --bootstrap
//
// See README.md for the commands it serves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keelraft/raft/raftnode"
)

// localSegmentSize is the write-ahead log segment size of the local
// cluster's nodes.
const localSegmentSize = 4 << 20

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kvstore:", err)
		os.Exit(1)
	}
}

// parseCluster parses "1=host:port,2=host:port".
func parseCluster(s string) (map[uint64]string, error) {
	peers := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		idStr, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if !ok || err != nil || id == 0 || addr == "" {
			return nil, fmt.Errorf("bad --cluster element %q (want id=host:port)", part)
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("--cluster names node %d twice", id)
		}
		peers[id] = addr
	}
	return peers, nil
}

func newLogger(level string, stderr io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zap.NewDevelopmentEncoderConfig()
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(stderr), lvl)
	return zap.New(core), nil
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kvstore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		id        = fs.Uint64("id", 0, "this node's ID; without it, run a local 3-node cluster in this process")
		cluster   = fs.String("cluster", "", "raft addresses of the members: 1=host:port,2=host:port,...")
		respAddr  = fs.String("resp", "127.0.0.1:6381", "RESP (Redis protocol) listen address")
		httpAddr  = fs.String("http", "127.0.0.1:8081", "HTTP listen address")
		dataDir   = fs.String("data", "", "data directory (default ./kvstore-data, or ./kvstore-data/node<ID>)")
		bootstrap = fs.Bool("bootstrap", false, "with an empty data directory, start a new cluster of the --cluster members (ignored once the node has data)")
		join      = fs.Bool("join", false, "with an empty data directory, start empty and wait to be added with POST /members; also how a node whose data was lost rejoins (ignored once the node has data)")
		recov     = fs.Bool("recover", false, "mark the storage as recovering before starting: the node neither votes nor counts toward a quorum until a leader has brought it up to date (use after restoring a backup)")
		quota     = fs.Int64(testDiskQuotaFlag, 0, "tests only: the log's writes fail with ENOSPC beyond this many bytes")
		auth      = fs.String("auth", "", "password for AUTH (RESP) and bearer token (HTTP, and between nodes)")
		tlsCert   = fs.String("tls-cert", "", "TLS certificate (PEM) for the raft, RESP and HTTP listeners")
		tlsKey    = fs.String("tls-key", "", "TLS key (PEM)")
		tlsCA     = fs.String("tls-ca", "", "CA (PEM) that signs every node's certificate; raft connections use mutual TLS")
		snapEnts  = fs.Uint64("snapshot-entries", 10000, "entries applied between two snapshots")
		segSize   = fs.Int64("segment-size", 0, "size in bytes of a write-ahead log segment, preallocated (default 64 MiB; 4 MiB for the local cluster)")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
		lease     = fs.Bool("lease-reads", false, "serve linearizable reads with the leader lease (no quorum round; assumes bounded clock drift and no system suspend)")
		tick      = fs.Duration("tick", 100*time.Millisecond, "raft tick; the election timeout is 10-20 ticks")
		reqTO     = fs.Duration("request-timeout", 5*time.Second, "how long a request waits for a leader and a quorum before failing")
		clientTO  = fs.Duration("client-timeout", 10*time.Second, "a started RESP command (and each reply write) must complete within this")
		authTO    = fs.Duration("auth-timeout", defaultAuthTimeout, "with --auth, a RESP connection that has not authenticated within this is closed")
		idleTO    = fs.Duration("idle-timeout", defaultIdleTimeout, "a RESP connection idle this long between commands is closed (0: never)")
		authTries = fs.Int("auth-attempts", defaultAuthAttempts, "failed authentications (AUTH, HTTP token) allowed per remote address per minute")
		maxBulk   = fs.Int64("max-bulk", defaultMaxBulk, "largest RESP bulk string or HTTP value, in bytes (at most the default: a write must fit in one log entry)")
		maxConns  = fs.Int("max-clients", 10000, "most RESP connections at once")
		clusterID = fs.Uint64("cluster-id", 1, "cluster ID checked on every raft connection")
		peerSec   = fs.String("peer-secret-file", "", "file holding the secret shared by the nodes (16+ bytes) that authenticates raft connections; with --tls-*, node certificates do (their URI SAN keel://cluster/<cluster-id>/node/<id>)")
	)
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // the usage was printed: asking for it is no failure
		}
		return err
	}
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}
	secret, err := readPeerSecret(*peerSec)
	if err != nil {
		return err
	}
	if secret != nil && *id == 0 {
		return errPeerSecretWithoutCluster
	}
	if *id == 0 && *tlsCert != "" {
		return errors.New("--tls-cert names one node; run one node per process (--id, --cluster) with TLS")
	}
	if err := checkNodeCert(*tlsCert, *tlsKey, *clusterID, *id); err != nil {
		return err
	}
	base := config{
		Bootstrap: *bootstrap, Join: *join, Recover: *recov, DiskQuota: *quota, Auth: *auth, TLSCert: *tlsCert, TLSKey: *tlsKey, TLSCA: *tlsCA,
		SnapshotEntries: *snapEnts, SegmentSize: *segSize, LeaseReads: *lease, Tick: *tick, RequestTimeout: *reqTO,
		ClientTimeout: *clientTO, AuthTimeout: *authTO, IdleTimeout: *idleTO, AuthAttempts: *authTries, MaxBulk: *maxBulk, MaxClients: *maxConns, ClusterID: *clusterID,
		Logger: log, PeerSecret: secret,
	}
	var cfgs []config
	if *id == 0 {
		if *cluster != "" {
			return errors.New("--cluster needs --id")
		}
		if *join || *recov || *quota != 0 {
			return errors.New("--join, --recover and --" + testDiskQuotaFlag + " need --id: the local cluster bootstraps itself")
		}
		base.Bootstrap = true
		if base.SegmentSize == 0 {
			// Three nodes on one machine, for trying things out: no need
			// for 64 MiB preallocated per node.
			base.SegmentSize = localSegmentSize
		}
		dir := *dataDir
		if dir == "" {
			dir = "kvstore-data"
		}
		peers := map[uint64]string{1: "127.0.0.1:7001", 2: "127.0.0.1:7002", 3: "127.0.0.1:7003"}
		for i := uint64(1); i <= 3; i++ {
			c := base
			c.ID, c.Peers = i, peers
			c.RESPAddr = fmt.Sprintf("127.0.0.1:%d", 6380+i)
			c.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", 8080+i)
			c.DataDir = filepath.Join(dir, fmt.Sprintf("node%d", i))
			cfgs = append(cfgs, c)
		}
	} else {
		if *cluster == "" {
			return errors.New("--id needs --cluster")
		}
		peers, err := parseCluster(*cluster)
		if err != nil {
			return err
		}
		c := base
		c.ID, c.Peers, c.RESPAddr, c.HTTPAddr = *id, peers, *respAddr, *httpAddr
		c.DataDir = *dataDir
		if c.DataDir == "" {
			c.DataDir = filepath.Join("kvstore-data", fmt.Sprintf("node%d", *id))
		}
		cfgs = append(cfgs, c)
	}

	// Catch SIGTERM from here on, so that a node stopped while it starts
	// (waiting for a leader, say) still shuts down cleanly.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	for _, c := range cfgs {
		s, err := newServer(c)
		if err != nil {
			return fmt.Errorf("node %d: %w", c.ID, err)
		}
		servers = append(servers, s)
		fmt.Fprintf(stdout, "node %d: raft %s  resp %s  http %s://%s  data %s\n",
			c.ID, c.Peers[c.ID], s.respLn.Addr(), s.scheme, s.httpLn.Addr(), c.DataDir)
	}
	leader, interrupted := waitLeader(servers, 10*time.Second, sig)
	var failed *server
	if !interrupted {
		if leader != 0 {
			fmt.Fprintf(stdout, "leader: node %d\n", leader)
		} else {
			fmt.Fprintln(stdout, "leader: none yet (waiting for a quorum)")
		}
		if len(servers) > 1 {
			fmt.Fprintln(stdout, "try: redis-cli -p 6381 SET hello world; curl localhost:8082/kv/hello; Ctrl-C stops")
		}
		halted := make(chan *server, len(servers))
		for _, s := range servers {
			go func() {
				select {
				case <-s.halted:
					halted <- s
				case <-s.stopc:
				}
			}()
		}
		select {
		case <-sig:
		case failed = <-halted:
		}
	}
	signal.Stop(sig)
	fmt.Fprintln(stdout, "stopping")
	for _, s := range servers {
		s.Close()
	}
	servers = nil
	if failed != nil && errors.Is(failed.haltErr, raftnode.ErrRemoved) {
		// Not a failure: a supervisor must not restart it.
		fmt.Fprintf(stdout, "node %d was removed from the cluster; to bring it back, wipe its data directory and start it with --join\n", failed.cfg.ID)
		return nil
	}
	if failed != nil {
		return fmt.Errorf("node %d stopped on an error: %w", failed.cfg.ID, failed.haltErr)
	}
	fmt.Fprintln(stdout, "stopped cleanly")
	return nil
}

// testDiskQuotaFlag is a flag for the tests, left out of the usage text.
const testDiskQuotaFlag = "test-disk-quota-bytes"

// usage prints the flags, except those for the tests.
func usage(fs *flag.FlagSet) {
	out := fs.Output()
	fmt.Fprintln(out, "Usage of kvstore:")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == testDiskQuotaFlag {
			return
		}
		name, text := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		fmt.Fprintf(out, "  --%s%s\n    \t%s", f.Name, name, strings.ReplaceAll(text, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			fmt.Fprintf(out, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(out)
	})
}

// waitLeader waits up to d for the servers to know a leader, or for a
// signal on sig (then interrupted is true).
func waitLeader(servers []*server, d time.Duration, sig <-chan os.Signal) (leader uint64, interrupted bool) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		leads := map[uint64]int{}
		for _, s := range servers {
			if l, _ := s.node.LeaderID(); l != 0 {
				leads[l]++
			}
		}
		ids := make([]uint64, 0, len(leads))
		for l := range leads {
			ids = append(ids, l)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		if len(ids) > 0 {
			return ids[0], false
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-sig:
			return 0, true
		case <-time.After(20 * time.Millisecond):
		}
	}
}
