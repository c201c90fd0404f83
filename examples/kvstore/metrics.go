package main

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the server's counters, rendered by hand in the Prometheus
// text format. Safe for concurrent use.
type metrics struct {
	connsTotal, proposals, forwarded, errors atomic.Uint64
	protocolErrors, authFailures, watches    atomic.Uint64
	httpRequests, leaderChanges              atomic.Uint64
	// tooLarge counts writes refused for not fitting in a log entry.
	tooLarge atomic.Uint64
	// RESP connections closed before authenticating in time, evicted
	// for a newcomer, or idle too long; authentications refused unchecked.
	authTimeouts, preAuthEvicted, idleClosed, authThrottled atomic.Uint64

	mu       sync.Mutex
	commands map[string]uint64
}

func newMetrics() *metrics { return &metrics{commands: map[string]uint64{}} }

// command counts one RESP command; unknown names are counted as "other"
// so that clients cannot grow the map.
func (m *metrics) command(name string) {
	if classOf(name) == classOther && !knownOther[name] {
		name = "OTHER"
	}
	m.mu.Lock()
	m.commands[name]++
	m.mu.Unlock()
}

var knownOther = map[string]bool{
	"PING": true, "ECHO": true, "QUIT": true, "AUTH": true, "READONLY": true, "READWRITE": true,
	"INFO": true, "WAIT": true, "SELECT": true, "CONFIG": true, "COMMAND": true, "CLIENT": true,
}

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	m := s.metrics
	var b strings.Builder
	metric := func(name, typ, help string, v any) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, v)
	}
	st, err := s.status(r.Context())
	if err == nil {
		isLeader := 0
		if st.Leader == st.ID {
			isLeader = 1
		}
		metric("kvstore_raft_term", "gauge", "Current raft term.", st.Term)
		metric("kvstore_raft_leader", "gauge", "ID of the known leader (0 if none).", st.Leader)
		metric("kvstore_raft_is_leader", "gauge", "1 if this node leads.", isLeader)
		metric("kvstore_raft_commit_index", "gauge", "Highest committed index known here.", st.Commit)
		metric("kvstore_raft_voters", "gauge", "Number of voters.", len(st.Voters))
	}
	metric("kvstore_raft_applied_index", "gauge", "Highest index applied here.", s.node.AppliedIndex())
	if nm, err := s.node.Metrics(r.Context()); err == nil {
		metric("kvstore_raft_last_index", "gauge", "Last index in the log.", nm.LastIndex)
		metric("kvstore_raft_snapshot_index", "gauge", "Index of the last snapshot taken or restored.", nm.SnapshotIndex)
		metric("kvstore_raft_persist_total", "counter", "Storage writes (one fsync each).", nm.Persist.Count)
		metric("kvstore_raft_persist_seconds_total", "counter", "Time spent in storage writes.", nm.Persist.Total.Seconds())
		metric("kvstore_raft_persisted_readies_total", "counter", "Readies the storage writes covered.", nm.PersistedReadies)
		metric("kvstore_raft_apply_total", "counter", "Batches applied to the state machine.", nm.Apply.Count)
		metric("kvstore_raft_apply_seconds_total", "counter", "Time spent applying batches.", nm.Apply.Total.Seconds())
		metric("kvstore_raft_applied_entries_total", "counter", "Entries applied to the state machine.", nm.AppliedEntries)
		metric("kvstore_raft_snapshots_taken_total", "counter", "Snapshots written.", nm.SnapshotsTaken)
		metric("kvstore_raft_snapshots_restored_total", "counter", "Snapshots restored.", nm.SnapshotsRestored)
		metric("kvstore_raft_dropped_messages_total", "counter", "Received messages dropped on a full queue.", nm.DroppedMessages)
		if len(nm.Peers) > 0 {
			peers := slices.Sorted(maps.Keys(nm.Peers))
			b.WriteString("# HELP kvstore_raft_peer_lag_entries How far each peer's log is behind the leader's.\n# TYPE kvstore_raft_peer_lag_entries gauge\n")
			for _, id := range peers {
				fmt.Fprintf(&b, "kvstore_raft_peer_lag_entries{peer=\"%d\"} %d\n", id, nm.Peers[id].Lag)
			}
			b.WriteString("# HELP kvstore_raft_peer_active 1 if the peer answered within an election timeout.\n# TYPE kvstore_raft_peer_active gauge\n")
			for _, id := range peers {
				active := 0
				if nm.Peers[id].RecentActive {
					active = 1
				}
				fmt.Fprintf(&b, "kvstore_raft_peer_active{peer=\"%d\"} %d\n", id, active)
			}
		}
	}
	metric("kvstore_keys", "gauge", "Number of live keys.", s.kv.count(time.Now().UnixMilli()))
	s.mu.Lock()
	conns := len(s.conns)
	s.mu.Unlock()
	metric("kvstore_resp_connections", "gauge", "Open RESP connections.", conns)
	metric("kvstore_resp_connections_total", "counter", "RESP connections accepted.", m.connsTotal.Load())
	metric("kvstore_proposals_total", "counter", "Writes proposed by clients of this node.", m.proposals.Load())
	metric("kvstore_forwarded_total", "counter", "Writes proposed while this node did not lead (forwarded to the leader by the node).", m.forwarded.Load())
	metric("kvstore_request_errors_total", "counter", "Requests that failed (unavailable, unknown outcome).", m.errors.Load())
	metric("kvstore_protocol_errors_total", "counter", "RESP connections closed for malformed input.", m.protocolErrors.Load())
	metric("kvstore_auth_failures_total", "counter", "Failed AUTH commands and HTTP requests with a wrong token.", m.authFailures.Load())
	metric("kvstore_too_large_total", "counter", "Writes refused because they do not fit in one log entry.", m.tooLarge.Load())
	metric("kvstore_auth_throttled_total", "counter", "Authentications refused unchecked: too many failures from the address.", m.authThrottled.Load())
	metric("kvstore_resp_auth_timeouts_total", "counter", "RESP connections closed for not authenticating in time.", m.authTimeouts.Load())
	metric("kvstore_resp_preauth_evicted_total", "counter", "Unauthenticated RESP connections closed to make room for a new one.", m.preAuthEvicted.Load())
	metric("kvstore_resp_idle_closed_total", "counter", "RESP connections closed after IdleTimeout without a command.", m.idleClosed.Load())
	metric("kvstore_watches_total", "counter", "HTTP watches started.", m.watches.Load())
	metric("kvstore_http_requests_total", "counter", "HTTP requests.", m.httpRequests.Load())
	metric("kvstore_leader_changes_total", "counter", "Leader or term changes seen.", m.leaderChanges.Load())
	m.mu.Lock()
	names := make([]string, 0, len(m.commands))
	for n := range m.commands {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteString("# HELP kvstore_resp_commands_total RESP commands received, by name.\n# TYPE kvstore_resp_commands_total counter\n")
	for _, n := range names {
		fmt.Fprintf(&b, "kvstore_resp_commands_total{cmd=%q} %d\n", strings.ToLower(n), m.commands[n])
	}
	m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
