package raft

import (
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHeartbeatEncodedSizeIsConstant checks that a heartbeat's encoded size
// does not grow with the replicated state: after 10 000 applied entries it
// is as small as on a fresh cluster (catch-up never ships the state in
// heartbeats).
func TestHeartbeatEncodedSizeIsConstant(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	heartbeatSize := func() int {
		t.Helper()
		var size int
		nw.onReady = func(n *testNode, rd *Ready) {
			for i := range rd.Messages {
				if m := rd.Messages[i]; m.Type == MsgHeartbeat && n.id == 1 {
					size = max(size, msgpackSize(t, &m))
				}
			}
		}
		nw.tickAll()
		nw.onReady = nil
		require.NotZero(t, size, "no heartbeat was sent")
		return size
	}
	before := heartbeatSize()
	payload := make([]byte, 100)
	for i := 0; i < 10000; i += 100 {
		for range 100 {
			require.NoError(t, nw.node(1).Propose(payload))
		}
		nw.stabilize()
	}
	require.GreaterOrEqual(t, nw.nodes[3].lastApplied, uint64(10000))
	after := heartbeatSize()
	// Varint-encoded indexes may grow by a few bytes; the state may not.
	assert.LessOrEqual(t, after, before+8, "heartbeat grew from %d to %d bytes", before, after)
	t.Logf("heartbeat frame: %d bytes before, %d bytes after 10000 entries", before, after)
}

// msgpackSize returns the size of m encoded as package wire encodes a
// message: msgpack, fields keyed by their short tags.
func msgpackSize(t testing.TB, m *Message) int {
	h := &codec.MsgpackHandle{WriteExt: true}
	h.TypeInfos = codec.NewTypeInfos([]string{"msgpack"})
	var buf []byte
	require.NoError(t, codec.NewEncoderBytes(&buf, h).Encode(m))
	return len(buf)
}
