package raft

import (
	"bytes"
	"io"
)

// SnapshotSource gives access to snapshot data kept out of memory (in a
// file, say) so that it can be streamed rather than loaded whole: a
// Snapshot whose Source is set has an empty Data. The core never calls it
// (it performs no I/O): it carries a Snapshot's Source along with its
// metadata, from Storage.Snapshot into a MsgSnap, and from a received
// MsgSnap into Ready.Snapshot, so that the transport, the storage and the
// state machine read the data where it lies. Implementations must be safe
// for concurrent use.
type SnapshotSource interface {
	// Size returns the length of the data in bytes.
	Size() int64

	// Open returns a new reader of the data from its first byte; the
	// caller closes it. Readers are independent of one another. A reader
	// returns an error rather than io.EOF if the data turns out to be
	// incomplete or corrupt, so a consumer must read to io.EOF before it
	// trusts what it read.
	Open() (io.ReadCloser, error)
}

// OpenData returns a reader of the snapshot's data and the data's size:
// Source's data if Source is set, Data otherwise. The caller closes the
// reader.
func (s *Snapshot) OpenData() (io.ReadCloser, int64, error) {
	if s.Source != nil {
		rc, err := s.Source.Open()
		if err != nil {
			return nil, 0, err
		}
		return rc, s.Source.Size(), nil
	}
	return io.NopCloser(bytes.NewReader(s.Data)), int64(len(s.Data)), nil
}

// SnapshotStore is implemented by a LogStorage that streams snapshot data
// between itself and its users instead of holding it in memory (package
// wal). Its Snapshot may return snapshots whose Data is empty and whose
// Source reads the stored data; its Save and ApplySnapshot accept a
// snapshot whose data comes from a Source (its own from ReceiveSnapshot,
// which it installs without copying, or any other, which it copies).
//
// A host that uses the plain LogStorage methods with snapshot data in
// memory needs none of this; package raftnode uses it when the storage
// implements it.
type SnapshotStore interface {
	LogStorage

	// CreateSnapshotFrom is LogStorage.CreateSnapshot with the image read
	// from r up to io.EOF instead of passed in memory. An error from r
	// aborts the snapshot and is returned; the held snapshot stays in
	// place and nothing of the aborted one is left behind.
	CreateSnapshotFrom(i uint64, cs *ConfState, r io.Reader) (Snapshot, error)

	// ReceiveSnapshot stores the data of a snapshot received from a
	// leader, whose metadata is meta, reading r up to io.EOF, and returns a
	// Source of the stored data. It does not install the snapshot: the
	// host sets the Source in the received MsgSnap (with an empty Data)
	// before stepping it, and Save installs it if the node accepts it and
	// the Ready asks for it. An error (from r or from storing) is returned
	// and leaves nothing behind. Data received but never installed is
	// discarded once a snapshot at a later index is installed, or when the
	// storage is next opened.
	ReceiveSnapshot(meta SnapshotMetadata, r io.Reader) (SnapshotSource, error)
}

// SnapshotStreamHandler is implemented by a TransportHandler that takes the
// data of a received snapshot as a stream, so that the transport need not
// hold it in memory. A transport that streams snapshots (package
// tcptransport) calls HandleSnapshot instead of HandleMessage for each
// MsgSnap it receives when its handler implements this interface.
type SnapshotStreamHandler interface {
	TransportHandler

	// HandleSnapshot is called with a received MsgSnap whose Snapshot.Data
	// is empty and a reader of the data. r returns io.EOF only once the
	// whole data arrived and was verified; it returns an error if the data
	// is incomplete or corrupt, and the handler must then drop the message
	// and discard what it read. The handler reads r to io.EOF before it
	// takes the message (queues it for the node, with the data stored or
	// in memory), and returns nil once it did; an error refuses the
	// snapshot, which the transport reports to the sender. The call lasts
	// as long as the transfer: it blocks the snapshot's stream alone.
	HandleSnapshot(m Message, r io.Reader) error
}
