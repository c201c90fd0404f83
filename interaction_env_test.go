package raft

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keelraft/raft/internal/script"
)

// scenEnv runs the scripted scenarios on a manual test cluster
// (cluster_test.go): nothing happens on its own there, a node's Ready is
// handled only by process-ready or stabilize, and a message moves only by
// deliver or stabilize, so a script shows every step. The hosts follow the
// Ready contract (persist, then send MessagesAfterPersist, apply, Advance)
// and the cluster checks it, with election safety and state-machine safety,
// on every Ready; a violation fails the test but the script goes on. A
// host's state machine survives a crash.
type scenEnv struct {
	t   testing.TB
	c   *testCluster
	out strings.Builder

	// held holds messages the network delays (delay, duplicate) until a
	// release command puts them back at the end of the cluster's queue.
	held []Message
	// indent prefixes what the hosts print while a Ready is carried out.
	indent string
}

func newScenEnv(t testing.TB) *scenEnv {
	e := &scenEnv{t: t}
	e.c = buildCluster(t, clusterSpec{modes: clusterModes{manual: true, durableApply: true}})
	e.c.report = t.Errorf
	e.c.onConfChange = e.printConfChange
	return e
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
		err = e.withNode(args, 1, func(n *testNode) {
			if err := n.rn.Campaign(); err != nil {
				e.printf("error: %v\n", err)
			}
			e.printRole(n, "")
		})
	case "propose":
		if len(args) != 2 {
			return "", fmt.Errorf("usage: propose ID DATA")
		}
		err = e.withNode(args[:1], 1, func(n *testNode) {
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
		err = e.withNode(args, 1, func(n *testNode) { e.cmdIsolate(n.id) })
	case "heal":
		e.c.heal()
		e.printf("all links restored\n")
	case "stabilize":
		err = e.cmdStabilize(args)
	case "status":
		err = e.forNodes(args, func(n *testNode) { e.printStatus(n) })
	case "raft-log":
		err = e.forNodes(args, func(n *testNode) { e.printLog(n) })
	case "crash":
		err = e.withNode(args, 1, func(n *testNode) { e.crash(n) })
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
func (e *scenEnv) node(arg string) (*testNode, error) {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("bad node ID %q", arg)
	}
	n, ok := e.c.nodes[id]
	if !ok {
		return nil, fmt.Errorf("no node %d", id)
	}
	return n, nil
}

// withNode runs fn on the running node named by args[0]; args must hold
// exactly want arguments. A node that is down prints as such.
func (e *scenEnv) withNode(args []string, want int, fn func(*testNode)) error {
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
func (e *scenEnv) forNodes(args []string, fn func(*testNode)) error {
	ids := e.c.ids
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
		fn(e.c.nodes[id])
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

// scenOptions returns the Config changes that key=value script arguments
// ask for, or the error of the first bad one.
func scenOptions(kvs []string) ([]configOption, error) {
	var opts []configOption
	for _, kv := range kvs {
		if err := scenApplyOption(&Config{}, kv); err != nil {
			return nil, err
		}
		opts = append(opts, func(cfg *Config) { _ = scenApplyOption(cfg, kv) })
	}
	return opts, nil
}

// cmdAddNodes: add-nodes N [key=value...] bootstraps voters 1..N and
// persists the bootstrap Ready of each.
func (e *scenEnv) cmdAddNodes(args []string) error {
	if len(args) < 1 || len(e.c.nodes) > 0 {
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
	opts, err := scenOptions(args[1:])
	if err != nil {
		return err
	}
	for _, id := range voters {
		n := e.c.startNode(id, NewMemoryStorage(), voters, opts...)
		// The bootstrap Ready only persists the initial configuration.
		e.c.handleReady(id)
		e.printRole(n, fmt.Sprintf(" voters=%v", voters))
	}
	return nil
}

// printRole prints a node's one-line summary.
func (e *scenEnv) printRole(n *testNode, extra string) {
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
	e.tick(e.c.ids, count)
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
			n := e.c.nodes[id]
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
	return e.forNodes(args, func(n *testNode) {
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

// processReady prints one Ready of n and has the cluster's host carry it
// out as the contract asks: persist the snapshot, entries and hard state;
// send Messages and, now that the writes are durable, MessagesAfterPersist;
// apply the committed entries (printing what configuration changes did);
// Advance.
func (e *scenEnv) processReady(n *testNode, header bool) {
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

	e.indent = indent
	e.c.processReady(n, rd)
	n.rn.Advance(rd)
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
		for _, id := range e.c.ids {
			n := e.c.nodes[id]
			if n.rn != nil && n.rn.HasReady() {
				e.processReady(n, true)
				active = true
			}
		}
		if len(e.c.queue) > 0 {
			msgs := e.c.queue
			e.c.queue = nil
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
func (e *scenEnv) printStatus(n *testNode) {
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
func (e *scenEnv) printLog(n *testNode) {
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
	e.printf("snapshot=%d/%d committed=%d applied=%d\n", snapTerm, snapIndex, committed, n.lastApplied)
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
func (e *scenEnv) crash(n *testNode) {
	lost := ""
	if n.rn.HasReady() {
		lost = " (an unhandled Ready is lost)"
	}
	e.c.stop(n.id)
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
	if err := e.c.start(n.id); err != nil {
		e.printf("error: %v\n", err)
		return nil
	}
	rn := n.rn
	e.printRole(n, fmt.Sprintf(" applied=%d last=%d", rn.BasicStatus().Applied, rn.raft.raftLog.lastIndex()))
	// The host's state machine, as of applied, records the configuration
	// in force there; the node must come back with the same one.
	if got := rn.Status().Config; !scenSameConf(got, n.confState) {
		e.t.Errorf("%d restarted with configuration %s, want %s", n.id, scenFormatConfState(got), scenFormatConfState(n.confState))
	}
	return nil
}
