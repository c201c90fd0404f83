package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

// Writes are proposed on whichever node receives them: raftnode.Node
// forwards a follower's proposals to the leader over the raft transport and
// returns each entry's result once it applied locally. The receiving node
// fixes each command's Now, so the leader appends exactly what it built.

// errOutcomeUnknown is returned when a write may or may not have applied.
var errOutcomeUnknown = errors.New("ERR write outcome unknown (the leader changed or the request timed out); it may have applied")

// write proposes cmds, in order, and returns their results once applied.
// A command that cannot be proposed (one too large for a log entry, or an
// internal one) gets an error result and is left out; the others still go.
// A write that fails gets an error result of its own (-TRYAGAIN if it
// certainly did not apply within RequestTimeout, the outcome-unknown error
// if it may have); if every proposed command failed alike, that error is
// returned instead.
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
	res, errs := s.proposeClient(ctx, data)
	if len(data) == len(cmds) && errs[0] != nil && !slices.ContainsFunc(errs, func(err error) bool { return err != errs[0] }) {
		return nil, errs[0]
	}
	for j, r := range res {
		if errs[j] != nil {
			r = &result{Kind: resErr, Err: errs[j].Error()}
		}
		out[at[j]] = r
	}
	return out, nil
}

func tooLarge(n int, max uint64) *result {
	return &result{Kind: resErr, Err: fmt.Sprintf("%s: %d bytes encoded, a log entry takes at most %d", tooLargePrefix, n, max)}
}

// proposeClient proposes encoded client commands through this node and
// returns each one's result or error. A command that certainly did not
// apply (no leader, a leader change before it was appended, a transfer in
// progress, an entry a new leader overwrote) is proposed again, alone with
// the others in that case, until RequestTimeout: a command of a batch is
// never proposed again once it may have applied.
func (s *server) proposeClient(ctx context.Context, data [][]byte) ([]*result, []error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	s.metrics.proposals.Add(uint64(len(data)))
	if lead, _ := s.node.LeaderID(); lead != s.cfg.ID {
		s.metrics.forwarded.Add(uint64(len(data)))
	}
	return proposeRetrying(ctx, data, s.node.ProposeBatch)
}

// proposeRetrying proposes data with propose (Node.ProposeBatch) until
// every command applied, may have applied, or failed for good, or ctx
// expires: it proposes again only the commands that certainly did not
// apply, in their order.
func proposeRetrying(ctx context.Context, data [][]byte,
	propose func(context.Context, [][]byte) []raftnode.Result) ([]*result, []error) {
	res := make([]*result, len(data))
	errs := make([]error, len(data))
	pending := make([]int, len(data)) // the indexes in data still to propose
	for i := range pending {
		pending[i] = i
	}
	for {
		batch := make([][]byte, len(pending))
		for j, i := range pending {
			batch[j] = data[i]
		}
		var retry []int
		for j, r := range propose(ctx, batch) {
			i := pending[j]
			switch err := r.Err; {
			case err == nil:
				res[i], _ = r.Value.(*result)
				if res[i] == nil {
					res[i] = &result{Kind: resErr, Err: "ERR no result"}
				}
			case errors.Is(err, raftnode.ErrProposalUnknown):
				errs[i] = errOutcomeUnknown
			case errors.Is(err, raft.ErrProposalTooLarge):
				res[i] = &result{Kind: resErr, Err: fmt.Sprintf("%s: %v", tooLargePrefix, err)}
			case errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrProposalDropped):
				retry = append(retry, i) // certainly not applied
			case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
				errs[i] = errUnavailable
			default:
				errs[i] = fmt.Errorf("ERR %v", err)
			}
		}
		if len(retry) == 0 {
			return res, errs
		}
		pending = retry
		select {
		case <-ctx.Done():
			for _, i := range pending {
				errs[i] = errUnavailable
			}
			return res, errs
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *server) authorize(req *http.Request) {
	if s.cfg.Auth != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Auth)
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
	// RaftAddresses are the members' raft addresses, as the replicated
	// configuration records them.
	RaftAddresses map[uint64]string `json:"raft_addresses,omitempty"`
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
		Nodes: s.kv.allNodes(), RaftAddresses: st.Config.Addresses,
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
