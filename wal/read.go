package wal

import (
	"fmt"

	"github.com/keelraft/raft"
)

// InitialState implements raft.Storage.
func (l *Log) InitialState() (raft.HardState, raft.ConfState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.hs, l.st.snap.Metadata.ConfState, nil
}

// HardState returns the durable hard state.
func (l *Log) HardState() raft.HardState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.hs
}

// Entries implements raft.Storage. The returned slice must not be
// modified; the log never modifies it either.
func (l *Log) Entries(lo, hi, maxSize uint64) ([]raft.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	offset := l.st.offset()
	if lo <= offset {
		return nil, raft.ErrCompacted
	}
	if last := l.st.lastIndex(); hi > last+1 {
		return nil, fmt.Errorf("%w: entries [%d, %d) requested, last index is %d", raft.ErrUnavailable, lo, hi, last)
	}
	if lo >= hi {
		return nil, nil
	}
	ents := limitSize(l.st.ents[lo-offset:hi-offset], maxSize)
	return ents[:len(ents):len(ents)], nil
}

// Term implements raft.Storage.
func (l *Log) Term(i uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	offset := l.st.offset()
	if i < offset {
		return 0, raft.ErrCompacted
	}
	if i > l.st.lastIndex() {
		return 0, raft.ErrUnavailable
	}
	return l.st.ents[i-offset].Term, nil
}

// LastIndex implements raft.Storage.
func (l *Log) LastIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.lastIndex(), nil
}

// FirstIndex implements raft.Storage.
func (l *Log) FirstIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.offset() + 1, nil
}

// Snapshot implements raft.Storage.
func (l *Log) Snapshot() (raft.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.snap, nil
}
