package raft

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func addVoterAt(id uint64, addr string) ConfChangeSingle {
	return ConfChangeSingle{Type: ConfChangeAddNode, NodeID: id, Address: addr}
}

// TestConfChangeAddressRoundTrip checks the encoding that carries
// addresses, and that the encodings written before it still decode to the
// same changes.
func TestConfChangeAddressRoundTrip(t *testing.T) {
	cc := ConfChange{Transition: ConfChangeTransitionJointExplicit, Changes: []ConfChangeSingle{
		addVoterAt(4, "10.0.0.4:7000"),
		{Type: ConfChangeAddLearnerNode, NodeID: 5, Incarnation: 9, Address: "[::1]:7005"},
		{Type: ConfChangeRemoveNode, NodeID: 3},
	}, Context: []byte("ctx")}
	data := cc.Marshal()
	require.Equal(t, byte(confChangeVersionAddresses), data[0])
	var got ConfChange
	require.NoError(t, got.Unmarshal(data))
	assert.Equal(t, cc, got)
	assert.Equal(t, `JointExplicit [AddNode(4 at "10.0.0.4:7000") AddLearnerNode(5@9 at "[::1]:7005") RemoveNode(3)]`, got.String())

	// Encodings of earlier versions, byte for byte as they were written.
	for _, old := range []struct {
		data []byte
		want ConfChange
	}{
		{[]byte{1, 0, 2, 0, 4, 2, 3, 0}, ConfChange{Changes: []ConfChangeSingle{addVoter(4), removeNode(3)}}},
		{[]byte{2, 0, 1, 1, 5, 7, 1, 'x'}, ConfChange{Changes: []ConfChangeSingle{
			{Type: ConfChangeAddLearnerNode, NodeID: 5, Incarnation: 7}}, Context: []byte("x")}},
	} {
		var got ConfChange
		require.NoError(t, got.Unmarshal(old.data), "%v", old.data)
		assert.Equal(t, old.want, got)
		assert.Equal(t, old.data, old.want.Marshal(), "a change without an address is encoded as before")
	}
}

// TestConfChangeMalformedAddressRefused feeds encodings whose address field
// is malformed, as a faulty or hostile peer could send them: each is an
// error wrapping ErrInvalidConfChange, never a panic.
func TestConfChangeMalformedAddressRefused(t *testing.T) {
	enc := func(addrLen uint64, addr string) []byte {
		b := []byte{3, 0, 1, 0, 4, 0}
		for addrLen >= 0x80 {
			b = append(b, byte(addrLen)|0x80)
			addrLen >>= 7
		}
		b = append(b, byte(addrLen))
		return append(append(b, addr...), 0)
	}
	valid := enc(3, "h:1")
	var cc ConfChange
	require.NoError(t, cc.Unmarshal(valid))
	assert.Equal(t, "h:1", cc.Changes[0].Address)
	for name, bad := range map[string][]byte{
		"length beyond the data":   enc(4, "h:1"),
		"huge length":              enc(1<<62, "h:1"),
		"length cut short":         {3, 0, 1, 0, 4, 0, 0x80},
		"no length":                {3, 0, 1, 0, 4, 0},
		"no incarnation":           {3, 0, 1, 0, 4},
		"too long":                 enc(MaxAddressSize+1, strings.Repeat("a", MaxAddressSize+1)),
		"invalid UTF-8":            enc(3, "h\xff1"),
		"control character":        enc(3, "h\n1"),
		"NUL":                      enc(3, "h\x001"),
		"context length mismatch":  append(valid, 'x'),
		"unknown version":          append([]byte{4}, valid[1:]...),
		"truncated before address": valid[:6],
	} {
		var got ConfChange
		assert.ErrorIs(t, got.Unmarshal(bad), ErrInvalidConfChange, name)
	}
	long := strings.Repeat("a", MaxAddressSize)
	require.NoError(t, cc.Unmarshal(enc(MaxAddressSize, long)), "an address of MaxAddressSize bytes is fine")
	assert.Equal(t, long, cc.Changes[0].Address)
}

// FuzzConfChangeUnmarshal checks that decoding never panics and that what
// decodes encodes again to something that decodes to the same change.
func FuzzConfChangeUnmarshal(f *testing.F) {
	f.Add(ConfChange{Changes: []ConfChangeSingle{addVoterAt(4, "h:4"), removeNode(2)}}.Marshal())
	f.Add([]byte{2, 0, 1, 1, 5, 7, 0})
	f.Add([]byte{3, 0, 1, 0, 4, 0, 3, 'h', 0xff, '1', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var cc ConfChange
		if cc.Unmarshal(data) != nil {
			return
		}
		var again ConfChange
		require.NoError(t, again.Unmarshal(cc.Marshal()))
		assert.Equal(t, cc, again)
	})
}

// TestNextConfStateAddresses follows the addresses through additions,
// moves, removals and a joint configuration.
func TestNextConfStateAddresses(t *testing.T) {
	step := func(cs ConfState, cc ConfChange) ConfState {
		t.Helper()
		next, err := nextConfState(cs, cc)
		require.NoError(t, err)
		return next
	}
	cs := ConfState{Voters: []uint64{1, 2, 3}, Addresses: map[uint64]string{1: "a1", 2: "a2", 3: "a3"}}
	next := step(cs, ConfChange{Changes: []ConfChangeSingle{addVoterAt(4, "a4")}})
	assert.Equal(t, map[uint64]string{1: "a1", 2: "a2", 3: "a3", 4: "a4"}, next.Addresses)
	assert.Len(t, cs.Addresses, 3, "the input is not modified")

	next = step(next, ConfChange{Changes: []ConfChangeSingle{addVoterAt(4, "b4")}})
	assert.Equal(t, "b4", next.Addresses[4], "adding a member again with another address moves it")
	next = step(next, ConfChange{Changes: []ConfChangeSingle{{Type: ConfChangeAddLearnerNode, NodeID: 4}}})
	assert.Equal(t, []uint64{4}, next.Learners)
	assert.Equal(t, "b4", next.Addresses[4], "a change without an address keeps the one recorded")
	next = step(next, ConfChange{Changes: []ConfChangeSingle{removeNode(4)}})
	assert.Equal(t, map[uint64]string{1: "a1", 2: "a2", 3: "a3"}, next.Addresses, "a removed member's address goes")

	// Replacing two voters at once: the outgoing ones keep their
	// addresses as long as they vote in the outgoing half.
	joint := step(next, ConfChange{Changes: []ConfChangeSingle{removeNode(2), removeNode(3), addVoterAt(5, "a5"), addVoterAt(6, "a6")}})
	require.Equal(t, []uint64{1, 2, 3}, joint.VotersOutgoing)
	assert.Equal(t, map[uint64]string{1: "a1", 2: "a2", 3: "a3", 5: "a5", 6: "a6"}, joint.Addresses)
	left := step(joint, ConfChange{})
	assert.Equal(t, map[uint64]string{1: "a1", 5: "a5", 6: "a6"}, left.Addresses)

	// Without any address, nothing is recorded.
	plain := step(ConfState{Voters: []uint64{1}}, ConfChange{Changes: []ConfChangeSingle{addVoter(2)}})
	assert.Nil(t, plain.Addresses)

	for name, cc := range map[string]ConfChange{
		"address with a removal":      {Changes: []ConfChangeSingle{{Type: ConfChangeRemoveNode, NodeID: 2, Address: "x"}}},
		"address with an incarnation": {Changes: []ConfChangeSingle{{Type: ConfChangeRecordIncarnation, NodeID: 2, Incarnation: 1, Address: "x"}}},
		"unprintable address":         {Changes: []ConfChangeSingle{addVoterAt(4, "x\ty")}},
		"too long":                    {Changes: []ConfChangeSingle{addVoterAt(4, strings.Repeat("x", MaxAddressSize+1))}},
	} {
		_, err := nextConfState(cs, cc)
		assert.ErrorIs(t, err, ErrInvalidConfChange, name)
	}
}

// TestBootstrapPeersRecordsAddresses checks that the first configuration
// carries the peers' addresses, in the Ready's snapshot and in force.
func TestBootstrapPeersRecordsAddresses(t *testing.T) {
	rn, err := NewRawNode(testConfig(1, NewMemoryStorage()))
	require.NoError(t, err)
	require.NoError(t, rn.BootstrapPeers([]Peer{{ID: 2, Address: "a2"}, {ID: 1, Address: "a1"}, {ID: 3}, {ID: 2, Address: "a2"}}))
	want := ConfState{Voters: []uint64{1, 2, 3}, Addresses: map[uint64]string{1: "a1", 2: "a2"}}
	assert.Equal(t, want, rn.Status().Config)
	rd := rn.Ready()
	assert.Equal(t, want, rd.Snapshot.Metadata.ConfState)

	for name, peers := range map[string][]Peer{
		"none":             nil,
		"ID 0":             {{ID: 0, Address: "a"}},
		"two addresses":    {{ID: 1, Address: "a"}, {ID: 1, Address: "b"}},
		"address and none": {{ID: 1}, {ID: 1, Address: "b"}},
		"bad address":      {{ID: 1, Address: "a\x00"}},
	} {
		rn, err := NewRawNode(testConfig(1, NewMemoryStorage()))
		require.NoError(t, err)
		assert.ErrorIs(t, rn.BootstrapPeers(peers), ErrInvalidConfig, name)
	}
}

// TestAddressesReplicatedAndSentInSnapshots adds a node with its address
// on the leader only: every member's configuration records it, and a node
// that joins from a snapshot learns every member's address from it.
func TestAddressesReplicatedAndSentInSnapshots(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	propose := func(cs ...ConfChangeSingle) {
		t.Helper()
		require.NoError(t, nw.node(1).ProposeConfChange(ConfChange{Changes: cs}))
		nw.stabilize()
	}
	// The voters bootstrapped without addresses are given theirs, one
	// change at a time (one change may be pending), then node 4 joins.
	for id := uint64(1); id <= 3; id++ {
		propose(addVoterAt(id, "a"+string(rune('0'+id))))
	}
	propose(ConfChangeSingle{Type: ConfChangeAddLearnerNode, NodeID: 4, Address: "a4"})
	want := map[uint64]string{1: "a1", 2: "a2", 3: "a3", 4: "a4"}
	for _, id := range []uint64{1, 2, 3} {
		assert.Equal(t, want, nw.node(id).Status().Config.Addresses, "node %d", id)
	}
	snap := compact(t, nw, 1, "image")
	assert.Equal(t, want, snap.Metadata.ConfState.Addresses, "a snapshot carries the addresses")

	nw.addNode(4, nil)
	for range 3 {
		nw.tickAll()
	}
	assert.Equal(t, want, nw.node(4).Status().Config.Addresses, "the new node learned every address from the snapshot")
	st, err := nw.nodes[4].storage.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, want, st.Metadata.ConfState.Addresses)

	propose(removeNode(2))
	delete(want, 2)
	for _, id := range []uint64{1, 3, 4} {
		assert.Equal(t, want, nw.node(id).Status().Config.Addresses, "node %d forgot the removed node's address", id)
	}
}

// TestSnapshotWithMalformedAddressesRefused steps snapshots whose
// configuration holds a malformed address table: each is refused as an
// invalid message before it changes anything.
func TestSnapshotWithMalformedAddressesRefused(t *testing.T) {
	rn, err := NewRawNode(testConfig(2, NewMemoryStorage()))
	require.NoError(t, err)
	msg := func(addrs map[uint64]string) Message {
		return Message{Type: MsgSnap, From: 1, To: 2, Term: 2, Snapshot: &Snapshot{Metadata: SnapshotMetadata{
			Index: 10, Term: 2, ConfState: ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}, Addresses: addrs}}}}
	}
	for name, addrs := range map[string]map[uint64]string{
		"not a member":  {1: "a1", 9: "a9"},
		"empty":         {1: ""},
		"invalid UTF-8": {1: "a\xc0"},
		"control":       {3: "a\r\n"},
		"too long":      {2: strings.Repeat("a", MaxAddressSize+1)},
	} {
		assert.ErrorIs(t, rn.Step(msg(addrs)), ErrInvalidMessage, name)
		assert.Equal(t, uint64(0), rn.BasicStatus().Term, "%s: nothing changed", name)
	}
	addrs := map[uint64]string{1: "a1", 2: "a2", 3: "a3"}
	require.NoError(t, rn.Step(msg(addrs)))
	assert.Equal(t, addrs, rn.Status().Config.Addresses)
}
