package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keelraft/raft"
)

// maxWatchWait bounds the wait of a blocking watch.
const maxWatchWait = 5 * time.Minute

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kv/{key...}", s.handleGet)
	mux.HandleFunc("PUT /kv/{key...}", s.handlePut)
	mux.HandleFunc("DELETE /kv/{key...}", s.handleDelete)
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.HandleFunc("POST /members", s.handleAddMember)
	mux.HandleFunc("DELETE /members/{id}", s.handleRemoveMember)
	mux.HandleFunc("POST /transfer", s.handleTransfer)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.httpRequests.Add(1)
		if s.cfg.Auth != "" && !s.authorized(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized checks that r carries exactly "Authorization: Bearer
// <token>" (one header, compared in constant time), or answers 401; an
// address with too many failures is answered 429 without a check.
func (s *server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if !s.authLimit.allow(r.RemoteAddr) {
		s.metrics.authThrottled.Add(1)
		w.Header().Set("Retry-After", "60")
		httpError(w, http.StatusTooManyRequests, "too many failed authentication attempts from this address")
		return false
	}
	vals := r.Header.Values("Authorization")
	if len(vals) == 1 && subtle.ConstantTimeCompare([]byte(vals[0]), []byte("Bearer "+s.cfg.Auth)) == 1 {
		return true
	}
	s.authLimit.fail(r.RemoteAddr)
	s.metrics.authFailures.Add(1)
	w.Header().Set("WWW-Authenticate", `Bearer realm="kvstore"`)
	httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // an API, not a web page: "&" stays "&"
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// writeErr maps a request error to a status: 503 for "try again".
func (s *server) writeErr(w http.ResponseWriter, err error) {
	s.metrics.errors.Add(1)
	code := http.StatusInternalServerError
	if errors.Is(err, errUnavailable) {
		code = http.StatusServiceUnavailable
	}
	httpError(w, code, err.Error())
}

type kvJSON struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Revision uint64 `json:"revision"`
}

// handleGet reads a key, or watches it with ?index=N[&wait=30s]: the reply
// comes when the key changed after raft index N (its new state: 200 with
// the value, or 404 if it was deleted), or, after the wait, 204 with no
// change. X-Raft-Index is the index to watch from next.
func (s *server) handleGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	if idx := q.Get("index"); idx != "" {
		s.watch(w, r, key, idx, q.Get("wait"))
		return
	}
	level := q.Get("consistency")
	switch level {
	case "":
		level = readLinearizable
	case readLinearizable, readLease, readStale:
	default:
		httpError(w, http.StatusBadRequest, "consistency must be linearizable, lease or stale")
		return
	}
	if err := s.readBarrier(r.Context(), level); err != nil {
		s.writeErr(w, err)
		return
	}
	s.replyKey(w, key)
}

func (s *server) replyKey(w http.ResponseWriter, key string) {
	applied := s.node.AppliedIndex()
	w.Header().Set("X-Raft-Index", strconv.FormatUint(applied, 10))
	v, rev, ok := s.kv.get([]byte(key), time.Now().UnixMilli())
	if !ok {
		httpError(w, http.StatusNotFound, "key not found")
		return
	}
	writeJSON(w, http.StatusOK, kvJSON{Key: key, Value: string(v), Revision: rev})
}

func (s *server) watch(w http.ResponseWriter, r *http.Request, key, idx, wait string) {
	after, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "index must be a non-negative integer")
		return
	}
	d := 30 * time.Second
	if wait != "" {
		if d, err = time.ParseDuration(wait); err != nil || d < 0 {
			httpError(w, http.StatusBadRequest, "wait must be a duration such as 30s")
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), min(d, maxWatchWait))
	defer cancel()
	s.metrics.watches.Add(1)
	for {
		rev, changed := s.kv.revision(key)
		if rev > after {
			s.replyKey(w, key)
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			w.Header().Set("X-Raft-Index", strconv.FormatUint(max(after, s.node.AppliedIndex()), 10))
			w.WriteHeader(http.StatusNoContent)
			return
		case <-s.stopc:
			httpError(w, http.StatusServiceUnavailable, "server stopping")
			return
		}
	}
}

func (s *server) writeOne(w http.ResponseWriter, r *http.Request, c *command) {
	res, err := s.write(r.Context(), []*command{c})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	rs := res[0]
	w.Header().Set("X-Raft-Index", strconv.FormatUint(rs.Index, 10))
	if rs.Kind == resErr {
		code := http.StatusBadRequest
		if strings.HasPrefix(rs.Err, tooLargePrefix) {
			code = http.StatusRequestEntityTooLarge
		}
		httpError(w, code, rs.Err)
		return
	}
	out := map[string]any{"index": rs.Index}
	if rs.Kind == resInt {
		out["deleted"] = rs.Int
	}
	writeJSON(w, http.StatusOK, out)
}

// handlePut sets a key to the request body; ?ttl=10s sets an expiry.
func (s *server) handlePut(w http.ResponseWriter, r *http.Request) {
	val, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBulk))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	c := &command{Op: opSet, Key: []byte(r.PathValue("key")), Val: val}
	if ttl := r.URL.Query().Get("ttl"); ttl != "" {
		d, err := time.ParseDuration(ttl)
		if err != nil || d <= 0 {
			httpError(w, http.StatusBadRequest, "ttl must be a positive duration")
			return
		}
		c.Exp = time.Now().Add(d).UnixMilli()
	}
	s.writeOne(w, r, c)
}

func (s *server) handleDelete(w http.ResponseWriter, r *http.Request) {
	s.writeOne(w, r, &command{Op: opDel, Keys: [][]byte{[]byte(r.PathValue("key"))}})
}

func (s *server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// toLeader proxies a membership or transfer request to the leader when
// this node is not it, and reports whether it did.
func (s *server) toLeader(w http.ResponseWriter, r *http.Request) bool {
	lead, _ := s.node.LeaderID()
	if lead == s.cfg.ID {
		return false
	}
	ni, ok := s.kv.nodeInfo(lead)
	if lead == raft.None || !ok || ni.HTTP == "" {
		httpError(w, http.StatusServiceUnavailable, errUnavailable.Error())
		return true
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, s.scheme+"://"+ni.HTTP+r.URL.RequestURI(), http.NoBody)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return true
	}
	s.authorize(req)
	resp, err := s.client.Do(req)
	if err != nil {
		httpError(w, http.StatusBadGateway, err.Error())
		return true
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
	return true
}

func memberErr(err error) int {
	switch {
	case errors.Is(err, raft.ErrPendingConfChange), errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, raft.ErrProposalDropped):
		return http.StatusServiceUnavailable
	case errors.Is(err, raft.ErrInvalidConfChange):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// handleAddMember serves POST /members?id=4&addr=host:port: it adds the
// new node as a learner at its raft address, which the raft configuration
// records (so that every member's transport, later ones included, reaches
// it), waits until it has caught up (by snapshot or log) and promotes it to
// voter.
func (s *server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, err := strconv.ParseUint(q.Get("id"), 10, 64)
	addr := q.Get("addr")
	if err != nil || id == raft.None || addr == "" {
		httpError(w, http.StatusBadRequest, "need ?id=N&addr=host:port (the new node's raft address)")
		return
	}
	if s.toLeader(w, r) {
		return
	}
	s.mu.Lock()
	member := slices.Contains(s.members.Voters, id) || slices.Contains(s.members.Learners, id)
	recorded := s.members.Addresses[id]
	s.mu.Unlock()
	if member && recorded != addr {
		// Re-adding a member at another address would redirect its raft
		// traffic: remove it first.
		httpError(w, http.StatusConflict, fmt.Sprintf("node %d is a member at another address; remove it first", id))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	if _, err := s.node.AddLearner(ctx, id, addr); err != nil {
		httpError(w, memberErr(err), err.Error())
		return
	}
	// Caught up: it holds what was committed when it was added (the
	// commit index keeps moving under load, so it is not chased).
	var target uint64
	for {
		st, err := s.node.Status(ctx)
		if err != nil {
			httpError(w, memberErr(err), err.Error())
			return
		}
		if target == 0 {
			target = st.Commit
		}
		if pr, ok := st.Progress[id]; ok && pr.Match >= target {
			break
		}
		select {
		case <-ctx.Done():
			httpError(w, http.StatusServiceUnavailable, "learner did not catch up in time; it stays a learner")
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	cs, err := s.node.Promote(ctx, id)
	if err != nil {
		httpError(w, memberErr(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"voters": cs.Voters, "learners": cs.Learners})
}

func (s *server) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == raft.None {
		httpError(w, http.StatusBadRequest, "bad member id")
		return
	}
	if s.toLeader(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	cs, err := s.node.Remove(ctx, id)
	if err != nil {
		httpError(w, memberErr(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"voters": cs.Voters, "learners": cs.Learners})
}

func (s *server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
	if err != nil || id == raft.None {
		httpError(w, http.StatusBadRequest, "need ?to=N")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.node.TransferLeadership(ctx, id); err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, raft.ErrInvalidTransfer) {
			code = http.StatusBadRequest
		}
		httpError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"leader": id})
}
