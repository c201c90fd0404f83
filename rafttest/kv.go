package rafttest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/anishathalye/porcupine"
)

// StateMachine is the application the simulated cluster replicates: a store
// of per-key registers. The simulator's host applies committed writes with
// Put, serves reads with Get, and saves and restores the store with Snapshot
// and Restore. Users plug in their own implementation (Config.NewStateMachine)
// to test it under the simulator's faults; the history of reads and writes is
// then checked for linearizability, so a store that loses or resurrects
// writes across snapshots or restarts is caught.
//
// Snapshot must be deterministic: two stores holding the same registers must
// return the same bytes. Methods are called from one goroutine.
type StateMachine interface {
	// Put sets key to value.
	Put(key, value string)
	// Get returns the value of key, or "" if it was never set.
	Get(key string) string
	// Snapshot encodes the whole store.
	Snapshot() []byte
	// Restore replaces the store with one encoded by Snapshot.
	Restore(data []byte) error
}

// MapKV is the reference StateMachine: a map.
type MapKV struct{ m map[string]string }

// NewMapKV returns an empty MapKV.
func NewMapKV() StateMachine { return &MapKV{m: map[string]string{}} }

// Put implements StateMachine.
func (kv *MapKV) Put(key, value string) { kv.m[key] = value }

// Get implements StateMachine.
func (kv *MapKV) Get(key string) string { return kv.m[key] }

// Snapshot implements StateMachine: sorted length-prefixed pairs.
func (kv *MapKV) Snapshot() []byte {
	keys := make([]string, 0, len(kv.m))
	for k := range kv.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, kv.m[k])
	}
	return b
}

// Restore implements StateMachine.
func (kv *MapKV) Restore(data []byte) error {
	m := map[string]string{}
	for len(data) > 0 {
		var k, v string
		var ok bool
		if k, data, ok = readString(data); !ok {
			return errors.New("rafttest: MapKV: truncated key")
		}
		if v, data, ok = readString(data); !ok {
			return errors.New("rafttest: MapKV: truncated value")
		}
		m[k] = v
	}
	kv.m = m
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readString(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

// putCmd is a client's write as carried in an entry's Data. Client and Seq
// let the host apply each write at most once even if the network duplicates
// the proposal or the client retries.
type putCmd struct {
	Client int
	Seq    uint64
	Key    string
	Value  string
}

const putCmdTag = 'P'

func (c putCmd) marshal() []byte {
	b := []byte{putCmdTag}
	b = binary.AppendUvarint(b, uint64(c.Client))
	b = binary.AppendUvarint(b, c.Seq)
	b = appendString(b, c.Key)
	return appendString(b, c.Value)
}

func (c *putCmd) unmarshal(b []byte) error {
	if len(b) == 0 || b[0] != putCmdTag {
		return errors.New("rafttest: not a put command")
	}
	b = b[1:]
	client, k := binary.Uvarint(b)
	if k <= 0 {
		return errors.New("rafttest: bad client")
	}
	b = b[k:]
	seq, k := binary.Uvarint(b)
	if k <= 0 {
		return errors.New("rafttest: bad seq")
	}
	b = b[k:]
	key, b, ok := readString(b)
	if !ok {
		return errors.New("rafttest: bad key")
	}
	value, b, ok := readString(b)
	if !ok || len(b) != 0 {
		return errors.New("rafttest: bad value")
	}
	*c = putCmd{Client: int(client), Seq: seq, Key: key, Value: value}
	return nil
}

// hostSnapshot is what the host stores in a raft snapshot: the store, the
// per-client sequence numbers that deduplicate writes, and the digest of the
// applied log (checked against every other node at the same index).
type hostSnapshot struct {
	digest    uint64
	clientSeq map[int]uint64
	store     []byte
}

func (s hostSnapshot) marshal() []byte {
	b := binary.BigEndian.AppendUint64(nil, s.digest)
	clients := make([]int, 0, len(s.clientSeq))
	for c := range s.clientSeq {
		clients = append(clients, c)
	}
	slices.Sort(clients)
	b = binary.AppendUvarint(b, uint64(len(clients)))
	for _, c := range clients {
		b = binary.AppendUvarint(b, uint64(c))
		b = binary.AppendUvarint(b, s.clientSeq[c])
	}
	return append(b, s.store...)
}

func (s *hostSnapshot) unmarshal(b []byte) error {
	out := hostSnapshot{clientSeq: map[int]uint64{}}
	if len(b) == 0 {
		// The bootstrap snapshot: nothing applied yet.
		*s = out
		return nil
	}
	if len(b) < 8 {
		return errors.New("rafttest: truncated snapshot")
	}
	out.digest = binary.BigEndian.Uint64(b)
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return errors.New("rafttest: bad snapshot client count")
	}
	b = b[k:]
	for range n {
		c, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return errors.New("rafttest: bad snapshot client")
		}
		seq, k2 := binary.Uvarint(b[k1:])
		if k2 <= 0 {
			return errors.New("rafttest: bad snapshot seq")
		}
		out.clientSeq[int(c)] = seq
		b = b[k1+k2:]
	}
	out.store = b
	*s = out
	return nil
}

// kvInput is a client operation for the porcupine model.
type kvInput struct {
	Put   bool
	Key   string
	Value string
}

// kvModel is a per-key register: porcupine checks each key on its own.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		slices.Sort(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		if in.Put {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.Put {
			return fmt.Sprintf("put(%q, %q)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%q) -> %q", in.Key, output)
	},
	DescribeState: func(state any) string {
		if s := state.(string); s != "" {
			return fmt.Sprintf("%q", s)
		}
		return "(unset)"
	},
}
