package rafttest

import (
	"slices"

	"github.com/keelraft/raft"
)

// injectFaults draws this step's faults.
func (s *sim) injectFaults() {
	f := s.cfg.Faults
	// due reports whether fault kind happens this step: at random, or
	// because the run must have one by now. do reports whether it could
	// happen; a forced fault that could not waits for the next step.
	due := func(kind string, p float64, do func() bool) {
		at, forced := s.p.forced[kind]
		forced = forced && at <= s.now
		if !forced && s.rng.Float64() >= p {
			return
		}
		if do() && forced {
			delete(s.p.forced, kind)
		}
	}
	if f.Partitions {
		if s.partitionEnd != 0 && s.now >= s.partitionEnd {
			s.net.heal()
			s.partitionEnd = 0
			s.tracef("partition healed")
		}
		due("partition", s.p.pPartition, func() bool {
			if s.partitionEnd != 0 {
				return false
			}
			return s.partition()
		})
	}
	upNode := func(n *simNode) bool { return n.up() }
	if f.Crashes {
		due("crash", s.p.pCrash, func() bool {
			n := s.randomNode(upNode)
			if n != nil {
				s.crash(n, false)
			}
			return n != nil
		})
	}
	if f.PowerLoss {
		// Power losses in the middle of a Ready happen at random in
		// processReady; this makes sure there is at least one.
		due("powerloss", 0, func() bool {
			if s.cfg.Pipelined {
				// Between the writes and the acknowledgement of a Ready.
				n := s.randomNode(func(n *simNode) bool { return n.up() && len(n.persistQ) > 0 })
				if n != nil {
					s.crash(n, true)
				}
				return n != nil
			}
			n := s.randomNode(upNode)
			if n != nil {
				n.crashInReady = true
			}
			return n != nil
		})
		due("clustercrash", s.p.pClusterCrash, func() bool {
			s.tracef("every node loses power")
			s.res.Counts.ClusterCrashes++
			for _, id := range s.ids {
				if n := s.nodes[id]; n != nil && n.up() {
					s.crash(n, true)
				}
			}
			return true
		})
	}
	if f.Pauses {
		due("pause", s.p.pPause, func() bool {
			n := s.randomNode(func(n *simNode) bool { return n.up() && n.pausedUntil <= s.now })
			if n == nil {
				return false
			}
			n.pausedUntil = s.now + 1 + s.rng.Int64N(int64(3*s.cfg.ElectionTick))
			s.res.Counts.Pauses++
			s.tracef("n%d paused until %d", n.id, n.pausedUntil)
			return true
		})
	}
	if f.Membership {
		due("conf", s.p.pConf, s.changeMembership)
	}
	if f.Snapshots {
		due("snap", s.p.pSnap, func() bool {
			n := s.randomNode(func(n *simNode) bool { return n.up() && n.pausedUntil <= s.now })
			return n != nil && s.snapshot(n)
		})
	}
	if f.Bursts {
		due("burst", s.p.pBurst, s.burst)
	}
	if f.Stalls {
		due("stall", s.p.pStall, func() bool {
			n := s.randomNode(func(n *simNode) bool { return n.up() && !n.stalled(s.now) })
			if n != nil {
				s.stall(n, s.now, 1+s.rng.Int64N(int64(s.cfg.ElectionTick)))
			}
			return n != nil
		})
	}
	if f.Transfers {
		p := s.p.pTransfer
		if s.leavingUntil > s.now {
			p = 0.2 // aim at the leaving voter at several points of its change
		}
		due("transfer", p, func() bool {
			if s.leavingUntil > s.now && s.rng.IntN(4) > 0 {
				if n := s.nodes[s.leaving]; n != nil && n.up() && s.cfg.Faults.Stalls && s.rng.IntN(2) == 0 {
					s.stall(n, s.now+s.rng.Int64N(3), 1+s.rng.Int64N(6))
				}
				return s.transfer(s.leaving, true)
			}
			return s.transfer(0, false)
		})
	}
	if f.ExtremeTerms {
		due("extremeterm", s.p.pExtreme, s.forgeExtremeTerm)
	}
	if f.LogRegression {
		due("regress", s.p.pRegress, s.regressLog)
	}
	if f.StorageFaults {
		if !f.Partitions && s.partitionEnd != 0 && s.now >= s.partitionEnd {
			s.net.heal()
			s.partitionEnd = 0
			s.tracef("partition healed")
		}
		due("storage", s.p.pStorage, s.damageStorage)
	}
}

// randomNode picks a started node satisfying ok, or nil.
func (s *sim) randomNode(ok func(*simNode) bool) *simNode {
	var c []*simNode
	for _, id := range s.ids {
		if n := s.nodes[id]; n != nil && ok(n) {
			c = append(c, n)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[s.rng.IntN(len(c))]
}

// startedIDs returns the IDs of the started nodes.
func (s *sim) startedIDs() []uint64 {
	var ids []uint64
	for _, id := range s.ids {
		if s.started[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

// leader returns the up node that leads the highest term, or nil.
func (s *sim) leader() *simNode {
	var l *simNode
	for _, id := range s.ids {
		n := s.nodes[id]
		if n != nil && n.up() && n.role == raft.StateLeader && (l == nil || n.term > l.term) {
			l = n
		}
	}
	return l
}

// partition cuts links in one of four shapes. It reports false if there
// is only one node.
func (s *sim) partition() bool {
	ids := s.startedIDs()
	if len(ids) < 2 {
		return false
	}
	s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	s.partitionEnd = s.now + int64(s.cfg.ElectionTick) + s.rng.Int64N(int64(5*s.cfg.ElectionTick))
	s.res.Counts.Partitions++
	switch s.rng.IntN(4) {
	case 0: // random split
		k := 1 + s.rng.IntN(len(ids)-1)
		s.net.cutBetween(ids[:k], ids[k:], false)
		s.tracef("partition split %v | %v until %d", ids[:k], ids[k:], s.partitionEnd)
	case 1: // the leader isolated
		l := s.leader()
		if l == nil {
			l = s.nodes[ids[0]]
		}
		rest := slices.DeleteFunc(slices.Clone(ids), func(id uint64) bool { return id == l.id })
		s.net.cutBetween([]uint64{l.id}, rest, false)
		s.tracef("partition leader n%d isolated until %d", l.id, s.partitionEnd)
	case 2: // one-way links
		k := 1 + s.rng.IntN(len(ids)-1)
		s.net.cutBetween(ids[:k], ids[k:], true)
		s.tracef("partition one-way %v -> %v cut until %d", ids[:k], ids[k:], s.partitionEnd)
	case 3: // a bridge node sees both sides
		if len(ids) < 3 {
			s.net.cutBetween(ids[:1], ids[1:], false)
			return true
		}
		bridge, rest := ids[0], ids[1:]
		k := 1 + s.rng.IntN(len(rest)-1)
		s.net.cutBetween(rest[:k], rest[k:], false)
		s.tracef("partition bridge n%d between %v | %v until %d", bridge, rest[:k], rest[k:], s.partitionEnd)
	}
	return true
}

// changeMembership proposes a random membership change at the leader. It
// reports whether the leader accepted the proposal.
func (s *sim) changeMembership() bool {
	l := s.leader()
	if l == nil {
		return false
	}
	cs := l.conf
	if len(cs.VotersOutgoing) > 0 {
		if cs.AutoLeave {
			return false // the leader leaves the joint configuration on its own
		}
		// An explicit joint change: leave the joint configuration.
		err := l.rn.ProposeConfChange(raft.ConfChange{})
		s.tracef("n%d proposes leaving the joint configuration: err=%v", l.id, err)
		if err != nil {
			return false
		}
		s.res.Counts.ConfProposals++
		s.handleReady(l)
		return true
	}
	// Spares are never-added nodes: not members, never removed (a removed
	// node's ID is never reused). A spare may have been started by a
	// proposal that did not commit.
	var spares []uint64
	for _, id := range s.ids {
		if !s.retired[id] && !slices.Contains(cs.Voters, id) && !slices.Contains(cs.Learners, id) {
			spares = append(spares, id)
		}
	}
	voters, learners := cs.Voters, cs.Learners
	pick := func(ids []uint64) uint64 { return ids[s.rng.IntN(len(ids))] }
	minVoters := s.cfg.MinVoters
	var cc raft.ConfChange
	// leaving is a voter the change removes or demotes.
	var leaving uint64
	switch s.rng.IntN(6) {
	case 0, 1: // add a learner
		if len(spares) == 0 {
			return false
		}
		cc.Changes = []raft.ConfChangeSingle{{Type: raft.ConfChangeAddLearnerNode, NodeID: spares[0]}}
	case 2: // promote a learner
		if len(learners) == 0 {
			return false
		}
		cc.Changes = []raft.ConfChangeSingle{{Type: raft.ConfChangeAddNode, NodeID: pick(learners)}}
	case 3: // remove a voter or a learner
		if s.rng.IntN(2) == 0 && len(learners) > 0 {
			cc.Changes = []raft.ConfChangeSingle{{Type: raft.ConfChangeRemoveNode, NodeID: pick(learners)}}
		} else if len(voters) > minVoters {
			leaving = pick(voters)
			cc.Changes = []raft.ConfChangeSingle{{Type: raft.ConfChangeRemoveNode, NodeID: leaving}}
		} else {
			return false
		}
	case 4: // demote a voter
		if len(voters) <= minVoters {
			return false
		}
		leaving = pick(voters)
		cc.Changes = []raft.ConfChangeSingle{{Type: raft.ConfChangeAddLearnerNode, NodeID: leaving}}
	case 5: // replace a voter by a learner: a joint change
		if len(learners) == 0 {
			return false
		}
		leaving = pick(voters)
		cc.Changes = []raft.ConfChangeSingle{
			{Type: raft.ConfChangeAddNode, NodeID: pick(learners)},
			{Type: raft.ConfChangeRemoveNode, NodeID: leaving},
		}
		if s.rng.IntN(2) == 0 {
			cc.Transition = raft.ConfChangeTransitionJointImplicit
		}
	}
	if s.cfg.MinVoters < 3 {
		// In the newer membership mode (the older runs stay as they
		// were), any change may go through a joint configuration, left at
		// once or only by a later change.
		switch s.rng.IntN(4) {
		case 0:
			cc.Transition = raft.ConfChangeTransitionJointImplicit
		case 1:
			cc.Transition = raft.ConfChangeTransitionJointExplicit
		}
	}
	err := l.rn.ProposeConfChange(cc)
	s.tracef("n%d proposes %s: err=%v", l.id, cc, err)
	if err != nil {
		return false
	}
	s.res.Counts.ConfProposals++
	for _, c := range cc.Changes {
		if c.Type == raft.ConfChangeAddLearnerNode && !s.started[c.NodeID] {
			s.startNode(c.NodeID, nil)
		}
	}
	s.handleReady(l)
	// The leader hands over to the voter that is leaving while the change
	// commits, which may still be applying it when told to campaign; later
	// random transfers aim at it too while the change is under way.
	if leaving != 0 {
		s.leaving, s.leavingUntil = leaving, s.now+int64(2*s.cfg.ElectionTick)
	}
	if leaving != 0 && leaving != l.id && s.cfg.Faults.Transfers {
		if s.cfg.Faults.Stalls && s.rng.IntN(2) == 0 {
			if n := s.nodes[leaving]; n != nil && n.up() {
				s.stall(n, s.now+1+s.rng.Int64N(4), 2+s.rng.Int64N(8))
			}
		}
		s.transfer(leaving, true)
	}
	return true
}

// burst makes one link lose every message for up to an election timeout,
// most often one from the leader to a follower.
func (s *sim) burst() bool {
	ids := s.startedIDs()
	if len(ids) < 2 {
		return false
	}
	from := ids[s.rng.IntN(len(ids))]
	if l := s.leader(); l != nil && s.rng.IntN(3) > 0 {
		from = l.id
	}
	to := ids[s.rng.IntN(len(ids))]
	if to == from {
		return false
	}
	until := s.now + 1 + s.rng.Int64N(int64(s.cfg.ElectionTick))
	s.net.burst[[2]uint64{from, to}] = until
	s.res.Counts.Bursts++
	s.tracef("burst: link n%d -> n%d loses everything until %d", from, to, until)
	return true
}

// stall freezes n's host loop for k steps from step from.
func (s *sim) stall(n *simNode, from, k int64) {
	n.stallFrom, n.stalledUntil = from, from+k
	s.res.Counts.Stalls++
	s.tracef("n%d's host stalls from %d until %d", n.id, from, from+k)
}

// transfer asks the leader to hand leadership to the voter to, or to a
// random voter if to is 0. leaving marks a voter that a change committing
// now removes or demotes. It reports whether the leader accepted.
func (s *sim) transfer(to uint64, leaving bool) bool {
	l := s.leader()
	if l == nil {
		return false
	}
	if to == 0 {
		var others []uint64
		for _, id := range l.rn.Status().Config.Voters {
			if id != l.id {
				others = append(others, id)
			}
		}
		if len(others) == 0 {
			return false
		}
		to = others[s.rng.IntN(len(others))]
	}
	err := l.rn.TransferLeader(to)
	s.tracef("n%d transfers leadership to n%d (leaving=%v): err=%v", l.id, to, leaving, err)
	if err != nil {
		return false
	}
	s.res.Counts.Transfers++
	if leaving {
		s.res.Counts.TransfersToLeaving++
	}
	s.handleReady(l)
	return true
}

// extremeTerm is the largest term a message may carry.
const extremeTerm = 1 << 62

// forgeExtremeTerm sends a node a heartbeat or a vote request at term 2^62
// in the name of a member. The heartbeat commits nothing (commit 0) and the
// vote request states the member's real log, so the only harm is the term.
func (s *sim) forgeExtremeTerm() bool {
	if s.res.Counts.LeaderChanges == 0 {
		return false // once the cluster works, not before it ever elected
	}
	to := s.randomNode(func(n *simNode) bool { return n.up() })
	if to == nil {
		return false
	}
	// From a member if there is another, else from any other ID of the
	// pool.
	var fromID uint64
	if from := s.randomNode(func(n *simNode) bool { return n.id != to.id && s.isMember(n.id) }); from != nil {
		fromID = from.id
	} else {
		others := slices.DeleteFunc(slices.Clone(s.ids), func(id uint64) bool { return id == to.id })
		if len(others) == 0 {
			return false
		}
		fromID = others[s.rng.IntN(len(others))]
	}
	m := raft.Message{Type: raft.MsgHeartbeat, From: fromID, To: to.id, Term: extremeTerm}
	if s.rng.IntN(2) == 0 {
		m.Type = raft.MsgVote
		if from := s.nodes[fromID]; from != nil {
			m.Index, _ = from.disk.LastIndex()
			m.LogTerm, _ = from.disk.Term(m.Index)
		}
	}
	s.net.send(m, s.now+1)
	s.res.Counts.ExtremeTerms++
	s.tracef("forged %s", describeMsg(m))
	return true
}

// snapshot makes n snapshot its state at its applied index and compact its
// log, keeping a few entries.
func (s *sim) snapshot(n *simNode) bool {
	snap, _ := n.disk.Snapshot()
	if n.applied <= snap.Metadata.Index {
		return false
	}
	store := n.sm.Snapshot()
	data := hostSnapshot{digest: n.digest, clientSeq: n.clientSeq, store: store}.marshal()
	conf := n.conf
	if err := n.disk.CreateSnapshot(n.applied, &conf, data); err != nil {
		s.fail("storage", "node %d cannot snapshot at %d: %v", n.id, n.applied, err)
		return true
	}
	s.res.Counts.SnapshotsCreated++
	s.chk.snapshotState(n, n.applied, hashBytes(store))
	first, _ := n.disk.FirstIndex()
	keep := uint64(s.rng.IntN(5))
	switch {
	case s.p.snapKeep < 0:
		s.tracef("n%d snapshots at %d, keeps its log from %d", n.id, n.applied, first)
		return true
	case s.p.snapKeep > 4:
		keep = uint64(s.rng.IntN(s.p.snapKeep + 1))
	}
	if n.applied >= first+keep {
		if err := n.disk.Compact(n.applied - keep); err != nil {
			s.fail("storage", "node %d cannot compact to %d: %v", n.id, n.applied-keep, err)
			return true
		}
	}
	s.tracef("n%d snapshots at %d, compacts to %d", n.id, n.applied, max(first, n.applied-min(keep, n.applied)))
	return true
}

// heal ends every fault and checks that the cluster recovers: a leader
// within three election timeouts (at the slowest node's tick rate, plus
// message delays), then a committed write, then client operations that
// complete.
func (s *sim) heal() {
	s.healing = true
	s.net.heal()
	clear(s.net.burst)
	s.partitionEnd = 0
	// A healthy network delivers within a step: message delays are faults
	// too (Raft's timing assumption is that a round trip is much shorter
	// than an election timeout).
	s.p.drop, s.p.dup, s.p.maxDelay = 0, 0, 1
	minRate := 1.0
	for _, id := range s.ids {
		n := s.nodes[id]
		if n == nil {
			continue
		}
		n.pausedUntil = 0
		n.stallFrom, n.stalledUntil = 0, 0
		n.crashInReady = false
		if !n.up() && !s.retired[id] {
			n.downUntil = s.now
		}
		minRate = min(minRate, n.rate)
	}
	s.tracef("healed every fault")
	start := s.now
	et := float64(s.cfg.ElectionTick)
	// A leader within three election timeouts of the slowest member, plus
	// a pre-vote and a vote round trip. In a configuration with a half of
	// at most two voters (and two voters or more in all), a quorum takes
	// every voter of that half, and if two candidates time out within a
	// round trip of each other both lose and start their next timeouts
	// together: randomized timeouts end such a series, but with the
	// simulator's round trips of up to a third of an election timeout it
	// may take several rounds, so such a configuration gets ten.
	// A recovering voter (Faults.StorageFaults) neither votes nor
	// campaigns, which leaves the others in the same position.
	timeouts := 3.0
	if s.unanimousConfig() || s.anyRecovering() {
		timeouts = 10
	}
	leaderBound := s.now + int64(timeouts*et/minRate) + int64(4*s.p.maxDelay) + 2
	commitBound := leaderBound + int64(2*et/minRate) + int64(4*s.p.maxDelay)
	var probe *op
	probeSeq := uint64(0)
	haveLeader := false
	for !s.stopped {
		s.step()
		l := s.leader()
		if l != nil && !haveLeader && slices.Contains(l.conf.Voters, l.id) {
			haveLeader = true
			s.tracef("liveness: leader n%d after healing", l.id)
		}
		if !haveLeader && s.now > leaderBound {
			s.fail("liveness", "no leader within %d steps of healing (%.0f election timeouts at tick rate %.2f)", leaderBound-start, timeouts, minRate)
			return
		}
		if probe != nil && probe.c.cur == nil {
			break // committed
		}
		if l != nil && (probe == nil || probe.node != l.id) {
			if probe != nil {
				delete(s.nodes[probe.node].writes, [2]uint64{probeClient, probe.seq})
			}
			probeSeq++
			c := &client{id: probeClient, seq: probeSeq}
			probe = &op{c: c, put: true, key: "probe", value: "probe", seq: probeSeq, node: l.id, inc: l.incarnation, deadline: math64}
			c.cur = probe
			cmd := putCmd{Client: probeClient, Seq: probeSeq, Key: "probe", Value: "probe"}
			if l.rn.Propose(cmd.marshal()) == nil {
				l.writes[[2]uint64{probeClient, probeSeq}] = probe
				s.handleReady(l)
			} else {
				probe = nil
			}
		}
		if s.now > commitBound {
			s.fail("liveness", "no write committed within %d steps of healing", commitBound-start)
			return
		}
	}
	// Every member must catch up with what the leader has committed, and
	// every client operation issued from now on must complete.
	s.tracef("liveness: write committed after healing")
	catchUp := s.catchUpCheck(minRate)
	end := s.now + 3*s.opTimeout()
	s.mustComplete = true
	for !s.stopped && (s.now < end || catchUp != nil) {
		s.step()
		if catchUp != nil && catchUp() {
			catchUp = nil
		}
	}
}

// catchUpCheck returns a function to call after every step that reports
// true once every member of the leader's configuration has committed and
// applied the leader's commit index of now, and fails the run if one has
// not within the bound: a few heartbeat round trips and a snapshot transfer
// at the slowest tick rate, well under two election timeouts.
func (s *sim) catchUpCheck(minRate float64) func() bool {
	l := s.leader()
	if l == nil {
		return nil
	}
	target := l.rn.BasicStatus().Commit
	cs := l.rn.Status().Config
	members := slices.Concat(cs.Voters, cs.VotersOutgoing, cs.Learners)
	slices.Sort(members)
	members = slices.Compact(members)
	start := s.now
	bound := s.now + int64(2*float64(s.cfg.ElectionTick)/minRate) + int64(8*s.p.maxDelay) + 4
	return func() bool {
		for _, id := range members {
			n := s.nodes[id]
			if n == nil || s.retired[id] {
				continue
			}
			if n.up() && n.rn.BasicStatus().Commit >= target && n.applied >= target &&
				!n.rn.BasicStatus().HardState.Recovering && s.damaged[id].kind == 0 {
				continue
			}
			if s.now > bound {
				commit, recovering := uint64(0), false
				if n.up() {
					commit = n.rn.BasicStatus().Commit
					recovering = n.rn.BasicStatus().HardState.Recovering
				}
				s.fail("liveness", "member %d did not catch up within %d steps of the leader committing %d after healing (commit %d, applied %d, up %v, recovering %v, damaged %v)",
					id, bound-start, target, commit, n.applied, n.up(), recovering, s.damaged[id].kind != 0)
				return true
			}
			return false
		}
		s.res.Counts.CaughtUp += len(members)
		s.tracef("liveness: every member caught up with index %d after %d steps", target, s.now-start)
		return true
	}
}

const math64 = int64(^uint64(0) >> 1)

// unanimousConfig reports whether the configuration of the node that applied
// the most entries has two voters or more, and a half (incoming or outgoing)
// of at most two, every vote of which every election needs.
func (s *sim) unanimousConfig() bool {
	var best *simNode
	for _, id := range s.ids {
		if n := s.nodes[id]; n != nil && n.up() && (best == nil || n.applied > best.applied) {
			best = n
		}
	}
	if best == nil {
		return false
	}
	cs := best.conf
	voters := map[uint64]bool{}
	for _, id := range append(slices.Clone(cs.Voters), cs.VotersOutgoing...) {
		voters[id] = true
	}
	smallHalf := len(cs.Voters) <= 2 || (len(cs.VotersOutgoing) > 0 && len(cs.VotersOutgoing) <= 2)
	return len(voters) > 1 && smallHalf
}
