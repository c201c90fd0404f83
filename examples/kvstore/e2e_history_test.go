package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stretchr/testify/require"
)

// history records the writes a test had acknowledged and checks reads
// against them. Every write of a key carries a higher number than the one
// before it (a value is "<n>.<padding>"), and writes of one key are never
// concurrent, so a read is stale if it returns a lower number than the
// last write acknowledged before the read started, and a write is lost if a
// node ends with a lower number than the last one acknowledged.
type history struct {
	mu    sync.Mutex
	acked map[string]int
	stale []string
	pad   string
}

func newHistory(padding int) *history {
	return &history{acked: map[string]int{}, pad: strings.Repeat("x", padding)}
}

func keyRange(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return keys
}

// valueNum returns the number a value carries, or -1 for no value.
func valueNum(v any) (int, bool) {
	if v == nil {
		return -1, true
	}
	b, ok := v.([]byte)
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(string(b), ".")
	n, err := strconv.Atoi(num)
	return n, err == nil
}

// write sets each key to n through cl, pipelined, and records the writes
// acknowledged. It returns how many were, and false if the connection
// failed (its node exited).
func (h *history) write(cl *respClient, keys []string, n int) (int, bool) {
	val := strconv.Itoa(n) + "." + h.pad
	for _, k := range keys {
		if cl.send("SET", k, val) != nil {
			return 0, false
		}
	}
	acked := 0
	for _, k := range keys {
		v, err := cl.read()
		if err != nil {
			return acked, false
		}
		if v == "OK" {
			h.mu.Lock()
			h.acked[k] = max(h.acked[k], n)
			h.mu.Unlock()
			acked++
		}
	}
	return acked, true
}

// read reads keys through cl (MGET, linearizable unless cl is READONLY) and
// records any stale value. It reports whether it got values (not an error
// such as TRYAGAIN).
func (h *history) read(cl *respClient, node uint64, keys []string) bool {
	h.mu.Lock()
	floor := make([]int, len(keys))
	for i, k := range keys {
		floor[i] = h.acked[k]
		if _, ok := h.acked[k]; !ok {
			floor[i] = -1
		}
	}
	h.mu.Unlock()
	v, err := cl.do(append([]string{"MGET"}, keys...)...)
	vals, ok := v.([]any)
	if err != nil || !ok || len(vals) != len(keys) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, k := range keys {
		if n, ok := valueNum(vals[i]); !ok || n < floor[i] {
			h.stale = append(h.stale, fmt.Sprintf("node %d read %s = %.20q, acknowledged before the read: %d", node, k, vals[i], floor[i]))
		}
	}
	return true
}

// lost returns the acknowledged writes missing from a local read of every
// key at node (READONLY: what it applied), or an error text if it did not
// answer.
func (h *history) lost(ro *respClient) []string {
	h.mu.Lock()
	keys := make([]string, 0, len(h.acked))
	for k := range h.acked {
		keys = append(keys, k)
	}
	h.mu.Unlock()
	sort.Strings(keys)
	var missing []string
	for lo := 0; lo < len(keys); lo += 200 {
		part := keys[lo:min(lo+200, len(keys))]
		v, err := ro.do(append([]string{"MGET"}, part...)...)
		vals, ok := v.([]any)
		if err != nil || !ok {
			return []string{fmt.Sprintf("MGET: %v %v", v, err)}
		}
		h.mu.Lock()
		for i, k := range part {
			if n, ok := valueNum(vals[i]); !ok || n < h.acked[k] {
				missing = append(missing, fmt.Sprintf("%s (acknowledged %d)", k, h.acked[k]))
			}
		}
		h.mu.Unlock()
	}
	return missing
}

// writeRetry writes keys through node id until they are all acknowledged
// (a node without a leader answers TRYAGAIN for a while).
func (c *e2eCluster) writeRetry(h *history, id uint64, keys []string, n int) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cl := dialRESP(c.t, c.nodes[id].resp)
		acked, _ := h.write(cl, keys, n)
		_ = cl.conn.Close()
		if acked == len(keys) {
			return
		}
		require.True(c.t, time.Now().Before(deadline), "node %d does not acknowledge writes", id)
		time.Sleep(50 * time.Millisecond)
	}
}

// verify checks, on every running node, that a linearizable read of every
// key returns no stale value and that, once the node has caught up, it
// holds every acknowledged write; and that no read of the test was stale.
func (c *e2eCluster) verify(h *history) {
	c.t.Helper()
	h.mu.Lock()
	keys := make([]string, 0, len(h.acked))
	for k := range h.acked {
		keys = append(keys, k)
	}
	h.mu.Unlock()
	for id, nd := range c.nodes {
		if nd.cmd == nil {
			continue
		}
		cl := dialRESP(c.t, nd.resp)
		deadline := time.Now().Add(20 * time.Second)
		for lo := 0; lo < len(keys); lo += 200 {
			for !h.read(cl, id, keys[lo:min(lo+200, len(keys))]) {
				require.True(c.t, time.Now().Before(deadline), "node %d serves no linearizable read", id)
				time.Sleep(50 * time.Millisecond)
			}
		}
		// The linearizable reads waited for the node to apply the leader's
		// commit index: a local read now shows what it holds.
		ro := dialRESP(c.t, nd.resp)
		require.Equal(c.t, "OK", ro.must("READONLY"))
		missing := h.lost(ro)
		require.Empty(c.t, missing, "node %d lost acknowledged writes (%d of %d)", id, len(missing), len(keys))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(c.t, h.stale, "stale linearizable reads")
}

// walRecord is one record of a segment file: its offset, type and framed
// size.
type walRecord struct {
	off  int64
	typ  uint8
	n    int64 // payload length
	size int64
}

// walSegments returns the segment files of node id, in order.
func (c *e2eCluster) walSegments(id uint64) []string {
	c.t.Helper()
	segs, err := filepath.Glob(filepath.Join(c.nodes[id].dir, "wal", "*.wal"))
	require.NoError(c.t, err)
	require.NotEmpty(c.t, segs)
	sort.Strings(segs)
	return segs
}

// walRecords parses the record headers of a segment (package wal's
// record.go: a 16-byte header of payload length, type, three zero bytes
// and two checksums, then the payload padded to 8 bytes) up to the first
// zeroed header (preallocated space).
func walRecords(b []byte) []walRecord {
	var recs []walRecord
	for off := int64(0); off+16 <= int64(len(b)); {
		n := int64(binary.LittleEndian.Uint32(b[off:]))
		typ := b[off+4]
		if typ == 0 || off+16+n > int64(len(b)) {
			break
		}
		size := 16 + (n+7)&^7
		recs = append(recs, walRecord{off: off, typ: typ, n: n, size: size})
		off += size
	}
	return recs
}

// flipByte flips one byte of a record's payload (of its header if it has
// none) in a stopped node's segment file.
func flipByte(path string, r walRecord) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	at := r.off + 16 + r.n/2
	if r.n == 0 {
		at = r.off + 2
	}
	b[at] ^= 0x5a
	return os.WriteFile(path, b, 0o644)
}
