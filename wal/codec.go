package wal

import (
	"fmt"
	"maps"
	"slices"

	"github.com/keelraft/raft"
)

// Snapshot kinds in an update record.
const (
	// snapApply: the snapshot replaces the log (Ready.Snapshot,
	// ApplySnapshot).
	snapApply uint8 = 1
	// snapCreate: the host snapshotted its state at an index of the log
	// (CreateSnapshot); the log is kept.
	snapCreate uint8 = 2
)

// Update flags.
const (
	flagSnap    = 1 << 0
	flagCompact = 1 << 1
	flagEntries = 1 << 2
	flagHard    = 1 << 3
)

// update is the payload of a recUpdate record: one durable batch, applied
// in field order on recovery.
type update struct {
	snapKind     uint8 // 0: no snapshot
	snap         raft.SnapshotMetadata
	hasCompact   bool
	compactIndex uint64
	compactTerm  uint64
	ents         []raft.Entry
	hasHard      bool
	hs           raft.HardState
}

// segHeader is the payload of a recSegHeader record: the sequence number,
// the preallocated size, the log's state when the segment was started and
// the directory's identity, so that earlier segments can be deleted without
// losing the hard state, the snapshot position or the identity, and so that
// a truncated predecessor is detected.
type segHeader struct {
	seq  uint64
	size int64
	summ summary
	id   Identity
}

// summary is the part of the log state a segment header records.
type summary struct {
	snap       raft.SnapshotMetadata
	offset     uint64 // index of the entry before the first kept one
	offsetTerm uint64
	last       uint64
	lastTerm   uint64
	hs         raft.HardState
}

func (s summary) equal(o summary) bool {
	return s.snap.Index == o.snap.Index && s.snap.Term == o.snap.Term &&
		s.offset == o.offset && s.offsetTerm == o.offsetTerm &&
		s.last == o.last && s.lastTerm == o.lastTerm && s.hs == o.hs
}

func (s summary) String() string {
	return fmt.Sprintf("snapshot=%d/%d offset=%d/%d last=%d/%d hs=%+v",
		s.snap.Index, s.snap.Term, s.offset, s.offsetTerm, s.last, s.lastTerm, s.hs)
}

// ConfState flags, in the byte after the ID lists. confAutoLeave was once
// the whole byte (0 or 1); confAddresses is set only when the addresses
// follow the incarnations, so that a configuration without addresses is
// encoded as before.
const (
	confAutoLeave = 1 << 0
	confAddresses = 1 << 1
)

func encodeConfState(e *encoder, cs *raft.ConfState) {
	e.ids(cs.Voters)
	e.ids(cs.Learners)
	e.ids(cs.VotersOutgoing)
	e.ids(cs.LearnersNext)
	var flags byte
	if cs.AutoLeave {
		flags |= confAutoLeave
	}
	if len(cs.Addresses) > 0 {
		flags |= confAddresses
	}
	e.byte1(flags)
	encodeIDMap(e, cs.Incarnations, encodeIncarnation)
	if len(cs.Addresses) > 0 {
		encodeIDMap(e, cs.Addresses, encodeAddress)
	}
}

// encodeIDMap writes the count, then (id, value) pairs ascending by id, so
// that equal maps encode to equal bytes; value writes one value.
func encodeIDMap[V any](e *encoder, m map[uint64]V, value func(*encoder, V)) {
	ids := slices.Sorted(maps.Keys(m))
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.uvarint(id)
		value(e, m[id])
	}
}

// decodeIDMap reads what encodeIDMap wrote, value reading one value; an
// empty map decodes as nil.
func decodeIDMap[V any](d *decoder, value func(*decoder) V) map[uint64]V {
	n := d.uvarint()
	// Every pair takes at least two bytes: bound the count first.
	if d.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(d.b))/2 {
		d.err = errShortPayload
		return nil
	}
	m := make(map[uint64]V, n)
	for range n {
		id := d.uvarint()
		m[id] = value(d)
	}
	return m
}

// The values of the configuration's maps: incarnations and addresses.
func encodeIncarnation(e *encoder, v uint64) { e.uvarint(v) }
func decodeIncarnation(d *decoder) uint64    { return d.uvarint() }
func encodeAddress(e *encoder, a string)     { e.bytes([]byte(a)) }
func decodeAddress(d *decoder) string        { return string(d.bytes()) }

func decodeConfState(d *decoder) raft.ConfState {
	var cs raft.ConfState
	cs.Voters = d.ids()
	cs.Learners = d.ids()
	cs.VotersOutgoing = d.ids()
	cs.LearnersNext = d.ids()
	flags := d.byte1()
	if d.err == nil && flags&^(confAutoLeave|confAddresses) != 0 {
		d.err = fmt.Errorf("unknown configuration flags %#x", flags)
	}
	cs.AutoLeave = flags&confAutoLeave != 0
	cs.Incarnations = decodeIDMap(d, decodeIncarnation)
	if flags&confAddresses != 0 {
		cs.Addresses = decodeIDMap(d, decodeAddress)
	}
	return cs
}

func encodeSnapMeta(e *encoder, m *raft.SnapshotMetadata) {
	e.uvarint(m.Index)
	e.uvarint(m.Term)
	encodeConfState(e, &m.ConfState)
}

func decodeSnapMeta(d *decoder) raft.SnapshotMetadata {
	var m raft.SnapshotMetadata
	m.Index = d.uvarint()
	m.Term = d.uvarint()
	m.ConfState = decodeConfState(d)
	return m
}

// Hard state flags.
const hsRecovering = 1 << 0

// encodeHardState writes term, vote, commit, a flags uvarint
// (hsRecovering) and the recovery epoch.
func encodeHardState(e *encoder, hs raft.HardState) {
	e.uvarint(hs.Term)
	e.uvarint(hs.Vote)
	e.uvarint(hs.Commit)
	var flags uint64
	if hs.Recovering {
		flags |= hsRecovering
	}
	e.uvarint(flags)
	e.uvarint(hs.RecoveryEpoch)
}

func decodeHardState(d *decoder) raft.HardState {
	hs := raft.HardState{Term: d.uvarint(), Vote: d.uvarint(), Commit: d.uvarint()}
	flags := d.uvarint()
	if d.err == nil && flags&^hsRecovering != 0 {
		d.err = fmt.Errorf("unknown hard state flags %#x", flags)
	}
	hs.Recovering = flags&hsRecovering != 0
	hs.RecoveryEpoch = d.uvarint()
	return hs
}

func (u *update) encode(buf []byte) []byte {
	e := encoder{b: buf}
	var flags byte
	if u.snapKind != 0 {
		flags |= flagSnap
	}
	if u.hasCompact {
		flags |= flagCompact
	}
	if len(u.ents) > 0 {
		flags |= flagEntries
	}
	if u.hasHard {
		flags |= flagHard
	}
	e.byte1(flags)
	if u.snapKind != 0 {
		e.byte1(u.snapKind)
		encodeSnapMeta(&e, &u.snap)
	}
	if u.hasCompact {
		e.uvarint(u.compactIndex)
		e.uvarint(u.compactTerm)
	}
	if len(u.ents) > 0 {
		e.uvarint(uint64(len(u.ents)))
		e.uvarint(u.ents[0].Index)
		for i := range u.ents {
			e.uvarint(u.ents[i].Term)
			e.byte1(byte(u.ents[i].Type))
			e.bytes(u.ents[i].Data)
		}
	}
	if u.hasHard {
		encodeHardState(&e, u.hs)
	}
	return e.b
}

// decodeUpdate decodes a recUpdate payload. Entry data aliases payload.
func decodeUpdate(payload []byte) (update, error) {
	d := decoder{b: payload}
	var u update
	flags := d.byte1()
	if flags&flagSnap != 0 {
		u.snapKind = d.byte1()
		if u.snapKind != snapApply && u.snapKind != snapCreate && d.err == nil {
			return u, fmt.Errorf("unknown snapshot kind %d", u.snapKind)
		}
		u.snap = decodeSnapMeta(&d)
	}
	if flags&flagCompact != 0 {
		u.hasCompact = true
		u.compactIndex = d.uvarint()
		u.compactTerm = d.uvarint()
	}
	if flags&flagEntries != 0 {
		n := d.uvarint()
		first := d.uvarint()
		// Every entry takes at least three bytes.
		if d.err == nil && n > uint64(len(d.b))/3 {
			return u, fmt.Errorf("entry count %d exceeds the payload", n)
		}
		if d.err == nil {
			u.ents = make([]raft.Entry, n)
			for i := range u.ents {
				u.ents[i] = raft.Entry{
					Index: first + uint64(i),
					Term:  d.uvarint(),
					Type:  raft.EntryType(d.byte1()),
					Data:  d.bytes(),
				}
			}
		}
	}
	if flags&flagHard != 0 {
		u.hasHard = true
		u.hs = decodeHardState(&d)
	}
	if d.err != nil {
		return u, d.err
	}
	if len(d.b) != 0 {
		return u, fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return u, nil
}

// ownData copies the data of the update's entries, which decodeUpdate left
// aliasing the record's payload, into one allocation of their own, so that
// the entries recovery keeps do not keep alive the buffer the segment was
// read into (a whole preallocated segment). The copy holds exactly the
// record's entry data: a kept entry pins at most the data of its own batch.
func (u *update) ownData() {
	n := 0
	for i := range u.ents {
		n += len(u.ents[i].Data)
	}
	if n == 0 {
		return
	}
	buf := make([]byte, 0, n)
	for i := range u.ents {
		if d := u.ents[i].Data; d != nil {
			start := len(buf)
			buf = append(buf, d...)
			u.ents[i].Data = buf[start:len(buf):len(buf)]
		}
	}
}

func (h *segHeader) encode() []byte {
	e := encoder{}
	e.uvarint(h.seq)
	e.uvarint(uint64(h.size))
	encodeSnapMeta(&e, &h.summ.snap)
	e.uvarint(h.summ.offset)
	e.uvarint(h.summ.offsetTerm)
	e.uvarint(h.summ.last)
	e.uvarint(h.summ.lastTerm)
	encodeHardState(&e, h.summ.hs)
	// Fixed width: the random incarnation must not change the header's
	// size, so that the same writes roll segments at the same points.
	e.fixed64(h.id.ClusterID)
	e.fixed64(h.id.NodeID)
	e.fixed64(h.id.Incarnation)
	return e.b
}

func decodeSegHeader(payload []byte) (segHeader, error) {
	d := decoder{b: payload}
	var h segHeader
	h.seq = d.uvarint()
	h.size = int64(d.uvarint())
	h.summ.snap = decodeSnapMeta(&d)
	h.summ.offset = d.uvarint()
	h.summ.offsetTerm = d.uvarint()
	h.summ.last = d.uvarint()
	h.summ.lastTerm = d.uvarint()
	h.summ.hs = decodeHardState(&d)
	h.id.ClusterID = d.fixed64()
	h.id.NodeID = d.fixed64()
	h.id.Incarnation = d.fixed64()
	if d.err == nil && h.id.Incarnation == 0 {
		return h, fmt.Errorf("no incarnation")
	}
	if d.err != nil {
		return h, d.err
	}
	if len(d.b) != 0 {
		return h, fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return h, nil
}

func encodeSeal(next uint64) []byte {
	e := encoder{}
	e.uvarint(next)
	return e.b
}

func decodeSeal(payload []byte) (uint64, error) {
	d := decoder{b: payload}
	next := d.uvarint()
	if d.err != nil {
		return 0, d.err
	}
	return next, nil
}
