package raftnode

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// nodeMaxInflight bounds the Readies a Node has handed to its persist
// goroutine, and the apply batches to its apply goroutine, that are not yet
// acknowledged; beyond it the loop stops taking Readies until one is.
const nodeMaxInflight = 256

// nodeRecvQueue is the length of the queue of received messages; beyond it
// messages are dropped (Raft recovers from loss).
const nodeRecvQueue = 4096

// Node runs a RawNode with the goroutines, timers and I/O that the core
// leaves to its host, and offers a blocking client API (see the package
// documentation for its goroutines, ordering guarantees and treatment of
// time and failure). Its methods are safe for concurrent use. It is the
// Transport's raft.TransportHandler.
type Node struct {
	cfg       Config
	id        uint64
	storage   raft.LogStorage
	sm        StateMachine
	logger    *zap.Logger
	transport raft.Transport
	clock     nodeClock

	recvc      chan raft.Message  // from the transport
	reportc    chan nodeReport    // unreachable and snapshot reports
	reqc       chan func()        // closures run on the loop
	propc      chan *nodePropReq  // proposals, gathered by the loop
	persistc   chan raft.Ready    // loop -> persist
	persistedc chan int           // persist -> loop: number of Readies durable
	applyc     chan nodeApplyTask // loop -> apply
	appliedc   chan uint64        // apply -> loop: index applied
	snapc      chan nodeSnapTask  // apply -> snapshotter
	snapReqc   chan *nodeSnapReq  // Snapshot calls -> apply

	notifier *nodeNotifier
	props    nodeProposals
	reads    nodeReads
	watch    nodeWatch

	// rn and the fields below it belong to the loop goroutine.
	rn              *raft.RawNode
	persistInflight []raft.Ready
	applyInflight   int
	ticks           uint64
	tickClock       nodeTickClock
	// propBatch, propLive and propEnts are stepProposals' buffers, reused.
	propBatch []*nodePropReq
	propLive  []*nodePropReq
	propEnts  []raft.Entry
	peers     nodePeers // what the transport was told (followConf)

	// counters are the measurements Metrics reports.
	counters nodeCounters

	// removed is set once this node applied a configuration that leaves
	// it out (see noteMembership).
	removed atomic.Bool

	startOnce sync.Once
	doneOnce  sync.Once
	started   bool
	wg        sync.WaitGroup
	haltMu    sync.Mutex
	halted    bool
	err       error         // the error calls return once halted
	stopc     chan struct{} // closed by halt
	donec     chan struct{} // closed once every goroutine returned
	// loopDonec is closed once the loop has returned: a request queued on
	// reqc is never run after that.
	loopDonec chan struct{}
}

type nodeReport struct {
	id     uint64
	snap   bool
	status raft.SnapshotStatus
}

var _ raft.TransportHandler = (*Node)(nil)

// New checks cfg and returns a Node ready to Start. It starts nothing.
func New(cfg Config) (*Node, error) {
	if cfg.Storage == nil || isNilPointer(cfg.Storage) {
		return nil, fmt.Errorf("%w: Config.Storage must be set", raft.ErrInvalidConfig)
	}
	if cfg.StateMachine == nil || isNilPointer(cfg.StateMachine) {
		return nil, fmt.Errorf("%w: Config.StateMachine must be set", raft.ErrInvalidConfig)
	}
	if cfg.TickInterval < 0 {
		return nil, fmt.Errorf("%w: Config.TickInterval must not be negative, got %v", raft.ErrInvalidConfig, cfg.TickInterval)
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = DefaultTickInterval
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.CompactKeep == 0 {
		cfg.CompactKeep = min(DefaultCompactKeep, cfg.SnapshotEvery)
	}
	cfg.Raft.Storage = cfg.Storage
	cfg.Raft.PipelinedAcks = true
	if cfg.Raft.MaxEntrySize == 0 {
		cfg.Raft.MaxEntrySize = raft.DefaultMaxEntrySize
	}
	cfg.Raft = cfg.Raft.WithDefaults()
	if err := cfg.Raft.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		id:         cfg.Raft.ID,
		storage:    cfg.Storage,
		sm:         cfg.StateMachine,
		logger:     cfg.Raft.Logger.With(zap.Uint64("raft_id", cfg.Raft.ID)),
		transport:  cfg.Transport,
		clock:      systemClock{},
		recvc:      make(chan raft.Message, nodeRecvQueue),
		reportc:    make(chan nodeReport, 64),
		reqc:       make(chan func(), 64),
		propc:      make(chan *nodePropReq, nodeMaxPropBatch),
		persistc:   make(chan raft.Ready, nodeMaxInflight),
		persistedc: make(chan int, nodeMaxInflight),
		applyc:     make(chan nodeApplyTask, nodeMaxInflight),
		appliedc:   make(chan uint64, nodeMaxInflight),
		snapc:      make(chan nodeSnapTask, 1),
		snapReqc:   make(chan *nodeSnapReq),
		notifier:   newNodeNotifier(&cfg),
		stopc:      make(chan struct{}),
		donec:      make(chan struct{}),
		loopDonec:  make(chan struct{}),
	}
	n.props.init()
	n.reads.init()
	n.watch.init()
	return n, nil
}

// MaxEntrySize returns the largest entry Data the node accepts in a
// proposal (Raft.MaxEntrySize after defaults), so that a host can refuse
// an oversized request before proposing it.
func (n *Node) MaxEntrySize() uint64 { return n.cfg.Raft.MaxEntrySize }

// SetTransport sets the transport, for a host whose transport needs the
// Node as its handler before it exists. It must be called before Start.
func (n *Node) SetTransport(t raft.Transport) {
	n.haltMu.Lock()
	defer n.haltMu.Unlock()
	if !n.started {
		n.transport = t
	}
}

// Start starts the node's goroutines. With an empty storage, it
// bootstraps a new cluster whose voters are peers, recording their
// addresses in the first configuration (raft.RawNode.BootstrapPeers), or,
// if peers is empty, waits to be added to an existing cluster (a leader
// then sends it a snapshot, which tells it every member's address). With
// a storage that holds state, it ignores peers, restores the state machine
// from the storage's snapshot and re-applies the committed entries after
// it. Either way the transport is then given the address of every member
// the configuration records (see the package documentation, section
// Membership). Start may be called once; if it fails, the node is stopped
// with that error. Calls made before Start wait for it.
func (n *Node) Start(peers []raft.Peer) error {
	err := ErrStopped
	n.startOnce.Do(func() {
		if err = n.start(peers); err != nil {
			n.halt(fmt.Errorf("%w: Start failed: %w", ErrStopped, err))
			n.closeDone()
		}
	})
	return err
}

func (n *Node) start(peers []raft.Peer) error {
	snap, err := n.storage.Snapshot()
	if err != nil {
		return fmt.Errorf("raftnode: reading the snapshot: %w", err)
	}
	if n.transport == nil || isNilPointer(n.transport) {
		// Only a single voter needs none. Its configuration lies in the
		// snapshot, or the bootstrap voters (the configuration changes
		// after the snapshot, if any, could only add members: it then
		// warns on the first message it cannot send).
		voters := make([]uint64, len(peers))
		for i, p := range peers {
			voters[i] = p.ID
		}
		if !soloVoter(snap.Metadata.ConfState, voters, n.id) {
			return fmt.Errorf("%w: Config.Transport must be set before Start, unless this node is the single voter", raft.ErrInvalidConfig)
		}
		n.transport = &soloTransport{logger: n.logger, warned: map[uint64]bool{}}
	}
	rcfg := n.cfg.Raft
	rcfg.Applied = snap.Metadata.Index
	rn, err := raft.NewRawNode(rcfg)
	if err != nil {
		return err
	}
	cs := snap.Metadata.ConfState
	durable, err := n.durableApplied()
	if err != nil {
		return err
	}
	if !snap.IsEmpty() {
		if err := n.restoreOnStart(snap, durable); err != nil {
			return err
		}
	} else if len(peers) > 0 {
		if err := rn.BootstrapPeers(peers); err != nil {
			return err
		}
	}
	n.rn = rn
	n.followConf(rn.Status().Config)
	n.watch.setApplied(snap.Metadata.Index)
	n.counters.snapshotIndex.Store(snap.Metadata.Index)
	n.haltMu.Lock()
	n.started = true
	n.haltMu.Unlock()
	ap := &nodeApplier{n: n, applied: snap.Metadata.Index, snapIndex: snap.Metadata.Index, cs: cs, member: isMember(cs, n.id), durable: durable}
	n.wg.Add(4)
	go n.notifier.run(&n.wg, n.stopc)
	go n.runPersist()
	go ap.run()
	go n.runSnapshotter()
	go n.runLoop()
	return nil
}

// Stop stops the node and waits for its goroutines to return. Pending calls
// return ErrStopped (a proposal already appended: ErrProposalUnknown too).
// It neither closes the storage nor the transport: the host does, after
// Stop. Stop does not wait for queued writes: what is not yet durable is
// lost, as in a crash. Calling Stop again, or on a node that failed, is
// harmless.
func (n *Node) Stop() {
	n.halt(ErrStopped)
	n.startOnce.Do(n.closeDone) // never started: nothing runs; a later Start fails
	<-n.donec
}

// closeDone marks every goroutine as returned.
func (n *Node) closeDone() { n.doneOnce.Do(func() { close(n.donec) }) }

// Done returns a channel closed once the node has stopped, by Stop or on
// its own (then Err says why), and its goroutines have returned: a host
// waits on it instead of polling Err.
func (n *Node) Done() <-chan struct{} { return n.donec }

// Err returns nil while the node runs, ErrStopped after Stop, or the error
// that stopped it.
func (n *Node) Err() error {
	n.haltMu.Lock()
	defer n.haltMu.Unlock()
	return n.err
}

// halt records why the node stops (the first reason wins) and tells every
// goroutine to return.
func (n *Node) halt(err error) {
	n.haltMu.Lock()
	defer n.haltMu.Unlock()
	if n.halted {
		return
	}
	n.halted = true
	n.err = err
	switch {
	case errors.Is(err, ErrStopped):
	case errors.Is(err, ErrRemoved):
		n.logger.Info("node stopped: it was removed from the cluster")
	default:
		n.logger.Error("node stopped on an error", zap.Error(err))
	}
	close(n.stopc)
}

// fail stops the node on an I/O or state machine error.
func (n *Node) fail(what string, err error) {
	n.halt(fmt.Errorf("raft: node %d stopped: %s: %w", n.id, what, err))
}

// stopErr is the error calls return once the node halted.
func (n *Node) stopErr() error {
	if err := n.Err(); err != nil {
		return err
	}
	return ErrStopped
}

// do runs f on the loop goroutine and waits for it; it returns the stop
// error if the node stopped first, or ctx's error (wrapped) if ctx expired
// before f was queued, in which case f never runs.
func (n *Node) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	g := func() { f(); close(done) }
	select {
	case n.reqc <- g:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopc:
		return n.stopErr()
	}
	// Wait for the loop to run f, or to return without running it. Not
	// only for donec: the applier, which calls do, is one of the
	// goroutines donec waits for.
	select {
	case <-done:
		return nil
	case <-n.loopDonec:
	case <-n.donec:
	}
	select {
	case <-done:
		return nil
	default:
		return n.stopErr()
	}
}

// HandleMessage implements TransportHandler: it queues m for the loop, or
// drops it if the queue is full.
func (n *Node) HandleMessage(m raft.Message) {
	select {
	case n.recvc <- m:
	default:
		n.counters.droppedMessages.Add(1)
		n.logger.Debug("receive queue full; dropped a message", zap.Stringer("type", m.Type), zap.Uint64("from", m.From))
	}
}

// ReportUnreachable implements TransportHandler.
func (n *Node) ReportUnreachable(id uint64) {
	select {
	case n.reportc <- nodeReport{id: id}:
	default: // a report is pending already or the loop is far behind
	}
}

// ReportSnapshot implements TransportHandler. It waits for the loop (or
// the node to stop): a leader must learn the outcome of every snapshot.
func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	select {
	case n.reportc <- nodeReport{id: id, snap: true, status: status}:
	case <-n.stopc:
	}
}

// isNilPointer reports whether v is a nil pointer stored in an interface,
// which a nil check of the interface does not catch.
func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}
