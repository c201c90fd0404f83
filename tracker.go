package raft

import (
	"maps"
	"slices"
)

// voteResult is the outcome of counting votes.
type voteResult uint8

const (
	votePending voteResult = iota
	voteLost
	voteWon
)

// majorityConfig is a set of voter IDs, kept sorted.
type majorityConfig []uint64

// committedIndex returns the highest index acknowledged by a majority, given
// each voter's acknowledged index. An empty config commits everything (it
// never constrains a joint configuration).
func (c majorityConfig) committedIndex(acked func(id uint64) uint64) uint64 {
	n := len(c)
	if n == 0 {
		return ^uint64(0)
	}
	var stack [7]uint64
	var matched []uint64
	if n <= len(stack) {
		matched = stack[:n]
	} else {
		matched = make([]uint64, n)
	}
	for i, id := range c {
		matched[i] = acked(id)
	}
	// Insertion sort: configs are small and this does not allocate.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && matched[j-1] > matched[j]; j-- {
			matched[j-1], matched[j] = matched[j], matched[j-1]
		}
	}
	// The value at position n - (n/2 + 1) is held by a majority.
	return matched[n-(n/2+1)]
}

// voteResult tallies votes: granted or rejected per ID, absent if unknown.
func (c majorityConfig) voteResult(votes map[uint64]bool) voteResult {
	if len(c) == 0 {
		return voteWon
	}
	granted, missing := 0, 0
	for _, id := range c {
		v, ok := votes[id]
		switch {
		case !ok:
			missing++
		case v:
			granted++
		}
	}
	q := len(c)/2 + 1
	if granted >= q {
		return voteWon
	}
	if granted+missing >= q {
		return votePending
	}
	return voteLost
}

// progressTracker holds the configuration and, on a leader, each member's
// Progress, and answers quorum questions over the (possibly joint)
// configuration.
type progressTracker struct {
	// voters[0] is the incoming configuration, voters[1] the outgoing one
	// (empty unless joint).
	voters       [2]majorityConfig
	learners     []uint64
	learnersNext []uint64
	autoLeave    bool
	// incarnations are the members' recorded storage incarnations
	// (ConfState.Incarnations); nil when none is recorded.
	incarnations map[uint64]uint64
	// addresses are the members' addresses (ConfState.Addresses); nil
	// when none is recorded.
	addresses map[uint64]string

	progress map[uint64]*Progress
	// ids lists the keys of progress, sorted, so that every walk over the
	// members happens in the same order and runs are reproducible.
	ids   []uint64
	votes map[uint64]bool

	maxInflight      int
	maxInflightBytes uint64

	// now is the logical clock, in ticks, that activity is stamped with.
	now uint64
	// leaseSkew counts the ticks the host reported missed (missedTicks):
	// time that passed without ticks. It counts against the leader lease
	// only, whose clock is leaseNow.
	leaseSkew uint64
}

// leaseNow is the clock of the leader lease, in ticks: now plus the ticks
// the host reported missed. Heartbeats are stamped with it.
func (t *progressTracker) leaseNow() uint64 { return t.now + t.leaseSkew }

func newProgressTracker(maxInflight int, maxInflightBytes uint64) progressTracker {
	return progressTracker{
		progress:         map[uint64]*Progress{},
		votes:            map[uint64]bool{},
		maxInflight:      maxInflight,
		maxInflightBytes: maxInflightBytes,
	}
}

// applyConfState replaces the configuration by cs, creating progress for new
// members (with next) and dropping it for removed ones.
func (t *progressTracker) applyConfState(cs ConfState, next uint64) {
	t.voters[0] = sortedIDs(cs.Voters)
	t.voters[1] = sortedIDs(cs.VotersOutgoing)
	t.learners = sortedIDs(cs.Learners)
	t.learnersNext = sortedIDs(cs.LearnersNext)
	t.autoLeave = cs.AutoLeave
	t.incarnations = maps.Clone(cs.Incarnations)
	t.addresses = maps.Clone(cs.Addresses)
	members := map[uint64]bool{}
	for _, ids := range [][]uint64{t.voters[0], t.voters[1], t.learners, t.learnersNext} {
		for _, id := range ids {
			members[id] = true
		}
	}
	for id := range t.progress {
		if !members[id] {
			delete(t.progress, id)
		}
	}
	for id := range members {
		isLearner := !t.isVoter(id)
		if pr, ok := t.progress[id]; ok {
			pr.IsLearner = isLearner
			continue
		}
		pr := newProgress(next, t.maxInflight, t.maxInflightBytes, isLearner)
		// A new member counts as active until the next quorum check, so
		// that adding it cannot make a leader step down at once.
		pr.markActive(t.now)
		t.progress[id] = pr
	}
	t.ids = t.ids[:0]
	for id := range members {
		t.ids = append(t.ids, id)
	}
	slices.Sort(t.ids)
}

// confState returns the configuration as a ConfState.
func (t *progressTracker) confState() ConfState {
	return ConfState{
		Voters:         slices.Clone([]uint64(t.voters[0])),
		VotersOutgoing: slices.Clone([]uint64(t.voters[1])),
		Learners:       slices.Clone(t.learners),
		LearnersNext:   slices.Clone(t.learnersNext),
		AutoLeave:      t.autoLeave,
		Incarnations:   maps.Clone(t.incarnations),
		Addresses:      maps.Clone(t.addresses),
	}
}

// isVoter reports whether id votes in either half of the configuration.
func (t *progressTracker) isVoter(id uint64) bool {
	_, in0 := slices.BinarySearch(t.voters[0], id)
	_, in1 := slices.BinarySearch(t.voters[1], id)
	return in0 || in1
}

// isJoint reports whether a joint configuration is in force.
func (t *progressTracker) isJoint() bool { return len(t.voters[1]) > 0 }

// isSingleton reports whether id is the only voter.
func (t *progressTracker) isSingleton(id uint64) bool {
	return len(t.voters[0]) == 1 && t.voters[0][0] == id && !t.isJoint()
}

// committed returns the highest index replicated on a quorum of the
// configuration (both majorities if joint).
func (t *progressTracker) committed() uint64 {
	acked := func(id uint64) uint64 {
		if pr, ok := t.progress[id]; ok && pr.counts() {
			return pr.Match
		}
		return 0
	}
	return min(t.voters[0].committedIndex(acked), t.voters[1].committedIndex(acked))
}

// resetVotes forgets the votes counted so far.
func (t *progressTracker) resetVotes() { clear(t.votes) }

// recordVote records id's vote, ignoring a second vote from the same ID.
func (t *progressTracker) recordVote(id uint64, granted bool) {
	if _, ok := t.votes[id]; !ok {
		t.votes[id] = granted
	}
}

// tallyVotes returns the granted and rejected counts and the election result.
func (t *progressTracker) tallyVotes() (granted, rejected int, result voteResult) {
	for id, v := range t.votes {
		if !t.isVoter(id) {
			continue
		}
		if v {
			granted++
		} else {
			rejected++
		}
	}
	r0 := t.voters[0].voteResult(t.votes)
	r1 := t.voters[1].voteResult(t.votes)
	switch {
	case r0 == r1:
		result = r0
	case r0 == voteLost || r1 == voteLost:
		result = voteLost
	default:
		result = votePending
	}
	return granted, rejected, result
}

// quorumActive reports whether a quorum (of each half of a joint
// configuration) was heard from within window ticks before now; self
// counts as heard from now.
func (t *progressTracker) quorumActive(self, window uint64) bool {
	heard := func(id uint64) uint64 {
		if id == self {
			return t.now
		}
		if pr, ok := t.progress[id]; ok && pr.counts() {
			return pr.lastHeard
		}
		return 0
	}
	// The latest time by which a quorum had been heard from.
	q := min(t.voters[0].committedIndex(heard), t.voters[1].committedIndex(heard))
	return t.now-q < window
}

// leaseValid reports whether a quorum (of each half of a joint
// configuration) acknowledged a heartbeat sent less than lease ticks ago,
// on the lease's clock; self counts as acknowledging now.
func (t *progressTracker) leaseValid(self, lease uint64) bool {
	now := t.leaseNow()
	start := func(id uint64) uint64 {
		if id == self {
			return now + 1
		}
		if pr, ok := t.progress[id]; ok && pr.counts() {
			return pr.leaseStart
		}
		return 0
	}
	q := min(t.voters[0].committedIndex(start), t.voters[1].committedIndex(start))
	return q > 0 && now+1-q < lease
}

// voterIDs returns every voter of the configuration, sorted.
func (t *progressTracker) voterIDs() []uint64 {
	ids := slices.Clone([]uint64(t.voters[0]))
	for _, id := range t.voters[1] {
		if _, found := slices.BinarySearch(ids, id); !found {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// memberIDs returns every member (voter or learner), sorted. The caller must
// not modify the slice.
func (t *progressTracker) memberIDs() []uint64 { return t.ids }

// sortedIDs returns a sorted copy of ids without duplicates, or nil.
func sortedIDs(ids []uint64) []uint64 {
	if len(ids) == 0 {
		return nil
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}
