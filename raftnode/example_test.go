package raftnode_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/memtransport"
	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/wire"
)

// nodeExampleKV is a tiny replicated state machine: "key=value" commands.
type nodeExampleKV struct {
	mu sync.Mutex
	m  map[string]string
}

func (kv *nodeExampleKV) Apply(ents []raft.Entry) []any {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	out := make([]any, len(ents))
	for i, e := range ents {
		k, v, _ := strings.Cut(string(e.Data), "=")
		out[i], kv.m[k] = kv.m[k], v // the result is the previous value
	}
	return out
}

func (kv *nodeExampleKV) Snapshot() (io.ReadCloser, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	var b strings.Builder
	for k, v := range kv.m {
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return io.NopCloser(strings.NewReader(b.String())), nil
}

func (kv *nodeExampleKV) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.m = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv.m[k] = v
		}
	}
	return nil
}

func (kv *nodeExampleKV) get(k string) string {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.m[k]
}

// A single-node cluster: propose writes, then read linearizably.
func ExampleNode() {
	kv := &nodeExampleKV{m: map[string]string{}}
	node, err := raftnode.New(raftnode.Config{
		Raft:         raft.Config{ID: 1},
		Storage:      raft.NewMemoryStorage(),
		StateMachine: kv,
		TickInterval: 10 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	// The transport needs the node as its handler, so it is set afterwards.
	net, _ := memtransport.NewNetwork(wire.CodecOptions{})
	tr, _ := net.NewTransport(1, nil, node, memtransport.Options{})
	node.SetTransport(tr)
	if err := node.Start([]raft.Peer{{ID: 1, Address: "node1"}}); err != nil {
		panic(err)
	}
	defer func() {
		node.Stop()
		_ = tr.Close()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, err := node.Propose(ctx, []byte("color=red")); err == nil {
			break
		} else if ctx.Err() != nil {
			panic(err)
		}
		// Not leader yet: the single node elects itself after a timeout.
		<-time.After(10 * time.Millisecond)
	}
	prev, _ := node.Propose(ctx, []byte("color=blue"))
	fmt.Println("previous:", prev)
	if err := node.Read(ctx); err != nil {
		panic(err)
	}
	fmt.Println("now:", kv.get("color"))
	// Output:
	// previous: red
	// now: blue
}
