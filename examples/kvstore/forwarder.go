package main

import (
	"context"
	"net/http"
)

// Writes that followers forward are grouped: while one HTTP request to the
// leader is in flight, the writes of other connections queue, and the next
// request carries all of them (up to fwdMaxCommands commands or
// fwdMaxBytes bytes), so that forwarding costs one round trip per group,
// not per write. fwdWorkers requests may be in flight at once.
const (
	fwdWorkers     = 4
	fwdMaxCommands = 512
	fwdMaxBytes    = 4 << 20
	fwdQueue       = 1024
)

type fwdReq struct {
	ctx  context.Context
	addr string
	data [][]byte
	res  chan fwdRes // capacity 1
}

type fwdRes struct {
	res []*result
	err error
}

func reqBytes(r *fwdReq) int {
	n := 0
	for _, d := range r.data {
		n += len(d)
	}
	return n
}

// forwardGrouped forwards data to the leader at addr through the workers.
func (s *server) forwardGrouped(ctx context.Context, addr string, data [][]byte) ([]*result, error) {
	r := &fwdReq{ctx: ctx, addr: addr, data: data, res: make(chan fwdRes, 1)}
	select {
	case s.fwdc <- r:
	case <-ctx.Done():
		return nil, &forwardError{Status: http.StatusServiceUnavailable, Msg: ctx.Err().Error()}
	}
	select {
	case out := <-r.res:
		return out.res, out.err
	case <-ctx.Done():
		// It may have been sent.
		return nil, &forwardError{Status: 0, Msg: errOutcomeUnknown.Error()}
	}
}

func (s *server) forwardWorker() {
	defer s.wg.Done()
	for {
		var first *fwdReq
		select {
		case <-s.stopc:
			return
		case first = <-s.fwdc:
		}
		groups := map[string][]*fwdReq{first.addr: {first}}
		n, size := len(first.data), reqBytes(first)
	drain:
		for n < fwdMaxCommands && size < fwdMaxBytes {
			select {
			case r := <-s.fwdc:
				groups[r.addr] = append(groups[r.addr], r)
				n += len(r.data)
				size += reqBytes(r)
			default:
				break drain
			}
		}
		for addr, reqs := range groups {
			s.forwardGroup(addr, reqs)
		}
	}
}

// forwardGroup sends the writes of reqs (those whose caller still waits)
// in one request and hands each caller its results.
func (s *server) forwardGroup(addr string, reqs []*fwdReq) {
	var all [][]byte
	live := reqs[:0]
	for _, r := range reqs {
		if r.ctx.Err() != nil {
			r.res <- fwdRes{err: &forwardError{Status: http.StatusServiceUnavailable, Msg: r.ctx.Err().Error()}}
			continue
		}
		live = append(live, r)
		all = append(all, r.data...)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := s.ctx(s.cfg.RequestTimeout)
	res, err := s.forward(ctx, addr, all)
	cancel()
	for _, r := range live {
		if err != nil {
			r.res <- fwdRes{err: err}
			continue
		}
		r.res <- fwdRes{res: res[:len(r.data):len(r.data)]}
		res = res[len(r.data):]
	}
}
