package rafttest

import "github.com/keelraft/raft"

// The pipelined host (Config.Pipelined) follows the pipelined contract of
// package raft: it sends a Ready's Messages and writes its snapshot,
// entries and hard state at once, but syncs later, covering every Ready
// written since the last sync, and only then sends their
// MessagesAfterPersist and acknowledges them with AckPersisted, in order.
// It applies committed entries (and restores snapshots) later still, in
// order, and acknowledges them with AckApplied. A power loss can strike
// before any sync, losing written but unacknowledged Readies.

// queueReady finishes handling a Ready whose writes processReady made:
// the Ready waits for the next sync, its committed entries for the apply
// path, and its read states for the applied index.
func (s *sim) queueReady(n *simNode, rd raft.Ready) bool {
	if s.cfg.Bugs.SendBeforePersist {
		rd.MessagesAfterPersist = nil // sent already
	}
	n.persistQ = append(n.persistQ, rd)
	for _, e := range rd.CommittedEntries {
		n.applyQ = append(n.applyQ, applyItem{entry: e})
	}
	s.readStates(n, rd.ReadStates)
	// A host bounds its write queue: a long one is synced at once.
	if len(n.persistQ) >= 8 {
		return s.sync(n)
	}
	return true
}

// pipelineStep lets n's host sync and apply, each at the run's rate (at
// once while the cluster heals).
func (s *sim) pipelineStep(n *simNode) {
	if !n.up() || n.stalled(s.now) {
		return
	}
	if len(n.persistQ) > 0 && (s.healing || s.rng.Float64() < s.p.pFlush) {
		if !s.sync(n) {
			return
		}
	}
	if len(n.applyQ) > 0 && (s.healing || s.rng.Float64() < s.p.pApply) {
		s.applyQueued(n)
	}
	s.handleReady(n)
}

// sync makes n's written Readies durable, sends their MessagesAfterPersist
// and acknowledges them in order, unless the power fails first. It reports
// false if n crashed.
func (s *sim) sync(n *simNode) bool {
	// A new cluster's first configuration is durable before the host
	// starts serving: losing it would leave a node of no cluster.
	mayFail := !n.bootstrapping
	mustSync := 0
	for i := range n.persistQ {
		if n.persistQ[i].MustSync {
			mustSync++
		}
	}
	if mustSync > 0 && s.cfg.Faults.PowerLoss && !s.healing && mayFail &&
		(n.crashInReady || s.rng.Float64() < float64(mustSync)*s.p.pPowerLoss) {
		n.crashInReady = false
		s.crash(n, true)
		return false
	}
	if mustSync > 0 && !s.cfg.Bugs.SkipSync {
		if err := n.disk.Sync(); err != nil {
			s.fail("storage", "node %d: %v", n.id, err)
			return false
		}
	}
	q := n.persistQ
	n.persistQ = nil
	s.res.Counts.Syncs++
	s.res.Counts.AckedReadies += len(q)
	for _, rd := range q {
		s.sendAfterPersist(n, rd.MessagesAfterPersist)
		n.rn.AckPersisted(rd)
		if s.stopped || !n.up() {
			return false
		}
	}
	s.handleReady(n)
	return n.up()
}

// applyQueued applies everything n's host has to apply, then acknowledges
// it.
func (s *sim) applyQueued(n *simNode) {
	q := n.applyQ
	n.applyQ = nil
	for _, it := range q {
		if it.snap != nil {
			if err := s.restoreSnapshot(n, *it.snap); err != nil {
				s.fail("snapshot", "node %d cannot restore snapshot %d: %v", n.id, it.snap.Metadata.Index, err)
				return
			}
			if it.install {
				s.res.Counts.SnapshotsInstalled++
			}
			s.tracef("n%d installs snapshot index=%d term=%d", n.id, it.snap.Metadata.Index, it.snap.Metadata.Term)
			continue
		}
		if it.entry.Index <= n.applied && s.cfg.Bugs.ApplyUncommitted {
			continue
		}
		s.apply(n, it.entry)
		if s.stopped || !n.up() {
			return
		}
	}
	n.rn.AckApplied(n.applied)
	s.serveReads(n)
}
