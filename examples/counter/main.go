// Command counter is a replicated counter, one Raft node per process: the
// smallest complete program on Keel (raftnode.Node, a wal.Log on disk and
// a tcptransport.Transport), meant to be copied as a starting point.
//
// The first start of a new cluster's members names them all:
//
//	counter --id 1 --raft 127.0.0.1:7001 --http 127.0.0.1:8001 --data ./counter-data/1 \
//	    --bootstrap 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --insecure
//
// A node added later starts with --join and some members' raft addresses
// instead, then is added with POST /members on the leader. Once a node has
// data, --bootstrap and --join are ignored: a restart needs neither. See
// README.md for the HTTP API.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/tcptransport"
	"github.com/keelraft/raft/wal"
)

// clusterID names the cluster: every raft connection and the log on disk
// carry it, so that nodes of two clusters never talk to each other's.
const clusterID = 1

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("counter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		id        = fs.Uint64("id", 0, "this node's ID, not 0, unique in the cluster (required)")
		raftAddr  = fs.String("raft", "", "host:port this node listens on for its peers, and where they reach it (required)")
		httpAddr  = fs.String("http", "", "host:port of the HTTP API (required)")
		dataDir   = fs.String("data", "", "data directory, kept across restarts (required)")
		bootstrap = fs.String("bootstrap", "", "first start of a new cluster: all its voters, this node included, as 1=host:port,2=host:port,...")
		join      = fs.String("join", "", "first start of a node to be added to a running cluster: the raft addresses of its members, id=host:port,...")
		secret    = fs.String("secret", "", "secret shared by every node, 16 bytes or more, that authenticates raft connections")
		insecure  = fs.Bool("insecure", false, "accept raft connections from anyone who can reach --raft: for trying things out on one machine only")
		tick      = fs.Duration("tick", 100*time.Millisecond, "raft tick: heartbeats go every tick, an election starts after 10 to 20")
		timeout   = fs.Duration("request-timeout", 5*time.Second, "how long an HTTP request waits for a leader and a quorum")
		snapEvery = fs.Uint64("snapshot-every", 1000, "entries applied between two snapshots of the counter")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch {
	case *id == 0 || *raftAddr == "" || *httpAddr == "" || *dataDir == "":
		return errors.New("--id, --raft, --http and --data are required (see --help)")
	case *bootstrap != "" && *join != "":
		return errors.New("--bootstrap starts a new cluster and --join joins a running one: give one of them")
	case (*secret == "") == !*insecure:
		return errors.New("give every node the same --secret (16 bytes or more), or --insecure for local experiments")
	}
	seeds, err := parsePeers(cmp.Or(*bootstrap, *join))
	if err != nil {
		return err
	}
	if addr, ok := seeds[*id]; *bootstrap != "" && (!ok || addr != *raftAddr) {
		return fmt.Errorf("--bootstrap must list this node as %d=%s", *id, *raftAddr)
	}
	logger := newLogger(stderr)

	// The storage: a write-ahead log, with snapshots streamed to and from
	// their files rather than held in memory.
	log, err := wal.Open(filepath.Join(*dataDir, "wal"), wal.Options{
		ClusterID: clusterID, NodeID: *id, StreamSnapshots: true, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("opening the log in %s (is it another node's data directory, or in use?): %w", *dataDir, err)
	}
	defer log.Close()
	fresh, err := isEmpty(log)
	if err != nil {
		return err
	}
	if fresh && len(seeds) == 0 {
		return fmt.Errorf("%s holds no data: start with --bootstrap to create a new cluster, or --join to join a running one", *dataDir)
	}

	httpLn, err := net.Listen("tcp", *httpAddr) // before starting the node, so that a busy port fails fast
	if err != nil {
		return err
	}
	defer httpLn.Close()

	sm := &counter{}
	node, err := raftnode.New(raftnode.Config{
		Raft: raft.Config{
			ID: *id, ElectionTick: 10, HeartbeatTick: 1, Logger: logger,
			// Lets the cluster tell this node from one that lost its data
			// and came back under the same ID.
			Incarnation: log.Identity().Incarnation,
		},
		Storage:         log,
		StateMachine:    sm,
		TickInterval:    *tick,
		SnapshotEvery:   *snapEvery,
		CompactKeep:     min(*snapEvery, raftnode.DefaultCompactKeep),
		StopWhenRemoved: true,
	})
	if err != nil {
		return err
	}

	// The transport is only seeded here, and only on the first start: the
	// Node then has it follow the replicated configuration, which records
	// every member's address (the bootstrap voters', and each added
	// node's). A joining node must know the leader that adds it, or it
	// refuses the leader's connection as coming from an unknown node.
	peers := map[uint64]string{}
	if fresh {
		for pid, addr := range seeds {
			if pid != *id {
				peers[pid] = addr
			}
		}
	}
	var peerSecret []byte // nil, not empty, without --secret: an empty secret is refused
	if *secret != "" {
		peerSecret = []byte(*secret)
	}
	tr, err := tcptransport.New(tcptransport.Config{
		ID: *id, ClusterID: clusterID, ListenAddr: *raftAddr, Peers: peers, Handler: node,
		PeerSecret: peerSecret, Insecure: *insecure, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer tr.Close()
	node.SetTransport(tr)

	var voters []raft.Peer // nil to restart, or to wait to be added
	if fresh && *bootstrap != "" {
		for pid, addr := range seeds {
			voters = append(voters, raft.Peer{ID: pid, Address: addr})
		}
		slices.SortFunc(voters, func(a, b raft.Peer) int { return cmp.Compare(a.ID, b.ID) })
	}
	if err := node.Start(voters); err != nil {
		return err
	}
	defer node.Stop() // defers run in reverse: the node stops before its transport and its log close

	srv := &http.Server{Handler: newAPI(node, sm, *timeout, *tick).routes(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(httpLn)
	defer srv.Close()
	fmt.Fprintf(stdout, "node %d: raft %s, http %s, data %s\n", *id, *raftAddr, *httpAddr, *dataDir)

	// Run until a signal, or until the node stops on its own: removed from
	// the cluster (with StopWhenRemoved), or failed (a storage error).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case s := <-sig:
		fmt.Fprintf(stdout, "node %d: %v, stopping\n", *id, s)
		return nil
	case <-node.Done():
	}
	err = node.Err()
	if errors.Is(err, raftnode.ErrRemoved) {
		// Not a failure: exit 0, so that a supervisor does not restart it.
		fmt.Fprintf(stdout, "node %d: removed from the cluster, exiting (to add it back, wipe %s and start it with --join)\n", *id, *dataDir)
		return nil
	}
	return fmt.Errorf("node %d stopped: %w (restart it: the log is checked and recovered at start)", *id, err)
}

// parsePeers parses "1=host:port,2=host:port"; "" gives none.
func parsePeers(s string) (map[uint64]string, error) {
	peers := map[uint64]string{}
	if s == "" {
		return peers, nil
	}
	for _, part := range strings.Split(s, ",") {
		idStr, addr, _ := strings.Cut(part, "=")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if _, _, aerr := net.SplitHostPort(addr); err != nil || id == 0 || aerr != nil {
			return nil, fmt.Errorf("bad peer %q: want id=host:port, the id not 0", part)
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("node %d is listed twice", id)
		}
		peers[id] = addr
	}
	return peers, nil
}

// isEmpty reports whether the log holds no raft state yet: a new node,
// or one whose data directory was wiped.
func isEmpty(log *wal.Log) (bool, error) {
	last, err := log.LastIndex()
	if err != nil {
		return false, err
	}
	snap, err := log.Snapshot()
	if err != nil {
		return false, err
	}
	return last == 0 && snap.IsEmpty() && log.HardState().IsEmpty(), nil
}

// newLogger logs at Info to w: leader changes, membership, connections.
func newLogger(w io.Writer) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zap.InfoLevel))
}
