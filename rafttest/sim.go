package rafttest

import (
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
	"github.com/keelraft/raft"
)

// params are a run's fault rates, drawn from its seed.
type params struct {
	drop, dup     float64
	maxDelay      int
	pPartition    float64 // per step, when no partition is active
	pCrash        float64 // per step
	pPowerLoss    float64 // per Ready with MustSync
	pClusterCrash float64 // per step
	pPause        float64 // per step
	pConf         float64 // per step
	pSnap         float64 // per step
	pOp           float64 // per idle client per step
	pBurst        float64 // per step
	pStall        float64 // per step
	pTransfer     float64 // per step
	pExtreme      float64 // per step
	pRegress      float64 // per step
	pStorage      float64 // per step
	pBackup       float64 // per step
	// pFlush and pApply are the pipelined host's per-step chances of
	// syncing and acknowledging its written Readies, and of applying
	// what is committed.
	pFlush, pApply float64
	// snapKeep is how many entries a snapshot leaves below it (-1: all).
	snapKeep int
	// maxInflight is every node's MaxInflightMsgs.
	maxInflight int
	// forced[k] is the step at which fault kind k happens at the latest,
	// so that every enabled kind happens in every run.
	forced map[string]int64
}

func (p params) String() string {
	s := fmt.Sprintf("drop=%.2f dup=%.2f max_delay=%d p_partition=%.3f p_crash=%.3f p_powerloss=%.4f p_pause=%.3f p_conf=%.3f p_snap=%.3f",
		p.drop, p.dup, p.maxDelay, p.pPartition, p.pCrash, p.pPowerLoss, p.pPause, p.pConf, p.pSnap)
	add := func(name string, v float64) {
		if v > 0 {
			s += fmt.Sprintf(" %s=%.3f", name, v)
		}
	}
	add("p_burst", p.pBurst)
	add("p_stall", p.pStall)
	add("p_transfer", p.pTransfer)
	add("p_extreme", p.pExtreme)
	add("p_regress", p.pRegress)
	add("p_storage", p.pStorage)
	add("p_backup", p.pBackup)
	add("p_flush", p.pFlush)
	add("p_apply", p.pApply)
	return s + fmt.Sprintf(" snap_keep=%d max_inflight=%d", p.snapKeep, p.maxInflight)
}

// sim is one run.
type sim struct {
	cfg Config
	rng *rand.Rand
	p   params
	now int64
	res *Result

	// incRng draws storage incarnations, apart from rng so that they do
	// not shift the run's other draws.
	incRng *rand.Rand

	nodes   map[uint64]*simNode
	ids     []uint64 // every ID of the pool, started or not
	started map[uint64]bool
	retired map[uint64]bool
	net     *simNetwork
	// partitionEnd is the step at which the active partition heals (0:
	// none active).
	partitionEnd int64
	healing      bool
	// leaving is a voter that a membership change under way removes or
	// demotes, until step leavingUntil.
	leaving      uint64
	leavingUntil int64
	// damaged are the nodes whose storage lost data (Faults.StorageFaults)
	// and that are not repaired yet; backups the copies of each node's
	// storage taken so far, oldest first.
	damaged map[uint64]damage
	backups map[uint64][]backup

	chk checker

	clients []*client
	clock   int64
	history []porcupine.Operation
	// writeIndex maps a written value to the index that applied it.
	writeIndex map[string]uint64
	nextOpID   int
	// mustComplete makes every new client operation a liveness check.
	mustComplete bool
	stopped      bool
}

// simNode is one node and its host.
type simNode struct {
	id   uint64
	rn   *raft.RawNode // nil while down
	disk *Storage
	sm   StateMachine

	// Host state, rebuilt from the snapshot on restart.
	applied   uint64
	digest    uint64
	clientSeq map[int]uint64
	conf      raft.ConfState

	role raft.StateType
	lead uint64
	term uint64

	rate, acc   float64
	pausedUntil int64
	downUntil   int64
	incarnation int
	// bootstrapping is set while the bootstrap snapshot is handled.
	bootstrapping bool
	// rebootstrap, if set, makes the next restart bootstrap these voters
	// (a wiped storage, an operator's mistake); damagedBoot marks a
	// restart from a storage that lost data it had promised.
	rebootstrap []uint64
	damagedBoot bool
	// recovering is the last HardState.Recovering the host persisted.
	recovering bool
	// crashInReady makes the next Ready that must sync crash before the
	// sync.
	crashInReady bool
	// The host loop is stalled (no Ready handled) in [stallFrom,
	// stalledUntil).
	stallFrom, stalledUntil int64
	// The pipelined host's Readies written but not yet synced and
	// acknowledged, and what it has still to apply, in order.
	persistQ []raft.Ready
	applyQ   []applyItem

	// Per-incarnation monotonicity.
	lastCommit, lastTerm, lastVote uint64
	staleSeen                      map[string]uint64

	// Client operations waiting at this node.
	writes   map[[2]uint64]*op       // {client, seq}
	reads    map[string]*readAttempt // by read context
	readWait []*readAttempt
}

func (n *simNode) up() bool { return n.rn != nil }

// stalled reports whether n's host loop is stalled at step now.
func (n *simNode) stalled(now int64) bool { return n.stallFrom <= now && now < n.stalledUntil }

// applyItem is one thing the pipelined host has to apply: a snapshot to
// restore, or a committed entry.
type applyItem struct {
	snap    *raft.Snapshot
	install bool
	entry   raft.Entry
}

// readAttempt is one attempt of a read at one node.
type readAttempt struct {
	o     *op
	ctx   string
	index uint64
}

// client issues one operation at a time.
type client struct {
	id  int
	seq uint64
	cur *op
}

// op is a client operation in progress.
type op struct {
	c         *client
	put       bool
	key       string
	value     string
	seq       uint64
	node      uint64
	inc       int
	call      int64
	ctx       string
	readIndex uint64
	deadline  int64
	retryAt   int64
	// mustComplete makes a timeout a liveness violation (after healing).
	mustComplete bool
}

// Run simulates one run and checks it.
//
// A panic in a node (or the host) ends the run with a "panic" violation
// instead of crashing the caller.
func Run(cfg Config) *Result {
	s := newSim(cfg)
	func() {
		defer func() {
			if p := recover(); p != nil {
				s.fail("panic", "%v\n%s", p, debug.Stack())
			}
		}()
		s.run()
	}()
	return s.res
}

func newSim(cfg Config) *sim {
	if cfg.Steps == 0 {
		cfg.Steps = 400
	}
	if cfg.ElectionTick == 0 {
		cfg.ElectionTick = 10
	}
	if cfg.NewStateMachine == nil {
		cfg.NewStateMachine = NewMapKV
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed5eed5eed5eed))
	if cfg.Nodes == 0 {
		cfg.Nodes = []int{3, 5, 7}[rng.IntN(3)]
	}
	if cfg.Clients == 0 {
		cfg.Clients = 1 + rng.IntN(8)
	}
	if cfg.Keys == 0 {
		cfg.Keys = 1 + rng.IntN(10)
	}
	s := &sim{
		cfg:        cfg,
		rng:        rng,
		incRng:     rand.New(rand.NewPCG(cfg.Seed^0x696e6361726e, cfg.Seed)),
		nodes:      map[uint64]*simNode{},
		started:    map[uint64]bool{},
		retired:    map[uint64]bool{},
		damaged:    map[uint64]damage{},
		backups:    map[uint64][]backup{},
		net:        newSimNetwork(),
		writeIndex: map[string]uint64{},
		res:        &Result{Seed: cfg.Seed, Nodes: cfg.Nodes, Faults: cfg.Faults},
	}
	s.chk = newChecker(s)
	s.drawParams()
	s.res.Params = s.p.String()
	if cfg.MinVoters == 0 {
		s.cfg.MinVoters = 3
	}
	pool := cfg.Nodes
	if cfg.Faults.Membership {
		pool += 2
		if s.cfg.MinVoters < 3 {
			pool += 2 // shrinking retires nodes: spares to grow again
		}
	}
	for i := 1; i <= pool; i++ {
		s.ids = append(s.ids, uint64(i))
	}
	for i := range cfg.Clients {
		s.clients = append(s.clients, &client{id: i})
	}
	s.tracef("start seed=%d nodes=%d clients=%d keys=%d faults=%s %s", cfg.Seed, cfg.Nodes, cfg.Clients, cfg.Keys, cfg.Faults, s.p)
	voters := s.ids[:cfg.Nodes]
	for _, id := range voters {
		s.startNode(id, voters)
	}
	return s
}

func (s *sim) drawParams() {
	f := s.cfg.Faults
	r := s.rng
	p := params{maxDelay: 1, forced: map[string]int64{}, pOp: 0.2 + 0.3*r.Float64()}
	if f.Network {
		p.drop = 0.01 + 0.29*r.Float64()
		p.dup = 0.1 * r.Float64()
		// Up to 3 steps each way: a round trip stays below an election
		// timeout even for a leader ticking twice as fast as the others
		// (Raft needs broadcast time << election timeout to make progress).
		p.maxDelay = 1 + r.IntN(3)
	}
	steps := int64(s.cfg.Steps)
	force := func(kind string) {
		p.forced[kind] = steps/10 + r.Int64N(steps/2)
	}
	if f.Partitions {
		p.pPartition = 0.005 + 0.02*r.Float64()
		force("partition")
	}
	if f.Crashes {
		p.pCrash = 0.002 + 0.01*r.Float64()
		force("crash")
	}
	if f.PowerLoss {
		p.pPowerLoss = 0.001 + 0.004*r.Float64()
		if s.cfg.PowerLossRate > 0 {
			p.pPowerLoss = s.cfg.PowerLossRate
		}
		p.pClusterCrash = 0.001 * r.Float64()
		force("powerloss")
		force("clustercrash")
	}
	if f.Pauses {
		p.pPause = 0.002 + 0.01*r.Float64()
		force("pause")
	}
	if f.Membership {
		p.pConf = 0.005 + 0.02*r.Float64()
		// Early: a membership change needs a leader that has committed an
		// entry of its term, which may take a while under faults.
		p.forced["conf"] = steps/20 + r.Int64N(steps/5)
	}
	if f.Snapshots {
		p.pSnap = 0.01 + 0.04*r.Float64()
		force("snap")
	}
	// The newer kinds draw from their own stream, so that adding them left
	// the runs of the older kinds as they were.
	r2 := rand.New(rand.NewPCG(s.cfg.Seed^0x6b65656c, s.cfg.Seed))
	force2 := func(kind string) { p.forced[kind] = steps/10 + r2.Int64N(steps/2) }
	if f.Bursts {
		p.pBurst = 0.005 + 0.02*r2.Float64()
		force2("burst")
	}
	if f.Stalls {
		p.pStall = 0.002 + 0.01*r2.Float64()
		force2("stall")
	}
	if f.Transfers {
		p.pTransfer = 0.002 + 0.01*r2.Float64()
		force2("transfer")
	}
	if f.ExtremeTerms {
		p.pExtreme = 0.0005 + 0.001*r2.Float64()
		force2("extremeterm")
	}
	if f.LogRegression {
		p.pRegress = 0.002 + 0.005*r2.Float64()
		force2("regress")
	}
	if s.cfg.Pipelined {
		p.pFlush = 0.2 + 0.8*r2.Float64()
		p.pApply = 0.2 + 0.8*r2.Float64()
	}
	switch k := s.cfg.SnapshotKeep; {
	case k < 0:
		p.snapKeep = -1
	case k > 0:
		p.snapKeep = k
	default:
		p.snapKeep = []int{4, 4, 100, -1}[r2.IntN(4)]
	}
	p.maxInflight = 32
	switch {
	case s.cfg.MaxInflightMsgs > 0:
		p.maxInflight = s.cfg.MaxInflightMsgs
	case f.Bursts:
		p.maxInflight = []int{1, 2, 4, 8, 32}[r2.IntN(5)]
	}
	s.drawStorageParams(&p)
	s.p = p
}

// opTimeout is how long a client waits before it gives up: a few election
// timeouts at the slowest tick rate.
func (s *sim) opTimeout() int64 {
	return int64(8*s.cfg.ElectionTick + 4*s.p.maxDelay)
}

// startNode starts a brand-new node; voters is the bootstrap configuration
// (nil for a node that joins later and waits for a snapshot).
func (s *sim) startNode(id uint64, voters []uint64) {
	n := &simNode{id: id, disk: s.newDisk(), rate: 1}
	if s.cfg.Faults.TickSkew {
		n.rate = 0.5 + 1.5*s.rng.Float64()
	}
	s.nodes[id] = n
	s.started[id] = true
	s.tracef("n%d starts, tick rate %.2f", id, n.rate)
	s.boot(n, voters)
}

// newDisk returns an empty disk with a fresh incarnation.
func (s *sim) newDisk() *Storage {
	d := NewStorage()
	for d.incarnation == 0 {
		d.incarnation = s.incRng.Uint64()
	}
	return d
}

// boot creates the node's RawNode from its disk and rebuilds the host
// state from the disk's snapshot.
func (s *sim) boot(n *simNode, voters []uint64) {
	snap, _ := n.disk.Snapshot()
	n.sm = s.cfg.NewStateMachine()
	n.clientSeq = map[int]uint64{}
	n.digest, n.applied, n.conf = 0, 0, raft.ConfState{}
	if !snap.IsEmpty() {
		if err := s.restoreSnapshot(n, snap); err != nil {
			s.fail("restart", "node %d cannot restore its snapshot: %v", n.id, err)
			return
		}
	}
	rn, err := raft.NewRawNode(raft.Config{
		ID:              n.id,
		ElectionTick:    s.cfg.ElectionTick,
		HeartbeatTick:   1,
		Storage:         n.disk,
		Incarnation:     n.disk.incarnation,
		Applied:         n.applied,
		MaxSizePerMsg:   4 << 10,
		MaxInflightMsgs: s.p.maxInflight,
		ReadOnlyOption:  s.cfg.ReadOnlyOption,
		PipelinedAcks:   s.cfg.Pipelined,
		Rand:            s.rng,
	})
	if err != nil {
		s.fail("restart", "node %d cannot start from its disk: %v", n.id, err)
		return
	}
	if voters != nil {
		if err := rn.Bootstrap(voters); err != nil {
			s.fail("restart", "node %d cannot bootstrap: %v", n.id, err)
			return
		}
		// The bootstrap configuration comes as a snapshot; it is not an
		// install.
		n.bootstrapping = true
		defer func() { n.bootstrapping = false }()
	}
	hs := n.disk.HardState()
	n.rn = rn
	n.incarnation++
	n.role, n.lead, n.term = raft.StateFollower, raft.None, hs.Term
	n.lastCommit, n.lastTerm, n.lastVote = hs.Commit, hs.Term, hs.Vote
	n.recovering = hs.Recovering
	n.staleSeen = map[string]uint64{}
	n.writes = map[[2]uint64]*op{}
	n.reads = map[string]*readAttempt{}
	n.readWait = nil
	n.persistQ, n.applyQ = nil, nil
	if n.damagedBoot {
		// The storage lost the votes and terms it promised: the outcome
		// checks (election safety, ...) judge what follows.
		n.damagedBoot = false
		s.chk.forgetPromises(n)
	} else {
		s.chk.afterRestart(n)
	}
	if voters == nil {
		s.chk.bootConfig(n)
	}
	s.handleReady(n)
	if voters != nil && s.cfg.Pipelined {
		s.sync(n)
	}
}

// restoreSnapshot replaces the host state with the snapshot's.
func (s *sim) restoreSnapshot(n *simNode, snap raft.Snapshot) error {
	var hsnap hostSnapshot
	if err := hsnap.unmarshal(snap.Data); err != nil {
		return err
	}
	if err := n.sm.Restore(hsnap.store); err != nil {
		return err
	}
	n.clientSeq = hsnap.clientSeq
	n.digest = hsnap.digest
	n.applied = snap.Metadata.Index
	n.conf = snap.Metadata.ConfState
	s.chk.restored(n, snap.Metadata.Index)
	return nil
}

func (s *sim) run() {
	for step := 0; step < s.cfg.Steps && !s.stopped; step++ {
		s.step()
	}
	if s.cfg.Liveness && !s.stopped {
		s.heal()
	}
	s.finish()
	s.res.Counts.Steps = int(s.now)
}

// step advances logical time by one step.
func (s *sim) step() {
	s.now++
	if !s.healing {
		s.injectFaults()
	}
	for _, id := range s.ids {
		n := s.nodes[id]
		if n == nil {
			continue
		}
		if !n.up() {
			if n.downUntil <= s.now {
				s.restart(n)
			}
			continue
		}
		if n.pausedUntil > s.now {
			continue
		}
		if n.pausedUntil != 0 {
			// Resumed: the messages that waited arrive in any order and
			// interleaved with client requests, like a process catching
			// up after a stall.
			n.pausedUntil = 0
			s.net.redelay(n.id, func() int64 { return s.now + s.rng.Int64N(int64(s.p.maxDelay)+1) })
			s.tracef("n%d resumes", n.id)
		}
		n.acc += n.rate
		for n.acc >= 1 && n.up() {
			n.acc--
			n.rn.Tick()
			s.handleReady(n)
		}
	}
	s.deliver()
	s.clientsStep()
	for _, id := range s.ids {
		if n := s.nodes[id]; n != nil && n.up() && n.pausedUntil <= s.now {
			s.handleReady(n)
			if s.cfg.Pipelined {
				s.pipelineStep(n)
			}
			s.serveReads(n)
		}
	}
	s.storageStep()
}

// deliver hands every due message to its receiver.
func (s *sim) deliver() {
	// A healthy cluster sends a bounded number of messages per node and
	// tick; a node answering every message with more than one message is
	// a storm that only grows with duplication.
	if limit := 5000 + 100*len(s.ids)*len(s.ids); len(s.net.inflight) > limit {
		s.fail("message storm", "%d messages in flight (limit %d)", len(s.net.inflight), limit)
		return
	}
	due := s.net.takeDue(s.now, func(id uint64) bool {
		n := s.nodes[id]
		return n == nil || n.pausedUntil <= s.now
	})
	for _, e := range due {
		m := e.m
		to := s.nodes[m.To]
		lost := e.lost || to == nil || !to.up() || s.net.blocked(m.From, m.To) || s.rng.Float64() < s.p.drop
		if m.Type == raft.MsgSnap {
			s.reportSnapshot(m, !lost)
		}
		if lost {
			s.res.Counts.Dropped++
			s.tracef("drop %s", describeMsg(m))
			continue
		}
		s.res.Counts.Delivered++
		s.tracef("deliver %s", describeMsg(m))
		if s.rng.Float64() < s.p.dup {
			s.res.Counts.Duplicated++
			s.net.send(m, s.now+1+s.rng.Int64N(int64(s.p.maxDelay)))
		}
		_ = to.rn.Step(m)
		s.handleReady(to)
		if s.stopped {
			return
		}
	}
}

// reportSnapshot tells the sender how sending a snapshot went, as a
// transport must (doc.go): a leader waits for the report before it sends
// the peer anything else.
func (s *sim) reportSnapshot(m raft.Message, ok bool) {
	from := s.nodes[m.From]
	if from == nil || !from.up() {
		return
	}
	status := raft.SnapshotFailure
	if ok {
		status = raft.SnapshotFinish
	}
	from.rn.ReportSnapshot(m.To, status)
	s.handleReady(from)
}

// send puts messages in flight with a random delay. A message sent on a
// link in a burst of losses is lost (at its arrival, where the sender
// learns of a lost snapshot).
func (s *sim) send(n *simNode, msgs []raft.Message) {
	for _, m := range msgs {
		due := s.now + 1 + s.rng.Int64N(int64(s.p.maxDelay))
		if s.net.bursting(m.From, m.To, s.now) {
			s.res.Counts.BurstDrops++
			s.net.sendLost(m, due)
			continue
		}
		s.net.send(m, due)
	}
}

// handleReady runs the host loop for n until it has nothing ready (unless
// the loop is stalled).
func (s *sim) handleReady(n *simNode) {
	for !s.stopped && n.up() && !n.stalled(s.now) && n.rn.HasReady() {
		rd := n.rn.Ready()
		if !s.processReady(n, rd) {
			return // crashed while handling it
		}
		if !s.cfg.Pipelined {
			n.rn.Advance(rd)
		}
	}
}

// processReady handles one Ready in the order doc.go prescribes: send
// Messages, persist, sync, send MessagesAfterPersist, apply. It reports
// false if the node crashed on the way.
func (s *sim) processReady(n *simNode, rd raft.Ready) bool {
	bugs := s.cfg.Bugs
	wasLeader, oldTerm := n.role == raft.StateLeader, n.term
	n.term = n.rn.BasicStatus().Term
	if rd.SoftState != nil {
		s.softState(n, *rd.SoftState)
	}
	s.chk.hardState(n, rd.HardState)
	if !rd.HardState.IsEmpty() && rd.HardState.Recovering != n.recovering {
		n.recovering = rd.HardState.Recovering
		if n.recovering && s.damaged[n.id].kind == 0 {
			// Not damaged by the run: a peer addressed it by an
			// incarnation it no longer has (a stale configuration).
			s.res.Counts.SpuriousRecoveries++
		}
		s.tracef("n%d recovering=%v term=%d commit=%d", n.id, n.recovering, rd.HardState.Term, rd.HardState.Commit)
	}

	if bugs.ForgeCommit && n.role == raft.StateLeader {
		last, _ := n.disk.LastIndex()
		if k := len(rd.Entries); k > 0 {
			last = max(last, rd.Entries[k-1].Index)
		}
		for i := range rd.Messages {
			if t := rd.Messages[i].Type; t == raft.MsgApp || t == raft.MsgHeartbeat {
				rd.Messages[i].Commit = last
			}
		}
	}
	if bugs.ForgeVoteLog {
		forgeVoteLog(rd.Messages)
		forgeVoteLog(rd.MessagesAfterPersist)
	}
	s.send(n, rd.Messages)
	if bugs.SendBeforePersist {
		s.sendAfterPersist(n, rd.MessagesAfterPersist)
	}

	// 1. Persist.
	if !rd.Snapshot.IsEmpty() {
		if err := n.disk.ApplySnapshot(rd.Snapshot); err != nil {
			s.fail("storage", "node %d cannot persist snapshot %d: %v", n.id, rd.Snapshot.Metadata.Index, err)
			return false
		}
		if s.cfg.Pipelined {
			// Restored on the apply path, in order.
			snap := rd.Snapshot
			n.applyQ = append(n.applyQ, applyItem{snap: &snap, install: !n.bootstrapping})
		} else {
			if err := s.restoreSnapshot(n, rd.Snapshot); err != nil {
				s.fail("snapshot", "node %d cannot restore snapshot %d: %v", n.id, rd.Snapshot.Metadata.Index, err)
				return false
			}
			if !n.bootstrapping {
				s.res.Counts.SnapshotsInstalled++
			}
			s.tracef("n%d installs snapshot index=%d term=%d", n.id, rd.Snapshot.Metadata.Index, rd.Snapshot.Metadata.Term)
		}
	}
	if len(rd.Entries) > 0 {
		if wasLeader && n.role == raft.StateLeader && oldTerm == n.term {
			s.chk.leaderAppend(n, rd.Entries)
		}
		s.chk.logMatching(n, rd.Entries)
		if err := n.disk.Append(rd.Entries); err != nil {
			s.fail("storage", "node %d cannot append entries %d-%d: %v", n.id, rd.Entries[0].Index, rd.Entries[len(rd.Entries)-1].Index, err)
			return false
		}
	}
	if !rd.HardState.IsEmpty() {
		_ = n.disk.SetHardState(rd.HardState)
	}
	if rd.SoftState != nil && rd.SoftState.RaftState == raft.StateLeader {
		s.chk.leaderCompleteness(n)
	}
	if rd.SoftState != nil && rd.Snapshot.IsEmpty() &&
		(rd.SoftState.RaftState == raft.StateCandidate || rd.SoftState.RaftState == raft.StatePreCandidate) {
		s.chk.campaign(n)
	}
	if bugs.ApplyUncommitted {
		for _, e := range rd.Entries {
			if e.Index == n.applied+1 && e.Type == raft.EntryNormal {
				s.apply(n, e)
			}
		}
	}

	if s.cfg.Pipelined {
		return s.queueReady(n, rd)
	}

	// 2. Sync, unless the power fails first.
	if rd.MustSync && s.cfg.Faults.PowerLoss && !s.healing && !n.bootstrapping &&
		(n.crashInReady || s.rng.Float64() < s.p.pPowerLoss) {
		n.crashInReady = false
		s.crash(n, true)
		return false
	}
	if rd.MustSync && !bugs.SkipSync {
		if err := n.disk.Sync(); err != nil {
			s.fail("storage", "node %d: %v", n.id, err)
			return false
		}
	}

	// 3. Messages that promise durable state.
	if !bugs.SendBeforePersist {
		s.sendAfterPersist(n, rd.MessagesAfterPersist)
	}

	// 4. Apply.
	for _, e := range rd.CommittedEntries {
		if e.Index <= n.applied && bugs.ApplyUncommitted {
			continue
		}
		s.apply(n, e)
		if s.stopped {
			return false
		}
	}
	s.readStates(n, rd.ReadStates)
	s.serveReads(n)
	return true
}

// readStates queues the reads whose read index arrived.
func (s *sim) readStates(n *simNode, rss []raft.ReadState) {
	for _, rs := range rss {
		if ra := n.reads[string(rs.RequestCtx)]; ra != nil {
			delete(n.reads, ra.ctx)
			ra.index = rs.Index
			n.readWait = append(n.readWait, ra)
		}
	}
}

// forgeVoteLog is the ForgeVoteLog bug.
func forgeVoteLog(msgs []raft.Message) {
	for i := range msgs {
		if m := &msgs[i]; m.Type == raft.MsgVote || m.Type == raft.MsgPreVote {
			m.LogTerm, m.Index = m.Term-1, 1<<40
		}
	}
}

// sendAfterPersist sends votes and acknowledgements, recording the promises
// they make.
func (s *sim) sendAfterPersist(n *simNode, msgs []raft.Message) {
	for _, m := range msgs {
		s.chk.promise(n, m)
	}
	s.send(n, msgs)
}

// softState records a role change.
func (s *sim) softState(n *simNode, ss raft.SoftState) {
	if ss.RaftState != n.role {
		s.tracef("n%d becomes %s term=%d lead=%d", n.id, ss.RaftState, n.term, ss.Lead)
	}
	if ss.RaftState == raft.StateLeader && n.role != raft.StateLeader {
		s.res.Counts.LeaderChanges++
		s.chk.newLeader(n)
	}
	n.role, n.lead = ss.RaftState, ss.Lead
}

// apply applies one committed entry to n's state machine.
func (s *sim) apply(n *simNode, e raft.Entry) {
	if e.Index != n.applied+1 {
		s.fail("apply order", "node %d applies index %d after %d", n.id, e.Index, n.applied)
		return
	}
	n.digest = mixDigest(n.digest, e)
	n.applied = e.Index
	first := s.chk.applied(n, e)
	switch e.Type {
	case raft.EntryConfChange:
		var cc raft.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			s.fail("apply", "node %d: bad conf change at %d: %v", n.id, e.Index, err)
			return
		}
		cs, err := n.rn.ApplyConfChange(cc)
		if err != nil {
			s.tracef("n%d refuses conf change %s at %d: %v", n.id, cc, e.Index, err)
			return
		}
		prev := n.conf
		n.conf = cs
		s.tracef("n%d applies conf change %s at %d: voters=%v outgoing=%v learners=%v", n.id, cc, e.Index, cs.Voters, cs.VotersOutgoing, cs.Learners)
		switch {
		case !first:
		case isRecordIncarnations(cc):
			// The leader's own change, not a proposal of the run's.
			s.res.Counts.IncarnationRecords++
		default:
			s.res.Counts.ConfChanges++
			if len(cs.Voters) == 1 && len(cs.VotersOutgoing) == 0 {
				s.res.Counts.SingleVoterConfs++
			}
		}
		s.retireRemoved(prev, cs)
	case raft.EntryNormal:
		if len(e.Data) == 0 {
			return
		}
		var cmd putCmd
		if err := cmd.unmarshal(e.Data); err != nil {
			s.fail("apply", "node %d: bad command at %d: %v", n.id, e.Index, err)
			return
		}
		switch last := n.clientSeq[cmd.Client]; {
		case cmd.Seq < last:
			return // a write its client gave up on
		case cmd.Seq == last:
			// A duplicate (retry or network copy) of a write applied
			// before: answer the client, change nothing.
		default:
			n.clientSeq[cmd.Client] = cmd.Seq
			n.sm.Put(cmd.Key, cmd.Value)
			if _, ok := s.writeIndex[cmd.Value]; !ok {
				s.writeIndex[cmd.Value] = e.Index
			}
		}
		if o := n.writes[[2]uint64{uint64(cmd.Client), cmd.Seq}]; o != nil {
			delete(n.writes, [2]uint64{uint64(cmd.Client), cmd.Seq})
			s.complete(o, "")
		}
	}
}

// isRecordIncarnations reports whether cc only records storage
// incarnations (the leader's automatic change), changing no role.
func isRecordIncarnations(cc raft.ConfChange) bool {
	for _, c := range cc.Changes {
		if c.Type != raft.ConfChangeRecordIncarnation {
			return false
		}
	}
	return len(cc.Changes) > 0
}

// retireRemoved marks the nodes that a change from prev to cs removed
// (leaving a joint configuration removes the outgoing voters that are not
// incoming): they are never added again.
func (s *sim) retireRemoved(prev, cs raft.ConfState) {
	for _, id := range slices.Concat(prev.Voters, prev.VotersOutgoing, prev.Learners, prev.LearnersNext) {
		if !slices.Contains(cs.Voters, id) && !slices.Contains(cs.VotersOutgoing, id) &&
			!slices.Contains(cs.Learners, id) && !slices.Contains(cs.LearnersNext, id) {
			s.retired[id] = true
		}
	}
}

// mixDigest folds an applied entry into a node's log digest.
func mixDigest(d uint64, e raft.Entry) uint64 {
	h := fnvMix(fnvOffset, d)
	h = fnvMix(h, e.Index)
	h = fnvMix(h, e.Term)
	h = fnvMix(h, uint64(e.Type))
	return fnvMix(h, hashBytes(e.Data))
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvMix(h, v uint64) uint64 {
	for i := range 8 {
		h ^= (v >> (8 * i)) & 0xff
		h *= fnvPrime
	}
	return h
}

// hashBytes is FNV-1a of b.
func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// crash stops n. A power loss loses what was not synced.
func (s *sim) crash(n *simNode, powerLoss bool) {
	if powerLoss {
		torn := s.rng.IntN(2) == 0
		lost, err := n.disk.Crash(s.rng, torn)
		if err != nil {
			s.fail("storage", "node %d: %v", n.id, err)
		}
		s.res.Counts.PowerLosses++
		s.res.Counts.LostWrites += lost
		s.tracef("n%d loses power (lost %d unsynced writes, torn=%v)", n.id, lost, torn)
	} else {
		if err := n.disk.Sync(); err != nil && !s.cfg.Bugs.SkipSync {
			s.fail("storage", "node %d: %v", n.id, err)
		}
		s.tracef("n%d crashes", n.id)
	}
	s.res.Counts.Crashes++
	n.rn = nil
	n.role, n.lead = raft.StateFollower, raft.None
	n.downUntil = s.now + 1 + s.rng.Int64N(int64(3*s.cfg.ElectionTick))
	// The clients waiting at n give up, in client order so that a replay
	// traces the same. A read without an answer has no effect.
	var waiting []*op
	for _, o := range n.writes {
		waiting = append(waiting, o)
	}
	for _, ra := range n.reads {
		waiting = append(waiting, ra.o)
	}
	for _, ra := range n.readWait {
		waiting = append(waiting, ra.o)
	}
	slices.SortStableFunc(waiting, func(a, b *op) int { return a.c.id - b.c.id })
	for _, o := range waiting {
		s.indeterminate(o)
	}
	n.writes, n.reads, n.readWait = nil, nil, nil
	n.persistQ, n.applyQ = nil, nil
	n.stallFrom, n.stalledUntil = 0, 0
}

// restart boots a crashed node from its disk.
func (s *sim) restart(n *simNode) {
	if s.cfg.Bugs.ForgetVote {
		n.disk.forgetVote()
	}
	voters := n.rebootstrap
	n.rebootstrap = nil
	s.tracef("n%d restarts", n.id)
	s.boot(n, voters)
}

// forgetVote is the ForgetVote bug: the vote never reached the disk.
func (d *Storage) forgetVote() {
	hs := d.view.HardState()
	hs.Vote = raft.None
	_ = d.view.SetHardState(hs)
	_ = d.durable.SetHardState(hs)
}

// fail records a violation and stops the run.
func (s *sim) fail(property, format string, args ...any) {
	v := Violation{Property: property, Step: s.now, Detail: fmt.Sprintf(format, args...)}
	s.res.Violations = append(s.res.Violations, v)
	s.tracef("VIOLATION %s", v)
	s.stopped = true
}

// tracef writes a line of the timeline if tracing is on.
func (s *sim) tracef(format string, args ...any) {
	if s.cfg.Trace == nil {
		return
	}
	fmt.Fprintf(s.cfg.Trace, "%05d %s\n", s.now, fmt.Sprintf(format, args...))
}

func describeMsg(m raft.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %s term=%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case raft.MsgApp:
		fmt.Fprintf(&b, " prev=%d/%d ents=%d commit=%d", m.Index, m.LogTerm, len(m.Entries), m.Commit)
	case raft.MsgAppResp:
		fmt.Fprintf(&b, " index=%d reject=%v", m.Index, m.Reject)
	case raft.MsgVote, raft.MsgPreVote:
		fmt.Fprintf(&b, " last=%d/%d", m.Index, m.LogTerm)
	case raft.MsgVoteResp, raft.MsgPreVoteResp:
		fmt.Fprintf(&b, " reject=%v", m.Reject)
	case raft.MsgHeartbeat:
		fmt.Fprintf(&b, " commit=%d", m.Commit)
	case raft.MsgHeartbeatResp:
		fmt.Fprintf(&b, " sent=%d commit=%d", m.Index, m.Commit)
	case raft.MsgSnap:
		if m.Snapshot != nil {
			fmt.Fprintf(&b, " snap=%d/%d", m.Snapshot.Metadata.Index, m.Snapshot.Metadata.Term)
		}
	}
	return b.String()
}
