package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2ECluster runs one 3-node cluster through writes and reads at every
// node, WAIT, a watch, a leadership transfer, a 4th node added by snapshot,
// and its removal.
func TestE2ECluster(t *testing.T) {
	c := newE2ECluster(t, 3, "--snapshot-entries", "50")
	lead := c.waitLeader(1, 2, 3)

	clients := map[uint64]*respClient{}
	for id := uint64(1); id <= 3; id++ {
		clients[id] = dialRESP(t, c.nodes[id].resp)
	}
	t.Run("writes through every node, reads from every node", func(t *testing.T) {
		for id := uint64(1); id <= 3; id++ {
			cl := clients[id]
			assert.Equal(t, "OK", cl.must("SET", fmt.Sprintf("k%d", id), fmt.Sprintf("v%d", id)))
			assert.Equal(t, int64(id), cl.must("INCR", "counter"), "INCRs through three nodes count in order")
		}
		for id, cl := range clients {
			for w := uint64(1); w <= 3; w++ {
				assert.Equal(t, []byte(fmt.Sprintf("v%d", w)), cl.must("GET", fmt.Sprintf("k%d", w)), "node %d reads k%d", id, w)
			}
			assert.Equal(t, []any{[]byte("v1"), nil, []byte("3")}, cl.must("MGET", "k1", "missing", "counter"))
			assert.Equal(t, int64(4), cl.must("DBSIZE"))
			assert.Equal(t, int64(2), cl.must("EXISTS", "k1", "k2", "nope"))
		}
		var kv kvJSON
		code, hdr := c.httpDo(2, "PUT", "/kv/http-key", "hello", nil)
		require.Equal(t, http.StatusOK, code)
		assert.NotEmpty(t, hdr.Get("X-Raft-Index"))
		for _, level := range []string{"linearizable", "lease", "stale"} {
			code, _ = c.httpDo(3, "GET", "/kv/http-key?consistency="+level, "", &kv)
			if level == "stale" && code == http.StatusNotFound {
				continue // a stale read may be behind
			}
			require.Equal(t, http.StatusOK, code, level)
			assert.Equal(t, "hello", kv.Value)
		}
		code, _ = c.httpDo(1, "DELETE", "/kv/http-key", "", nil)
		require.Equal(t, http.StatusOK, code)
		code, _ = c.httpDo(3, "GET", "/kv/http-key", "", nil)
		assert.Equal(t, http.StatusNotFound, code)
	})

	t.Run("SET options and errors", func(t *testing.T) {
		cl := clients[1]
		assert.Nil(t, cl.must("SET", "k1", "x", "NX"))
		assert.Equal(t, "OK", cl.must("SET", "k1", "y", "XX"))
		assert.Nil(t, cl.must("SET", "fresh", "y", "XX"))
		assert.Equal(t, "OK", cl.must("SET", "ttl", "y", "PX", "150"))
		assert.Equal(t, []byte("y"), cl.must("GET", "ttl"))
		time.Sleep(300 * time.Millisecond) // a wall-clock expiry is what is tested
		assert.Nil(t, clients[2].must("GET", "ttl"), "expired on another node too")
		assert.IsType(t, respError(""), cl.must("SET", "a"))
		assert.IsType(t, respError(""), cl.must("SET", "a", "b", "EX", "0"))
		assert.IsType(t, respError(""), cl.must("INCR", "k1"))
		assert.Contains(t, cl.must("NOSUCH", "x"), "ERR unknown command 'NOSUCH'")
		assert.Equal(t, "PONG", cl.must("PING"))
		assert.Equal(t, []byte("hi"), cl.must("ECHO", "hi"))
		info := string(cl.must("INFO").([]byte))
		assert.Contains(t, info, "raft_id:1")
		assert.Contains(t, info, fmt.Sprintf("raft_leader:%d", lead))
		assert.Contains(t, info, "raft_members:1,2,3")
	})

	t.Run("pipelining", func(t *testing.T) {
		cl := clients[3]
		for i := 0; i < 100; i++ {
			require.NoError(t, cl.send("SET", fmt.Sprintf("p%d", i), strconv.Itoa(i)))
		}
		require.NoError(t, cl.send("GET", "p99"))
		for i := 0; i < 100; i++ {
			v, err := cl.read()
			require.NoError(t, err)
			require.Equal(t, "OK", v, "reply %d", i)
		}
		v, err := cl.read()
		require.NoError(t, err)
		assert.Equal(t, []byte("99"), v)
	})

	t.Run("WAIT", func(t *testing.T) {
		cl := clients[2]
		require.Equal(t, "OK", cl.must("SET", "waited", "1"))
		assert.Equal(t, int64(2), cl.must("WAIT", "2", "5000"), "both other nodes applied the write")
		// So a stale read anywhere sees it.
		for id := uint64(1); id <= 3; id++ {
			ro := dialRESP(t, c.nodes[id].resp)
			require.Equal(t, "OK", ro.must("READONLY"))
			assert.Equal(t, []byte("1"), ro.must("GET", "waited"), "node %d", id)
		}
	})

	t.Run("READONLY reads locally", func(t *testing.T) {
		cl := clients[3]
		assert.Equal(t, "OK", cl.must("READONLY"))
		assert.Eventually(t, func() bool {
			v, _ := cl.do("GET", "waited")
			b, _ := v.([]byte)
			return string(b) == "1"
		}, 5*time.Second, 10*time.Millisecond)
		assert.Equal(t, "OK", cl.must("READWRITE"))
	})

	t.Run("watch fires", func(t *testing.T) {
		var kv kvJSON
		_, hdr := c.httpDo(3, "GET", "/kv/watched?consistency=linearizable", "", nil)
		idx := hdr.Get("X-Raft-Index")
		require.NotEmpty(t, idx)
		type reply struct {
			code int
			kv   kvJSON
			idx  string
		}
		got := make(chan reply, 1)
		go func() {
			var kv kvJSON
			code, hdr := c.httpDo(3, "GET", "/kv/watched?index="+idx+"&wait=20s", "", &kv)
			got <- reply{code, kv, hdr.Get("X-Raft-Index")}
		}()
		time.Sleep(100 * time.Millisecond) // let the watch start; a missed start would still fire, the test is of the wake-up
		select {
		case r := <-got:
			t.Fatalf("watch returned before any change: %+v", r)
		default:
		}
		require.Equal(t, "OK", clients[1].must("SET", "watched", "now"))
		select {
		case r := <-got:
			assert.Equal(t, http.StatusOK, r.code)
			assert.Equal(t, "now", r.kv.Value)
			n, _ := strconv.ParseUint(r.idx, 10, 64)
			old, _ := strconv.ParseUint(idx, 10, 64)
			assert.Greater(t, n, old)
		case <-time.After(10 * time.Second):
			t.Fatal("watch did not fire")
		}
		// A watch with nothing to report times out with 204.
		_, hdr = c.httpDo(3, "GET", "/kv/watched", "", &kv)
		code, _ := c.httpDo(3, "GET", "/kv/watched?index="+hdr.Get("X-Raft-Index")+"&wait=200ms", "", nil)
		assert.Equal(t, http.StatusNoContent, code)
	})

	t.Run("transfer", func(t *testing.T) {
		lead = c.waitLeader(1, 2, 3)
		to := lead%3 + 1
		code, _ := c.httpDo(lead%3+1, "POST", fmt.Sprintf("/transfer?to=%d", to), "", nil)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, to, c.waitLeader(1, 2, 3))
		lead = to
		assert.Equal(t, "OK", clients[1].must("SET", "after-transfer", "1"))
	})

	t.Run("add a 4th node by snapshot, then remove it", func(t *testing.T) {
		for i := 0; i < 120; i++ { // beyond --snapshot-entries, so the log is compacted
			require.NoError(t, clients[1].send("SET", fmt.Sprintf("bulk%d", i), "x"))
		}
		for i := 0; i < 120; i++ {
			v, err := clients[1].read()
			require.NoError(t, err)
			require.Equal(t, "OK", v)
		}
		nd := c.addNode(4)
		c.start(4)
		var out map[string][]uint64
		code, _ := c.httpDo(2, "POST", fmt.Sprintf("/members?id=4&addr=%s", nd.raft), "", &out)
		require.Equal(t, http.StatusOK, code, "%v", out)
		assert.Equal(t, []uint64{1, 2, 3, 4}, out["voters"])
		assert.Eventually(t, func() bool { return c.status(1).RaftAddresses[4] == nd.raft }, 5*time.Second, 10*time.Millisecond,
			"/status shows the new member's raft address from the configuration")
		cl4 := dialRESP(t, nd.resp)
		assert.Equal(t, []byte("x"), cl4.must("GET", "bulk119"))
		assert.Equal(t, []byte("v2"), cl4.must("GET", "k2"))
		assert.Equal(t, "OK", cl4.must("SET", "from4", "yes"))
		log4, err := os.ReadFile(nd.logPath)
		require.NoError(t, err)
		assert.Contains(t, string(log4), "restored snapshot", "node 4 caught up from a snapshot")
		assert.Equal(t, []byte("yes"), clients[2].must("GET", "from4"))

		code, _ = c.httpDo(3, "DELETE", "/members/4", "", &out)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, []uint64{1, 2, 3}, out["voters"])
		assert.Eventually(t, func() bool { return len(c.status(1).Voters) == 3 }, 5*time.Second, 10*time.Millisecond)
		// The removed node exits by itself, successfully (a supervisor
		// must not restart it), saying why.
		select {
		case <-nd.done:
		case <-time.After(10 * time.Second):
			t.Fatal("the removed node 4 is still running")
		}
		assert.True(t, nd.cmd.ProcessState.Success(), "exit status %v", nd.cmd.ProcessState)
		nd.cmd = nil
		log4, err = os.ReadFile(nd.logPath)
		require.NoError(t, err)
		assert.Contains(t, string(log4), "node 4 was removed from the cluster")
		assert.Equal(t, "OK", clients[3].must("SET", "after-removal", "1"))
	})

	t.Run("metrics", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+c.nodes[1].http+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b [1 << 16]byte
		n, _ := resp.Body.Read(b[:])
		assert.Contains(t, string(b[:n]), "kvstore_raft_term ")
		assert.Contains(t, string(b[:n]), "kvstore_raft_persist_total ", "the Node's own measurements are exported")
		assert.Contains(t, string(b[:n]), "kvstore_raft_applied_entries_total ")
	})

	t.Run("SIGTERM and restart keep the data", func(t *testing.T) {
		c.stop(1)
		c.start(1)
		// A restarted node answers TRYAGAIN until it has heard from the
		// leader again; a client would retry, this test waits instead.
		c.waitLeader(1, 2, 3)
		cl := dialRESP(t, c.nodes[1].resp)
		assert.Equal(t, []byte("yes"), cl.must("GET", "from4"))
		assert.Equal(t, []byte("3"), cl.must("GET", "counter"))
	})
}

// TestE2EKillLeaderUnderWrites kills the leader with SIGKILL while clients
// write through every node, and checks that every acknowledged write is
// present afterwards on every node, the restarted one included.
func TestE2EKillLeaderUnderWrites(t *testing.T) {
	c := newE2ECluster(t, 3)
	lead := c.waitLeader(1, 2, 3)

	var (
		mu    sync.Mutex
		acked []string
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for w := 0; w < 6; w++ {
		id := uint64(w%3 + 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := dialRESP(t, c.nodes[id].resp)
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				v, err := cl.do("SET", key, key)
				if err != nil {
					// The connection's node was killed: the outcome is unknown.
					return
				}
				if v == "OK" {
					mu.Lock()
					acked = append(acked, key)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	c.kill(lead)
	time.Sleep(1200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, len(acked), 50, "the cluster took writes")

	// With one replica down, WAIT for two times out and reports one.
	survivor := lead%3 + 1
	cl := dialRESP(t, c.nodes[survivor].resp)
	require.Equal(t, "OK", cl.must("SET", "wait-key", "1"))
	start := time.Now()
	assert.Equal(t, int64(1), cl.must("WAIT", "2", "300"))
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)

	c.start(lead)
	c.waitLeader(1, 2, 3)
	for id := uint64(1); id <= 3; id++ {
		cl := dialRESP(t, c.nodes[id].resp)
		missing := 0
		for lo := 0; lo < len(acked); lo += 200 {
			keys := acked[lo:min(lo+200, len(acked))]
			// Availability right after the restart is not what is tested
			// here: retry reads that found no leader in time.
			var reply any
			for try := 0; try < 10; try++ {
				reply = cl.must(append([]string{"MGET"}, keys...)...)
				if e, isErr := reply.(respError); !isErr || !strings.HasPrefix(string(e), "TRYAGAIN") {
					break
				}
			}
			vals, ok := reply.([]any)
			require.True(t, ok, "node %d: MGET replied %v", id, reply)
			for i, k := range keys {
				if v, _ := vals[i].([]byte); string(v) != k {
					missing++
				}
			}
		}
		assert.Zero(t, missing, "node %d misses %d of %d acknowledged writes", id, missing, len(acked))
	}
	t.Logf("%d acknowledged writes survived the leader's SIGKILL", len(acked))
}

// TestE2EBadInput checks that malformed RESP, a 2 GiB bulk length, a slow
// client, failed AUTH and a lost quorum are each answered, and that the
// server keeps serving other clients.
func TestE2EBadInput(t *testing.T) {
	c := newE2ECluster(t, 3, "--auth", "s3cret", "--client-timeout", "500ms", "--lease-reads")
	c.waitLeader(1, 2, 3)
	good := dialRESP(t, c.nodes[1].resp)
	require.Equal(t, "OK", good.must("AUTH", "s3cret"))
	require.Equal(t, "OK", good.must("SET", "alive", "1"))
	alive := func() {
		t.Helper()
		assert.Equal(t, []byte("1"), good.must("GET", "alive"), "the server still serves others")
	}

	t.Run("AUTH", func(t *testing.T) {
		cl := dialRESP(t, c.nodes[2].resp)
		assert.Equal(t, respError("NOAUTH Authentication required."), cl.must("GET", "alive"))
		assert.Contains(t, cl.must("AUTH", "wrong"), "WRONGPASS")
		assert.Equal(t, "OK", cl.must("AUTH", "default", "s3cret"))
		assert.Equal(t, []byte("1"), cl.must("GET", "alive"))
		code, _ := (&e2eCluster{t: t, nodes: c.nodes}).httpDo(2, "GET", "/kv/alive", "", nil)
		assert.Equal(t, http.StatusUnauthorized, code)
		// Ten failures close the connection.
		bad := dialRESP(t, c.nodes[2].resp)
		for i := 0; i < 10; i++ {
			_, _ = bad.do("AUTH", "x")
		}
		_, err := bad.do("PING")
		assert.Error(t, err)
		alive()
	})

	t.Run("malformed RESP", func(t *testing.T) {
		for _, in := range []string{"*1\r\n:5\r\n", "*x\r\n", "*1\r\n$3\r\nabcdef\r\n"} {
			cl := dialRESP(t, c.nodes[1].resp)
			_, err := cl.conn.Write([]byte(in))
			require.NoError(t, err)
			v, err := cl.read()
			require.NoError(t, err)
			assert.Contains(t, v, "Protocol error", "input %q", in)
			_, err = cl.read()
			assert.Error(t, err, "the connection is closed")
		}
		alive()
	})

	t.Run("2 GiB bulk length", func(t *testing.T) {
		cl := dialRESP(t, c.nodes[1].resp)
		_, err := cl.conn.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2147483648\r\n"))
		require.NoError(t, err)
		v, err := cl.read()
		require.NoError(t, err)
		assert.Contains(t, v, "invalid bulk length")
		alive()
	})

	t.Run("slow client", func(t *testing.T) {
		cl := dialRESP(t, c.nodes[1].resp)
		_, err := cl.conn.Write([]byte("*2\r\n$3\r\nGET\r\n$5\r\nal"))
		require.NoError(t, err)
		start := time.Now()
		_, err = cl.read()
		assert.Error(t, err, "a command that never completes gets the connection closed")
		assert.Less(t, time.Since(start), 5*time.Second)
		alive()
	})

	t.Run("no quorum", func(t *testing.T) {
		c.kill(2)
		c.kill(3)
		start := time.Now()
		// The first write may reach the old leader's log: its outcome is
		// unknown. Once the leader has stepped down (CheckQuorum), writes are
		// refused as unavailable.
		v := good.must("SET", "x", "1")
		assert.IsType(t, respError(""), v)
		assert.Regexp(t, "TRYAGAIN|outcome unknown", v)
		v = good.must("SET", "x", "2")
		assert.Contains(t, v, "TRYAGAIN")
		v = good.must("GET", "alive")
		assert.Contains(t, v, "TRYAGAIN")
		assert.Less(t, time.Since(start), 10*time.Second, "errors come within the request timeout")
		start = time.Now()
		code, _ := c.httpDo(1, "PUT", "/kv/x", "3", nil)
		assert.Equal(t, http.StatusServiceUnavailable, code)
		code, _ = c.httpDo(1, "GET", "/kv/alive", "", nil)
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Less(t, time.Since(start), 10*time.Second, "HTTP errors come within the request timeout too")
		// Stale reads still work.
		code, _ = c.httpDo(1, "GET", "/kv/alive?consistency=stale", "", nil)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "OK", good.must("READONLY"))
		assert.Equal(t, []byte("1"), good.must("GET", "alive"))
	})
}
