package raft

// inflights is the window of append messages sent to one peer and not yet
// acknowledged, bounded by a count and a total byte size. It is a ring
// buffer that grows up to its count limit and never allocates afterwards.
type inflights struct {
	start int // index in buffer of the oldest inflight message
	count int // number of inflight messages
	bytes uint64

	maxCount int    // Invariant: count <= maxCount
	maxBytes uint64 // 0 means no byte limit

	buffer []inflight
}

// inflight is one unacknowledged append: the last index it carried and the
// bytes of its entries.
type inflight struct {
	index uint64
	bytes uint64
}

func newInflights(maxCount int, maxBytes uint64) *inflights {
	return &inflights{maxCount: maxCount, maxBytes: maxBytes}
}

// add records an append whose last entry is index and whose entries weigh
// bytes. Indexes must be added in increasing order.
func (in *inflights) add(index, bytes uint64) {
	if in.full() {
		panic("raft: cannot add into a full inflights window")
	}
	next := in.start + in.count
	if size := len(in.buffer); next >= size {
		if size < in.maxCount {
			// grow moves the oldest append to the front of the new
			// buffer, so the free slot moves too.
			in.grow()
			size = len(in.buffer)
			next = in.start + in.count
		}
		if next >= size {
			next -= size
		}
	}
	in.buffer[next] = inflight{index: index, bytes: bytes}
	in.count++
	in.bytes += bytes
}

// grow doubles the buffer (up to maxCount), keeping the ring's order.
func (in *inflights) grow() {
	newSize := len(in.buffer) * 2
	if newSize == 0 {
		newSize = 1
	}
	if newSize > in.maxCount {
		newSize = in.maxCount
	}
	buf := make([]inflight, newSize)
	n := copy(buf, in.buffer[in.start:])
	copy(buf[n:], in.buffer[:in.start])
	in.buffer = buf
	in.start = 0
}

// freeLE frees every inflight append whose last index is <= to.
func (in *inflights) freeLE(to uint64) {
	if in.count == 0 || to < in.buffer[in.start].index {
		return
	}
	idx := in.start
	var i int
	var freedBytes uint64
	for i = 0; i < in.count; i++ {
		if to < in.buffer[idx].index {
			break
		}
		freedBytes += in.buffer[idx].bytes
		if idx++; idx >= len(in.buffer) {
			idx -= len(in.buffer)
		}
	}
	in.count -= i
	in.bytes -= freedBytes
	in.start = idx
	if in.count == 0 {
		in.start = 0
	}
}

// full reports whether no more appends may be sent.
func (in *inflights) full() bool {
	return in.count >= in.maxCount || (in.maxBytes != 0 && in.bytes >= in.maxBytes)
}

// len returns the number of inflight appends.
func (in *inflights) len() int { return in.count }

// reset empties the window.
func (in *inflights) reset() {
	in.count = 0
	in.start = 0
	in.bytes = 0
}
