package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/keelraft/raft"
)

// counter is the replicated state machine: one int64. Every node applies
// the same "incr N" commands in the same order, so every node ends with the
// same value. It implements raftnode.StateMachine.
type counter struct {
	// value is written by Apply and Restore (the Node's apply goroutine)
	// and read by the HTTP handlers, hence atomic.
	value atomic.Int64
}

// incrCommand encodes the command that adds n to the counter.
func incrCommand(n int64) []byte { return []byte("incr " + strconv.FormatInt(n, 10)) }

// Apply applies committed commands in log order and returns, for each, the
// counter's value after it: what Node.Propose returns to the proposer.
// It must be deterministic and must not fail: a command it cannot parse
// (none can be, since only this program proposes) is skipped on every node
// alike.
func (c *counter) Apply(entries []raft.Entry) []any {
	results := make([]any, len(entries))
	for i, e := range entries {
		arg, ok := strings.CutPrefix(string(e.Data), "incr ")
		n, err := strconv.ParseInt(arg, 10, 64)
		if !ok || err != nil {
			results[i] = fmt.Errorf("unknown command %q", e.Data)
			continue
		}
		results[i] = c.value.Add(n)
	}
	return results
}

// Snapshot returns the state as of the last Apply: the value in decimal.
// The Node reads it on another goroutine while Apply goes on, so the
// value is copied now rather than read later.
func (c *counter) Snapshot() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(strconv.FormatInt(c.value.Load(), 10))), nil
}

// Restore replaces the state with a snapshot's image. The bootstrap
// snapshot carries an empty image, which stands for zero.
func (c *counter) Restore(r io.Reader) error {
	b, err := io.ReadAll(r) // to its end: that is where the storage checks the image's checksum
	if err != nil {
		return err
	}
	var v int64
	if len(b) > 0 {
		if v, err = strconv.ParseInt(string(b), 10, 64); err != nil {
			return fmt.Errorf("restoring the counter: bad snapshot image %q: %w", b, err)
		}
	}
	c.value.Store(v)
	return nil
}
