package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unitInflightIndexes lists the in-flight indexes oldest first, walking the
// ring from its start.
func unitInflightIndexes(in *inflights) []uint64 {
	var out []uint64
	for i := 0; i < in.count; i++ {
		out = append(out, in.buffer[(in.start+i)%len(in.buffer)].index)
	}
	return out
}

// unitInflightsWith returns a window with the given limits into which the
// indexes were added (each weighing bytes) and then freed up to freeTo.
func unitInflightsWith(t testing.TB, maxCount int, maxBytes uint64, add []uint64, bytes, freeTo uint64) *inflights {
	t.Helper()
	in := newInflights(maxCount, maxBytes)
	for _, idx := range add {
		require.False(t, in.full(), "window full before adding %d", idx)
		in.add(idx, bytes)
	}
	in.freeLE(freeTo)
	return in
}

func TestInflightsAddAndGrow(t *testing.T) {
	tests := []struct {
		name        string
		maxCount    int
		add         int
		wantBufLens []int // buffer length after each add
	}{
		{name: "doubles", maxCount: 16, add: 5, wantBufLens: []int{1, 2, 4, 4, 8}},
		{name: "capped at the limit", maxCount: 10, add: 10, wantBufLens: []int{1, 2, 4, 4, 8, 8, 8, 8, 10, 10}},
		{name: "limit of one", maxCount: 1, add: 1, wantBufLens: []int{1}},
		{name: "limit of three", maxCount: 3, add: 3, wantBufLens: []int{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInflights(tt.maxCount, 0)
			var got []int
			for i := range tt.add {
				in.add(uint64(i+1), 10)
				got = append(got, len(in.buffer))
			}
			assert.Equal(t, tt.wantBufLens, got)
			assert.Equal(t, unitSeq(1, uint64(tt.add)), unitInflightIndexes(in))
			assert.Equal(t, tt.add, in.len())
			assert.Equal(t, uint64(10*tt.add), in.bytes)
			assert.Equal(t, tt.add == tt.maxCount, in.full())
		})
	}
}

func TestInflightsWrapAround(t *testing.T) {
	in := newInflights(10, 0)
	for i := uint64(1); i <= 10; i++ {
		in.add(i, 1)
	}
	require.True(t, in.full())
	in.freeLE(5)
	assert.Equal(t, 5, in.start)
	assert.Equal(t, unitSeq(6, 10), unitInflightIndexes(in))

	// The next five adds wrap around to the front of the buffer.
	for i := uint64(11); i <= 15; i++ {
		in.add(i, 1)
	}
	assert.Len(t, in.buffer, 10, "no growth past the limit")
	assert.Equal(t, unitSeq(6, 15), unitInflightIndexes(in))
	assert.Equal(t, uint64(11), in.buffer[0].index, "wrapped to the front")
	assert.True(t, in.full())
	assert.Panics(t, func() { in.add(16, 1) }, "adding to a full window")

	// Freeing across the wrap point.
	in.freeLE(12)
	assert.Equal(t, unitSeq(13, 15), unitInflightIndexes(in))
	assert.Equal(t, 2, in.start)
	assert.Equal(t, uint64(3), in.bytes)
	in.freeLE(15)
	assert.Equal(t, 0, in.len())
	assert.Equal(t, 0, in.start, "an empty window restarts at the front")
	assert.Zero(t, in.bytes)
}

func TestInflightsGrowKeepsRingOrder(t *testing.T) {
	// Free the front of a buffer that has not reached its limit, then add:
	// the buffer grows, and what is in flight must stay exactly the live
	// appends, in order, with their bytes.
	tests := []struct {
		name     string
		maxCount int
		fill     uint64 // add 1..fill
		freeTo   uint64
		more     uint64 // then add fill+1..fill+more
	}{
		{name: "grow after freeing half", maxCount: 8, fill: 4, freeTo: 2, more: 3},
		{name: "grow after freeing most", maxCount: 16, fill: 8, freeTo: 7, more: 6},
		{name: "grow to the limit after freeing", maxCount: 6, fill: 4, freeTo: 1, more: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInflights(tt.maxCount, 0)
			for i := uint64(1); i <= tt.fill; i++ {
				in.add(i, 100+i)
			}
			in.freeLE(tt.freeTo)
			for i := tt.fill + 1; i <= tt.fill+tt.more; i++ {
				in.add(i, 100+i)
			}
			want := unitSeq(tt.freeTo+1, tt.fill+tt.more)
			assert.Equal(t, want, unitInflightIndexes(in))
			var wantBytes uint64
			for _, i := range want {
				wantBytes += 100 + i
			}
			assert.Equal(t, wantBytes, in.bytes)
			// Freeing all but the newest leaves exactly the newest.
			in.freeLE(tt.fill + tt.more - 1)
			assert.Equal(t, []uint64{tt.fill + tt.more}, unitInflightIndexes(in))
			assert.Equal(t, 100+tt.fill+tt.more, in.bytes)
		})
	}
}

func TestInflightsFreeLE(t *testing.T) {
	tests := []struct {
		name      string
		add       []uint64
		freeTo    uint64
		want      []uint64
		wantBytes uint64
	}{
		{name: "empty window", add: nil, freeTo: 5},
		{name: "below the oldest", add: []uint64{3, 6, 9}, freeTo: 2, want: []uint64{3, 6, 9}, wantBytes: 30},
		{name: "exactly the oldest", add: []uint64{3, 6, 9}, freeTo: 3, want: []uint64{6, 9}, wantBytes: 20},
		{name: "between two", add: []uint64{3, 6, 9}, freeTo: 7, want: []uint64{9}, wantBytes: 10},
		{name: "all", add: []uint64{3, 6, 9}, freeTo: 9},
		{name: "beyond all", add: []uint64{3, 6, 9}, freeTo: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := unitInflightsWith(t, 10, 0, tt.add, 10, tt.freeTo)
			assert.Equal(t, tt.want, unitInflightIndexes(in))
			assert.Equal(t, len(tt.want), in.len())
			assert.Equal(t, tt.wantBytes, in.bytes)
		})
	}
}

func TestInflightsByteLimit(t *testing.T) {
	tests := []struct {
		name         string
		maxBytes     uint64
		sizes        []uint64
		wantFull     []bool // after each add
		freeTo       uint64
		wantFreeFull bool
	}{
		{name: "no byte limit", maxBytes: 0, sizes: []uint64{1000, 1000}, wantFull: []bool{false, false}, freeTo: 1},
		{name: "below the limit", maxBytes: 100, sizes: []uint64{30, 30, 30}, wantFull: []bool{false, false, false}, freeTo: 1},
		{name: "reaching the limit exactly", maxBytes: 100, sizes: []uint64{50, 50}, wantFull: []bool{false, true}, freeTo: 1},
		{name: "one message over the limit", maxBytes: 100, sizes: []uint64{150}, wantFull: []bool{true}, freeTo: 1},
		{name: "still full after a partial free", maxBytes: 100, sizes: []uint64{10, 60, 60}, wantFull: []bool{false, false, true}, freeTo: 1, wantFreeFull: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInflights(10, tt.maxBytes)
			var got []bool
			for i, s := range tt.sizes {
				in.add(uint64(i+1), s)
				got = append(got, in.full())
			}
			assert.Equal(t, tt.wantFull, got)
			in.freeLE(tt.freeTo)
			assert.Equal(t, tt.wantFreeFull, in.full(), "after freeing up to %d", tt.freeTo)
		})
	}
}

func TestInflightsReset(t *testing.T) {
	in := unitInflightsWith(t, 4, 100, []uint64{1, 2, 3}, 30, 1)
	in.reset()
	assert.Equal(t, 0, in.len())
	assert.Zero(t, in.bytes)
	assert.False(t, in.full())
	in.add(7, 1)
	assert.Equal(t, []uint64{7}, unitInflightIndexes(in))
}

func TestInflightsNoAllocAfterGrowth(t *testing.T) {
	in := newInflights(16, 0)
	for i := uint64(1); i <= 16; i++ {
		in.add(i, 1)
	}
	in.freeLE(16)
	next := uint64(17)
	allocs := testing.AllocsPerRun(100, func() {
		in.add(next, 1)
		in.add(next+1, 1)
		in.freeLE(next + 1)
		next += 2
	})
	assert.Zero(t, allocs)
}
