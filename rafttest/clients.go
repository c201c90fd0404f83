package rafttest

import (
	"fmt"
	"slices"

	"github.com/anishathalye/porcupine"
)

// probeClient is the client ID of the liveness probe's writes, which are
// kept out of the checked history.
const probeClient = 1 << 20

// clientsStep times out overdue operations and starts new ones.
func (s *sim) clientsStep() {
	for _, c := range s.clients {
		if o := c.cur; o != nil {
			switch {
			case s.now >= o.deadline:
				s.timeout(o)
			case s.now >= o.retryAt:
				s.forget(o)
				if !s.attempt(o) && !o.put {
					o.retryAt = s.now + 1
				}
			}
			continue
		}
		if s.rng.Float64() < s.p.pOp {
			s.startOp(c)
		}
	}
}

// tickClock returns the next history timestamp.
func (s *sim) tickClock() int64 {
	s.clock++
	return s.clock
}

// startOp begins a new operation of client c.
func (s *sim) startOp(c *client) {
	key := fmt.Sprintf("k%d", s.rng.IntN(s.cfg.Keys))
	kind := s.rng.Float64()
	if s.cfg.StaleReads && kind >= 0.9 {
		if n := s.pickNode(); n != nil {
			s.staleRead(n, key)
		}
		return
	}
	o := &op{c: c, key: key, deadline: s.now + s.opTimeout(), mustComplete: s.mustComplete}
	if kind < 0.5 {
		o.put, o.seq = true, c.seq+1
		o.value = fmt.Sprintf("c%d.%d", c.id, o.seq)
	}
	if !s.attempt(o) {
		return // refused: the operation certainly did nothing
	}
	if o.put {
		c.seq = o.seq
	}
	o.call = s.tickClock()
	c.cur = o
}

// pickNode picks a node for a client request: any started node, or, once
// the cluster is healed, an up member.
func (s *sim) pickNode() *simNode {
	n := s.randomNode(func(n *simNode) bool {
		if !s.mustComplete {
			return true
		}
		return n.up() && !s.retired[n.id] && s.isMember(n.id)
	})
	if n == nil || !n.up() || n.pausedUntil > s.now {
		return nil // connection refused
	}
	return n
}

// attempt sends o to a random node; a client retries an operation that got
// no answer with the same sequence number, which the host deduplicates. It
// reports false if the request certainly did nothing.
func (s *sim) attempt(o *op) bool {
	n := s.pickNode()
	if n == nil {
		return false
	}
	o.node, o.inc = n.id, n.incarnation
	o.retryAt = s.now + int64(2*s.cfg.ElectionTick+2*s.p.maxDelay)
	if o.put {
		cmd := putCmd{Client: o.c.id, Seq: o.seq, Key: o.key, Value: o.value}
		if err := n.rn.Propose(cmd.marshal()); err != nil {
			return false // dropped for certain: no leader known
		}
		n.writes[[2]uint64{uint64(o.c.id), o.seq}] = o
		s.tracef("client %d put(%s, %s) at n%d", o.c.id, o.key, o.value, n.id)
	} else {
		s.nextOpID++
		o.ctx = fmt.Sprintf("r%d", s.nextOpID)
		n.reads[o.ctx] = &readAttempt{o: o, ctx: o.ctx}
		n.rn.ReadIndex([]byte(o.ctx))
		s.tracef("client %d get(%s) at n%d ctx=%s", o.c.id, o.key, n.id, o.ctx)
	}
	s.handleReady(n)
	return true
}

// isMember reports whether the leader's configuration includes id.
func (s *sim) isMember(id uint64) bool {
	l := s.leader()
	if l == nil {
		return true
	}
	return slices.Contains(l.conf.Voters, id) || slices.Contains(l.conf.Learners, id)
}

// staleRead reads the local state machine without ReadIndex. The value may
// be stale, but within one incarnation of a node it never goes back.
func (s *sim) staleRead(n *simNode, key string) {
	v := n.sm.Get(key)
	var idx uint64
	if v != "" {
		var ok bool
		if idx, ok = s.writeIndex[v]; !ok {
			s.fail("stale read", "node %d read %s=%q, a value no node applied", n.id, key, v)
			return
		}
	}
	if idx < n.staleSeen[key] {
		s.fail("stale read monotonicity", "node %d read %s=%q written at index %d after reading a value written at %d",
			n.id, key, v, idx, n.staleSeen[key])
		return
	}
	n.staleSeen[key] = idx
	s.res.Counts.StaleReads++
}

// serveReads answers the reads whose read index n has applied.
func (s *sim) serveReads(n *simNode) {
	if !n.up() || len(n.readWait) == 0 {
		return
	}
	kept := n.readWait[:0]
	for _, ra := range n.readWait {
		o := ra.o
		if o.c.cur != o {
			continue // answered by another attempt, or given up
		}
		if n.applied >= ra.index || s.cfg.Bugs.ReadBeforeApplied {
			o.readIndex = ra.index
			s.complete(o, n.sm.Get(o.key))
		} else {
			kept = append(kept, ra)
		}
	}
	n.readWait = kept
}

// complete records a finished operation.
func (s *sim) complete(o *op, output string) {
	if o.c.cur != o {
		return
	}
	o.c.cur = nil
	if o.c.id == probeClient {
		return
	}
	s.history = append(s.history, porcupine.Operation{
		ClientId: o.c.id,
		Input:    kvInput{Put: o.put, Key: o.key, Value: o.value},
		Call:     o.call,
		Output:   output,
		Return:   s.tickClock(),
	})
	if o.put {
		s.res.Counts.Writes++
		s.tracef("client %d put(%s, %s) ok", o.c.id, o.key, o.value)
	} else {
		s.res.Counts.Reads++
		s.tracef("client %d get(%s) -> %q (read index %d)", o.c.id, o.key, output, o.readIndex)
	}
}

// indeterminate records a write whose outcome the client cannot know: it
// may take effect at any later time, or never.
func (s *sim) indeterminate(o *op) {
	if o.c.cur != o {
		return
	}
	o.c.cur = nil
	if o.c.id == probeClient || !o.put {
		return // a read with no answer has no effect
	}
	s.history = append(s.history, porcupine.Operation{
		ClientId: o.c.id,
		Input:    kvInput{Put: true, Key: o.key, Value: o.value},
		Call:     o.call,
		Output:   "",
		Return:   math64,
	})
	s.res.Counts.Indeterminate++
	s.tracef("client %d put(%s, %s) indeterminate", o.c.id, o.key, o.value)
}

// timeout gives up on o.
func (s *sim) timeout(o *op) {
	if o.mustComplete {
		s.fail("liveness", "client %d's %s of %s at node %d did not complete within %d steps after healing",
			o.c.id, map[bool]string{true: "put", false: "get"}[o.put], o.key, o.node, s.opTimeout())
	}
	s.forget(o)
	s.indeterminate(o)
}

// forget removes o from the node it was last sent to.
func (s *sim) forget(o *op) {
	if n := s.nodes[o.node]; n != nil && n.writes != nil {
		if !o.put {
			delete(n.reads, o.ctx)
		}
	}
}

// finish closes the history and checks it.
func (s *sim) finish() {
	for _, c := range s.clients {
		if c.cur != nil {
			s.indeterminate(c.cur)
		}
	}
	s.res.History = s.history
	if !s.cfg.Linearizability || len(s.res.Violations) > 0 {
		return
	}
	if porcupine.CheckOperations(kvModel, s.history) {
		return
	}
	_, info := porcupine.CheckOperationsVerbose(kvModel, s.history, 0)
	s.res.linearization = &info
	s.fail("linearizability", "porcupine found the history of %d operations not linearizable", len(s.history))
}
