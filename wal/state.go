package wal

import (
	"fmt"
	"slices"

	"github.com/keelraft/raft"
)

// state is the log's content in memory: the same model as
// raft.MemoryStorage. It is changed only after the record describing the
// change is durable, and on recovery by replaying those records, so both
// paths share the mutation methods below; the check methods validate a
// change before it is written.
type state struct {
	hs   raft.HardState
	snap raft.Snapshot
	// ents[0] is a placeholder whose Index and Term are those of the last
	// compacted entry (the snapshot's, unless Compact went further);
	// ents[i] has index ents[0].Index + i.
	//
	// Invariant: during recovery only, an entry with Term 0 stands for an
	// entry written in a segment that was deleted; none may remain live
	// once recovery ends.
	ents []raft.Entry
	// runs records which segment holds each live entry: run i covers the
	// indexes from runs[i].lo to runs[i+1].lo-1 (the last run up to the
	// last index). Segment sequence numbers never decrease along the log.
	runs []run
	// hsLast is the last index when hs was last set, during recovery:
	// a Commit beyond the last index that was within it then is a
	// promise the log lost.
	hsLast uint64
}

// run is a stretch of live entries written to one segment.
type run struct{ seq, lo uint64 }

func newState() state { return state{ents: make([]raft.Entry, 1)} }

func (s *state) offset() uint64    { return s.ents[0].Index }
func (s *state) lastIndex() uint64 { return s.ents[0].Index + uint64(len(s.ents)) - 1 }
func (s *state) lastTerm() uint64  { return s.ents[len(s.ents)-1].Term }

func (s *state) summary() summary {
	return summary{
		snap:       s.snap.Metadata,
		offset:     s.offset(),
		offsetTerm: s.ents[0].Term,
		last:       s.lastIndex(),
		lastTerm:   s.lastTerm(),
		hs:         s.hs,
	}
}

// initFrom starts recovery from a segment header: entries between the
// offset and the last index were written to deleted segments and are
// represented by Term-0 placeholders, which later records must compact
// or overwrite.
func (s *state) initFrom(summ summary, prevSeq uint64) {
	s.hs = summ.hs
	s.hsLast = summ.last
	s.snap = raft.Snapshot{Metadata: summ.snap}
	s.ents = make([]raft.Entry, summ.last-summ.offset+1)
	for i := range s.ents {
		s.ents[i].Index = summ.offset + uint64(i)
	}
	s.ents[0].Term = summ.offsetTerm
	s.ents[len(s.ents)-1].Term = summ.lastTerm
	s.runs = nil
	if summ.last > summ.offset {
		s.runs = []run{{seq: prevSeq, lo: summ.offset + 1}}
	}
}

// clone returns a copy that later mutations of s do not change.
func (s *state) clone() state {
	c := *s
	c.runs = slices.Clone(s.runs)
	return c
}

// trimMissing cuts the log before its first placeholder entry (one whose
// segment is gone), so that what remains is a consistent prefix.
func (s *state) trimMissing() {
	for i := 1; i < len(s.ents); i++ {
		if s.ents[i].Term == 0 {
			s.ents = slices.Clone(s.ents[:i])
			return
		}
	}
}

// lostCommit reports whether the hard state commits an index beyond the
// log that the log held when the hard state was written.
func (s *state) lostCommit() bool {
	return s.hs.Commit > s.lastIndex() && s.hs.Commit <= s.hsLast
}

// missing returns the range of live placeholder entries, if any.
func (s *state) missing() (lo, hi uint64, ok bool) {
	for i := 1; i < len(s.ents); i++ {
		if s.ents[i].Term == 0 {
			lo = s.ents[i].Index
			hi = lo
			for i+1 < len(s.ents) && s.ents[i+1].Term == 0 {
				i++
				hi = s.ents[i].Index
			}
			return lo, hi, true
		}
	}
	return 0, 0, false
}

// checkAppend validates entries for appendEntries and returns the part that
// is not compacted yet (possibly empty).
func (s *state) checkAppend(ents []raft.Entry, offset, last uint64) ([]raft.Entry, error) {
	if len(ents) == 0 {
		return nil, nil
	}
	for i := range ents {
		if i > 0 && ents[i].Index != ents[i-1].Index+1 {
			return nil, fmt.Errorf("%w: entry index %d follows %d", raft.ErrLogGap, ents[i].Index, ents[i-1].Index)
		}
		if ents[i].Term == 0 {
			// Term 0 marks a missing entry during recovery; raft never
			// makes such an entry.
			return nil, fmt.Errorf("%w: entry %d has term 0", ErrInvalidEntry, ents[i].Index)
		}
	}
	first := offset + 1
	if ents[len(ents)-1].Index < first {
		return nil, nil
	}
	if first > ents[0].Index {
		ents = ents[first-ents[0].Index:]
	}
	if ents[0].Index > last+1 {
		return nil, fmt.Errorf("%w: first appended index %d, last index %d", raft.ErrLogGap, ents[0].Index, last)
	}
	return ents, nil
}

// appendEntries adds checked entries (from checkAppend), written to
// segment seq, replacing any overlapping tail. Slices handed out by Entries
// are never overwritten: the kept prefix is copied on a conflict.
func (s *state) appendEntries(ents []raft.Entry, seq uint64) {
	if len(ents) == 0 {
		return
	}
	at := ents[0].Index - s.offset()
	if at < uint64(len(s.ents)) {
		kept := make([]raft.Entry, at, at+uint64(len(ents)))
		copy(kept, s.ents[:at])
		s.ents = append(kept, ents...)
	} else {
		if need := len(s.ents) + len(ents); need > cap(s.ents) {
			// Grow by doubling: append grows large slices by only 1.25x,
			// which copies a long log several more times.
			grown := make([]raft.Entry, len(s.ents), max(need, 2*cap(s.ents)))
			copy(grown, s.ents)
			s.ents = grown
		}
		s.ents = append(s.ents, ents...)
	}
	lo := ents[0].Index
	for len(s.runs) > 0 && s.runs[len(s.runs)-1].lo >= lo {
		s.runs = s.runs[:len(s.runs)-1]
	}
	if len(s.runs) == 0 || s.runs[len(s.runs)-1].seq != seq {
		s.runs = append(s.runs, run{seq: seq, lo: lo})
	}
}

// applySnapshot replaces the log with the snapshot (as
// MemoryStorage.ApplySnapshot does).
func (s *state) applySnapshot(snap raft.Snapshot) {
	s.snap = snap
	s.ents = []raft.Entry{{Index: snap.Metadata.Index, Term: snap.Metadata.Term}}
	s.runs = nil
	if s.hs.Term < snap.Metadata.Term {
		s.hs.Term = snap.Metadata.Term
	}
	if s.hs.Commit < snap.Metadata.Index {
		s.hs.Commit = snap.Metadata.Index
	}
}

// compact drops the entries up to and including index i, whose term is
// term; offset() < i <= lastIndex().
func (s *state) compact(i, term uint64) {
	at := i - s.offset()
	ents := make([]raft.Entry, 1, uint64(len(s.ents))-at)
	ents[0] = raft.Entry{Index: i, Term: term}
	s.ents = append(ents, s.ents[at+1:]...)
	for len(s.runs) > 1 && s.runs[1].lo <= i+1 {
		s.runs = s.runs[1:]
	}
	if len(s.ents) == 1 {
		s.runs = nil
	} else if len(s.runs) > 0 {
		s.runs[0].lo = i + 1
	}
}

// oldestLiveSeq returns the sequence number of the oldest segment that
// holds a live entry, or active if none does.
func (s *state) oldestLiveSeq(active uint64) uint64 {
	if len(s.runs) == 0 {
		return active
	}
	return s.runs[0].seq
}

// entrySize is what raft charges for an entry in size limits.
func entrySize(e *raft.Entry) uint64 { return 24 + uint64(len(e.Data)) }

// limitSize returns the longest prefix of ents within maxSize, but at least
// one entry (as raft.MemoryStorage does).
func limitSize(ents []raft.Entry, maxSize uint64) []raft.Entry {
	if len(ents) == 0 {
		return ents
	}
	size := entrySize(&ents[0])
	for i := 1; i < len(ents); i++ {
		size += entrySize(&ents[i])
		if size > maxSize {
			return ents[:i]
		}
	}
	return ents
}
