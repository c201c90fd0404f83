package rafttest

import (
	"math"
	"slices"

	"github.com/keelraft/raft"
)

// regressLog crashes a follower and cuts the tail of its durable log below
// what it may have acknowledged, as a host does that restores a backup or
// cuts off a damaged tail. It cuts only entries that the other nodes hold
// durably on a majority of every configuration in force, and never a
// configuration change (a node that forgot one may count votes in a
// configuration the cluster left): the cluster's safety then does not rest
// on the lost copies, and the node must be brought up to date again. (A
// learner promoted later is safe too: every majority of the configuration
// one voter larger, or of a joint one, still meets that majority.) It
// reports whether it cut anything.
func (s *sim) regressLog() bool {
	if s.cfg.Faults.StorageFaults && len(s.damaged) >= s.damageLimit() {
		return false
	}
	l := s.leader()
	var cands []*simNode
	for _, id := range s.ids {
		if n := s.nodes[id]; n != nil && n.up() && !s.retired[id] && (l == nil || id != l.id) && s.damaged[id].kind == 0 {
			cands = append(cands, n)
		}
	}
	s.rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	for _, n := range cands {
		if cut, commit, ok := s.regressionCut(n); ok {
			last, _ := n.disk.LastIndex()
			s.crash(n, false)
			lost, err := n.disk.truncateTail(cut, commit)
			if err != nil {
				s.fail("storage", "node %d: cannot cut its log after %d: %v", n.id, cut, err)
				return true
			}
			if s.cfg.Faults.StorageFaults {
				// Another node losing data now could take the copies
				// this cut relies on: n counts as damaged until it has
				// caught up.
				s.damaged[n.id] = damage{kind: damageRegressed, step: s.now, until: last}
			}
			s.res.Counts.LogRegressions++
			s.res.Counts.TruncatedEntries += lost
			s.tracef("n%d's log goes back: cut after %d (was %d, %d entries lost)", n.id, cut, last, lost)
			return true
		}
	}
	return false
}

// regressionCut picks where n's log may be cut: an index at or above its
// snapshot's above which every entry n would lose is held durably by a
// majority (without n) of every configuration some node is in. Every entry
// counts, committed or not: the leader may count n's copy (its Match, an
// acknowledgement in flight) to commit an entry after the cut. No
// configuration change may be lost, and the last one n keeps must be known
// committed: n's commit index is raised to it (see truncateTail), so that n
// restarts in the configuration the cluster is in, not in an older one it
// might have forgotten having left with the commit index that was never
// synced.
func (s *sim) regressionCut(n *simNode) (cut, commit uint64, ok bool) {
	snap, _ := n.disk.Snapshot()
	last, _ := n.disk.LastIndex()
	lo := snap.Metadata.Index
	if last <= lo {
		return 0, 0, false
	}
	known := uint64(0)
	for _, id := range s.ids {
		if m := s.nodes[id]; m != nil {
			known = max(known, m.disk.HardState().Commit)
			if m.up() {
				known = max(known, m.rn.BasicStatus().Commit)
			}
		}
	}
	ents, err := n.disk.Entries(lo+1, last+1, math.MaxUint64)
	if err != nil {
		return 0, 0, false
	}
	var cc raft.Entry
	for _, e := range ents {
		if e.Type == raft.EntryConfChange {
			cc = e
		}
	}
	commit = cc.Index
	if commit > known {
		return 0, 0, false
	}
	if commit > 0 {
		// Known committed is this very entry, not one of another term at
		// its index (an isolated leader appends its own changes, such as
		// recording incarnations): some node applied it.
		if a := s.chk.at(commit); !a.hasEntry || a.term != cc.Term {
			return 0, 0, false
		}
	}
	groups := s.voterGroups()
	safe := func(cut uint64) bool {
		for i := cut + 1; i <= last; i++ {
			ents, err := n.disk.Entries(i, i+1, math.MaxUint64)
			if err != nil || ents[0].Type == raft.EntryConfChange {
				return false
			}
			var holders []uint64
			for _, id := range s.ids {
				m := s.nodes[id]
				if m != nil && id != n.id && !s.retired[id] && m.disk.durablyHolds(i, ents[0].Term) {
					holders = append(holders, id)
				}
			}
			for _, g := range groups {
				in := 0
				for _, id := range g {
					if slices.Contains(holders, id) {
						in++
					}
				}
				if 2*in <= len(g) {
					return false
				}
			}
		}
		return true
	}
	cut = max(lo+s.rng.Uint64N(last-lo), commit)
	for cut < last && !safe(cut) {
		cut++
	}
	return cut, commit, cut < last
}

// voterGroups returns the voter sets (incoming and outgoing) of every
// configuration a started node is in, as its host applied it and as its
// node counts votes.
func (s *sim) voterGroups() [][]uint64 {
	var groups [][]uint64
	add := func(voters []uint64) {
		if len(voters) == 0 {
			return
		}
		g := slices.Clone(voters)
		slices.Sort(g)
		for _, h := range groups {
			if slices.Equal(g, h) {
				return
			}
		}
		groups = append(groups, g)
	}
	for _, id := range s.ids {
		m := s.nodes[id]
		if m == nil || s.retired[id] {
			continue
		}
		if m.up() {
			cs := m.rn.Status().Config
			add(cs.Voters)
			add(cs.VotersOutgoing)
		}
		add(m.conf.Voters)
		add(m.conf.VotersOutgoing)
	}
	return groups
}

// durablyHolds reports whether the durable log holds the entry at index
// with term, or a snapshot covering it.
func (d *Storage) durablyHolds(index, term uint64) bool {
	snap, _ := d.durable.Snapshot()
	if snap.Metadata.Index >= index {
		return true
	}
	t, err := d.durable.Term(index)
	return err == nil && t == term
}

// truncateTail cuts the log after index last, durably, and sets the commit
// index to at least commit and at most last. The caller keeps last at or
// above the snapshot's index and commit at most the known commit index. It
// reports how many entries were cut.
func (d *Storage) truncateTail(last, commit uint64) (int, error) {
	if err := d.Sync(); err != nil {
		return 0, err
	}
	src := d.durable
	snap, _ := src.Snapshot()
	first, _ := src.FirstIndex()
	old, _ := src.LastIndex()
	dst := raft.NewMemoryStorage()
	if !snap.IsEmpty() {
		if err := dst.ApplySnapshot(snap); err != nil {
			return 0, err
		}
	}
	if last >= first {
		ents, err := src.Entries(first, last+1, math.MaxUint64)
		if err != nil {
			return 0, err
		}
		if err := dst.Append(ents); err != nil {
			return 0, err
		}
	}
	hs := src.HardState()
	hs.Commit = max(min(hs.Commit, last), commit)
	if err := dst.SetHardState(hs); err != nil {
		return 0, err
	}
	view, err := cloneMemoryStorage(dst)
	if err != nil {
		return 0, err
	}
	d.durable, d.view = dst, view
	return int(old - last), nil
}
