package raft

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keelraft/raft/internal/script"
)

// scenEnv is the host and network of the scripted scenarios. Unlike the
// test network of network_test.go, nothing happens on its own: a node's
// Ready is handled only by process-ready or stabilize, and a message moves
// only by deliver or stabilize, so a script shows every step. The host
// follows the Ready contract (persist, then send MessagesAfterPersist,
// apply, Advance) and checks it with scenCheckDurable; the environment also
// checks election safety and state-machine safety on every Ready.
type scenEnv struct {
	t     testing.TB
	out   strings.Builder
	nodes map[uint64]*scenNode
	ids   []uint64

	// queue holds the messages sent and not yet delivered, in send order.
	queue []Message
	// held holds messages the network delays (delay, duplicate) until a
	// release command puts them back at the end of queue.
	held []Message
	// cut[{from, to}] drops every message on that link at delivery.
	cut map[[2]uint64]bool

	// leaders is the leader seen for each term; applied the entry applied
	// at each index by any node.
	leaders map[uint64]uint64
	applied map[uint64]Entry
}

// scenNode is one node: its durable storage survives a crash, its RawNode
// does not.
type scenNode struct {
	id      uint64
	cfg     Config
	storage *MemoryStorage
	rn      *RawNode // nil while the node is down
	// applied is the index of the last entry the host applied.
	applied uint64
	// confState is the configuration as of applied, as the host tracks it
	// from snapshots and ApplyConfChange; snapshot stores it.
	confState ConfState
}

func newScenEnv(t testing.TB) *scenEnv {
	return &scenEnv{
		t:       t,
		nodes:   map[uint64]*scenNode{},
		cut:     map[[2]uint64]bool{},
		leaders: map[uint64]uint64{},
		applied: map[uint64]Entry{},
	}
}

func (e *scenEnv) printf(format string, args ...any) { fmt.Fprintf(&e.out, format, args...) }

// run executes one command and returns its output: it is the
// script.Handler of the scenarios. An error means the command itself is
// malformed (a bug in the script, not in raft).
func (e *scenEnv) run(cmd script.Command) (string, error) {
	e.out.Reset()
	name, args := cmd.Name, cmd.Args
	var err error
	switch name {
	case "add-nodes":
		err = e.cmdAddNodes(args)
	case "campaign":
		err = e.withNode(args, 1, func(n *scenNode) {
			if err := n.rn.Campaign(); err != nil {
				e.printf("error: %v\n", err)
			}
			e.printRole(n, "")
		})
	case "propose":
		if len(args) != 2 {
			return "", fmt.Errorf("usage: propose ID DATA")
		}
		err = e.withNode(args[:1], 1, func(n *scenNode) {
			if err := n.rn.Propose([]byte(args[1])); err != nil {
				e.printf("error: %v\n", err)
			} else {
				e.printf("ok\n")
			}
		})
	case "tick":
		err = e.cmdTick(args)
	case "tick-all":
		err = e.cmdTickAll(args)
	case "process-ready":
		err = e.cmdProcessReady(args)
	case "deliver":
		err = e.cmdDeliver(args)
	case "drop":
		err = e.cmdDrop(args)
	case "send":
		err = e.cmdSend(args)
	case "partition":
		err = e.cmdPartition(args)
	case "isolate":
		err = e.withNode(args, 1, func(n *scenNode) { e.cmdIsolate(n.id) })
	case "heal":
		clear(e.cut)
		e.printf("all links restored\n")
	case "stabilize":
		err = e.cmdStabilize(args)
	case "status":
		err = e.forNodes(args, func(n *scenNode) { e.printStatus(n) })
	case "raft-log":
		err = e.forNodes(args, func(n *scenNode) { e.printLog(n) })
	case "crash":
		err = e.withNode(args, 1, func(n *scenNode) { e.crash(n) })
	case "restart":
		err = e.cmdRestart(args)
	default:
		var handled bool
		if handled, err = e.runExt(name, args); !handled {
			err = fmt.Errorf("unknown command %q", name)
		}
	}
	return e.out.String(), err
}

// node returns the node with the given ID argument.
func (e *scenEnv) node(arg string) (*scenNode, error) {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("bad node ID %q", arg)
	}
	n, ok := e.nodes[id]
	if !ok {
		return nil, fmt.Errorf("no node %d", id)
	}
	return n, nil
}

// withNode runs fn on the running node named by args[0]; args must hold
// exactly want arguments. A node that is down prints as such.
func (e *scenEnv) withNode(args []string, want int, fn func(*scenNode)) error {
	if len(args) != want {
		return fmt.Errorf("want %d arguments, got %v", want, args)
	}
	n, err := e.node(args[0])
	if err != nil {
		return err
	}
	if n.rn == nil {
		e.printf("%d is down\n", n.id)
		return nil
	}
	fn(n)
	return nil
}

// forNodes runs fn on each node named in args, or on every node if none.
func (e *scenEnv) forNodes(args []string, fn func(*scenNode)) error {
	ids := e.ids
	if len(args) > 0 {
		ids = nil
		for _, a := range args {
			n, err := e.node(a)
			if err != nil {
				return err
			}
			ids = append(ids, n.id)
		}
	}
	for _, id := range ids {
		fn(e.nodes[id])
	}
	return nil
}

// scenApplyOption sets a Config field from a key=value script argument.
func scenApplyOption(cfg *Config, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("option %q is not key=value", kv)
	}
	if k == "read-only" {
		switch v {
		case "safe":
			cfg.ReadOnlyOption = ReadOnlySafe
		case "lease":
			cfg.ReadOnlyOption = ReadOnlyLeaseBased
		default:
			return fmt.Errorf("option %q: want safe or lease", kv)
		}
		return nil
	}
	if b, err := strconv.ParseBool(v); err == nil {
		switch k {
		case "prevote":
			cfg.DisablePreVote = !b
			return nil
		case "checkquorum":
			cfg.DisableCheckQuorum = !b
			return nil
		case "forwarding":
			cfg.DisableProposalForwarding = !b
			return nil
		case "step-down-on-removal":
			cfg.DisableStepDownOnRemoval = !b
			return nil
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("option %q: bad value", kv)
	}
	switch k {
	case "election":
		cfg.ElectionTick = int(n)
	case "heartbeat":
		cfg.HeartbeatTick = int(n)
	case "max-msg-size":
		cfg.MaxSizePerMsg = n
	case "max-inflight":
		cfg.MaxInflightMsgs = int(n)
	case "max-uncommitted":
		cfg.MaxUncommittedEntriesSize = n
	default:
		return fmt.Errorf("unknown option %q", kv)
	}
	return nil
}

// cmdAddNodes: add-nodes N [key=value...] bootstraps voters 1..N and
// persists the bootstrap Ready of each.
func (e *scenEnv) cmdAddNodes(args []string) error {
	if len(args) < 1 || len(e.nodes) > 0 {
		return fmt.Errorf("usage: add-nodes N [options], once per script")
	}
	count, err := strconv.Atoi(args[0])
	if err != nil || count < 1 {
		return fmt.Errorf("bad node count %q", args[0])
	}
	voters := make([]uint64, count)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	for _, id := range voters {
		storage := NewMemoryStorage()
		cfg := testConfig(id, storage)
		for _, o := range args[1:] {
			if err := scenApplyOption(&cfg, o); err != nil {
				return err
			}
		}
		rn, err := NewRawNode(cfg)
		if err != nil {
			return err
		}
		if err := rn.Bootstrap(voters); err != nil {
			return err
		}
		n := &scenNode{id: id, cfg: cfg, storage: storage, rn: rn, confState: ConfState{Voters: voters}}
		e.nodes[id] = n
		e.ids = append(e.ids, id)
		// The bootstrap Ready only persists the initial configuration.
		rd := rn.Ready()
		e.persist(n, rd)
		rn.Advance(rd)
		e.printRole(n, fmt.Sprintf(" voters=%v", voters))
	}
	return nil
}

// printRole prints a node's one-line summary.
func (e *scenEnv) printRole(n *scenNode, extra string) {
	st := n.rn.BasicStatus()
	e.printf("%d: %s term=%d vote=%d commit=%d lead=%d%s\n",
		n.id, st.RaftState, st.Term, st.Vote, st.Commit, st.Lead, extra)
}

// cmdTick: tick ID [N] ticks one node N times (default 1).
func (e *scenEnv) cmdTick(args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return fmt.Errorf("usage: tick ID [N]")
	}
	n, err := e.node(args[0])
	if err != nil {
		return err
	}
	count, err := scenCount(args[1:])
	if err != nil {
		return err
	}
	e.tick([]uint64{n.id}, count)
	return nil
}

// cmdTickAll: tick-all [N] ticks every running node N times, in turn.
func (e *scenEnv) cmdTickAll(args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("usage: tick-all [N]")
	}
	count, err := scenCount(args)
	if err != nil {
		return err
	}
	e.tick(e.ids, count)
	return nil
}

func scenCount(args []string) (int, error) {
	if len(args) == 0 {
		return 1, nil
	}
	c, err := strconv.Atoi(args[0])
	if err != nil || c < 1 {
		return 0, fmt.Errorf("bad count %q", args[0])
	}
	return c, nil
}

// tick ticks the running nodes among ids count times and prints every role,
// term or leader change with the tick that caused it.
func (e *scenEnv) tick(ids []uint64, count int) {
	for i := 1; i <= count; i++ {
		for _, id := range ids {
			n := e.nodes[id]
			if n.rn == nil {
				continue
			}
			before := n.rn.BasicStatus()
			n.rn.Tick()
			after := n.rn.BasicStatus()
			if before.LeadTransferee != None && after.LeadTransferee == None && after.RaftState == StateLeader {
				e.printf("tick %d: %d abandoned the leadership transfer to %d\n", i, id, before.LeadTransferee)
			}
			// A timer that fired (an election timeout, a leader's
			// quorum check) starts counting again from zero.
			fired := n.rn.raft.electionElapsed == 0
			switch {
			case before.SoftState != after.SoftState || before.Term != after.Term:
				e.printf("tick %d: %d became %s term=%d lead=%d\n", i, id, after.RaftState, after.Term, after.Lead)
			case fired && after.RaftState == StateLeader && n.rn.raft.checkQuorum:
				e.printf("tick %d: %d checked its quorum and remains leader\n", i, id)
			case fired && after.RaftState != StateLeader:
				e.printf("tick %d: %d timed out again as %s term=%d\n", i, id, after.RaftState, after.Term)
			}
		}
	}
	if e.out.Len() == 0 {
		e.printf("no timer fired\n")
	}
}

// cmdProcessReady: process-ready ID... handles one Ready of each node.
func (e *scenEnv) cmdProcessReady(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: process-ready ID...")
	}
	return e.forNodes(args, func(n *scenNode) {
		switch {
		case n.rn == nil:
			e.printf("%d is down\n", n.id)
		case !n.rn.HasReady():
			e.printf("%d has no Ready\n", n.id)
		default:
			e.processReady(n, len(args) > 1)
		}
	})
}

// processReady prints one Ready of n and carries it out as a host following
// the contract: persist the snapshot, entries and hard state; send Messages
// and, now that the writes are durable, MessagesAfterPersist; apply the
// committed entries; Advance.
func (e *scenEnv) processReady(n *scenNode, header bool) {
	rd := n.rn.Ready()
	indent := ""
	if header {
		indent = "  "
		sync := ""
		if rd.MustSync {
			sync = " (must sync)"
		}
		e.printf("> %d handling Ready%s\n", n.id, sync)
	} else if rd.MustSync {
		e.printf("Ready (must sync):\n")
	} else {
		e.printf("Ready:\n")
	}
	if rd.SoftState != nil {
		e.printf("%sState:%s Lead:%d\n", indent, rd.RaftState, rd.Lead)
	}
	if !rd.HardState.IsEmpty() {
		hs := rd.HardState
		e.printf("%sHardState Term:%d Vote:%d Commit:%d\n", indent, hs.Term, hs.Vote, hs.Commit)
	}
	if !rd.Snapshot.IsEmpty() {
		md := rd.Snapshot.Metadata
		e.printf("%sSnapshot Index:%d Term:%d %s\n", indent, md.Index, md.Term, scenFormatConfState(md.ConfState))
	}
	e.printEntries(indent, "Entries", rd.Entries)
	e.printEntries(indent, "CommittedEntries", rd.CommittedEntries)
	e.printMessages(indent, "Messages", rd.Messages)
	e.printMessages(indent, "MessagesAfterPersist", rd.MessagesAfterPersist)
	if len(rd.ReadStates) > 0 {
		e.printf("%sReadStates:\n", indent)
		for _, rs := range rd.ReadStates {
			e.printf("%s  Index:%d Ctx:%q\n", indent, rs.Index, rs.RequestCtx)
		}
	}

	if rd.SoftState != nil && rd.RaftState == StateLeader {
		term := n.rn.BasicStatus().Term
		if prev, ok := e.leaders[term]; ok && prev != n.id {
			e.t.Errorf("election safety violated: %d and %d both lead term %d", prev, n.id, term)
		}
		e.leaders[term] = n.id
	}
	e.persist(n, rd)
	e.queue = append(e.queue, rd.Messages...)
	for _, m := range rd.MessagesAfterPersist {
		if err := scenCheckDurable(n.storage, m); err != nil {
			e.t.Errorf("Ready contract violated by %d: %v", n.id, err)
		}
		e.queue = append(e.queue, m)
	}
	for _, ent := range rd.CommittedEntries {
		e.apply(n, ent)
		if ent.Type == EntryConfChange {
			e.applyConfChange(n, ent, indent)
		}
	}
	n.rn.Advance(rd)
}

// scenCheckDurable reports an error if m, about to be sent, promises state
// that storage does not hold. A vote request or grant for term T promises
// that the sender votes for no one else in T: that holds if the durable
// term is T with that vote, or any later term (the node never returns to T).
// An append ack for index i promises that the log is durable up to i.
func scenCheckDurable(s *MemoryStorage, m Message) error {
	hs := s.HardState()
	voted := m.To
	switch {
	case m.Type == MsgVote:
		voted = m.From
		fallthrough
	case m.Type == MsgVoteResp && !m.Reject:
		if hs.Term < m.Term || (hs.Term == m.Term && hs.Vote != voted) {
			return fmt.Errorf("%s for %d in term %d sent while durable term=%d vote=%d", m.Type, voted, m.Term, hs.Term, hs.Vote)
		}
	case m.Type == MsgAppResp && !m.Reject:
		if last, _ := s.LastIndex(); last < m.Index {
			return fmt.Errorf("append ack of index %d sent while durable last index is %d", m.Index, last)
		}
	}
	return nil
}

// persist writes a Ready's snapshot, entries and hard state to storage.
func (e *scenEnv) persist(n *scenNode, rd Ready) {
	if !rd.Snapshot.IsEmpty() {
		if err := n.storage.ApplySnapshot(rd.Snapshot); err != nil {
			e.t.Fatalf("%d: applying snapshot: %v", n.id, err)
		}
		n.applied = rd.Snapshot.Metadata.Index
		n.confState = rd.Snapshot.Metadata.ConfState
	}
	if err := n.storage.Append(rd.Entries); err != nil {
		e.t.Fatalf("%d: appending entries: %v", n.id, err)
	}
	if !rd.HardState.IsEmpty() {
		if err := n.storage.SetHardState(rd.HardState); err != nil {
			e.t.Fatalf("%d: saving hard state: %v", n.id, err)
		}
	}
}

// apply applies a committed entry, checking that entries are applied in
// order and that no two nodes apply different entries at one index.
func (e *scenEnv) apply(n *scenNode, ent Entry) {
	if ent.Index != n.applied+1 {
		e.t.Errorf("%d applied index %d after %d", n.id, ent.Index, n.applied)
	}
	if prev, ok := e.applied[ent.Index]; ok && (prev.Term != ent.Term || string(prev.Data) != string(ent.Data)) {
		e.t.Errorf("state-machine safety violated at index %d: %s vs %s",
			ent.Index, scenFormatEntry(prev), scenFormatEntry(ent))
	}
	e.applied[ent.Index] = ent
	n.applied = ent.Index
}

func (e *scenEnv) printEntries(indent, title string, ents []Entry) {
	if len(ents) == 0 {
		return
	}
	e.printf("%s%s:\n", indent, title)
	for _, ent := range ents {
		e.printf("%s  %s\n", indent, scenFormatEntry(ent))
	}
}

func (e *scenEnv) printMessages(indent, title string, msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	e.printf("%s%s:\n", indent, title)
	for _, m := range msgs {
		e.printf("%s  %s\n", indent, scenFormatMessage(m))
	}
}

// scenFormatEntry formats an entry as term/index type "data", or with the
// decoded change for a configuration change.
func scenFormatEntry(ent Entry) string {
	if ent.Type == EntryConfChange {
		var cc ConfChange
		if err := cc.Unmarshal(ent.Data); err == nil {
			return fmt.Sprintf("%d/%d %s %s", ent.Term, ent.Index, ent.Type, cc)
		}
	}
	return fmt.Sprintf("%d/%d %s %q", ent.Term, ent.Index, ent.Type, ent.Data)
}

// scenFormatMessage formats a message on one line, with the fields that
// matter for its type.
func scenFormatMessage(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %s Term:%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case MsgApp, MsgVote, MsgPreVote:
		fmt.Fprintf(&b, " Log:%d/%d", m.LogTerm, m.Index)
	case MsgAppResp:
		fmt.Fprintf(&b, " Index:%d", m.Index)
	}
	if m.Type == MsgApp || m.Type == MsgHeartbeat {
		fmt.Fprintf(&b, " Commit:%d", m.Commit)
	}
	b.WriteString(scenFormatMessageExt(m))
	if m.Reject {
		b.WriteString(" Rejected")
		if m.Type == MsgAppResp {
			fmt.Fprintf(&b, " (Hint:%d HintTerm:%d)", m.RejectHint, m.LogTerm)
		}
	}
	if len(m.Entries) > 0 && m.Type != MsgReadIndex && m.Type != MsgReadIndexResp {
		b.WriteString(" Entries:[")
		for i, ent := range m.Entries {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(scenFormatEntry(ent))
		}
		b.WriteString("]")
	}
	if m.Snapshot != nil {
		md := m.Snapshot.Metadata
		fmt.Fprintf(&b, " Snapshot:%d/%d %s", md.Term, md.Index, scenFormatConfState(md.ConfState))
	}
	return b.String()
}

// stabilize handles Readies and delivers messages until nothing is left,
// printing every step.
func (e *scenEnv) stabilize() error {
	for round := 0; ; round++ {
		if round > 1000 {
			return fmt.Errorf("no quiescence after %d rounds", round)
		}
		active := false
		for _, id := range e.ids {
			n := e.nodes[id]
			if n.rn != nil && n.rn.HasReady() {
				e.processReady(n, true)
				active = true
			}
		}
		if len(e.queue) > 0 {
			msgs := e.queue
			e.queue = nil
			e.printf("> delivering messages\n")
			e.deliver(msgs, "  ")
			active = true
		}
		if !active {
			if e.out.Len() == 0 {
				e.printf("nothing to do\n")
			}
			return nil
		}
	}
}

// printStatus prints a node's Status; a leader also prints each peer's
// progress ("inactive": not heard from since the last quorum check).
func (e *scenEnv) printStatus(n *scenNode) {
	if n.rn == nil {
		e.printf("%d is down\n", n.id)
		return
	}
	st := n.rn.Status()
	r := n.rn.raft
	timeout := r.randomizedElectionTimeout
	if r.state == StateLeader {
		timeout = r.electionTimeout
	}
	e.printf("%d: %s term=%d vote=%d commit=%d applied=%d lead=%d last=%d timer=%d/%d\n",
		n.id, st.RaftState, st.Term, st.Vote, st.Commit, st.Applied, st.Lead,
		r.raftLog.lastIndex(), r.electionElapsed, timeout)
	e.printf("  config: %s\n", scenFormatConfState(st.Config))
	if st.LeadTransferee != None {
		e.printf("  transferring leadership to %d\n", st.LeadTransferee)
	}
	ids := make([]uint64, 0, len(st.Progress))
	for id := range st.Progress {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		pr := st.Progress[id]
		s := pr.String()
		if !pr.RecentActive {
			s += " inactive"
		}
		e.printf("  %d: %s\n", id, s)
	}
}

// printLog prints a node's log: the entries a running node holds (marking
// those not yet durable), or what the storage of a node that is down holds.
func (e *scenEnv) printLog(n *scenNode) {
	var snapIndex, snapTerm, committed uint64
	var ents []Entry
	unstableFrom := ^uint64(0)
	if n.rn == nil {
		snap, _ := n.storage.Snapshot()
		snapIndex, snapTerm = snap.Metadata.Index, snap.Metadata.Term
		committed = n.storage.HardState().Commit
		first, _ := n.storage.FirstIndex()
		last, _ := n.storage.LastIndex()
		var err error
		if ents, err = n.storage.Entries(first, last+1, noLimit); err != nil {
			e.t.Fatalf("%d: reading storage: %v", n.id, err)
		}
		e.printf("%d (down, durable state): ", n.id)
	} else {
		l := n.rn.raft.raftLog
		snapIndex = l.firstIndex() - 1
		snapTerm = l.zeroTermOnOutOfBounds(l.term(snapIndex))
		committed = l.committed
		ents = l.allEntries()
		unstableFrom = l.unstable.offset
		e.printf("%d: ", n.id)
	}
	e.printf("snapshot=%d/%d committed=%d applied=%d\n", snapTerm, snapIndex, committed, n.applied)
	if len(ents) == 0 {
		e.printf("  no entries\n")
	}
	for _, ent := range ents {
		suffix := ""
		if ent.Index >= unstableFrom {
			suffix = " (not durable)"
		}
		e.printf("  %s%s\n", scenFormatEntry(ent), suffix)
	}
}

// crash stops a node: what its RawNode held in memory and had not handed to
// the host is lost; its storage keeps what the host persisted.
func (e *scenEnv) crash(n *scenNode) {
	lost := ""
	if n.rn.HasReady() {
		lost = " (an unhandled Ready is lost)"
	}
	n.rn = nil
	hs := n.storage.HardState()
	last, _ := n.storage.LastIndex()
	e.printf("%d crashed%s; durable: term=%d vote=%d commit=%d last=%d\n", n.id, lost, hs.Term, hs.Vote, hs.Commit, last)
}

// cmdRestart: restart ID [key=value...] starts a crashed node again from its
// storage, with its Config changed by the options.
func (e *scenEnv) cmdRestart(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: restart ID [options]")
	}
	n, err := e.node(args[0])
	if err != nil {
		return err
	}
	if n.rn != nil {
		return fmt.Errorf("node %d is running; crash it first", n.id)
	}
	for _, o := range args[1:] {
		if err := scenApplyOption(&n.cfg, o); err != nil {
			return err
		}
	}
	cfg := n.cfg
	cfg.Applied = min(n.applied, n.storage.HardState().Commit)
	rn, err := NewRawNode(cfg)
	if err != nil {
		e.printf("error: %v\n", err)
		return nil
	}
	n.rn = rn
	e.printRole(n, fmt.Sprintf(" applied=%d last=%d", rn.BasicStatus().Applied, rn.raft.raftLog.lastIndex()))
	// The host's state machine, as of applied, records the configuration
	// in force there; the node must come back with the same one.
	if got := rn.Status().Config; !scenSameConf(got, n.confState) {
		e.t.Errorf("%d restarted with configuration %s, want %s", n.id, scenFormatConfState(got), scenFormatConfState(n.confState))
	}
	return nil
}
