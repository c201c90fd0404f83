package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"

	"github.com/keelraft/raft"
)

// A snapshot file holds one snapshot:
//
//	0  [8]byte "KEELSNP1"
//	8  uint32  CRC-32C of the body
//	12 uint32  zero
//	16 uint64  body length
//	24 body:   snapshot metadata (as in records), then the data
//
// It is written under a temporary name, synced, renamed and the directory
// synced, so a snapshot file that exists under its final name was complete.
const (
	snapMagic      = "KEELSNP1"
	snapHeaderSize = 24
	snapSuffix     = ".snap"
	segSuffix      = ".wal"
	tmpSuffix      = ".tmp"
	lockName       = "LOCK"
)

func snapName(index, term uint64) string {
	return fmt.Sprintf("%016x-%016x%s", index, term, snapSuffix)
}

func segName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segSuffix) }

// parseSnapName parses a snapshot file name.
func parseSnapName(name string) (index, term uint64, ok bool) {
	if len(name) != 33+len(snapSuffix) || filepath.Ext(name) != snapSuffix {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x.snap", &index, &term); err != nil {
		return 0, 0, false
	}
	return index, term, snapName(index, term) == name
}

// parseSegName parses a segment file name.
func parseSegName(name string) (seq uint64, ok bool) {
	if len(name) != 16+len(segSuffix) || filepath.Ext(name) != segSuffix {
		return 0, false
	}
	if _, err := fmt.Sscanf(name, "%016x.wal", &seq); err != nil {
		return 0, false
	}
	return seq, segName(seq) == name
}

func encodeSnapFile(snap *raft.Snapshot) []byte {
	e := encoder{b: make([]byte, snapHeaderSize, snapHeaderSize+64+len(snap.Data))}
	encodeSnapMeta(&e, &snap.Metadata)
	e.b = append(e.b, snap.Data...)
	buf := e.b
	copy(buf, snapMagic)
	body := buf[snapHeaderSize:]
	binary.LittleEndian.PutUint32(buf[8:], crc32.Checksum(body, castagnoli))
	binary.LittleEndian.PutUint64(buf[16:], uint64(len(body)))
	return buf
}

// decodeSnapFile checks and decodes a snapshot file; name is used in
// errors. The returned data aliases buf.
func decodeSnapFile(name string, buf []byte) (raft.Snapshot, error) {
	if len(buf) < snapHeaderSize {
		return raft.Snapshot{}, corruptf(name, int64(len(buf)), "snapshot file truncated inside its %d-byte header", snapHeaderSize)
	}
	if !bytes.Equal(buf[:8], []byte(snapMagic)) {
		return raft.Snapshot{}, corruptf(name, 0, "bad snapshot magic %q", buf[:8])
	}
	n := binary.LittleEndian.Uint64(buf[16:])
	if n != uint64(len(buf)-snapHeaderSize) {
		return raft.Snapshot{}, corruptf(name, int64(len(buf)), "snapshot file has %d body bytes, header says %d", len(buf)-snapHeaderSize, n)
	}
	body := buf[snapHeaderSize:]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(buf[8:]); got != want {
		return raft.Snapshot{}, corruptf(name, snapHeaderSize, "snapshot checksum mismatch over %d bytes: got %08x, want %08x", len(body), got, want)
	}
	d := decoder{b: body}
	meta := decodeSnapMeta(&d)
	if d.err != nil {
		return raft.Snapshot{}, corruptf(name, snapHeaderSize, "snapshot metadata: %v", d.err)
	}
	var data []byte
	if len(d.b) > 0 {
		data = d.b
	}
	return raft.Snapshot{Metadata: meta, Data: data}, nil
}
