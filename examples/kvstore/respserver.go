package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// maxPipeline bounds the commands taken from one connection's buffer and
// served together (consecutive writes as one ProposeBatch, consecutive
// reads behind one read barrier).
const maxPipeline = 256

// maxPipelineBytes bounds the argument bytes of such a group (a single
// command may exceed it, up to the reader's own limits), so that a
// pipelining client holds a bounded amount of memory.
const maxPipelineBytes = 1 << 20

func (s *server) acceptRESP() {
	defer s.wg.Done()
	for {
		c, err := s.respLn.Accept()
		if err != nil {
			select {
			case <-s.stopc:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !s.admit(c) {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("-ERR max number of clients reached\r\n"))
			_ = c.Close()
			continue
		}
		s.metrics.connsTotal.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.release(c)
			_ = c.Close()
		}()
	}
}

// admit registers a new RESP connection, and reports whether there is room
// for it. When every slot is taken, the connection that has waited longest
// without authenticating is closed to make room: clients that have not
// authenticated cannot lock out one that does so promptly.
func (s *server) admit(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) >= s.cfg.MaxClients {
		oldest := s.preAuth.Front()
		if oldest == nil {
			return false
		}
		victim := oldest.Value.(net.Conn)
		s.preAuth.Remove(oldest)
		delete(s.preAuthAt, victim)
		delete(s.conns, victim)
		_ = victim.Close() // its goroutine sees the error and ends
		s.metrics.preAuthEvicted.Add(1)
	}
	s.conns[c] = struct{}{}
	if s.cfg.Auth != "" {
		s.preAuthAt[c] = s.preAuth.PushBack(c)
	}
	return true
}

// authenticated moves c out of the connections waiting to authenticate.
func (s *server) authenticated(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.preAuthAt[c]; e != nil {
		s.preAuth.Remove(e)
		delete(s.preAuthAt, c)
	}
}

// release forgets a connection that ended.
func (s *server) release(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.preAuthAt[c]; e != nil {
		s.preAuth.Remove(e)
		delete(s.preAuthAt, c)
	}
	delete(s.conns, c)
}

// respConn is one client connection's state.
type respConn struct {
	s         *server
	c         net.Conn
	w         respWriter
	authed    bool
	authFails int
	readOnly  bool   // READONLY: stale local reads
	lastWrite uint64 // raft index of the connection's last write, for WAIT
	quit      bool
}

func (s *server) serveConn(c net.Conn) {
	rc := &respConn{s: s, c: c, authed: s.cfg.Auth == ""}
	// Before AUTH a client gets a small buffer, small requests and
	// AuthTimeout in all; after it, the full limits, and IdleTimeout
	// between commands.
	var rd *respReader
	bw := bufio.NewWriterSize(c, 512)
	if rc.authed {
		rd = newRESPReader(c, s.cfg.MaxBulk)
		bw = bufio.NewWriterSize(c, respBufferSize)
	} else {
		rd = newPreAuthRESPReader(c)
	}
	rc.w = respWriter{bw}
	authDeadline := time.Now().Add(s.cfg.AuthTimeout)
	var batch [][][]byte
	for !rc.quit {
		// Idle clients may wait IdleTimeout (0: for ever); once a command
		// has started it must arrive within ClientTimeout (slow clients
		// are cut off and hold no more than what they sent).
		var idle time.Time
		switch {
		case !rc.authed:
			idle = authDeadline
		case s.cfg.IdleTimeout > 0:
			idle = time.Now().Add(s.cfg.IdleTimeout)
		}
		_ = c.SetReadDeadline(idle)
		if _, err := rd.r.Peek(1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if rc.authed {
					s.metrics.idleClosed.Add(1)
				} else {
					s.metrics.authTimeouts.Add(1)
				}
			}
			return
		}
		cmdDeadline := time.Now().Add(s.cfg.ClientTimeout)
		if !rc.authed && authDeadline.Before(cmdDeadline) {
			cmdDeadline = authDeadline
		}
		_ = c.SetReadDeadline(cmdDeadline)
		batch = batch[:0]
		var perr error
		size := 0
		for len(batch) < maxPipeline && size < maxPipelineBytes {
			args, err := rd.ReadCommand()
			if err != nil {
				if !errors.Is(err, errProtocol) {
					if len(batch) == 0 {
						return // I/O error or timeout
					}
				}
				perr = err
				break
			}
			if args != nil {
				batch = append(batch, args)
				for _, a := range args {
					size += len(a)
				}
			}
			// Before AUTH, one command at a time: the next one is read
			// with the limits its outcome sets.
			if rd.Buffered() == 0 || !rc.authed {
				break
			}
		}
		wasAuthed := rc.authed
		rc.serveBatch(batch)
		if rc.authed && !wasAuthed {
			s.authenticated(c)
			rd.unlock(s.cfg.MaxBulk)
			_ = c.SetWriteDeadline(time.Now().Add(s.cfg.ClientTimeout))
			if err := bw.Flush(); err != nil {
				return
			}
			bw = bufio.NewWriterSize(c, respBufferSize)
			rc.w = respWriter{bw}
		}
		if perr != nil && errors.Is(perr, errProtocol) {
			s.metrics.protocolErrors.Add(1)
			// Redis's wording, which clients recognise.
			rc.w.err("ERR Protocol error: " + strings.TrimPrefix(perr.Error(), errProtocol.Error()+": "))
			rc.quit = true
		}
		_ = c.SetWriteDeadline(time.Now().Add(s.cfg.ClientTimeout))
		if err := bw.Flush(); err != nil || perr != nil {
			return
		}
	}
}

// Command classes.
const (
	classOther = iota
	classWrite
	classRead
)

func classOf(name string) int {
	switch name {
	case "SET", "DEL", "INCR", "INCRBY", "DECR", "DECRBY", "MSET":
		return classWrite
	case "GET", "MGET", "EXISTS", "DBSIZE", "KEYS":
		return classRead
	}
	return classOther
}

func (rc *respConn) serveBatch(batch [][][]byte) {
	names := make([]string, len(batch))
	for i, args := range batch {
		names[i] = strings.ToUpper(string(args[0]))
		rc.s.metrics.command(names[i])
	}
	for i := 0; i < len(batch) && !rc.quit; {
		if !rc.authed && names[i] != "AUTH" && names[i] != "QUIT" {
			rc.w.err("NOAUTH Authentication required.")
			i++
			continue
		}
		j := i + 1
		switch classOf(names[i]) {
		case classWrite:
			for j < len(batch) && classOf(names[j]) == classWrite {
				j++
			}
			rc.serveWrites(names[i:j], batch[i:j])
		case classRead:
			for j < len(batch) && classOf(names[j]) == classRead {
				j++
			}
			rc.serveReads(names[i:j], batch[i:j])
		default:
			rc.serveOther(names[i], batch[i])
		}
		i = j
	}
}

func wrongArgs(name string) string {
	return fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(name))
}

// parseWrite turns a write command into a log command, or returns the
// error reply.
func parseWrite(name string, args [][]byte, now time.Time) (*command, string) {
	n := len(args)
	switch name {
	case "SET":
		if n < 3 {
			return nil, wrongArgs(name)
		}
		c := &command{Op: opSet, Key: args[1], Val: args[2]}
		for i := 3; i < n; i++ {
			switch opt := strings.ToUpper(string(args[i])); opt {
			case "NX", "XX":
				flag := byte(setNX)
				if opt == "XX" {
					flag = setXX
				}
				if c.Flags != 0 {
					return nil, "ERR syntax error"
				}
				c.Flags = flag
			case "EX", "PX":
				if c.Exp != 0 || i+1 >= n {
					return nil, "ERR syntax error"
				}
				i++
				v, err := strconv.ParseInt(string(args[i]), 10, 64)
				if err != nil {
					return nil, "ERR value is not an integer or out of range"
				}
				unit := int64(1)
				if opt == "EX" {
					unit = 1000
				}
				if v <= 0 || v > (1<<62)/unit {
					return nil, "ERR invalid expire time in 'set' command"
				}
				c.Exp = now.UnixMilli() + v*unit
			default:
				return nil, "ERR syntax error"
			}
		}
		return c, ""
	case "DEL":
		if n < 2 {
			return nil, wrongArgs(name)
		}
		return &command{Op: opDel, Keys: args[1:]}, ""
	case "INCR", "DECR":
		if n != 2 {
			return nil, wrongArgs(name)
		}
		d := int64(1)
		if name == "DECR" {
			d = -1
		}
		return &command{Op: opIncrBy, Key: args[1], Delta: d}, ""
	case "INCRBY", "DECRBY":
		if n != 3 {
			return nil, wrongArgs(name)
		}
		d, err := strconv.ParseInt(string(args[2]), 10, 64)
		if err != nil || (name == "DECRBY" && d == -1<<63) {
			return nil, "ERR value is not an integer or out of range"
		}
		if name == "DECRBY" {
			d = -d
		}
		return &command{Op: opIncrBy, Key: args[1], Delta: d}, ""
	case "MSET":
		if n < 3 || n%2 != 1 {
			return nil, wrongArgs(name)
		}
		c := &command{Op: opMSet}
		for i := 1; i < n; i += 2 {
			c.Keys = append(c.Keys, args[i])
			c.Vals = append(c.Vals, args[i+1])
		}
		return c, ""
	}
	return nil, "ERR unknown write"
}

// serveWrites proposes the valid writes of a pipelined run together and
// answers each in order.
func (rc *respConn) serveWrites(names []string, batch [][][]byte) {
	now := time.Now()
	errs := make([]string, len(batch))
	var cmds []*command
	for i, args := range batch {
		c, e := parseWrite(names[i], args, now)
		errs[i] = e
		if c != nil {
			cmds = append(cmds, c)
		}
	}
	var res []*result
	var werr error
	if len(cmds) > 0 {
		res, werr = rc.s.write(rc.s.base, cmds)
	}
	k := 0
	for i := range batch {
		if errs[i] != "" {
			rc.w.err(errs[i])
			continue
		}
		if werr != nil {
			rc.s.metrics.errors.Add(1)
			rc.w.err(werr.Error())
			continue
		}
		r := res[k]
		k++
		rc.lastWrite = max(rc.lastWrite, r.Index)
		switch r.Kind {
		case resOK:
			rc.w.simple("OK")
		case resNil:
			rc.w.null()
		case resInt:
			rc.w.int(r.Int)
		case resBulk:
			rc.w.bulk(r.Bulk)
		default:
			rc.w.err(r.Err)
		}
	}
}

func (rc *respConn) readLevel() string {
	if rc.readOnly {
		return readStale
	}
	return readLinearizable
}

// serveReads answers a pipelined run of reads behind one read barrier:
// the barrier starts after all of them arrived, so each is linearizable.
func (rc *respConn) serveReads(names []string, batch [][][]byte) {
	berr := rc.s.readBarrier(rc.s.base, rc.readLevel())
	now := time.Now().UnixMilli()
	kv := rc.s.kv
	for i, args := range batch {
		n := len(args)
		name := names[i]
		if berr != nil {
			rc.s.metrics.errors.Add(1)
			rc.w.err(berr.Error())
			continue
		}
		switch name {
		case "GET":
			if n != 2 {
				rc.w.err(wrongArgs(name))
				continue
			}
			if v, _, ok := kv.get(args[1], now); ok {
				rc.w.bulk(v)
			} else {
				rc.w.null()
			}
		case "MGET":
			if n < 2 {
				rc.w.err(wrongArgs(name))
				continue
			}
			rc.w.array(n - 1)
			for _, k := range args[1:] {
				if v, _, ok := kv.get(k, now); ok {
					rc.w.bulk(v)
				} else {
					rc.w.null()
				}
			}
		case "EXISTS":
			if n < 2 {
				rc.w.err(wrongArgs(name))
				continue
			}
			var c int64
			for _, k := range args[1:] {
				if _, _, ok := kv.get(k, now); ok {
					c++
				}
			}
			rc.w.int(c)
		case "DBSIZE":
			if n != 1 {
				rc.w.err(wrongArgs(name))
				continue
			}
			rc.w.int(int64(kv.count(now)))
		case "KEYS":
			if n != 2 {
				rc.w.err(wrongArgs(name))
				continue
			}
			keys := kv.keys(string(args[1]), now, 1<<20)
			rc.w.array(len(keys))
			for _, k := range keys {
				rc.w.bulk([]byte(k))
			}
		}
	}
}

func (rc *respConn) serveOther(name string, args [][]byte) {
	n := len(args)
	s := rc.s
	switch name {
	case "PING":
		switch n {
		case 1:
			rc.w.simple("PONG")
		case 2:
			rc.w.bulk(args[1])
		default:
			rc.w.err(wrongArgs(name))
		}
	case "ECHO":
		if n != 2 {
			rc.w.err(wrongArgs(name))
			return
		}
		rc.w.bulk(args[1])
	case "QUIT":
		rc.w.simple("OK")
		rc.quit = true
	case "AUTH":
		if n != 2 && n != 3 {
			rc.w.err(wrongArgs(name))
			return
		}
		if s.cfg.Auth == "" {
			rc.w.err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
			return
		}
		remote := remoteOf(rc.c)
		switch {
		case !s.authLimit.allow(remote):
			// The password is not even checked.
			s.metrics.authThrottled.Add(1)
			rc.w.err("ERR too many failed authentication attempts from this address; try again later")
		case subtle.ConstantTimeCompare(args[n-1], []byte(s.cfg.Auth)) == 1 && (n == 2 || string(args[1]) == "default"):
			rc.authed = true
			rc.w.simple("OK")
			return
		default:
			s.authLimit.fail(remote)
			s.metrics.authFailures.Add(1)
			rc.w.err("WRONGPASS invalid username-password pair or user is disabled.")
		}
		rc.authFails++
		if rc.authFails >= 10 {
			rc.quit = true // a password guesser gets a new connection every 10 tries
		}
	case "READONLY":
		rc.readOnly = true
		rc.w.simple("OK")
	case "READWRITE":
		rc.readOnly = false
		rc.w.simple("OK")
	case "SELECT":
		if n == 2 && string(args[1]) == "0" {
			rc.w.simple("OK")
		} else {
			rc.w.err("ERR DB index is out of range")
		}
	case "INFO":
		rc.w.bulk([]byte(s.info()))
	case "WAIT":
		if n != 3 {
			rc.w.err(wrongArgs(name))
			return
		}
		want, err1 := strconv.ParseInt(string(args[1]), 10, 64)
		ms, err2 := strconv.ParseInt(string(args[2]), 10, 64)
		if err1 != nil || err2 != nil || ms < 0 {
			rc.w.err("ERR timeout is negative or not an integer")
			return
		}
		rc.w.int(s.waitReplicas(s.base, rc.lastWrite, want, time.Duration(ms)*time.Millisecond))
	case "CONFIG", "COMMAND":
		rc.w.array(0) // clients probe these on connect; nothing to report
	case "CLIENT":
		rc.w.simple("OK")
	default:
		var b strings.Builder
		fmt.Fprintf(&b, "ERR unknown command '%s', with args beginning with: ", printableArg(args[0]))
		for _, a := range args[1:min(n, 4)] {
			fmt.Fprintf(&b, "'%s' ", printableArg(a))
		}
		rc.w.err(b.String())
	}
}

func printableArg(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 32 || r == 127 || r == '\'' {
			return '?'
		}
		return r
	}, string(b))
}

// info renders INFO: server, raft and keyspace sections.
func (s *server) info() string {
	ctx, cancel := context.WithTimeout(s.base, time.Second)
	defer cancel()
	var b strings.Builder
	b.WriteString("# Server\r\nredis_version:7.0.0\r\nkeel_kvstore:1\r\nredis_mode:cluster-raft\r\n")
	fmt.Fprintf(&b, "tcp_port:%s\r\n", portOf(s.respLn.Addr()))
	b.WriteString("\r\n# Raft\r\n")
	st, err := s.status(ctx)
	if err != nil {
		fmt.Fprintf(&b, "raft_error:%v\r\n", err)
	} else {
		fmt.Fprintf(&b, "raft_id:%d\r\nraft_role:%s\r\nraft_term:%d\r\nraft_leader:%d\r\nraft_commit:%d\r\nraft_applied:%d\r\n",
			st.ID, roleName(st.Role), st.Term, st.Leader, st.Commit, st.Applied)
		fmt.Fprintf(&b, "raft_members:%s\r\nraft_learners:%s\r\n", joinIDs(st.Voters), joinIDs(st.Learners))
		if ni, ok := st.Nodes[st.Leader]; ok {
			fmt.Fprintf(&b, "raft_leader_resp:%s\r\nraft_leader_http:%s\r\n", ni.RESP, ni.HTTP)
		}
	}
	fmt.Fprintf(&b, "\r\n# Keyspace\r\ndb0:keys=%d,expires=0\r\n", s.kv.count(time.Now().UnixMilli()))
	return b.String()
}

func roleName(r string) string {
	return strings.ToLower(strings.TrimPrefix(r, "State"))
}

func joinIDs(ids []uint64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ",")
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}
