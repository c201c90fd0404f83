package harness

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
)

// FileLog is BENCH CODE, not part of any library: the minimal durable log
// that the RawNode hosts of this library and of etcd raft write in the
// durable workload, the same code for both. It is one append-only file per
// node; every Ready's snapshot marker, entries and hard state become
// records (a header, the data, a CRC-32C) gathered in a buffer, written
// with one write call, and synced with fdatasync when the Ready says
// MustSync. It does the disk work a write-ahead log must do per Ready and
// nothing else: no recovery, no segments, no preallocation.
type FileLog struct {
	f   *os.File
	buf []byte
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Record kinds.
const (
	recEntry     = 1
	recHardState = 2
	recSnapshot  = 3
)

// OpenFileLog creates (truncating) the log file of node id in dir.
func OpenFileLog(dir string, id uint64) (*FileLog, error) {
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("node%d.log", id)),
		os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &FileLog{f: f}, nil
}

func (l *FileLog) record(kind byte, a, b, c uint64, data []byte) {
	start := len(l.buf)
	l.buf = append(l.buf, kind)
	l.buf = binary.LittleEndian.AppendUint64(l.buf, a)
	l.buf = binary.LittleEndian.AppendUint64(l.buf, b)
	l.buf = binary.LittleEndian.AppendUint64(l.buf, c)
	l.buf = binary.LittleEndian.AppendUint32(l.buf, uint32(len(data)))
	l.buf = append(l.buf, data...)
	l.buf = binary.LittleEndian.AppendUint32(l.buf, crc32.Checksum(l.buf[start:], crcTable))
}

// Entry adds a log entry record.
func (l *FileLog) Entry(term, index uint64, typ uint8, data []byte) {
	l.record(recEntry, term, index, uint64(typ), data)
}

// HardState adds a hard state record.
func (l *FileLog) HardState(term, vote, commit uint64) {
	l.record(recHardState, term, vote, commit, nil)
}

// Snapshot adds a record of a snapshot's position (its data would go to a
// separate file; the bench's snapshots carry none).
func (l *FileLog) Snapshot(index, term uint64) {
	l.record(recSnapshot, index, term, 0, nil)
}

// Write writes the gathered records to the file.
func (l *FileLog) Write() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.f.Write(l.buf)
	l.buf = l.buf[:0]
	return err
}

// Sync makes what was written durable.
func (l *FileLog) Sync() error { return fdatasync(l.f) }

// Close closes the file.
func (l *FileLog) Close() error { return l.f.Close() }

// SyncAll syncs the logs whose need flag is set, concurrently (as three
// nodes on three machines would), and clears the flags.
func SyncAll(logs []*FileLog, need []bool) error {
	var wg sync.WaitGroup
	errs := make([]error, len(logs))
	for i, l := range logs {
		if !need[i] {
			continue
		}
		need[i] = false
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Sync()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
