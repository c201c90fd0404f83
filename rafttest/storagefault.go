package rafttest

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/keelraft/raft"
)

// damageKind is a way a node's durable state is damaged (Faults.StorageFaults).
type damageKind int

const (
	// damageWipeJoin empties the storage (a new incarnation); the node
	// restarts without bootstrapping and waits for the leader.
	damageWipeJoin damageKind = iota + 1
	// damageWipeBootstrap empties the storage and the node bootstraps the
	// first voters again: an operator's mistake.
	damageWipeBootstrap
	// damageTruncate cuts the log at or after its snapshot, as a storage
	// that salvages a damaged tail or damaged entries presents it, and
	// marks the node recovering.
	damageTruncate
	// damageLostSnapshot brings the node back with an older consistent
	// state (an earlier copy of the same storage, or nothing), its hard
	// state's term and vote kept, marked recovering.
	damageLostSnapshot
	// damageBackup replaces the storage by a copy taken earlier in the run,
	// with that copy's incarnation, marked recovering as the documented
	// restore procedure does.
	damageBackup
	// damageRegressed is a log regression (Faults.LogRegression) when
	// storage faults are on too: it counts toward the damaged minority
	// until the node has caught up with what it lost.
	damageRegressed
)

func (k damageKind) String() string {
	switch k {
	case damageWipeJoin:
		return "wipe-join"
	case damageWipeBootstrap:
		return "wipe-bootstrap"
	case damageTruncate:
		return "truncate"
	case damageLostSnapshot:
		return "lost-snapshot"
	case damageBackup:
		return "backup"
	case damageRegressed:
		return "regressed"
	}
	return fmt.Sprintf("damage(%d)", int(k))
}

// damage is a node counted as damaged: from the fault until it is repaired.
type damage struct {
	kind damageKind
	step int64
	// until, for a log regression, is the commit index the node must reach.
	until uint64
}

// backup is a copy of a node's durable storage taken during the run.
type backup struct {
	mem         *raft.MemoryStorage
	incarnation uint64
	step        int64
}

// maxBackups is how many backups the simulator keeps per node.
const maxBackups = 3

// drawStorageParams draws the storage-fault rates from their own stream,
// so that turning them on leaves the other kinds' draws as they were.
func (s *sim) drawStorageParams(p *params) {
	if !s.cfg.Faults.StorageFaults {
		return
	}
	r := rand.New(rand.NewPCG(s.cfg.Seed^0x73746f72, s.cfg.Seed^0x6661756c))
	steps := int64(s.cfg.Steps)
	p.pStorage = 0.003 + 0.007*r.Float64()
	p.pBackup = 0.01 + 0.03*r.Float64()
	p.forced["storage"] = steps/10 + r.Int64N(steps/2)
}

// damageLimit is how many nodes may be damaged at once: a minority of the
// smallest voter set the run may have, (min voters - 1) / 2. Joint
// configurations have at least as many voters in each half.
func (s *sim) damageLimit() int {
	voters := s.cfg.Nodes
	if s.cfg.Faults.Membership {
		voters = min(voters, s.cfg.MinVoters)
	}
	return (voters - 1) / 2
}

// storageStep takes backups and updates which nodes still count as
// damaged. It runs every step, healing included.
func (s *sim) storageStep() {
	if !s.cfg.Faults.StorageFaults {
		return
	}
	for _, id := range s.ids {
		d, ok := s.damaged[id]
		if !ok {
			continue
		}
		n := s.nodes[id]
		if s.retired[id] {
			delete(s.damaged, id)
			continue
		}
		if !n.up() {
			continue
		}
		repaired := false
		if d.kind == damageRegressed {
			repaired = n.rn.BasicStatus().Commit >= d.until
		} else {
			// Repaired: the core no longer recovers, durably (a crash
			// before the repair is written makes it recover again), and
			// the cluster knows the node by the incarnation of the storage
			// it has now (a wiped node has rejoined).
			repaired = !n.rn.BasicStatus().HardState.Recovering && !n.disk.DurableHardState().Recovering &&
				n.conf.Incarnations[id] == n.disk.incarnation
			if d.kind == damageWipeJoin || d.kind == damageWipeBootstrap {
				// Rejoined: every member knows the new incarnation.
				repaired = repaired && s.incarnationRecorded(n)
			}
		}
		if repaired {
			delete(s.damaged, id)
			if d.kind != damageRegressed {
				s.res.Counts.Repairs++
			}
			s.tracef("n%d repaired from %s after %d steps", id, d.kind, s.now-d.step)
		}
	}
	if s.healing || s.rng.Float64() >= s.p.pBackup {
		return
	}
	n := s.randomNode(func(n *simNode) bool { return n.up() && !s.retired[n.id] })
	if n == nil {
		return
	}
	mem, err := cloneMemoryStorage(n.disk.durable)
	if err != nil {
		s.fail("storage", "node %d: cannot copy its storage: %v", n.id, err)
		return
	}
	b := append(s.backups[n.id], backup{mem: mem, incarnation: n.disk.incarnation, step: s.now})
	if len(b) > maxBackups {
		b = b[1:]
	}
	s.backups[n.id] = b
	snap, _ := mem.Snapshot()
	last, _ := mem.LastIndex()
	s.tracef("n%d backed up: snapshot %d, last index %d, incarnation %x", n.id, snap.Metadata.Index, last, n.disk.incarnation)
}

// damageStorage crashes a node and damages its durable state, so that it
// restarts from what a storage that lost data presents, unless that would
// damage a majority. It reports whether it damaged a node.
func (s *sim) damageStorage() bool {
	if len(s.damaged) >= s.damageLimit() {
		return false
	}
	l := s.leader()
	var cands []*simNode
	for _, id := range s.ids {
		n := s.nodes[id]
		if n != nil && n.up() && !s.retired[id] && s.damaged[id].kind == 0 {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return false
	}
	// Most often a follower that holds the newest entries, so that the
	// damage loses acknowledgements the leader counted.
	n := cands[s.rng.IntN(len(cands))]
	if s.rng.IntN(3) > 0 {
		var best *simNode
		for _, c := range cands {
			if l != nil && c.id == l.id {
				continue
			}
			if best == nil || c.disk.DurableLastIndex() > best.disk.DurableLastIndex() {
				best = c
			}
		}
		if best != nil {
			n = best
		}
	}
	kinds := []damageKind{damageTruncate}
	if s.incarnationRecorded(n) {
		kinds = append(kinds, damageWipeJoin)
		if slices.Contains(s.ids[:s.cfg.Nodes], n.id) {
			// Only a node of the first configuration was started with a
			// command line that bootstraps; a node added later joined.
			kinds = append(kinds, damageWipeBootstrap)
		}
	}
	if snap, _ := n.disk.durable.Snapshot(); snap.Metadata.Index > 1 {
		kinds = append(kinds, damageLostSnapshot)
	}
	if len(s.backups[n.id]) > 0 {
		kinds = append(kinds, damageBackup)
	}
	kind := kinds[s.rng.IntN(len(kinds))]
	oldLast := n.disk.DurableLastIndex()
	s.crash(n, false)
	var err error
	switch kind {
	case damageWipeJoin, damageWipeBootstrap:
		n.disk = s.newDisk()
		if kind == damageWipeBootstrap {
			n.rebootstrap = slices.Clone(s.ids[:s.cfg.Nodes])
			s.res.Counts.WipeBootstraps++
		} else {
			s.res.Counts.Wipes++
		}
		s.tracef("n%d's storage is wiped (new incarnation %x), it restarts to %s", n.id, n.disk.incarnation,
			map[bool]string{true: "bootstrap again", false: "join"}[kind == damageWipeBootstrap])
	case damageTruncate:
		snap, _ := n.disk.durable.Snapshot()
		lo := snap.Metadata.Index
		cut := lo
		if oldLast > lo {
			cut = lo + s.rng.Uint64N(oldLast-lo)
		}
		var lost int
		lost, err = n.disk.truncateTail(cut, 0)
		if err == nil {
			err = n.disk.markRecovering()
		}
		s.res.Counts.Truncations++
		s.res.Counts.TruncatedEntries += lost
		s.tracef("n%d's storage loses its tail after %d (was %d, %d entries lost), recovering", n.id, cut, oldLast, lost)
	case damageLostSnapshot:
		err = s.loseSnapshot(n)
		s.res.Counts.LostSnapshots++
	case damageBackup:
		bs := s.backups[n.id]
		b := bs[s.rng.IntN(len(bs))]
		var mem *raft.MemoryStorage
		mem, err = cloneMemoryStorage(b.mem)
		if err == nil {
			n.disk.replace(mem, b.incarnation)
			err = n.disk.markRecovering()
		}
		s.res.Counts.BackupRestores++
		last, _ := mem.LastIndex()
		s.tracef("n%d's storage is replaced by its backup of step %d (last index %d, incarnation %x), recovering",
			n.id, b.step, last, b.incarnation)
	}
	if err != nil {
		s.fail("storage", "node %d: cannot damage its storage (%s): %v", n.id, kind, err)
		return true
	}
	s.res.Counts.StorageFaults++
	n.damagedBoot = true
	s.damaged[n.id] = damage{kind: kind, step: s.now}
	s.cutHolders(n, oldLast)
	return true
}

// anyRecovering reports whether a started node is damaged or recovering.
func (s *sim) anyRecovering() bool {
	for _, id := range s.ids {
		if n := s.nodes[id]; n != nil && !s.retired[id] && (s.damaged[id].kind != 0 || n.recovering) {
			return true
		}
	}
	return false
}

// incarnationRecorded reports whether every started member has applied a
// configuration that records n's incarnation. Only then can the cluster
// tell a wiped n from its old self (raft.Config.Incarnation): before, a
// wiped node is a new empty node that may vote as its old self.
func (s *sim) incarnationRecorded(n *simNode) bool {
	for _, id := range s.ids {
		m := s.nodes[id]
		if m == nil || s.retired[id] || !s.isMember(id) {
			continue // a node outside the configuration applies nothing more
		}
		if m.conf.Incarnations[n.id] != n.disk.incarnation {
			return false
		}
	}
	return true
}

// loseSnapshot brings n back with an older state of the same storage (its
// latest backup from before its snapshot, or nothing) and the hard state's
// term and vote, marked recovering.
func (s *sim) loseSnapshot(n *simNode) error {
	snap, _ := n.disk.durable.Snapshot()
	hs := n.disk.durable.HardState()
	mem := raft.NewMemoryStorage()
	from := "nothing"
	bs := s.backups[n.id]
	for i := len(bs) - 1; i >= 0; i-- {
		b := bs[i]
		bsnap, _ := b.mem.Snapshot()
		if b.incarnation == n.disk.incarnation && bsnap.Metadata.Index < snap.Metadata.Index {
			var err error
			if mem, err = cloneMemoryStorage(b.mem); err != nil {
				return err
			}
			from = fmt.Sprintf("its backup of step %d", b.step)
			break
		}
	}
	last, _ := mem.LastIndex()
	old := mem.HardState()
	hs.Commit = min(old.Commit, last)
	hs.Recovering = true
	if err := mem.SetHardState(hs); err != nil {
		return err
	}
	n.disk.replace(mem, n.disk.incarnation)
	s.tracef("n%d's storage loses its snapshot at %d: it comes back with %s (last index %d), recovering",
		n.id, snap.Metadata.Index, from, last)
	return nil
}

// cutHolders, half the time and when no partition is active, cuts the
// other nodes that hold entries n may have lost (those at or beyond n's
// old last index) from the rest for one to four election timeouts: the
// rest must then not elect a leader that lacks committed entries with n's
// help.
func (s *sim) cutHolders(n *simNode, oldLast uint64) {
	if s.partitionEnd != 0 || oldLast <= 1 || s.rng.IntN(2) == 0 {
		return
	}
	var holders, rest []uint64
	for _, id := range s.startedIDs() {
		m := s.nodes[id]
		switch {
		case id == n.id:
			rest = append(rest, id)
		case m.disk.DurableLastIndex() >= oldLast:
			holders = append(holders, id)
		default:
			rest = append(rest, id)
		}
	}
	if len(holders) == 0 || len(rest) < 2 {
		return
	}
	s.net.cutBetween(holders, rest, false)
	s.partitionEnd = s.now + int64(s.cfg.ElectionTick)*(1+s.rng.Int64N(4))
	s.res.Counts.Partitions++
	s.tracef("partition: nodes holding n%d's lost entries %v cut from %v until %d", n.id, holders, rest, s.partitionEnd)
}

// markRecovering sets HardState.Recovering on the durable state, as a
// storage does that found it lost data.
func (d *Storage) markRecovering() error {
	if err := d.Sync(); err != nil {
		return err
	}
	for _, m := range []*raft.MemoryStorage{d.view, d.durable} {
		hs := m.HardState()
		hs.Recovering = true
		if err := m.SetHardState(hs); err != nil {
			return err
		}
	}
	return nil
}

// replace makes mem the storage's durable contents, under incarnation inc.
func (d *Storage) replace(mem *raft.MemoryStorage, inc uint64) {
	view, err := cloneMemoryStorage(mem)
	if err != nil {
		panic(err) // mem was built by the simulator
	}
	d.durable, d.view, d.pending, d.incarnation = mem, view, nil, inc
}
