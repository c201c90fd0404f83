package raftnode_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

// nodeClocks drives the manual clocks of a cluster's nodes: every
// millisecond of real time, each running node's clock advances by one tick
// interval and ticks. A paused node's clock stands still while the others
// go on, as a process under SIGSTOP sees no time pass; on waking, its clock
// jumps by the time it missed.
type nodeClocks struct {
	interval time.Duration

	mu     sync.Mutex
	clocks map[uint64]*raftnode.ManualClock
	state  map[uint64]nodeClockState
	missed map[uint64]time.Duration
}

type nodeClockState uint8

const (
	clockRunning nodeClockState = iota
	clockPaused                 // time goes on without the node
	clockHeld                   // woken, but given no further ticks
)

func newNodeClocks(interval time.Duration) *nodeClocks {
	return &nodeClocks{interval: interval, clocks: map[uint64]*raftnode.ManualClock{},
		state: map[uint64]nodeClockState{}, missed: map[uint64]time.Duration{}}
}

// add gives node id a manual clock; it is a nodeCluster prepare function.
func (cs *nodeClocks) add(id uint64, m *nodeMember) {
	c := raftnode.NewManualClock()
	m.node.SetClockForTesting(c)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.clocks[id] = c
	cs.state[id] = clockRunning
}

// start starts the driver; it stops at the test's cleanup.
func (cs *nodeClocks) start(tb testing.TB) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			cs.mu.Lock()
			for id, c := range cs.clocks {
				switch cs.state[id] {
				case clockRunning:
					c.Advance(cs.interval, true)
				case clockPaused:
					cs.missed[id] += cs.interval
				}
			}
			cs.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { close(stop); <-done })
}

// pause stops node id's clock while time goes on.
func (cs *nodeClocks) pause(id uint64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.state[id], cs.missed[id] = clockPaused, 0
}

// wake ends node id's pause: its clock jumps by the time it missed, and it
// gets no ticks until release, so that what it does next depends on the
// jump alone. Not even the one tick a time.Ticker keeps pending arrives:
// the event that wakes the loop is then the test's own (a read, a message),
// which must not be handled before the time missed is accounted for.
func (cs *nodeClocks) wake(id uint64) time.Duration {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	missed := cs.missed[id]
	cs.clocks[id].Advance(missed, false)
	cs.state[id] = clockHeld
	return missed
}

// release ticks node id again with the others.
func (cs *nodeClocks) release(id uint64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.state[id] = clockRunning
}

// leasePauseOutcome counts the reads a paused and woken leader served.
type leasePauseOutcome struct {
	stale, fresh, failed int
	// staleAfterHeal reports that the first read served after healing
	// missed the write.
	staleAfterHeal bool
}

// runNodeLeasePause pauses the leader of a three-node cluster with lease
// reads (no ticks and no messages while the others elect a new leader and
// acknowledge a write), wakes it with a burst of reads, and reports how the
// reads went: a read answered must reflect the write. The reads are the
// leader's own (Node.Read), or, if forwarded, read requests of a follower
// that reached the leader before it froze and that it handles on waking,
// as messages held by its kernel's socket buffers would be. Afterwards it
// heals the cluster and waits for the old leader to serve a read again.
func runNodeLeasePause(t testing.TB, forwarded bool) leasePauseOutcome {
	const tick = 5 * time.Millisecond
	clocks := newNodeClocks(tick)
	wrappers := map[uint64]*nodeDropTransport{}
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) {
		cfg.Raft.ReadOnlyOption = raft.ReadOnlyLeaseBased
		cfg.TickInterval = tick
	}), withPrepare(func(id uint64, m *nodeMember) {
		clocks.add(id, m)
		w := &nodeDropTransport{Transport: m.tr}
		m.node.SetTransport(w)
		wrappers[id] = w
	}))
	clocks.start(t)
	ctx := nodeCtx(t)

	old := c.waitLeader()
	c.propose("before")
	oldNode, oldSM := c.members[old].node, c.members[old].sm
	require.NoError(t, oldNode.Read(ctx), "a read on the leader before the pause")

	clocks.pause(old)
	var others []uint64
	for _, id := range c.ids {
		if id != old {
			others = append(others, id)
			c.net.Cut(old, id)
			c.net.Cut(id, old)
		}
	}
	written := c.proposeAmong(others, "during-pause")
	const burst = 8
	var (
		mu  sync.Mutex
		out leasePauseOutcome
	)
	if forwarded {
		answers := make(chan raft.Message, burst)
		observe := func(m raft.Message) bool {
			if m.Type == raft.MsgReadIndexResp {
				answers <- m
			}
			return false
		}
		wrappers[old].drop.Store(&observe)
		missed := clocks.wake(old)
		t.Logf("node %d paused for %v of its clock", old, missed)
		for i := range burst {
			// A forwarded request carries no term, as a proposal does.
			oldNode.HandleMessage(raft.Message{Type: raft.MsgReadIndex, From: others[0], To: old,
				Entries: []raft.Entry{{Data: []byte(fmt.Sprintf("forwarded-%d", i))}}})
		}
		// A leader that still trusts its lease answers at once; give it
		// ample time to.
		timeout := time.After(300 * time.Millisecond)
	collect:
		for {
			select {
			case m := <-answers:
				if m.Index < written {
					out.stale++
				} else {
					out.fresh++
				}
			case <-timeout:
				break collect
			}
		}
		out.failed = burst - out.stale - out.fresh
	} else {
		missed := clocks.wake(old)
		t.Logf("node %d paused for %v of its clock", old, missed)
		var wg sync.WaitGroup
		for range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				err := oldNode.Read(rctx)
				seen := slices.Contains(oldSM.snapshot(), "during-pause")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					out.failed++
				case seen:
					out.fresh++
				default:
					out.stale++
				}
			}()
		}
		wg.Wait()
	}
	t.Logf("reads after the pause: %+v", out)

	clocks.release(old)
	c.net.HealAll()
	for {
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := oldNode.Read(rctx)
		cancel()
		if err == nil {
			break
		}
		require.NoError(t, ctx.Err(), "the old leader never served a read after healing: %v", err)
	}
	out.staleAfterHeal = !slices.Contains(oldSM.snapshot(), "during-pause")
	return out
}

func TestNodeLeaseReadsAfterPauseSeeWritesOfTheNewLeader(t *testing.T) {
	out := runNodeLeasePause(t, false)
	require.Zero(t, out.stale, "a leader woken from a pause served stale lease reads: %+v", out)
	require.False(t, out.staleAfterHeal, "the first read after healing missed the write")
}

func TestNodeLeaseReadsForwardedBeforePauseDoNotMissWritesOfTheNewLeader(t *testing.T) {
	out := runNodeLeasePause(t, true)
	require.Zero(t, out.stale, "a leader woken from a pause answered forwarded reads from its lease: %+v", out)
	require.False(t, out.staleAfterHeal, "the first read after healing missed the write")
}
