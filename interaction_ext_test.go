package raft

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The scripted-scenario commands for leadership transfer, reads, snapshots
// and membership changes (issues 3 and 4):
//
//	elect ID                 campaign at ID and stabilize without printing
//	                         the steps; print every node's role
//	stabilize quiet          stabilize, printing only every node's role
//	transfer-leader ID TO    call TransferLeader(TO) at ID
//	read-index ID CTX        call ReadIndex(CTX) at ID; answers show up as
//	                         ReadStates in a later Ready
//	snapshot ID              the host of ID snapshots its state at its
//	                         applied index and compacts the log up to it
//	report-snapshot ID PEER ok|fail, report-unreachable ID PEER
//	                         report a transport outcome to ID
//	propose-conf-change ID [joint|explicit] [ctx=TEXT] v4 l5 r1...
//	                         propose adding voter 4, learner 5, removing 1;
//	                         joint and explicit force a joint configuration
//	                         (left automatically, or by leave-joint)
//	leave-joint ID           propose leaving the joint configuration
//	add-node ID [opt=v...]   start a node with empty storage: it joins when
//	                         a leader that added it sends it a snapshot
//	delay [FROM->TO], duplicate [FROM->TO], release
//	                         hold queued messages back (or copies of them)
//	                         until release queues them again
//
// Committed EntryConfChange entries are applied through ApplyConfChange,
// and the Ready output shows the resulting configuration or the refusal.

// runExt runs the commands above. It reports false for an unknown command.
func (e *scenEnv) runExt(name string, args []string) (bool, error) {
	var err error
	switch name {
	case "elect":
		err = e.withNode(args, 1, e.cmdElect)
	case "transfer-leader":
		err = e.cmdTransferLeader(args)
	case "read-index":
		if len(args) != 2 {
			return true, fmt.Errorf("usage: read-index ID CTX")
		}
		err = e.withNode(args[:1], 1, func(n *testNode) {
			n.rn.ReadIndex([]byte(args[1]))
			e.printf("%d asked to read %q\n", n.id, args[1])
		})
	case "snapshot":
		err = e.withNode(args, 1, e.cmdSnapshot)
	case "report-snapshot":
		err = e.cmdReport(args, true)
	case "report-unreachable":
		err = e.cmdReport(args, false)
	case "propose-conf-change":
		err = e.cmdProposeConfChange(args)
	case "leave-joint":
		err = e.withNode(args, 1, func(n *testNode) { e.proposeConfChange(n, ConfChange{}) })
	case "add-node":
		err = e.cmdAddNode(args)
	case "delay":
		err = e.cmdHold(args, false)
	case "duplicate":
		err = e.cmdHold(args, true)
	case "release":
		if len(args) != 0 {
			return true, fmt.Errorf("usage: release")
		}
		if len(e.held) == 0 {
			e.printf("no messages\n")
		}
		for _, m := range e.held {
			e.printf("queued %s\n", scenFormatMessage(m))
		}
		e.c.queue = append(e.c.queue, e.held...)
		e.held = nil
	default:
		return false, nil
	}
	return true, err
}

// cmdElect campaigns at n and runs the cluster until it is quiet, printing
// only the outcome: the steps are those of election_commit_3_nodes.txt.
func (e *scenEnv) cmdElect(n *testNode) {
	if err := n.rn.Campaign(); err != nil {
		e.printf("error: %v\n", err)
		return
	}
	err := e.stabilize()
	e.out.Reset()
	if err != nil {
		e.printf("error: %v\n", err)
	}
	e.printRoles()
}

// cmdStabilize: stabilize [quiet]. Quiet, it prints only the outcome:
// every running node's role, for the steps a script does not study.
func (e *scenEnv) cmdStabilize(args []string) error {
	switch {
	case len(args) == 0:
		return e.stabilize()
	case len(args) > 1 || args[0] != "quiet":
		return fmt.Errorf("usage: stabilize [quiet]")
	}
	err := e.stabilize()
	e.out.Reset()
	if err != nil {
		return err
	}
	e.printRoles()
	return nil
}

// printRoles prints the one-line summary of every running node.
func (e *scenEnv) printRoles() {
	for _, id := range e.c.ids {
		if n := e.c.nodes[id]; n.rn != nil {
			e.printRole(n, fmt.Sprintf(" applied=%d", n.lastApplied))
		} else {
			e.printf("%d is down\n", id)
		}
	}
}

// cmdTransferLeader: transfer-leader ID TO.
func (e *scenEnv) cmdTransferLeader(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: transfer-leader ID TO")
	}
	to, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil {
		return fmt.Errorf("bad target %q", args[1])
	}
	return e.withNode(args[:1], 1, func(n *testNode) {
		if err := n.rn.TransferLeader(to); err != nil {
			e.printf("error: %v\n", err)
			return
		}
		e.printf("ok\n")
	})
}

// cmdSnapshot: snapshot ID. The host records a snapshot of its state
// machine at its applied index, with the configuration in force there, and
// discards the log up to that index.
func (e *scenEnv) cmdSnapshot(n *testNode) {
	cs := n.confState
	data := []byte(fmt.Sprintf("state of %d at %d", n.id, n.lastApplied))
	snap, err := n.storage.CreateSnapshot(n.lastApplied, &cs, data)
	if err != nil {
		e.printf("error: %v\n", err)
		return
	}
	if err := n.storage.Compact(n.lastApplied); err != nil {
		e.printf("error: %v\n", err)
		return
	}
	md := snap.Metadata
	e.printf("%d: snapshot %d/%d %s; log compacted up to %d\n", n.id, md.Term, md.Index, scenFormatConfState(md.ConfState), md.Index)
}

// cmdReport: report-snapshot ID PEER ok|fail, report-unreachable ID PEER.
func (e *scenEnv) cmdReport(args []string, snapshot bool) error {
	want := 2
	if snapshot {
		want = 3
	}
	if len(args) != want {
		return fmt.Errorf("usage: report-snapshot ID PEER ok|fail, report-unreachable ID PEER")
	}
	peer, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil {
		return fmt.Errorf("bad peer %q", args[1])
	}
	if !snapshot {
		return e.withNode(args[:1], 1, func(n *testNode) {
			n.rn.ReportUnreachable(peer)
			e.printStatusOf(n, peer)
		})
	}
	var status SnapshotStatus
	switch args[2] {
	case "ok":
		status = SnapshotFinish
	case "fail":
		status = SnapshotFailure
	default:
		return fmt.Errorf("bad snapshot status %q, want ok or fail", args[2])
	}
	return e.withNode(args[:1], 1, func(n *testNode) {
		n.rn.ReportSnapshot(peer, status)
		e.printStatusOf(n, peer)
	})
}

// printStatusOf prints the leader n's progress of peer, if n leads.
func (e *scenEnv) printStatusOf(n *testNode, peer uint64) {
	pr, ok := n.rn.Status().Progress[peer]
	if !ok {
		e.printf("%d has no progress for %d\n", n.id, peer)
		return
	}
	e.printf("%d: progress of %d: %s\n", n.id, peer, pr.String())
}

// cmdProposeConfChange: propose-conf-change ID [joint|explicit] [ctx=TEXT]
// CHANGE... with CHANGE v<id> (add voter), l<id> (add learner) or r<id>
// (remove).
func (e *scenEnv) cmdProposeConfChange(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: propose-conf-change ID [joint|explicit] [ctx=TEXT] v4 l5 r1...")
	}
	var cc ConfChange
	for _, a := range args[1:] {
		switch {
		case a == "joint":
			cc.Transition = ConfChangeTransitionJointImplicit
		case a == "explicit":
			cc.Transition = ConfChangeTransitionJointExplicit
		case strings.HasPrefix(a, "ctx="):
			cc.Context = []byte(strings.TrimPrefix(a, "ctx="))
		default:
			c, err := scenParseChange(a)
			if err != nil {
				return err
			}
			cc.Changes = append(cc.Changes, c)
		}
	}
	if len(cc.Changes) == 0 {
		return fmt.Errorf("no change given; use leave-joint to leave a joint configuration")
	}
	return e.withNode(args[:1], 1, func(n *testNode) { e.proposeConfChange(n, cc) })
}

// scenParseChange parses v4, l4 or r4.
func scenParseChange(s string) (ConfChangeSingle, error) {
	if len(s) < 2 {
		return ConfChangeSingle{}, fmt.Errorf("bad change %q, want v<id>, l<id> or r<id>", s)
	}
	id, err := strconv.ParseUint(s[1:], 10, 64)
	if err != nil {
		return ConfChangeSingle{}, fmt.Errorf("bad change %q: %v", s, err)
	}
	c := ConfChangeSingle{NodeID: id}
	switch s[0] {
	case 'v':
		c.Type = ConfChangeAddNode
	case 'l':
		c.Type = ConfChangeAddLearnerNode
	case 'r':
		c.Type = ConfChangeRemoveNode
	default:
		return ConfChangeSingle{}, fmt.Errorf("bad change %q, want v<id>, l<id> or r<id>", s)
	}
	return c, nil
}

func (e *scenEnv) proposeConfChange(n *testNode, cc ConfChange) {
	if err := n.rn.ProposeConfChange(cc); err != nil {
		e.printf("error: %v\n", err)
		return
	}
	e.printf("ok: %s\n", cc)
}

// printConfChange prints what applying the configuration change e did at
// n: the configuration it led to, or the refusal.
func (e *scenEnv) printConfChange(n *testNode, ent Entry, cs ConfState, err error) {
	if err != nil {
		e.printf("%s%d refused the ConfChange at %d: %v\n", e.indent, n.id, ent.Index, err)
		return
	}
	e.printf("%s%d applied the ConfChange at %d: %s\n", e.indent, n.id, ent.Index, scenFormatConfState(cs))
}

// scenSameConf reports whether a and b are the same configuration.
func scenSameConf(a, b ConfState) bool {
	return scenFormatConfState(a) == scenFormatConfState(b)
}

// cmdAddNode: add-node ID [options] starts a node with empty storage. It
// has no configuration: it cannot campaign and waits for a leader whose
// configuration includes it to send it a snapshot.
func (e *scenEnv) cmdAddNode(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: add-node ID [options]")
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || id == None {
		return fmt.Errorf("bad node ID %q", args[0])
	}
	if _, ok := e.c.nodes[id]; ok {
		return fmt.Errorf("node %d exists", id)
	}
	opts, err := scenOptions(args[1:])
	if err != nil {
		return err
	}
	n := e.c.startNode(id, NewMemoryStorage(), nil, opts...)
	e.printRole(n, " (empty storage, no configuration)")
	return nil
}

// cmdHold: delay [FROM->TO] moves the matching queued messages aside;
// duplicate [FROM->TO] sets copies of them aside. release queues what was
// set aside again.
func (e *scenEnv) cmdHold(args []string, duplicate bool) error {
	orig := slices.Clone(e.c.queue)
	msgs, err := e.takeQueued(args)
	if err != nil {
		return err
	}
	verb := "delayed"
	if duplicate {
		verb = "duplicated"
		e.c.queue = orig
	}
	if len(msgs) == 0 {
		e.printf("no messages\n")
	}
	for _, m := range msgs {
		e.printf("%s %s\n", verb, scenFormatMessage(m))
	}
	e.held = append(e.held, msgs...)
	return nil
}

// scenFormatConfState formats a configuration: voters=[2 3 4]&&[1 2 3]
// for a joint one, then learners, learners-next and autoleave if any.
func scenFormatConfState(cs ConfState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "voters=%v", scenIDs(cs.Voters))
	if len(cs.VotersOutgoing) > 0 {
		fmt.Fprintf(&b, "&&%v", cs.VotersOutgoing)
	}
	if len(cs.Learners) > 0 {
		fmt.Fprintf(&b, " learners=%v", cs.Learners)
	}
	if len(cs.LearnersNext) > 0 {
		fmt.Fprintf(&b, " learners-next=%v", cs.LearnersNext)
	}
	if cs.AutoLeave {
		b.WriteString(" autoleave")
	}
	return b.String()
}

func scenIDs(ids []uint64) []uint64 {
	if ids == nil {
		return []uint64{}
	}
	return ids
}

// scenFormatMessageExt formats the fields of reads and transfers.
func scenFormatMessageExt(m Message) string {
	switch m.Type {
	case MsgReadIndex, MsgReadIndexResp:
		s := ""
		if m.Type == MsgReadIndexResp {
			s = fmt.Sprintf(" Index:%d", m.Index)
		}
		if len(m.Entries) == 1 {
			s += fmt.Sprintf(" Ctx:%q", m.Entries[0].Data)
		}
		return s
	case MsgHeartbeat, MsgHeartbeatResp:
		if seq, ok := decodeSeq(m.Context); ok {
			return fmt.Sprintf(" ReadRound:%d", seq)
		}
	case MsgVote:
		if isTransferVote(m) {
			return " (transfer)"
		}
	case MsgTransferLeader:
		return fmt.Sprintf(" Target:%d", m.Index)
	}
	return ""
}
