package rafttest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/keelraft/raft"
)

// Storage is a simulated disk: a raft.Storage whose writes are visible at
// once but become durable only at Sync. Crash throws away what was not
// synced, keeping at most a prefix of the unsynced writes, possibly with the
// last one torn (only a prefix of its entries written), which is what a real
// disk may leave behind after a power loss.
//
// Snapshots and compaction (CreateSnapshot, Compact) are durable at once: a
// host writes the snapshot file and syncs it before it truncates its log.
//
// A Storage is not safe for concurrent use.
type Storage struct {
	// view is what the running node reads: every write, synced or not.
	view *raft.MemoryStorage
	// durable is what survives a crash: every synced write.
	durable *raft.MemoryStorage
	// pending holds the writes made since the last Sync, in order.
	pending []storageWrite
	// incarnation identifies the storage's contents (raft.Config.Incarnation):
	// drawn when the storage is first initialised and kept with it.
	incarnation uint64
}

// storageWrite is one unsynced write.
type storageWrite struct {
	snap raft.Snapshot
	ents []raft.Entry
	hs   raft.HardState
}

var _ raft.Storage = (*Storage)(nil)

// NewStorage returns an empty simulated disk.
func NewStorage() *Storage {
	return &Storage{view: raft.NewMemoryStorage(), durable: raft.NewMemoryStorage()}
}

// Incarnation returns the storage's incarnation, the number that
// identifies its contents (raft.Config.Incarnation); zero if none was set.
func (s *Storage) Incarnation() uint64 { return s.incarnation }

// InitialState implements raft.Storage.
func (s *Storage) InitialState() (raft.HardState, raft.ConfState, error) {
	return s.view.InitialState()
}

// Entries implements raft.Storage.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]raft.Entry, error) {
	return s.view.Entries(lo, hi, maxSize)
}

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) { return s.view.Term(i) }

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) { return s.view.LastIndex() }

// FirstIndex implements raft.Storage.
func (s *Storage) FirstIndex() (uint64, error) { return s.view.FirstIndex() }

// Snapshot implements raft.Storage.
func (s *Storage) Snapshot() (raft.Snapshot, error) { return s.view.Snapshot() }

// HardState returns the hard state the running node would read.
func (s *Storage) HardState() raft.HardState { return s.view.HardState() }

// DurableHardState returns the hard state that would survive a crash now.
func (s *Storage) DurableHardState() raft.HardState { return s.durable.HardState() }

// DurableLastIndex returns the last log index that would survive a crash now.
func (s *Storage) DurableLastIndex() uint64 {
	last, _ := s.durable.LastIndex()
	return last
}

// ApplySnapshot writes a snapshot received from a leader (unsynced).
func (s *Storage) ApplySnapshot(snap raft.Snapshot) error {
	if err := s.view.ApplySnapshot(snap); err != nil {
		return err
	}
	s.pending = append(s.pending, storageWrite{snap: snap})
	return nil
}

// Append writes entries to the log (unsynced).
func (s *Storage) Append(ents []raft.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	if err := s.view.Append(ents); err != nil {
		return err
	}
	s.pending = append(s.pending, storageWrite{ents: append([]raft.Entry(nil), ents...)})
	return nil
}

// SetHardState writes the hard state (unsynced).
func (s *Storage) SetHardState(hs raft.HardState) error {
	if err := s.view.SetHardState(hs); err != nil {
		return err
	}
	s.pending = append(s.pending, storageWrite{hs: hs})
	return nil
}

// Unsynced returns the number of writes a crash would put at risk.
func (s *Storage) Unsynced() int { return len(s.pending) }

// Sync makes every write so far durable: the synced watermark moves to the
// end of the write log.
func (s *Storage) Sync() error {
	for _, w := range s.pending {
		if err := applyWrite(s.durable, w); err != nil {
			return fmt.Errorf("rafttest: sync: %w", err)
		}
	}
	s.pending = s.pending[:0]
	return nil
}

// CreateSnapshot records a snapshot of the state at applied index i, durably:
// like a host writing a snapshot file, it syncs the writes before it. Applied
// entries are committed, so the hard state's commit index is raised
// to i if it lags (the commit index alone is not synced, and a node refuses
// to start from a disk whose commit index is below its snapshot).
func (s *Storage) CreateSnapshot(i uint64, cs *raft.ConfState, data []byte) error {
	if err := s.Sync(); err != nil {
		return err
	}
	if _, err := s.view.CreateSnapshot(i, cs, data); err != nil {
		return err
	}
	if _, err := s.durable.CreateSnapshot(i, cs, data); err != nil {
		return fmt.Errorf("rafttest: snapshot at %d is not backed by durable entries: %w", i, err)
	}
	for _, m := range []*raft.MemoryStorage{s.view, s.durable} {
		if hs := m.HardState(); hs.Commit < i {
			hs.Commit = i
			_ = m.SetHardState(hs)
		}
	}
	return nil
}

// Compact discards log entries up to and including i, durably. The caller
// keeps i at or below the latest snapshot index.
func (s *Storage) Compact(i uint64) error {
	if err := s.view.Compact(i); err != nil {
		return err
	}
	if err := s.durable.Compact(i); err != nil {
		return fmt.Errorf("rafttest: compaction at %d beyond the durable log: %w", i, err)
	}
	return nil
}

// Crash simulates a power loss: the storage comes back with the durable
// state plus a random prefix of the unsynced writes; if torn is set, the
// last surviving entry write may be cut short. It reports how many unsynced
// writes were lost (a torn write counts as lost).
func (s *Storage) Crash(rng *rand.Rand, torn bool) (lost int, err error) {
	keep := 0
	if len(s.pending) > 0 {
		keep = rng.IntN(len(s.pending) + 1)
	}
	view, err := cloneMemoryStorage(s.durable)
	if err != nil {
		return 0, err
	}
	for _, w := range s.pending[:keep] {
		if err := applyWrite(view, w); err != nil {
			return 0, fmt.Errorf("rafttest: crash replay: %w", err)
		}
	}
	lost = len(s.pending) - keep
	if torn && keep < len(s.pending) && len(s.pending[keep].ents) > 1 {
		w := s.pending[keep]
		part := rng.IntN(len(w.ents))
		if err := view.Append(w.ents[:part]); err != nil {
			return 0, fmt.Errorf("rafttest: torn write: %w", err)
		}
	}
	s.view = view
	// What survived is now on disk.
	s.durable, err = cloneMemoryStorage(view)
	s.pending = s.pending[:0]
	return lost, err
}

// applyWrite replays one write on m.
func applyWrite(m *raft.MemoryStorage, w storageWrite) error {
	switch {
	case !w.snap.IsEmpty():
		return m.ApplySnapshot(w.snap)
	case len(w.ents) > 0:
		return m.Append(w.ents)
	default:
		return m.SetHardState(w.hs)
	}
}

// cloneMemoryStorage copies src's snapshot, entries and hard state.
func cloneMemoryStorage(src *raft.MemoryStorage) (*raft.MemoryStorage, error) {
	dst := raft.NewMemoryStorage()
	snap, err := src.Snapshot()
	if err != nil {
		return nil, err
	}
	if !snap.IsEmpty() {
		if err := dst.ApplySnapshot(snap); err != nil {
			return nil, err
		}
	}
	first, _ := src.FirstIndex()
	last, _ := src.LastIndex()
	if last >= first {
		ents, err := src.Entries(first, last+1, math.MaxUint64)
		if err != nil {
			return nil, err
		}
		if err := dst.Append(ents); err != nil {
			return nil, err
		}
	}
	if err := dst.SetHardState(src.HardState()); err != nil {
		return nil, err
	}
	return dst, nil
}
