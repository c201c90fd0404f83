package wire

import (
	"github.com/keelraft/raft"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Decoding an append that carries one large entry allocates about the
// entry's size once; growing the data a few KiB at a time with a copy
// each step (quadratic work: gigabytes copied, seconds of CPU for an entry
// of a few MiB, beyond a transport's read timeout) would allocate far more.
func TestCodecDecodesALargeEntryInOneAllocation(t *testing.T) {
	c, err := NewCodec(CodecOptions{})
	require.NoError(t, err)
	const size = 8 << 20
	in := raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 3, Entries: []raft.Entry{{Term: 3, Index: 9, Data: make([]byte, size)}}}
	frame, err := c.AppendFrame(nil, &in)
	require.NoError(t, err)
	payload := frame[FrameHeaderSize:]
	var out raft.Message
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	require.NoError(t, c.Decode(FrameMessage, payload, &out))
	runtime.ReadMemStats(&after)
	assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, uint64(size+1<<20))
	require.Len(t, out.Entries, 1)
	assert.Len(t, out.Entries[0].Data, size)
}
