package main

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The storage fault tests damage one node's disk in the ways an operator
// meets (a wiped, deleted, damaged, truncated, restored or full data
// directory) and check that no acknowledged write is lost and no
// linearizable read is stale, on every node, afterwards.

// TestE2EWipedNodeLosesNoWrite: with node 2 stopped, leader 3 and node 1
// acknowledge 300 writes; node 1 is killed, its data directory deleted and
// it is started again; node 3 stops and node 2 starts. Node 1 must not
// count as its old self: node 2, which lacks the writes, must not lead with
// its vote. Once node 3 is back, node 1 is repaired and every node holds
// every write. Node 1 comes back with its usual command line (--bootstrap)
// or with --join.
func TestE2EWipedNodeLosesNoWrite(t *testing.T) {
	for _, rejoin := range []string{"bootstrap", "join"} {
		t.Run("--"+rejoin, func(t *testing.T) { testWipedNode(t, rejoin == "join") })
	}
}

func testWipedNode(t *testing.T, join bool) {
	c := newE2ECluster(t, 3, "--request-timeout", "1s")
	h := newHistory(0)
	c.transfer(3, 1, 2, 3)
	cl3 := dialRESP(t, c.nodes[3].resp)
	// Every node has seen the configuration with everyone's incarnation.
	c.writeRetry(h, 3, []string{"before"}, 1)
	require.Equal(t, int64(2), cl3.must("WAIT", "2", "5000"))
	oldInc := c.status(1).Incarnation
	require.NotZero(t, oldInc)

	c.stop(2)
	keys := keyRange("k", 300)
	acked, ok := h.write(cl3, keys, 1)
	require.True(t, ok)
	require.Equal(t, 300, acked, "leader 3 and node 1 acknowledge every write")

	c.kill(1)
	require.NoError(t, os.RemoveAll(c.nodes[1].dir))
	if join {
		c.nodes[1].bootstrap, c.nodes[1].join = false, true
	}
	c.start(1)
	c.stop(3)
	c.start(2)

	// Nodes 1 and 2 alone: a leader could only be node 2 with node 1's vote,
	// and node 2 lacks the writes.
	// Reads through either (they wait for a leader up to the request
	// timeout) must not be stale.
	var reads sync.WaitGroup
	for _, id := range []uint64{1, 2} {
		cl := dialRESP(t, c.nodes[id].resp)
		reads.Add(1)
		go func() {
			defer reads.Done()
			h.read(cl, id, keys[:20])
		}()
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, id := range []uint64{1, 2} {
			st := c.status(id)
			require.NotEqual(t, id, st.Leader, "node %d leads with the wiped node's vote (term %d)", id, st.Term)
		}
	}
	reads.Wait()

	// The leader is back: node 1 learns from it that it lost its data, and
	// is repaired.
	c.start(3)
	c.waitLeader(1, 2, 3)
	require.Eventually(t, func() bool { return !c.status(1).Recovering }, 10*time.Second, 20*time.Millisecond,
		"the leader repairs the wiped node")
	log1, _ := os.ReadFile(c.nodes[1].logPath)
	assert.Contains(t, string(log1), "the leader knows this node by another storage incarnation",
		"the wiped node learns that it lost its data")
	assert.NotEqual(t, oldInc, c.status(1).Incarnation, "the wiped node has a new storage incarnation")
	c.verify(h)

	// Repaired, node 1 counts again: without node 3, nodes 1 and 2 elect a
	// leader and still hold every write.
	c.stop(3)
	c.waitLeader(1, 2)
	c.verify(h)
	log1, _ = os.ReadFile(c.nodes[1].logPath)
	assert.Contains(t, string(log1), "repaired from the leader")
}

// TestE2EStorageFaults runs one cluster through faults of one node's
// storage at a time, each followed by the check that no acknowledged write
// is lost and no read was stale.
func TestE2EStorageFaults(t *testing.T) {
	c := newE2ECluster(t, 3)
	h := newHistory(200)
	keys := keyRange("s", 20)
	round := 0
	writeSome := func(via uint64, batches int) {
		c.t.Helper()
		for i := 0; i < batches; i++ {
			round++
			c.writeRetry(h, via, keys, round)
		}
	}
	// writeUntilExit writes through node via until node id exits, and
	// returns its exit code.
	writeUntilExit := func(id, via uint64) int {
		c.t.Helper()
		cl := dialRESP(c.t, c.nodes[via].resp)
		deadline := time.Now().Add(20 * time.Second)
		for {
			select {
			case <-c.nodes[id].done:
				return c.waitExit(id, time.Second)
			default:
			}
			require.True(c.t, time.Now().Before(deadline), "node %d does not exit", id)
			round++
			if _, ok := h.write(cl, keys, round); !ok {
				cl = dialRESP(c.t, c.nodes[via].resp)
			}
		}
	}
	follower := func() (lead, f uint64) {
		lead = c.waitLeader(1, 2, 3)
		return lead, lead%3 + 1
	}
	// healed waits until node id is up to date and not recovering, and
	// checks every node.
	healed := func(id uint64) {
		c.t.Helper()
		c.waitLeader(1, 2, 3)
		require.Eventually(c.t, func() bool { return !c.status(id).Recovering }, 10*time.Second, 20*time.Millisecond,
			"node %d is repaired", id)
		c.verify(h)
	}
	nodeLog := func(id uint64) string {
		b, _ := os.ReadFile(c.nodes[id].logPath)
		return string(b)
	}
	// run runs a subtest with the cluster's helpers failing it, not the
	// whole test.
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			parent := c.t
			c.t = t
			defer func() { c.t = parent }()
			f(t)
		})
	}
	lead := c.waitLeader(1, 2, 3)
	writeSome(lead, 2)

	run("data directory deleted under the leader", func(t *testing.T) {
		lead, other := follower()
		require.NoError(t, os.RemoveAll(c.nodes[lead].dir))
		code := writeUntilExit(lead, other)
		assert.NotZero(t, code, "the leader exits with an error")
		assert.Contains(t, nodeLog(lead), "the node stopped on an error")
		writeSome(other, 1) // the others serve on
		c.start(lead)       // its usual command line, --bootstrap included
		healed(lead)
	})

	for _, where := range []string{"last", "middle", "first"} {
		run("flipped byte in the "+where+" record", func(t *testing.T) {
			lead, f := follower()
			writeSome(lead, 3)
			c.stop(f)
			segs := c.walSegments(f)
			seg := segs[len(segs)-1]
			if where == "first" {
				seg = segs[0]
			}
			b, err := os.ReadFile(seg)
			require.NoError(t, err)
			recs := walRecords(b)
			var updates []walRecord
			for _, r := range recs {
				if r.typ == 2 {
					updates = append(updates, r)
				}
			}
			require.NotEmpty(t, updates)
			r := map[string]walRecord{"last": updates[len(updates)-1], "middle": updates[len(updates)/2], "first": recs[0]}[where]
			require.NoError(t, flipByte(seg, r))
			c.startDamaged(f)
			healed(f)
		})
	}

	run("truncated last segment", func(t *testing.T) {
		lead, f := follower()
		writeSome(lead, 3)
		c.stop(f)
		segs := c.walSegments(f)
		seg := segs[len(segs)-1]
		b, err := os.ReadFile(seg)
		require.NoError(t, err)
		recs := walRecords(b)
		require.NoError(t, os.Truncate(seg, recs[len(recs)/2].off+8))
		c.startDamaged(f)
		healed(f)
	})

	run("restored old backup", func(t *testing.T) {
		lead, f := follower()
		c.stop(f)
		backup := c.nodes[f].dir + ".backup"
		require.NoError(t, os.CopyFS(backup, os.DirFS(c.nodes[f].dir)))
		c.start(f)
		writeSome(lead, 3)
		c.stop(f)
		require.NoError(t, os.RemoveAll(c.nodes[f].dir))
		require.NoError(t, os.Rename(backup, c.nodes[f].dir))
		c.start(f, "--recover")
		assert.Contains(t, nodeLog(f), "--recover: marked the storage as recovering")
		healed(f)
	})

	diskFull := func(t *testing.T, onLeader bool) {
		lead, f := follower()
		c.stop(f)
		c.start(f, "--"+testDiskQuotaFlag, "100000")
		via := lead
		if onLeader {
			c.transfer(f, 1, 2, 3)
		}
		code := writeUntilExit(f, via)
		assert.NotZero(t, code, "node %d exits with an error", f)
		assert.Contains(t, nodeLog(f), "no space left on device")
		var others []uint64
		for id := uint64(1); id <= 3; id++ {
			if id != f {
				others = append(others, id)
			}
		}
		writeSome(c.waitLeader(others...), 1) // the others serve on
		c.start(f)                            // without the quota
		healed(f)
	}
	run("disk full on a follower", func(t *testing.T) { diskFull(t, false) })
	run("disk full on the leader", func(t *testing.T) { diskFull(t, true) })
}

// startDamaged starts a node whose log was damaged while it was stopped:
// the node keeps the valid part of its log and recovers the rest from its
// peers, logging what it found.
func (c *e2eCluster) startDamaged(id uint64) {
	c.t.Helper()
	c.start(id)
	b, _ := os.ReadFile(c.nodes[id].logPath)
	if !strings.Contains(string(b), "the log was damaged") {
		c.t.Errorf("node %d did not report the damage of its log", id)
	}
}
