package wire

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// TestSnapshotAddressesRoundTrip checks that a MsgSnap's configuration
// carries the members' addresses.
func TestSnapshotAddressesRoundTrip(t *testing.T) {
	c := codecTestNew(t, CodecOptions{})
	snap := raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 5, Term: 2, ConfState: raft.ConfState{
		Voters: []uint64{1, 2}, Learners: []uint64{3},
		Addresses: map[uint64]string{1: "10.0.0.1:7000", 3: "[::1]:7003"}}}}
	m := raft.Message{Type: raft.MsgSnap, From: 1, To: 2, Term: 2, Snapshot: &snap}
	frame, err := c.AppendFrame(nil, &m)
	require.NoError(t, err)
	h, p, _, err := c.SplitFrame(frame)
	require.NoError(t, err)
	var got raft.Message
	require.NoError(t, c.Decode(h.Type, p, &got))
	assert.Equal(t, snap.Metadata.ConfState, got.Snapshot.Metadata.ConfState)
}

// addrTestSnapPayload returns the msgpack payload of a MsgSnap from 1 to 2
// at term 2 whose configuration (voters 1 and 2) holds the address table
// table, itself encoded by hand.
func addrTestSnapPayload(table []byte) []byte {
	str := func(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }
	var b []byte
	b = append(b, 0x85)
	b = append(append(b, str("y")...), byte(raft.MsgSnap))
	b = append(append(b, str("f")...), 1)
	b = append(append(b, str("o")...), 2)
	b = append(append(b, str("t")...), 2)
	b = append(append(b, str("s")...), 0x81)         // Snapshot
	b = append(append(b, str("m")...), 0x83)         // Metadata
	b = append(append(b, str("i")...), 10)           // Index
	b = append(append(b, str("t")...), 2)            // Term
	b = append(append(b, str("c")...), 0x82)         // ConfState
	b = append(append(b, str("v")...), 0x92, 1, 2)   // Voters
	return append(append(b, str("ad")...), table...) // Addresses
}

// TestSnapshotMalformedAddressesFromTheNetwork decodes hand-made payloads
// whose address table is malformed: the codec refuses what does not fit
// the type, and the core refuses what decodes but is not a valid address.
// Nothing panics.
func TestSnapshotMalformedAddressesFromTheNetwork(t *testing.T) {
	c := codecTestNew(t, CodecOptions{})
	var ok raft.Message
	require.NoError(t, c.Decode(FrameMessage, addrTestSnapPayload([]byte{0x81, 1, 0xa3, 'h', ':', '1'}), &ok))
	assert.Equal(t, map[uint64]string{1: "h:1"}, ok.Snapshot.Metadata.ConfState.Addresses, "the hand-made payload is right")

	for name, table := range map[string][]byte{
		"an integer address":     {0x81, 1, 0x05},
		"a string key":           {0x81, 0xa1, 'x', 0xa1, 'h'},
		"a negative key":         {0x81, 0xff, 0xa1, 'h'},
		"an array for the table": {0x91, 0xa1, 'h'},
		"string cut short":       {0x81, 1, 0xa5, 'h'},
	} {
		var m raft.Message
		assert.Error(t, c.Decode(FrameMessage, addrTestSnapPayload(table), &m), name)
	}

	for name, table := range map[string][]byte{
		"invalid UTF-8":     {0x81, 1, 0xc4, 2, 'h', 0xff},
		"an array of bytes": {0x81, 1, 0x91, 0x01}, // the codec makes it "\x01"
		"control character": {0x81, 1, 0xa3, 'h', '\n', '1'},
		"not a member":      {0x81, 7, 0xa1, 'h'},
		"empty":             {0x81, 1, 0xa0},
	} {
		var m raft.Message
		require.NoError(t, c.Decode(FrameMessage, addrTestSnapPayload(table), &m), name)
		rn, err := raft.NewRawNode(raft.Config{ID: 2, ElectionTick: 10, HeartbeatTick: 1, Storage: raft.NewMemoryStorage()})
		require.NoError(t, err)
		assert.ErrorIs(t, rn.Step(m), raft.ErrInvalidMessage, name)
		assert.Empty(t, rn.Status().Config.Voters, "%s: the snapshot was not installed", name)
	}
}
