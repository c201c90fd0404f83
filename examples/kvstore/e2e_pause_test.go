package main

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestE2ELeaseReadsOfAPausedLeaderAreNotStale freezes the leader of a
// cluster with --lease-reads (SIGSTOP) while the others elect a new leader
// and acknowledge a write, queues lease reads at the frozen leader, and
// resumes it (SIGCONT): the time it did not see counts against its lease,
// so every read it answers with a value has the new one.
func TestE2ELeaseReadsOfAPausedLeaderAreNotStale(t *testing.T) {
	c := newE2ECluster(t, 3, "--lease-reads")
	lead := c.waitLeader(1, 2, 3)
	code, _ := c.httpDo(lead, "PUT", "/kv/p", "old", nil)
	require.Equal(t, http.StatusOK, code)
	var kv kvJSON
	code, _ = c.httpDo(lead, "GET", "/kv/p?consistency=lease", "", &kv)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "old", kv.Value)

	proc := c.nodes[lead].cmd.Process
	require.NoError(t, proc.Signal(syscall.SIGSTOP))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = proc.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	var others []uint64
	for id := range c.nodes {
		if id != lead {
			others = append(others, id)
		}
	}
	var newLead uint64
	deadline := time.Now().Add(15 * time.Second)
	for newLead == 0 || newLead == lead {
		require.True(t, time.Now().Before(deadline), "no new leader while %d is frozen", lead)
		time.Sleep(20 * time.Millisecond)
		newLead = c.waitLeader(others...)
	}
	code, _ = c.httpDo(newLead, "PUT", "/kv/p", "new", nil)
	require.Equal(t, http.StatusOK, code, "the write during the pause")

	// Queue reads at the frozen leader: the kernel accepts the connections
	// and holds the requests until it runs again.
	const burst = 16
	type answer struct {
		code  int
		value string
		err   error
	}
	answers := make(chan answer, burst)
	var wg sync.WaitGroup
	for range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 10 * time.Second}
			resp, err := cl.Get("http://" + c.nodes[lead].http + "/kv/p?consistency=lease")
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			var kv kvJSON
			if err == nil && resp.StatusCode == http.StatusOK {
				err = json.Unmarshal(b, &kv)
			}
			answers <- answer{code: resp.StatusCode, value: kv.Value, err: err}
		}()
	}
	time.Sleep(300 * time.Millisecond) // let the requests reach the kernel's queues
	resume()
	wg.Wait()
	close(answers)
	served := 0
	for a := range answers {
		if a.err != nil || a.code != http.StatusOK {
			continue // failed or redirected: allowed
		}
		served++
		require.Equal(t, "new", a.value, "a read served by the resumed leader missed the write of the new leader")
	}
	t.Logf("%d of %d reads served after the pause", served, burst)
}
