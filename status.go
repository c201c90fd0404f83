package raft

import "fmt"

// BasicStatus is a node's state without per-peer detail. Computing it does
// not allocate.
type BasicStatus struct {
	ID uint64
	HardState
	SoftState
	// Applied is the highest index the host confirmed applied.
	Applied uint64
	// LeadTransferee is the target of a leadership transfer under way.
	LeadTransferee uint64
}

// Status is a node's state including, on a leader, each peer's progress.
type Status struct {
	BasicStatus
	// Config is the membership in force.
	Config ConfState
	// Progress maps each member to a copy of its progress; it is nil unless
	// the node is the leader.
	Progress map[uint64]Progress
}

// BasicStatus returns the node's state without per-peer detail.
func (rn *RawNode) BasicStatus() BasicStatus {
	r := rn.raft
	return BasicStatus{
		ID:        r.id,
		HardState: r.hardState(),
		SoftState: r.softState(),
		Applied:   r.raftLog.applied,

		LeadTransferee: r.leadTransferee,
	}
}

// Status returns the node's state, with per-peer progress on a leader.
func (rn *RawNode) Status() Status {
	r := rn.raft
	s := Status{BasicStatus: rn.BasicStatus(), Config: r.trk.confState()}
	if r.state == StateLeader {
		s.Progress = make(map[uint64]Progress, len(r.trk.progress))
		for id, pr := range r.trk.progress {
			cp := *pr
			in := *pr.inflights
			in.buffer = append([]inflight(nil), pr.inflights.buffer...)
			cp.inflights = &in
			s.Progress[id] = cp
		}
	}
	return s
}

// String summarises the status on one line.
func (s Status) String() string {
	return fmt.Sprintf("id=%d term=%d vote=%d commit=%d applied=%d lead=%d state=%s",
		s.ID, s.Term, s.Vote, s.Commit, s.Applied, s.Lead, s.RaftState)
}
