package main

import (
	"encoding/binary"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// applyCmds applies cmds at consecutive indexes from first and returns the
// results.
func applyCmds(t testing.TB, s *kvStore, first uint64, cmds ...*command) []*result {
	t.Helper()
	ents := make([]raft.Entry, len(cmds))
	for i, c := range cmds {
		ents[i] = raft.Entry{Index: first + uint64(i), Term: 1, Data: c.encode()}
	}
	out := s.Apply(ents)
	require.Len(t, out, len(cmds))
	res := make([]*result, len(out))
	for i, v := range out {
		res[i] = v.(*result)
	}
	return res
}

func TestCommandRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cmd  command
	}{
		{name: "set", cmd: command{Op: opSet, Now: 5, Key: []byte("k"), Val: []byte("v\x00\xff"), Exp: 99, Flags: setNX}},
		{name: "del", cmd: command{Op: opDel, Now: 1, Keys: [][]byte{[]byte("a"), []byte("")}}},
		{name: "incrby", cmd: command{Op: opIncrBy, Now: 1, Key: []byte("n"), Delta: -7}},
		{name: "mset", cmd: command{Op: opMSet, Now: 1, Keys: [][]byte{[]byte("a"), []byte("b")}, Vals: [][]byte{[]byte("1"), []byte("2")}}},
		{name: "expire", cmd: command{Op: opExpire, Now: 123}},
		{name: "node", cmd: command{Op: opNode, Now: 1, ID: 3, Addrs: []string{"h:1", "h:2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCommand(tt.cmd.encode())
			require.NoError(t, err)
			assert.Equal(t, tt.cmd, *got)
		})
	}
}

func TestDecodeCommandRejectsDamage(t *testing.T) {
	good := (&command{Op: opMSet, Now: 1, Keys: [][]byte{[]byte("a")}, Vals: [][]byte{[]byte("b")}}).encode()
	for i := 0; i < len(good); i++ {
		_, err := decodeCommand(good[:i])
		assert.ErrorIs(t, err, errBadCommand, "prefix of %d bytes", i)
	}
	_, err := decodeCommand(append(good, 0))
	assert.ErrorIs(t, err, errBadCommand, "trailing byte")
	_, err = decodeCommand([]byte{cmdVersion, 99, 0})
	assert.ErrorIs(t, err, errBadCommand, "unknown op")
	// A count far beyond the entry's size is refused before allocating.
	_, err = decodeCommand([]byte{cmdVersion, byte(opDel), 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	assert.ErrorIs(t, err, errBadCommand, "huge count")
}

func TestStoreApply(t *testing.T) {
	s := newKVStore()
	res := applyCmds(t, s, 2,
		&command{Op: opSet, Now: 100, Key: []byte("a"), Val: []byte("1")},
		&command{Op: opSet, Now: 100, Key: []byte("a"), Val: []byte("2"), Flags: setNX},
		&command{Op: opSet, Now: 100, Key: []byte("b"), Val: []byte("x"), Flags: setXX},
		&command{Op: opIncrBy, Now: 100, Key: []byte("a"), Delta: 5},
		&command{Op: opIncrBy, Now: 100, Key: []byte("n"), Delta: -3},
		&command{Op: opSet, Now: 100, Key: []byte("s"), Val: []byte("text")},
		&command{Op: opIncrBy, Now: 100, Key: []byte("s"), Delta: 1},
		&command{Op: opSet, Now: 100, Key: []byte("big"), Val: []byte("9223372036854775807")},
		&command{Op: opIncrBy, Now: 100, Key: []byte("big"), Delta: 1},
		&command{Op: opMSet, Now: 100, Keys: [][]byte{[]byte("m1"), []byte("m2")}, Vals: [][]byte{[]byte("x"), []byte("y")}},
		&command{Op: opDel, Now: 100, Keys: [][]byte{[]byte("m1"), []byte("m2"), []byte("zz")}},
		&command{Op: 0}, // a corrupt entry is an error result, the same on every replica
	)
	// The last entry was built with an invalid op; encode still wrote it.
	wantKinds := []byte{resOK, resNil, resNil, resInt, resInt, resOK, resErr, resOK, resErr, resOK, resInt, resErr}
	for i, r := range res {
		assert.Equal(t, wantKinds[i], r.Kind, "result %d: %+v", i, r)
		assert.Equal(t, uint64(2+i), r.Index)
	}
	assert.Equal(t, int64(6), res[3].Int)
	assert.Equal(t, int64(-3), res[4].Int)
	assert.Equal(t, int64(2), res[10].Int)
	v, rev, ok := s.get([]byte("a"), 100)
	require.True(t, ok)
	assert.Equal(t, "6", string(v))
	assert.Equal(t, uint64(5), rev)
	assert.Equal(t, 4, s.count(100)) // a, n, s, big
}

func TestStoreExpiryIsDecidedByTheProposersClock(t *testing.T) {
	s := newKVStore()
	applyCmds(t, s, 2, &command{Op: opSet, Now: 1000, Key: []byte("k"), Val: []byte("v"), Exp: 2000})
	// NX at a proposer time before the expiry fails, after it succeeds,
	// whatever the applying node's clock says.
	res := applyCmds(t, s, 3,
		&command{Op: opSet, Now: 1500, Key: []byte("k"), Val: []byte("w"), Flags: setNX},
		&command{Op: opSet, Now: 2001, Key: []byte("k"), Val: []byte("w"), Flags: setNX},
	)
	assert.Equal(t, resNil, res[0].Kind)
	assert.Equal(t, resOK, res[1].Kind)
	// Reads hide expired keys by the reader's clock.
	applyCmds(t, s, 5, &command{Op: opSet, Now: 3000, Key: []byte("e"), Val: []byte("v"), Exp: 3500})
	_, _, ok := s.get([]byte("e"), 3400)
	assert.True(t, ok)
	_, _, ok = s.get([]byte("e"), 3501)
	assert.False(t, ok)
	assert.True(t, s.hasExpired(3501))
	res = applyCmds(t, s, 6, &command{Op: opExpire, Now: 3501})
	assert.Equal(t, int64(1), res[0].Int)
	assert.False(t, s.hasExpired(3501))
	rev, _ := s.revision("e")
	assert.Equal(t, uint64(6), rev, "the purge is a change watchers see")
}

func TestStoreSnapshotRestore(t *testing.T) {
	src := newKVStore()
	applyCmds(t, src, 2,
		&command{Op: opSet, Now: 1, Key: []byte("a"), Val: []byte("1"), Exp: 50},
		&command{Op: opSet, Now: 1, Key: []byte("b\x00"), Val: []byte{0, 1, 2}},
		&command{Op: opNode, Now: 1, ID: 1, Addrs: []string{"h:8081", "h:6381"}},
		&command{Op: opNode, Now: 1, ID: 2, Addrs: []string{"h:8082", "h:6382"}},
	)
	rc, err := src.Snapshot()
	require.NoError(t, err)
	// Later applies do not change a snapshot already taken.
	applyCmds(t, src, 6, &command{Op: opSet, Now: 1, Key: []byte("late"), Val: []byte("x")})
	img, err := io.ReadAll(rc)
	require.NoError(t, err)

	dst := newKVStore()
	applyCmds(t, dst, 2, &command{Op: opSet, Now: 1, Key: []byte("old"), Val: []byte("gone")})
	require.NoError(t, dst.Restore(bytesReader(img)))
	keys := dst.keys("*", 10, 100)
	assert.Equal(t, []string{"a", "b\x00"}, keys)
	v, rev, ok := dst.get([]byte("b\x00"), 10)
	require.True(t, ok)
	assert.Equal(t, []byte{0, 1, 2}, v)
	assert.Equal(t, uint64(3), rev)
	_, _, ok = dst.get([]byte("a"), 51)
	assert.False(t, ok, "expiry survives the snapshot")
	rev, _ = dst.revision("deleted-before-the-snapshot")
	assert.Equal(t, uint64(5), rev, "a missing key's history is unknown up to the snapshot: watches from before it fire")
	ni, ok := dst.nodeInfo(1)
	require.True(t, ok)
	assert.Equal(t, "h:8081", ni.HTTP)

	// The bootstrap snapshot has no image: the empty state.
	require.NoError(t, dst.Restore(bytesReader(nil)))
	assert.Equal(t, 0, dst.count(0))
	// A damaged image is an error, not a panic.
	assert.Error(t, dst.Restore(bytesReader(img[:len(img)-1])))
	assert.Error(t, dst.Restore(bytesReader([]byte("nope"))))
}

func TestStoreWatchRevision(t *testing.T) {
	s := newKVStore()
	rev, ch := s.revision("k")
	assert.Equal(t, uint64(0), rev)
	applyCmds(t, s, 2, &command{Op: opSet, Now: 1, Key: []byte("other"), Val: []byte("v")})
	select {
	case <-ch:
	default:
		t.Fatal("apply did not signal watchers")
	}
	rev, _ = s.revision("k")
	assert.Equal(t, uint64(0), rev, "another key's change is not k's")
	applyCmds(t, s, 3, &command{Op: opSet, Now: 1, Key: []byte("k"), Val: []byte("v")})
	rev, _ = s.revision("k")
	assert.Equal(t, uint64(3), rev)
	applyCmds(t, s, 4, &command{Op: opDel, Now: 1, Keys: [][]byte{[]byte("k")}})
	rev, _ = s.revision("k")
	assert.Equal(t, uint64(4), rev, "a delete is a change")
}

func TestStoreKeysPattern(t *testing.T) {
	s := newKVStore()
	applyCmds(t, s, 2, &command{Op: opMSet, Now: 1,
		Keys: [][]byte{[]byte("user:1"), []byte("user:2"), []byte("item:1"), []byte("u")},
		Vals: [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}})
	tests := []struct {
		name, pattern string
		want          []string
	}{
		{name: "all", pattern: "*", want: []string{"item:1", "u", "user:1", "user:2"}},
		{name: "prefix", pattern: "user:*", want: []string{"user:1", "user:2"}},
		{name: "single char", pattern: "?", want: []string{"u"}},
		{name: "class", pattern: "*:[1]", want: []string{"item:1", "user:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, s.keys(tt.pattern, 1, 100))
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "a/b", true},
		{"a*", "a/b/c", true},
		{"*b", "a/b", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbb", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"[abc]x", "bx", true},
		{"[^abc]x", "bx", false},
		{"[^abc]x", "dx", true},
		{"[a-c]", "b", true},
		{"[c-a]", "b", true},
		{"[a-c]", "d", false},
		{`\*`, `*`, true},
		{`\*`, `a`, false},
		{`\\*`, `\abc`, true},
		{`\*x`, "*x", true},
		{`\*x`, "ax", false},
		{`h[\]]llo`, "h]llo", true},
		{"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"[", "", false},
		{"user:*", "user:1", true},
		{"user:*", "item:1", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.s, func(t *testing.T) {
			assert.Equal(t, tt.want, globMatch(tt.pattern, tt.s))
		})
	}
}

// FuzzDecodeCommand: a log entry's data never crashes a replica, and what
// decodes survives an encode/decode round trip unchanged.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []*command{
		{Op: opSet, Now: 5, Key: []byte("k"), Val: []byte("v"), Exp: 9, Flags: setXX},
		{Op: opMSet, Now: 1, Keys: [][]byte{[]byte("a")}, Vals: [][]byte{[]byte("b")}},
		{Op: opDel, Keys: [][]byte{[]byte("a")}}, {Op: opNode, ID: 2, Addrs: []string{"x", "y"}},
	} {
		f.Add(c.encode())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCommand(data)
		if err != nil {
			return
		}
		again, err := decodeCommand(c.encode())
		require.NoError(t, err)
		assert.Equal(t, c, again)
		s := newKVStore()
		s.Apply([]raft.Entry{{Index: 2, Term: 1, Data: data}})
	})
}

// TestStoreReadsWhatEarlierVersionsWrote: an entry of the retired op that
// recorded a raft address applies as an error that changes nothing, and a
// KVS1 snapshot image, whose nodes held the raft address too, restores.
func TestStoreReadsWhatEarlierVersionsWrote(t *testing.T) {
	s := newKVStore()
	applyCmds(t, s, 1, &command{Op: opNode, Now: 1, ID: 1, Addrs: []string{"h:8081", "h:6381"}})
	before := s.allNodes()
	opPeer := []byte{cmdVersion, 7, 2, 4, 1, 6, 'h', ':', '7', '0', '0', '4'} // ID 4 at h:7004
	res := s.Apply([]raft.Entry{{Index: 2, Term: 1, Data: opPeer}})
	assert.Equal(t, resErr, res[0].(*result).Kind)
	assert.Equal(t, before, s.allNodes())

	img := []byte("KVS1")
	img = binary.AppendUvarint(img, 9) // last
	img = binary.AppendUvarint(img, 1) // one node: id, http, resp, raft
	img = binary.AppendUvarint(img, 3)
	for _, a := range []string{"h:8083", "h:6383", "h:7003"} {
		img = putBytes(img, []byte(a))
	}
	img = binary.AppendUvarint(img, 1) // one key
	img = putBytes(img, []byte("k"))
	img = putBytes(img, []byte("v"))
	img = binary.AppendVarint(img, 0)
	img = binary.AppendUvarint(img, 8)
	require.NoError(t, s.Restore(bytesReader(img)))
	assert.Equal(t, map[uint64]nodeInfo{3: {HTTP: "h:8083", RESP: "h:6383"}}, s.allNodes())
	v, rev, ok := s.get([]byte("k"), 1)
	require.True(t, ok)
	assert.Equal(t, "v", string(v))
	assert.Equal(t, uint64(8), rev)
}
