package wal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// A record is framed as a 16-byte header followed by the payload, padded
// with zeros to a multiple of 8 bytes:
//
//	0  uint32  payload length (little endian)
//	4  uint8   record type
//	5  [3]byte zero
//	8  uint32  CRC-32C of the payload
//	12 uint32  CRC-32C of bytes 0..12 (the header check)
//
// The separate header check lets recovery test any aligned offset cheaply
// for a valid record, which is how it tells a torn tail (nothing valid
// follows) from damage in the middle (something valid follows). An all-zero
// header fails the header check, so preallocated space reads as "no record".
const (
	recHeaderSize = 16
	recAlign      = 8
)

// Record types.
const (
	// recSegHeader opens every segment: its sequence number, preallocated
	// size and the state of the log when the segment was started.
	recSegHeader uint8 = 1
	// recUpdate is one durable batch: a snapshot marker, a compaction
	// marker, entries and a hard state, each optional.
	recUpdate uint8 = 2
	// recSeal closes a segment; it names the next segment's sequence.
	recSeal uint8 = 3
	// recSynced follows an update record once its sync has returned; it
	// names the offset of that record. It is written without a sync of
	// its own (the next sync makes it durable), so it survives a process
	// crash but maybe not a power loss; its presence proves that the
	// record before it was durable, and so was acknowledged.
	recSynced uint8 = 4
)

// markerSize is the framed size of a recSynced record (an 8-byte payload).
const markerSize = recHeaderSize + 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordSize returns the framed size of a payload of n bytes.
func recordSize(n int) int { return recHeaderSize + align(n) }

func align(n int) int { return (n + recAlign - 1) &^ (recAlign - 1) }

// appendRecord frames payload as a record of type typ at the end of buf.
func appendRecord(buf []byte, typ uint8, payload []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, recordSize(len(payload)))...)
	h := buf[start:]
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	h[4] = typ
	binary.LittleEndian.PutUint32(h[8:], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint32(h[12:], crc32.Checksum(h[:12], castagnoli))
	copy(h[recHeaderSize:], payload)
	return buf
}

// parseRecord reads the record at buf[off:]. It returns the type, the
// payload (aliasing buf) and the offset of the next record, or ok=false if
// no valid record starts at off.
func parseRecord(buf []byte, off int) (typ uint8, payload []byte, next int, ok bool) {
	if off < 0 || len(buf)-off < recHeaderSize {
		return 0, nil, 0, false
	}
	h := buf[off : off+recHeaderSize]
	// The cheap checks first: zeroed space fails on the type.
	if h[5] != 0 || h[6] != 0 || h[7] != 0 || h[4] < recSegHeader || h[4] > recSynced {
		return 0, nil, 0, false
	}
	if crc32.Checksum(h[:12], castagnoli) != binary.LittleEndian.Uint32(h[12:]) {
		return 0, nil, 0, false
	}
	n := uint64(binary.LittleEndian.Uint32(h[0:]))
	if n > uint64(len(buf)-off-recHeaderSize) {
		return 0, nil, 0, false
	}
	payload = buf[off+recHeaderSize : off+recHeaderSize+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(h[8:]) {
		return 0, nil, 0, false
	}
	next = off + recordSize(int(n))
	if next > len(buf) {
		// The padding of the last record may be cut when the file was not
		// preallocated; the record itself is whole.
		next = len(buf)
	}
	return h[4], payload, next, true
}

// putMarker frames in m the recSynced record vouching for the record at
// off, without allocating.
func putMarker(m *[markerSize]byte, off int64) {
	*m = [markerSize]byte{}
	binary.LittleEndian.PutUint32(m[0:], 8)
	m[4] = recSynced
	binary.LittleEndian.PutUint64(m[recHeaderSize:], uint64(off))
	binary.LittleEndian.PutUint32(m[8:], crc32.Checksum(m[recHeaderSize:], castagnoli))
	binary.LittleEndian.PutUint32(m[12:], crc32.Checksum(m[:12], castagnoli))
}

// decodeMarker returns the offset a recSynced payload names.
func decodeMarker(payload []byte) (int64, bool) {
	if len(payload) != 8 {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(payload)), true
}

// hasValidRecordAfter reports whether any aligned offset in buf after off
// holds a valid record, and the first such offset.
func hasValidRecordAfter(buf []byte, off int) (int, bool) {
	start := align(off + 1)
	for o := start; o+recHeaderSize <= len(buf); o += recAlign {
		if _, _, _, ok := parseRecord(buf, o); ok {
			return o, true
		}
	}
	return 0, false
}

// errShortPayload is returned by the decoder when a payload ends early or
// declares a length beyond its end.
var errShortPayload = errors.New("payload too short")

// encoder appends little-endian varints and bytes to a buffer.
type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) byte1(v byte)     { e.b = append(e.b, v) }
func (e *encoder) fixed64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) bytes(p []byte) {
	e.uvarint(uint64(len(p)))
	e.b = append(e.b, p...)
}
func (e *encoder) ids(ids []uint64) {
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.uvarint(id)
	}
}

// decoder reads what encoder wrote; the first error sticks and every later
// read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShortPayload
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) fixed64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errShortPayload
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShortPayload
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// bytes returns a slice aliasing the payload; nil for an empty slice.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShortPayload
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) ids() []uint64 {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	// Every id takes at least one byte: bound the count before allocating.
	if n > uint64(len(d.b)) {
		d.err = errShortPayload
		return nil
	}
	if n == 0 {
		return nil
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = d.uvarint()
	}
	return ids
}

// tornAfterUnmarked reports whether the valid record found at at, after
// the invalid bytes at off, is what a power loss leaves when it tears the
// write after an unmarked update record (at unmarked): the marker that
// should be at off never reached the disk, so the update record right
// after its slot was never synced (its sync would have made the marker
// durable) and is torn, provided nothing valid follows it.
func tornAfterUnmarked(buf []byte, off, at int, unmarked int64) bool {
	if unmarked < 0 || at != off+markerSize {
		return false
	}
	typ, _, next, ok := parseRecord(buf, at)
	if !ok || typ != recUpdate {
		return false
	}
	_, found := hasValidRecordAfter(buf, next-1)
	return !found
}
