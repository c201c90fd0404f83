package raftnode

import (
	"sync"

	"github.com/keelraft/raft"
)

// nodeNotifier calls the Node's callbacks in order from a goroutine of its
// own, so that a slow callback never blocks the loop. Its queue is
// unbounded; leader changes and membership changes are rare.
type nodeNotifier struct {
	onLeader  func(leader, term uint64)
	onConf    func(raft.ConfState)
	onRemoved func()

	mu     sync.Mutex
	queue  []func()
	signal chan struct{}
}

func newNodeNotifier(cfg *Config) *nodeNotifier {
	return &nodeNotifier{onLeader: cfg.OnLeaderChange, onConf: cfg.OnConfChange, onRemoved: cfg.OnRemoved,
		signal: make(chan struct{}, 1)}
}

func (nt *nodeNotifier) push(f func()) {
	nt.mu.Lock()
	nt.queue = append(nt.queue, f)
	nt.mu.Unlock()
	select {
	case nt.signal <- struct{}{}:
	default:
	}
}

func (nt *nodeNotifier) leaderChanged(leader, term uint64) {
	if nt.onLeader != nil {
		nt.push(func() { nt.onLeader(leader, term) })
	}
}

func (nt *nodeNotifier) confChanged(cs raft.ConfState) {
	if nt.onConf != nil {
		nt.push(func() { nt.onConf(cs) })
	}
}

func (nt *nodeNotifier) removed() {
	if nt.onRemoved != nil {
		nt.push(nt.onRemoved)
	}
}

// run calls the queued callbacks until stop is closed.
func (nt *nodeNotifier) run(wg *sync.WaitGroup, stop chan struct{}) {
	defer wg.Done()
	for {
		select {
		case <-stop:
			return
		case <-nt.signal:
		}
		nt.mu.Lock()
		q := nt.queue
		nt.queue = nil
		nt.mu.Unlock()
		for _, f := range q {
			f()
		}
	}
}
