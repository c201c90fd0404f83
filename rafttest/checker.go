package rafttest

import (
	"errors"
	"maps"
	"math"
	"slices"

	"github.com/keelraft/raft"
)

// checker holds what the run has seen, cluster-wide, and checks the Raft
// safety properties against it as the run goes:
//
//   - election safety: at most one leader per term;
//   - log matching: two logs with an entry of the same index and term hold
//     the same entry there and agree on the term of the entry before it
//     (which, by induction, makes them identical up to that index);
//   - leader append-only: a leader never overwrites its own log;
//   - leader completeness: an entry known committed before a term's leader
//     was elected is in that leader's log;
//   - state-machine safety: every node applies the same entry at each index,
//     and holds the same log digest after applying it (or after restoring a
//     snapshot of it), and snapshots at one index hold the same state;
//   - monotonicity: term, vote within a term and commit index never go back
//     within a node's incarnation, and votes and terms a node promised in a
//     message survive its restarts;
//   - at most one vote per node and term;
//   - a node campaigns only once it has applied every committed
//     configuration change (else it counts votes in a configuration the
//     cluster has left);
//   - a node leads only as a voter of its own configuration, and a node
//     restarts with the configuration of its snapshot (the configuration
//     the committed log defines at the applied index it restarts from).
type checker struct {
	s             *sim
	leaderOf      map[uint64]uint64
	leaderInc     map[uint64]int
	maxLeaderTerm uint64
	logEntry      map[[2]uint64]logInfo
	committed     []appliedInfo
	snapState     map[uint64]uint64
	votes         map[[2]uint64]uint64
	promisedTerm  map[uint64]uint64
}

type logInfo struct {
	hash     uint64
	prevTerm uint64
	hasPrev  bool
}

type appliedInfo struct {
	hasEntry  bool
	term      uint64
	hash      uint64
	hasDigest bool
	digest    uint64
	// leaderTerm is the highest term with a known leader when the entry
	// was first seen applied: every later term's leader must hold it.
	leaderTerm uint64
}

func newChecker(s *sim) checker {
	return checker{
		s:            s,
		leaderOf:     map[uint64]uint64{},
		leaderInc:    map[uint64]int{},
		logEntry:     map[[2]uint64]logInfo{},
		snapState:    map[uint64]uint64{},
		votes:        map[[2]uint64]uint64{},
		promisedTerm: map[uint64]uint64{},
	}
}

// newLeader checks election safety when n becomes leader of n.term.
func (c *checker) newLeader(n *simNode) {
	if prev, ok := c.leaderOf[n.term]; ok && prev != n.id {
		c.s.fail("election safety", "nodes %d and %d both lead term %d", prev, n.id, n.term)
		return
	}
	if inc, ok := c.leaderInc[n.term]; ok && inc != n.incarnation {
		// A node that led a term had its vote for itself durable: after a
		// restart it can only lead a later term.
		c.s.fail("election safety", "node %d leads term %d again after a restart", n.id, n.term)
		return
	}
	c.leaderOf[n.term] = n.id
	c.leaderInc[n.term] = n.incarnation
	c.maxLeaderTerm = max(c.maxLeaderTerm, n.term)
	cs := n.rn.Status().Config
	if !slices.Contains(cs.Voters, n.id) && !slices.Contains(cs.VotersOutgoing, n.id) {
		// A caretaker (a node a change removed as a voter, elected by a
		// quorum of that configuration) only hands off; the safety checks
		// judge what it does.
		c.s.tracef("n%d leads term %d as a caretaker (voters=%v outgoing=%v learners=%v)",
			n.id, n.term, cs.Voters, cs.VotersOutgoing, cs.Learners)
	}
}

// campaign checks, when n has just become a (pre-)candidate, that no
// committed configuration change awaits applying. The host calls it once
// the Ready's entries are written and before it applies anything.
func (c *checker) campaign(n *simNode) {
	st := n.rn.BasicStatus()
	if st.Commit <= st.Applied {
		return
	}
	ents, err := n.disk.Entries(st.Applied+1, st.Commit+1, math.MaxUint64)
	if err != nil {
		return // compacted: a snapshot is being applied
	}
	for _, e := range ents {
		if e.Type == raft.EntryConfChange {
			c.s.fail("campaign with unapplied configuration", "node %d campaigns in term %d with the configuration change at index %d committed (commit %d) but not applied (applied %d)",
				n.id, st.Term, e.Index, st.Commit, st.Applied)
			return
		}
	}
}

// bootConfig checks that a node (re)started with the configuration of the
// snapshot it restarts from.
func (c *checker) bootConfig(n *simNode) {
	got, want := n.rn.Status().Config, n.conf
	same := func(a, b []uint64) bool {
		a, b = slices.Clone(a), slices.Clone(b)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b)
	}
	if !same(got.Voters, want.Voters) || !same(got.VotersOutgoing, want.VotersOutgoing) ||
		!same(got.Learners, want.Learners) || !same(got.LearnersNext, want.LearnersNext) {
		c.s.fail("configuration", "node %d restarted at applied index %d with voters=%v outgoing=%v learners=%v next=%v; "+
			"its snapshot says voters=%v outgoing=%v learners=%v next=%v",
			n.id, n.applied, got.Voters, got.VotersOutgoing, got.Learners, got.LearnersNext,
			want.Voters, want.VotersOutgoing, want.Learners, want.LearnersNext)
		return
	}
	if !maps.Equal(got.Incarnations, want.Incarnations) {
		c.s.fail("configuration", "node %d restarted at applied index %d with incarnations %v; its snapshot says %v",
			n.id, n.applied, got.Incarnations, want.Incarnations)
	}
}

// hardState checks that n's term, vote and commit do not go back.
func (c *checker) hardState(n *simNode, hs raft.HardState) {
	if hs.IsEmpty() {
		return
	}
	switch {
	case hs.Term < n.lastTerm:
		c.s.fail("term monotonicity", "node %d's term went from %d to %d", n.id, n.lastTerm, hs.Term)
	case hs.Term == n.lastTerm && n.lastVote != raft.None && hs.Vote != n.lastVote:
		c.s.fail("vote monotonicity", "node %d's vote in term %d changed from %d to %d", n.id, hs.Term, n.lastVote, hs.Vote)
	case hs.Commit < n.lastCommit:
		c.s.fail("commit monotonicity", "node %d's commit index went from %d to %d", n.id, n.lastCommit, hs.Commit)
	}
	n.lastTerm, n.lastVote, n.lastCommit = hs.Term, hs.Vote, hs.Commit
}

// leaderAppend checks that a leader's new entries extend its log.
func (c *checker) leaderAppend(n *simNode, ents []raft.Entry) {
	if last, _ := n.disk.LastIndex(); ents[0].Index <= last {
		c.s.fail("leader append-only", "leader %d of term %d overwrites its log from index %d (last index %d)",
			n.id, n.term, ents[0].Index, last)
	}
}

// logMatching records entries about to be appended to n's log and checks
// them against every other log.
func (c *checker) logMatching(n *simNode, ents []raft.Entry) {
	for i, e := range ents {
		info := logInfo{hash: hashBytes(e.Data) ^ uint64(e.Type)}
		if i > 0 {
			info.prevTerm, info.hasPrev = ents[i-1].Term, true
		} else if t, err := n.disk.Term(e.Index - 1); err == nil {
			info.prevTerm, info.hasPrev = t, true
		}
		key := [2]uint64{e.Index, e.Term}
		prev, ok := c.logEntry[key]
		if !ok {
			c.logEntry[key] = info
			continue
		}
		if prev.hash != info.hash {
			c.s.fail("log matching", "node %d holds a different entry at index %d term %d than another node", n.id, e.Index, e.Term)
			return
		}
		if prev.hasPrev && info.hasPrev && prev.prevTerm != info.prevTerm {
			c.s.fail("log matching", "node %d's entry at index %d term %d follows term %d, another node's follows term %d",
				n.id, e.Index, e.Term, info.prevTerm, prev.prevTerm)
			return
		}
		if !prev.hasPrev && info.hasPrev {
			c.logEntry[key] = info
		}
	}
}

// leaderCompleteness checks that new leader n holds every entry known
// committed before its term.
func (c *checker) leaderCompleteness(n *simNode) {
	for i := range c.committed {
		a := &c.committed[i]
		if !a.hasEntry || a.leaderTerm >= n.term {
			continue
		}
		t, err := n.disk.Term(uint64(i))
		if errors.Is(err, raft.ErrCompacted) {
			continue
		}
		if err != nil {
			c.s.fail("leader completeness", "leader %d of term %d lacks committed index %d (term %d): %v", n.id, n.term, i, a.term, err)
			return
		}
		if t != a.term {
			c.s.fail("leader completeness", "leader %d of term %d holds term %d at committed index %d, which has term %d",
				n.id, n.term, t, i, a.term)
			return
		}
	}
}

func (c *checker) at(index uint64) *appliedInfo {
	for uint64(len(c.committed)) <= index {
		c.committed = append(c.committed, appliedInfo{})
	}
	return &c.committed[index]
}

// applied checks the entry n just applied against every other node's, and
// reports whether n is the first node to apply it.
func (c *checker) applied(n *simNode, e raft.Entry) bool {
	a := c.at(e.Index)
	h := hashBytes(e.Data) ^ uint64(e.Type)
	first := !a.hasEntry
	if first {
		a.hasEntry, a.term, a.hash, a.leaderTerm = true, e.Term, h, c.maxLeaderTerm
	} else if a.term != e.Term || a.hash != h {
		c.s.fail("state-machine safety", "node %d applies term %d at index %d, another node applied term %d (same data: %v)",
			n.id, e.Term, e.Index, a.term, a.hash == h)
		return first
	}
	c.digest(n, e.Index)
	return first
}

// digest checks n's log digest at index against the other nodes'.
func (c *checker) digest(n *simNode, index uint64) {
	a := c.at(index)
	if !a.hasDigest {
		a.hasDigest, a.digest = true, n.digest
		return
	}
	if a.digest != n.digest {
		c.s.fail("state-machine safety", "node %d's applied log differs from another node's at index %d", n.id, index)
	}
}

// restored checks a snapshot n restored at index.
func (c *checker) restored(n *simNode, index uint64) { c.digest(n, index) }

// snapshotState checks that every snapshot at index holds the same state.
func (c *checker) snapshotState(n *simNode, index, hash uint64) {
	if prev, ok := c.snapState[index]; ok && prev != hash {
		c.s.fail("state-machine safety", "node %d's state at applied index %d differs from another node's snapshot there", n.id, index)
		return
	}
	c.snapState[index] = hash
}

// promise records the vote or term a message from n promises.
func (c *checker) promise(n *simNode, m raft.Message) {
	if m.Type != raft.MsgPreVote && m.Type != raft.MsgPreVoteResp {
		// A pre-vote carries a term the sender has not taken.
		c.promisedTerm[n.id] = max(c.promisedTerm[n.id], m.Term)
	}
	var cand uint64
	switch {
	case m.Type == raft.MsgVote:
		cand = n.id
	case m.Type == raft.MsgVoteResp && !m.Reject:
		cand = m.To
	default:
		return
	}
	key := [2]uint64{n.id, m.Term}
	if prev, ok := c.votes[key]; ok && prev != cand {
		c.s.fail("double vote", "node %d voted for %d and for %d in term %d", n.id, prev, cand, m.Term)
		return
	}
	c.votes[key] = cand
}

// forgetPromises drops the votes and terms n promised: its storage lost
// them, which the simulator did on purpose (Faults.StorageFaults).
func (c *checker) forgetPromises(n *simNode) {
	delete(c.promisedTerm, n.id)
	for key := range c.votes {
		if key[0] == n.id {
			delete(c.votes, key)
		}
	}
}

// afterRestart checks that n came back with every promise it made.
func (c *checker) afterRestart(n *simNode) {
	if c.s.cfg.skipRestartAudit {
		return
	}
	// The node's term and vote as loaded: the disk's hard state, or the term
	// of its last entry if that is later (a crash between the two writes).
	hs := n.rn.BasicStatus().HardState
	if hs.Term < c.promisedTerm[n.id] {
		c.s.fail("term durability", "node %d restarted at term %d after sending messages of term %d", n.id, hs.Term, c.promisedTerm[n.id])
		return
	}
	// Terms in order, so that a replay reports the same violation.
	var terms []uint64
	for key := range c.votes {
		if key[0] == n.id && key[1] >= hs.Term {
			terms = append(terms, key[1])
		}
	}
	slices.Sort(terms)
	for _, term := range terms {
		if cand := c.votes[[2]uint64{n.id, term}]; term > hs.Term || hs.Vote != cand {
			c.s.fail("vote durability", "node %d restarted with term %d vote %d after voting for %d in term %d",
				n.id, hs.Term, hs.Vote, cand, term)
			return
		}
	}
}
