package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

// api serves the HTTP API on top of a node and its counter.
type api struct {
	node    *raftnode.Node
	sm      *counter
	timeout time.Duration // of each request
	tick    time.Duration // how often to poll the node's status
}

func newAPI(node *raftnode.Node, sm *counter, timeout, tick time.Duration) *api {
	return &api{node: node, sm: sm, timeout: timeout, tick: tick}
}

func (a *api) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /incr", a.incr)
	mux.HandleFunc("GET /value", a.value)
	mux.HandleFunc("GET /status", a.status)
	mux.HandleFunc("POST /members", a.addMember)
	mux.HandleFunc("DELETE /members/{id}", a.removeMember)
	mux.HandleFunc("POST /transfer", a.transfer)
	return mux
}

// incr adds n (default 1) to the counter and replies with the new value,
// once the increment is committed and applied on this node.
func (a *api) incr(w http.ResponseWriter, r *http.Request) {
	n := int64(1)
	if s := r.URL.Query().Get("n"); s != "" {
		var err error
		if n, err = strconv.ParseInt(s, 10, 64); err != nil {
			reply(w, http.StatusBadRequest, errorReply{Error: "n must be an integer, got " + strconv.Quote(s)})
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	res, err := a.node.Propose(ctx, incrCommand(n))
	if err == nil {
		if e, ok := res.(error); ok {
			err = e
		}
	}
	if err != nil {
		replyError(w, err)
		return
	}
	reply(w, http.StatusOK, valueReply{Value: res.(int64)})
}

// value replies with the counter's value, reflecting every increment
// acknowledged before the request (a linearizable read, on any node).
func (a *api) value(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	if err := a.node.Read(ctx); err != nil {
		replyError(w, err)
		return
	}
	reply(w, http.StatusOK, valueReply{Value: a.sm.value.Load()})
}

// status replies with what this node knows of the cluster.
func (a *api) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	st, err := a.node.Status(ctx)
	if err != nil {
		replyError(w, err)
		return
	}
	sr := statusReply{
		ID: st.ID, State: st.RaftState.String(), Leader: st.Lead, Term: st.Term, Commit: st.Commit, Applied: st.Applied,
		Members: members(st.Config),
	}
	if st.Progress != nil {
		sr.Match = map[uint64]uint64{}
		for id, p := range st.Progress {
			sr.Match[id] = p.Match
		}
	}
	reply(w, http.StatusOK, sr)
}

// addMember adds node id, reachable by its peers at addr: first as a
// learner, which receives the log without counting for a quorum; once it
// caught up, as a voter. Asking again for a node added already is safe.
func (a *api) addMember(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, err := strconv.ParseUint(q.Get("id"), 10, 64)
	addr := q.Get("addr")
	if _, _, aerr := net.SplitHostPort(addr); err != nil || id == 0 || aerr != nil {
		reply(w, http.StatusBadRequest, errorReply{Error: "want ?id=N&addr=host:port, with N not 0: the new node's ID and raft address"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	st, err := a.node.Status(ctx)
	if err != nil {
		replyError(w, err)
		return
	}
	// AddLearner on a voter would demote it: skip it on a retry.
	if !slices.Contains(st.Config.Voters, id) {
		if _, err := a.node.AddLearner(ctx, id, addr); err != nil {
			replyError(w, err)
			return
		}
		if err := a.waitCaughtUp(ctx, id); err != nil {
			replyError(w, err)
			return
		}
	}
	cs, err := a.node.AddVoter(ctx, id, addr)
	if err != nil {
		replyError(w, err)
		return
	}
	reply(w, http.StatusOK, members(cs))
}

// waitCaughtUp waits, on the leader, until node id holds every entry
// committed when it is called, so that the cluster does not wait for a
// voter that is far behind.
func (a *api) waitCaughtUp(ctx context.Context, id uint64) error {
	t := time.NewTicker(a.tick)
	defer t.Stop()
	var target uint64
	for {
		st, err := a.node.Status(ctx)
		if err != nil {
			return err
		}
		if st.Progress == nil { // no longer the leader: the client tries again there
			return &raftnode.NotLeaderError{Leader: st.Lead}
		}
		if target == 0 {
			target = st.Commit
		}
		if st.Progress[id].Match >= target {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %d has not caught up (is it running, started with --join?): %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

// removeMember removes node id from the cluster. The removed node stops on
// its own once it learns of it.
func (a *api) removeMember(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		reply(w, http.StatusBadRequest, errorReply{Error: "want DELETE /members/N, N the node's ID"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	cs, err := a.node.Remove(ctx, id)
	if err != nil {
		replyError(w, err)
		return
	}
	reply(w, http.StatusOK, members(cs))
}

// transfer hands leadership to voter ?to=N and waits until it leads.
func (a *api) transfer(w http.ResponseWriter, r *http.Request) {
	to, err := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
	if err != nil || to == 0 {
		reply(w, http.StatusBadRequest, errorReply{Error: "want ?to=N, N a voter's ID"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	if err := a.node.TransferLeadership(ctx, to); err != nil {
		replyError(w, err)
		return
	}
	reply(w, http.StatusOK, struct {
		Leader uint64 `json:"leader"`
	}{to})
}

type valueReply struct {
	Value int64 `json:"value"`
}

type membersReply struct {
	Voters    []uint64          `json:"voters"`
	Learners  []uint64          `json:"learners,omitempty"`
	Addresses map[uint64]string `json:"addresses"` // raft addresses, as the configuration records them
}

func members(cs raft.ConfState) membersReply {
	return membersReply{Voters: cs.Voters, Learners: cs.Learners, Addresses: cs.Addresses}
}

type statusReply struct {
	ID      uint64       `json:"id"`
	State   string       `json:"state"`
	Leader  uint64       `json:"leader"` // 0: none known
	Term    uint64       `json:"term"`
	Commit  uint64       `json:"commit"`
	Applied uint64       `json:"applied"`
	Members membersReply `json:"members"`
	// Match is, on the leader, the last log index each member is known
	// to hold.
	Match map[uint64]uint64 `json:"match,omitempty"`
}

type errorReply struct {
	Error  string `json:"error"`
	Leader uint64 `json:"leader,omitempty"` // with 503: the leader to ask, if known
}

// replyError maps a Node error to an HTTP status that tells the client
// whether to retry:
//   - 503: nothing happened; retry (at the leader, if the reply names it).
//   - 504: a write's outcome is unknown: it may still apply. Read the value
//     before deciding to retry an increment.
//   - 410: this node was removed from the cluster; ask another.
//   - 500: anything else.
func replyError(w http.ResponseWriter, err error) {
	var notLeader *raftnode.NotLeaderError
	switch {
	case errors.As(err, &notLeader):
		reply(w, http.StatusServiceUnavailable, errorReply{Error: err.Error(), Leader: notLeader.Leader})
	case errors.Is(err, raftnode.ErrProposalUnknown):
		reply(w, http.StatusGatewayTimeout, errorReply{Error: err.Error()})
	case errors.Is(err, raftnode.ErrRemoved):
		reply(w, http.StatusGone, errorReply{Error: err.Error()})
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, raft.ErrProposalDropped),
		errors.Is(err, raft.ErrPendingConfChange), errors.Is(err, raftnode.ErrStopped),
		errors.Is(err, raftnode.ErrTransferAbandoned): // the target was not ready (it may have been applying a change)
		reply(w, http.StatusServiceUnavailable, errorReply{Error: err.Error() + " (no leader or quorum in time: retry)"})
	default:
		reply(w, http.StatusInternalServerError, errorReply{Error: err.Error()})
	}
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
