package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

// Writes at a follower are forwarded to the leader over the leader's HTTP
// API (POST /internal/propose with the encoded commands), because
// raftnode.Node.Propose only runs on the leader. The follower learns the
// leader's HTTP address from the log: every node that becomes leader
// proposes an opNode entry with its addresses. The follower has already
// fixed each command's Now, so the leader proposes exactly what the
// follower built.

// errOutcomeUnknown is returned when a write may or may not have applied.
var errOutcomeUnknown = errors.New("ERR write outcome unknown (the leader changed or the request timed out); it may have applied")

// forwardError carries a leader's refusal back through a follower.
type forwardError struct {
	Status int
	Msg    string
}

func (e *forwardError) Error() string { return e.Msg }

// write proposes cmds, in order, through this node or the leader, and
// returns their results once applied. It gives up with errUnavailable
// after RequestTimeout if no leader takes them. A command that cannot be
// proposed (one too large for a log entry, or an internal one, which is
// never forwarded) gets an error result and is left out; the others still
// go.
func (s *server) write(ctx context.Context, cmds []*command) ([]*result, error) {
	now := time.Now().UnixMilli()
	out := make([]*result, len(cmds))
	var data [][]byte
	var at []int // the index in cmds of each element of data
	for i, c := range cmds {
		c.Now = now
		d := c.encode()
		switch {
		case !c.Op.isClientOp():
			out[i] = &result{Kind: resErr, Err: "ERR internal commands are not proposed for clients"}
		case uint64(len(d)) > s.node.MaxEntrySize():
			s.metrics.tooLarge.Add(1)
			out[i] = tooLarge(len(d), s.node.MaxEntrySize())
		default:
			data = append(data, d)
			at = append(at, i)
		}
	}
	if len(data) == 0 {
		return out, nil
	}
	res, err := s.proposeClient(ctx, data)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		out[at[j]] = r
	}
	return out, nil
}

func tooLarge(n int, max uint64) *result {
	return &result{Kind: resErr, Err: fmt.Sprintf("%s: %d bytes encoded, a log entry takes at most %d", tooLargePrefix, n, max)}
}

// proposeClient proposes encoded client commands through this node or the
// leader, as write.
func (s *server) proposeClient(ctx context.Context, data [][]byte) ([]*result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	s.metrics.proposals.Add(uint64(len(data)))
	for {
		res, err := s.proposeLocal(ctx, data)
		var nl *raftnode.NotLeaderError
		switch {
		case err == nil:
			return res, nil
		case errors.As(err, &nl):
			ni, ok := s.kv.nodeInfo(nl.Leader)
			if !ok || ni.HTTP == "" || nl.Leader == s.cfg.ID {
				break // leader unknown, or its address not applied here yet
			}
			res, ferr := s.forwardGrouped(ctx, ni.HTTP, data)
			if ferr == nil {
				s.metrics.forwarded.Add(uint64(len(data)))
				return res, nil
			}
			var fe *forwardError
			errors.As(ferr, &fe)
			switch {
			case fe != nil && (fe.Status == http.StatusMisdirectedRequest || fe.Status == http.StatusServiceUnavailable ||
				fe.Status == http.StatusTooManyRequests):
				// Certainly not applied: retry.
			case fe != nil && (fe.Status == http.StatusBadRequest || fe.Status == http.StatusForbidden ||
				fe.Status == http.StatusRequestEntityTooLarge):
				return nil, fmt.Errorf("ERR %s", fe.Msg)
			default:
				return nil, errOutcomeUnknown
			}
		case errors.Is(err, raft.ErrProposalTooLarge):
			return nil, fmt.Errorf("%s: %v", tooLargePrefix, err)
		case errors.Is(err, raft.ErrProposalDropped):
			// Retry: a transfer in progress, or a full uncommitted tail.
		case errors.Is(err, raftnode.ErrProposalUnknown):
			return nil, errOutcomeUnknown
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			return nil, errUnavailable
		default:
			return nil, fmt.Errorf("ERR %v", err)
		}
		select {
		case <-ctx.Done():
			return nil, errUnavailable
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// proposeInternal proposes an internal command on this node, which must
// lead: it is never forwarded. It returns the Node's error.
func (s *server) proposeInternal(ctx context.Context, c *command) error {
	c.Now = time.Now().UnixMilli()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	_, err := s.node.Propose(ctx, c.encode())
	return err
}

func (s *server) proposeLocal(ctx context.Context, data [][]byte) ([]*result, error) {
	out := s.node.ProposeBatch(ctx, data)
	for _, r := range out {
		if r.Err != nil {
			return nil, r.Err
		}
	}
	res := make([]*result, len(data))
	for i := range res {
		res[i], _ = out[i].Value.(*result)
		if res[i] == nil {
			res[i] = &result{Kind: resErr, Err: "ERR no result"}
		}
	}
	return res, nil
}

// forward sends encoded commands to the leader at httpAddr.
func (s *server) forward(ctx context.Context, httpAddr string, data [][]byte) ([]*result, error) {
	body, _ := json.Marshal(data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.scheme+"://"+httpAddr+"/internal/propose", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	s.authorize(req)
	resp, err := s.client.Do(req)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			// Not connected: the leader certainly did not get it.
			return nil, &forwardError{Status: http.StatusServiceUnavailable, Msg: err.Error()}
		}
		// The request may have reached the leader.
		return nil, &forwardError{Status: 0, Msg: errOutcomeUnknown.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4*s.cfg.MaxBulk+(1<<20)))
	if err != nil {
		return nil, &forwardError{Status: 0, Msg: errOutcomeUnknown.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		return nil, &forwardError{Status: resp.StatusCode, Msg: e.Error}
	}
	var res []*result
	if err := json.Unmarshal(b, &res); err != nil || len(res) != len(data) {
		return nil, &forwardError{Status: 0, Msg: errOutcomeUnknown.Error()}
	}
	return res, nil
}

func (s *server) authorize(req *http.Request) {
	if s.cfg.Auth != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Auth)
	}
}

// handleInternalPropose serves a follower's forwarded writes: 421 if this
// node is not the leader (certainly not applied), 503 if it could not
// propose them, 500 if their outcome is unknown. Only client writes are
// taken: the endpoint is open to every holder of the client token, so an
// internal command (a node's addresses, an expiry sweep) is refused with
// 403, and a command too large for a log entry with 413; nothing of a
// refused request is proposed.
func (s *server) handleInternalPropose(w http.ResponseWriter, r *http.Request) {
	var data [][]byte
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4*s.cfg.MaxBulk+(1<<20))).Decode(&data); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, d := range data {
		c, err := decodeCommand(d)
		switch {
		case err != nil:
			httpError(w, http.StatusBadRequest, err.Error())
			return
		case !c.Op.isClientOp():
			s.metrics.internalRefused.Add(1)
			httpError(w, http.StatusForbidden, "internal commands are not accepted over HTTP")
			return
		case uint64(len(d)) > s.node.MaxEntrySize():
			s.metrics.tooLarge.Add(1)
			httpError(w, http.StatusRequestEntityTooLarge, tooLarge(len(d), s.node.MaxEntrySize()).Err)
			return
		}
	}
	ctx, cancel := s.ctx(s.cfg.RequestTimeout)
	defer cancel()
	res, err := s.proposeLocal(ctx, data)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.Is(err, raft.ErrNotLeader):
		httpError(w, http.StatusMisdirectedRequest, err.Error())
	case errors.Is(err, raft.ErrProposalDropped), errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, raftnode.ErrProposalUnknown):
		httpError(w, http.StatusServiceUnavailable, err.Error())
	default:
		httpError(w, http.StatusInternalServerError, errOutcomeUnknown.Error())
	}
}

// Read consistency levels.
const (
	readLinearizable = "linearizable"
	readLease        = "lease"
	readStale        = "stale"
)

// readBarrier waits until a local read reflects every write committed
// before it was called, as the level asks: linearizable and lease go
// through Node.Read (ReadIndex, confirmed by a quorum round, or by the
// leader lease when the server runs with --lease-reads: the read mode is
// a property of the raft configuration, so "lease" is served at least as
// strongly as asked); stale reads the local state as it is.
func (s *server) readBarrier(ctx context.Context, level string) error {
	if level == readStale {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	if err := s.node.Read(ctx); err != nil {
		if errors.Is(err, raftnode.ErrStopped) {
			return fmt.Errorf("ERR %v", err)
		}
		return errUnavailable
	}
	return nil
}

// nodeStatus is the JSON of GET /status.
type nodeStatus struct {
	ID      uint64 `json:"id"`
	Role    string `json:"role"`
	Term    uint64 `json:"term"`
	Leader  uint64 `json:"leader"`
	Commit  uint64 `json:"commit"`
	Applied uint64 `json:"applied"`
	// Incarnation is this node's storage incarnation (package wal's
	// Identity); Recovering says that its storage lost state it had
	// promised and it neither votes nor counts toward a quorum until a
	// leader has repaired it.
	Incarnation uint64                `json:"incarnation"`
	Recovering  bool                  `json:"recovering"`
	Voters      []uint64              `json:"voters"`
	Learners    []uint64              `json:"learners,omitempty"`
	Progress    map[uint64]peerStatus `json:"progress,omitempty"`
	Nodes       map[uint64]nodeInfo   `json:"nodes"`
}

type peerStatus struct {
	Match uint64 `json:"match"`
	Next  uint64 `json:"next"`
	State string `json:"state"`
}

func (s *server) status(ctx context.Context) (nodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	st, err := s.node.Status(ctx)
	if err != nil {
		return nodeStatus{}, err
	}
	ns := nodeStatus{
		ID: st.ID, Role: roleName(st.RaftState.String()), Term: st.Term, Leader: st.Lead, Commit: st.Commit,
		Applied: s.node.AppliedIndex(), Incarnation: s.wal.Identity().Incarnation, Recovering: st.Recovering, Voters: st.Config.Voters, Learners: st.Config.Learners,
		Nodes: s.kv.allNodes(),
	}
	if st.Progress != nil {
		ns.Progress = map[uint64]peerStatus{}
		for id, pr := range st.Progress {
			ns.Progress[id] = peerStatus{Match: pr.Match, Next: pr.Next, State: pr.State.String()}
		}
	}
	return ns, nil
}

// remoteStatus fetches GET /status from the node at httpAddr.
func (s *server) remoteStatus(ctx context.Context, httpAddr string) (nodeStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.scheme+"://"+httpAddr+"/status", nil)
	if err != nil {
		return nodeStatus{}, err
	}
	s.authorize(req)
	resp, err := s.client.Do(req)
	if err != nil {
		return nodeStatus{}, errUnavailable
	}
	defer resp.Body.Close()
	var ns nodeStatus
	if resp.StatusCode != http.StatusOK {
		return ns, errUnavailable
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ns); err != nil {
		return ns, err
	}
	return ns, nil
}

// waitReplicas implements WAIT: once this node has applied the log up to
// index (the connection's last write), it returns how many other members
// have applied it too (each asked over its HTTP API), as soon as that
// reaches n or when timeout expires (0: no limit). After "WAIT 2" returned
// 2 on a 3-node cluster, a stale read on any node sees the write.
func (s *server) waitReplicas(ctx context.Context, index uint64, n int64, timeout time.Duration) int64 {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := s.node.WaitApplied(ctx, index); err != nil {
		return 0
	}
	reached := map[uint64]bool{} // applied only grows: a node counted stays counted
	for {
		s.markApplied(ctx, index, reached)
		if got := int64(len(reached)); got >= n || ctx.Err() != nil {
			return got
		}
		select {
		case <-ctx.Done():
			return int64(len(reached))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// markApplied asks every other member not yet in reached, at once, how far
// it applied, and adds those at index or beyond. A member that does not
// answer within half a second is not added.
func (s *server) markApplied(ctx context.Context, index uint64, reached map[uint64]bool) {
	s.mu.Lock()
	members := append(append([]uint64(nil), s.members.Voters...), s.members.Learners...)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	addrs := map[uint64]string{}
	for _, id := range members {
		if ni, ok := s.kv.nodeInfo(id); ok && id != s.cfg.ID && !reached[id] && ni.HTTP != "" {
			addrs[id] = ni.HTTP
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, err := s.remoteStatus(ctx, addr); err == nil && st.Applied >= index {
				mu.Lock()
				reached[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
