package raftnode

import (
	"time"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// runLoop is the raft loop: the only goroutine that touches n.rn.
func (n *Node) runLoop() {
	defer n.finish()
	// Read before the ticker starts, so that each of its ticks finds at
	// least one tick interval elapsed.
	n.tickClock = nodeTickClock{interval: n.cfg.TickInterval, next: n.clock.Now()}
	tickc, stopTicker := n.clock.NewTicker(n.cfg.TickInterval)
	defer stopTicker()
	st := n.rn.BasicStatus()
	prevSoft, prevTerm := st.SoftState, st.Term
	n.watch.setLeader(prevSoft.Lead, prevTerm)
	for {
		for len(n.persistInflight) < nodeMaxInflight && n.applyInflight < nodeMaxInflight && n.rn.HasReady() {
			n.handleReady()
		}
		st := n.rn.BasicStatus()
		if st.SoftState != prevSoft || st.Term != prevTerm {
			n.onRoleChange(st.SoftState, st.Term)
			prevSoft, prevTerm = st.SoftState, st.Term
		}
		if n.maybeStopRemoved(st.RaftState) {
			return
		}
		select {
		case <-n.stopc:
			return
		case <-tickc:
			if leaseMissedTicksMutated() {
				n.tick() // one tick per wake-up, and no time missed
			} else {
				n.catchUp()
			}
		case m := <-n.recvc:
			n.catchUp()
			n.step(m)
		case rep := <-n.reportc:
			n.catchUp()
			if rep.snap {
				n.rn.ReportSnapshot(rep.id, rep.status)
			} else {
				n.rn.ReportUnreachable(rep.id)
			}
		case f := <-n.reqc:
			n.catchUp()
			f()
		case req := <-n.propc:
			n.catchUp()
			n.stepProposals(req)
		case k := <-n.persistedc:
			n.catchUp()
			n.ackPersisted(k)
		case idx := <-n.appliedc:
			n.catchUp()
			n.ackApplied(idx)
		}
		n.drainEvents()
		if err := n.rn.Err(); err != nil {
			// The core's storage reads failed: the node cannot go on.
			n.fail("reading storage", err)
			return
		}
	}
}

// nodeEventBatch bounds the events the loop handles before it takes the
// next Ready.
const nodeEventBatch = 64

// drainEvents handles the messages, proposals and acknowledgements already
// queued, so that they share one Ready (one append message per peer, one
// write) instead of taking one each.
func (n *Node) drainEvents() {
	for range nodeEventBatch {
		select {
		case m := <-n.recvc:
			n.catchUp()
			n.step(m)
		case req := <-n.propc:
			n.catchUp()
			n.stepProposals(req)
		case k := <-n.persistedc:
			n.catchUp()
			n.ackPersisted(k)
		case idx := <-n.appliedc:
			n.catchUp()
			n.ackApplied(idx)
		default:
			return
		}
	}
}

// nodeTickClock turns the time the loop reads into ticks: one per tick
// interval elapsed, whether or not the ticker fired for it.
type nodeTickClock struct {
	interval time.Duration
	next     time.Time // the start of the tick interval not yet accounted for
}

// due returns the ticks due at now and marks them accounted for.
func (c *nodeTickClock) due(now time.Time) uint64 {
	elapsed := now.Sub(c.next)
	if elapsed < c.interval {
		return 0
	}
	k := elapsed / c.interval
	c.next = c.next.Add(k * c.interval)
	return uint64(k)
}

// catchUp accounts, before the loop handles an event, for the time elapsed
// since it last did: when a tick interval or more has passed, it ticks the
// RawNode once, as the ticker would, and reports the further intervals as
// missed, which the core counts against the leader lease alone. The ticker
// alone would not do: after the process was paused (SIGSTOP, a virtual
// machine's stolen CPU, a long GC pause or a loop busy for a while) it
// delivers one pending tick, not the ticks the pause spanned, and a leader
// would go on serving lease reads for the whole pause although the
// followers' election timeouts ran and a new leader may have committed
// writes meanwhile.
//
// The missed ticks are not delivered as ticks: election, heartbeat and
// CheckQuorum timers running slow after a pause only delay an election or
// a step-down (the time a follower refuses votes grows, which no lease can
// suffer from), whereas a burst of ticks would fire them before the loop
// handled the messages queued meanwhile: a node whose loop was starved of
// CPU while its transport received heartbeats would campaign, or a leader
// whose followers did answer would step down.
func (n *Node) catchUp() {
	if leaseMissedTicksMutated() {
		return
	}
	k := n.tickClock.due(n.clock.Now())
	if k == 0 {
		return
	}
	if k > 1 {
		n.rn.RecordMissedTicks(k - 1)
	}
	n.tick()
}

// tick delivers a tick to the RawNode and ages what waits on ticks.
func (n *Node) tick() {
	n.rn.Tick()
	n.ticks++
	n.props.expireLost(n.ticks)
	n.reads.retry(n)
	n.removeLeftPeers()
}

func (n *Node) step(m raft.Message) {
	if err := n.rn.Step(m); err != nil {
		n.logger.Debug("step failed", zap.Stringer("type", m.Type), zap.Uint64("from", m.From), zap.Error(err))
	}
}

// ackPersisted acknowledges the k oldest Readies the persist goroutine
// made durable.
func (n *Node) ackPersisted(k int) {
	for _, rd := range n.persistInflight[:k] {
		n.rn.AckPersisted(rd)
		// The persist goroutine sent them before it reported the batch.
		n.rn.RecycleMessages(rd.MessagesAfterPersist)
	}
	clear(n.persistInflight[:k])
	n.persistInflight = append(n.persistInflight[:0], n.persistInflight[k:]...)
}

func (n *Node) ackApplied(index uint64) {
	n.rn.AckApplied(index)
	n.applyInflight--
}

// handleReady takes one Ready and dispatches it: messages to the transport
// now, writes to the persist goroutine, snapshot and committed entries to
// the apply goroutine, read answers to their waiters.
func (n *Node) handleReady() {
	rd := n.rn.Ready()
	if !rd.Snapshot.IsEmpty() {
		n.followConf(rd.Snapshot.Metadata.ConfState) // in force from now on
	}
	if len(rd.Messages) > 0 {
		n.transport.Send(rd.Messages)
	}
	// Send kept no reference to the slice, and no one reads it again: the
	// core collects its next messages there.
	n.rn.RecycleMessages(rd.Messages)
	rd.Messages = nil
	if !rd.Snapshot.IsEmpty() || len(rd.Entries) > 0 || !rd.HardState.IsEmpty() || len(rd.MessagesAfterPersist) > 0 {
		n.persistInflight = append(n.persistInflight, rd)
		n.persistc <- rd // never blocks: at most nodeMaxInflight queued
	}
	if !rd.Snapshot.IsEmpty() || len(rd.CommittedEntries) > 0 {
		n.applyInflight++
		n.applyc <- nodeApplyTask{snap: rd.Snapshot, ents: rd.CommittedEntries} // never blocks either
	}
	for _, rs := range rd.ReadStates {
		n.reads.answer(rs)
	}
	if len(rd.ProposalPlacements) > 0 {
		n.placeForwarded(rd.ProposalPlacements)
	}
}

// onRoleChange publishes a new leader or term and handles proposals whose
// leader lost office.
func (n *Node) onRoleChange(soft raft.SoftState, term uint64) {
	n.watch.setLeader(soft.Lead, term)
	n.notifier.leaderChanged(soft.Lead, term)
	n.props.leaderLost(n.ticks+2*uint64(n.cfg.Raft.ElectionTick), term, soft.Lead)
}

// finish runs when the loop returns: it waits for the other goroutines and
// fails what still waits.
func (n *Node) finish() {
	close(n.loopDonec)
	n.wg.Wait()
	err := n.stopErr()
	n.props.failAll(err)
	n.reads.failAll(err)
	n.closeDone()
}
