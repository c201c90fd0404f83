package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

// Kinds of a result.
const (
	resOK byte = iota
	resNil
	resInt
	resBulk
	resErr
)

// result is what applying one command returned; it travels back to the
// client, possibly through the node that forwarded the write (as JSON).
type result struct {
	Index uint64 `json:"i"` // raft index of the entry
	Kind  byte   `json:"k"`
	Int   int64  `json:"n,omitempty"`
	Bulk  []byte `json:"b,omitempty"`
	Err   string `json:"e,omitempty"`
}

// kvItem is one stored key. Rev is the raft index of its last change.
type kvItem struct {
	val []byte
	exp int64 // ms since the epoch; 0 for none
	rev uint64
}

func (it *kvItem) expired(now int64) bool { return it.exp != 0 && now > it.exp }

// nodeInfo is what the log says about a node: its client addresses, which
// it announces at startup and when it becomes leader. Its raft address is
// in the raft configuration (raft.ConfState.Addresses), not here.
type nodeInfo struct {
	HTTP string `json:"http,omitempty"`
	RESP string `json:"resp,omitempty"`
}

// kvStore is the replicated state machine: a map of keys with expiry
// times, and the node directory. The Node applies entries from one
// goroutine; client goroutines read concurrently under mu.
//
// Expiry is deterministic: a SET stores the absolute expiry time its
// proposer computed, and Apply decides whether a key has expired with the
// time the proposer of the entry being applied read (command.Now), never
// with its own clock. Reads hide a key once the reading node's clock passes
// its expiry; the leader removes expired keys through the log (opExpire)
// about once a second.
type kvStore struct {
	mu    sync.RWMutex
	data  map[string]*kvItem
	nodes map[uint64]nodeInfo
	// tomb holds the revision at which each deleted key was deleted, for
	// watches; it is not part of snapshots and is cleared when it grows
	// past maxTombs. floor is the index below which a missing key's history
	// is unknown (the last restore or clearing): a watch on a missing key
	// from before floor fires at once.
	tomb  map[string]uint64
	floor uint64
	last  uint64 // index of the last entry applied here
	// changed is closed (and replaced) after every Apply and Restore.
	changed chan struct{}
}

const maxTombs = 100000

var _ raftnode.StateMachine = (*kvStore)(nil)

func newKVStore() *kvStore {
	return &kvStore{
		data: map[string]*kvItem{}, nodes: map[uint64]nodeInfo{}, tomb: map[string]uint64{},
		changed: make(chan struct{}),
	}
}

// Apply implements raftnode.StateMachine.
func (s *kvStore) Apply(ents []raft.Entry) []any {
	out := make([]any, len(ents))
	s.mu.Lock()
	for i := range ents {
		out[i] = s.applyOne(&ents[i])
		s.last = ents[i].Index
	}
	ch := s.changed
	s.changed = make(chan struct{})
	s.mu.Unlock()
	close(ch)
	return out
}

func (s *kvStore) del(k string, rev uint64) bool {
	if _, ok := s.data[k]; !ok {
		return false
	}
	delete(s.data, k)
	if len(s.tomb) >= maxTombs {
		clear(s.tomb)
		s.floor = rev
	}
	s.tomb[k] = rev
	return true
}

// live returns the item of k unless it is missing or expired at now.
func (s *kvStore) live(k string, now int64) *kvItem {
	it := s.data[k]
	if it == nil || it.expired(now) {
		return nil
	}
	return it
}

func (s *kvStore) applyOne(e *raft.Entry) *result {
	res := &result{Index: e.Index}
	c, err := decodeCommand(e.Data)
	if err != nil {
		res.Kind, res.Err = resErr, "ERR "+err.Error()
		return res
	}
	switch c.Op {
	case opSet:
		k := string(c.Key)
		old := s.live(k, c.Now)
		if (c.Flags&setNX != 0 && old != nil) || (c.Flags&setXX != 0 && old == nil) {
			res.Kind = resNil
			return res
		}
		s.data[k] = &kvItem{val: c.Val, exp: c.Exp, rev: e.Index}
		delete(s.tomb, k)
	case opDel:
		var n int64
		for _, k := range c.Keys {
			if s.live(string(k), c.Now) != nil {
				n++
			}
			s.del(string(k), e.Index)
		}
		res.Kind, res.Int = resInt, n
	case opIncrBy:
		k := string(c.Key)
		var v int64
		it := s.live(k, c.Now)
		if it != nil {
			v, err = strconv.ParseInt(string(it.val), 10, 64)
			if err != nil {
				res.Kind, res.Err = resErr, "ERR value is not an integer or out of range"
				return res
			}
		}
		if (c.Delta > 0 && v > (1<<63-1)-c.Delta) || (c.Delta < 0 && v < (-1<<63)-c.Delta) {
			res.Kind, res.Err = resErr, "ERR increment or decrement would overflow"
			return res
		}
		v += c.Delta
		var exp int64
		if it != nil {
			exp = it.exp // INCR keeps the time to live, as in Redis
		}
		s.data[k] = &kvItem{val: strconv.AppendInt(nil, v, 10), exp: exp, rev: e.Index}
		delete(s.tomb, k)
		res.Kind, res.Int = resInt, v
	case opMSet:
		for i, k := range c.Keys {
			s.data[string(k)] = &kvItem{val: c.Vals[i], rev: e.Index}
			delete(s.tomb, string(k))
		}
	case opExpire:
		var n int64
		for k, it := range s.data {
			if it.expired(c.Now) {
				s.del(k, e.Index)
				n++
			}
		}
		res.Kind, res.Int = resInt, n
	case opNode:
		ni := s.nodes[c.ID]
		if len(c.Addrs) == 2 {
			ni.HTTP, ni.RESP = c.Addrs[0], c.Addrs[1]
		}
		s.nodes[c.ID] = ni
	}
	return res
}

// get returns a copy of k's value and its revision, if k is live at now.
func (s *kvStore) get(k []byte, now int64) ([]byte, uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it := s.live(string(k), now)
	if it == nil {
		return nil, 0, false
	}
	return append([]byte{}, it.val...), it.rev, true
}

// hasExpired reports whether some key has expired at now.
func (s *kvStore) hasExpired(now int64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, it := range s.data {
		if it.expired(now) {
			return true
		}
	}
	return false
}

// count returns the number of live keys.
func (s *kvStore) count(now int64) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, it := range s.data {
		if !it.expired(now) {
			n++
		}
	}
	return n
}

// keys returns the live keys matching the Redis glob pattern, sorted, at
// most limit of them. The lock, which Apply needs, is held only to copy
// the live key names (string headers; the bytes are shared); the matching
// runs after it is released, so a slow pattern over many keys delays no
// write.
func (s *kvStore) keys(pattern string, now int64, limit int) []string {
	s.mu.RLock()
	live := make([]string, 0, len(s.data))
	for k, it := range s.data {
		if !it.expired(now) {
			live = append(live, k)
		}
	}
	s.mu.RUnlock()
	out := live[:0]
	if pattern == "*" {
		out = live
	} else {
		g := compileGlob(pattern)
		for _, k := range live {
			if ok, _ := g.match(k); ok {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (s *kvStore) nodeInfo(id uint64) (nodeInfo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ni, ok := s.nodes[id]
	return ni, ok
}

func (s *kvStore) allNodes() map[uint64]nodeInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := make(map[uint64]nodeInfo, len(s.nodes))
	for id, ni := range s.nodes {
		m[id] = ni
	}
	return m
}

// revision returns the index of k's last change as far as this node can
// tell, and a channel closed at the next change of the store.
func (s *kvStore) revision(k string) (uint64, <-chan struct{}) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if it := s.data[k]; it != nil {
		return it.rev, s.changed
	}
	if rev, ok := s.tomb[k]; ok {
		return rev, s.changed
	}
	return s.floor, s.changed
}

// Snapshot implements raftnode.StateMachine: the image is encoded at once
// under the lock, so later Applies do not change it.
//
//	"KVS2" last(uvarint) nodes(uvarint) {id http resp}... keys(uvarint) {key val exp(varint) rev(uvarint)}...
//
// Restore also reads the "KVS1" images written before, whose nodes held a
// third string, the raft address, which it drops: the raft configuration
// carries those now.
//
// The image is built in memory: fine for the data sizes this example is
// meant for.
func (s *kvStore) Snapshot() (io.ReadCloser, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := []byte("KVS2")
	b = binary.AppendUvarint(b, s.last)
	ids := make([]uint64, 0, len(s.nodes))
	for id := range s.nodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		ni := s.nodes[id]
		b = binary.AppendUvarint(b, id)
		b = putBytes(b, []byte(ni.HTTP))
		b = putBytes(b, []byte(ni.RESP))
	}
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		it := s.data[k]
		b = putBytes(b, []byte(k))
		b = putBytes(b, it.val)
		b = binary.AppendVarint(b, it.exp)
		b = binary.AppendUvarint(b, it.rev)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Restore implements raftnode.StateMachine.
func (s *kvStore) Restore(r io.Reader) error {
	img, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	data := map[string]*kvItem{}
	nodes := map[uint64]nodeInfo{}
	var last uint64
	if len(img) > 0 {
		v1 := bytes.HasPrefix(img, []byte("KVS1"))
		if !v1 && !bytes.HasPrefix(img, []byte("KVS2")) {
			return errors.New("kvstore: snapshot image has no KVS2 (or KVS1) header")
		}
		d := &decoder{b: img[4:]}
		last = d.uvarint()
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			id := d.uvarint()
			nodes[id] = nodeInfo{HTTP: string(d.bytes()), RESP: string(d.bytes())}
			if v1 {
				d.bytes() // the raft address
			}
		}
		n = d.count()
		for i := 0; i < n && d.err == nil; i++ {
			k := string(d.bytes())
			data[k] = &kvItem{val: d.bytes(), exp: d.varint(), rev: d.uvarint()}
		}
		if d.err != nil || len(d.b) != 0 {
			return fmt.Errorf("kvstore: corrupt snapshot image: %v", d.err)
		}
	}
	s.mu.Lock()
	s.data, s.nodes = data, nodes
	clear(s.tomb)
	// Deletions before the snapshot are unknown: treat them as happening
	// at the last command the image covers.
	s.floor, s.last = last, last
	ch := s.changed
	s.changed = make(chan struct{})
	s.mu.Unlock()
	close(ch)
	return nil
}
