package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/keelraft/raft"
)

// RESP2 limits. A request beyond them is refused with an error before any
// memory is allocated for it, and the connection is closed (a client that
// sends a malformed frame cannot be resynchronised).
const (
	// defaultMaxBulk bounds one bulk string: a SET of a value this long
	// still fits in one log entry, which a Node takes up to
	// raft.DefaultMaxEntrySize bytes.
	defaultMaxBulk   = raft.DefaultMaxEntrySize - maxCommandOverhead
	defaultMaxArgs   = 1 << 16  // elements of one command array
	defaultMaxInline = 64 << 10 // bytes of one inline command or header line

	// Before AUTH a connection may send one command of at most
	// preAuthMaxRequest bytes of arguments (enough for AUTH) and
	// preAuthMaxArgs arguments, read through a buffer of that size.
	preAuthMaxRequest = 4 << 10
	preAuthMaxArgs    = 8
	respBufferSize    = 16 << 10 // the read buffer once authenticated
)

// errProtocol is wrapped by every error respReader returns for malformed
// input (as opposed to I/O errors).
var errProtocol = errors.New("protocol error")

// respReader reads RESP2 commands: arrays of bulk strings, as clients send
// them, or inline commands (a line of space-separated words) as typed into
// telnet. It is not safe for concurrent use.
type respReader struct {
	r         *bufio.Reader
	maxBulk   int64
	maxArgs   int64
	maxInline int
	// maxTotal bounds the bytes of all arguments of one command.
	maxTotal int64
}

func newRESPReader(r io.Reader, maxBulk int64) *respReader {
	p := &respReader{r: bufio.NewReaderSize(r, respBufferSize)}
	p.setLimits(maxBulk)
	return p
}

// newPreAuthRESPReader returns a reader for a client that has not
// authenticated: it takes small requests only, until unlock.
func newPreAuthRESPReader(r io.Reader) *respReader {
	return &respReader{
		r: bufio.NewReaderSize(r, preAuthMaxRequest), maxBulk: preAuthMaxRequest, maxArgs: preAuthMaxArgs,
		maxInline: preAuthMaxRequest, maxTotal: preAuthMaxRequest,
	}
}

// unlock lifts the limits of a pre-authentication reader to those of an
// authenticated client; what it has buffered is kept.
func (p *respReader) unlock(maxBulk int64) {
	p.r = bufio.NewReaderSize(p.r, respBufferSize)
	p.setLimits(maxBulk)
}

func (p *respReader) setLimits(maxBulk int64) {
	if maxBulk <= 0 {
		maxBulk = defaultMaxBulk
	}
	p.maxBulk, p.maxArgs, p.maxInline, p.maxTotal = maxBulk, defaultMaxArgs, defaultMaxInline, 2*maxBulk
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...)
}

// readLine returns one CRLF-terminated line without its terminator, at most
// maxInline bytes long. The slice is valid until the next read.
func (p *respReader) readLine() ([]byte, error) {
	line, err := p.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Longer than the buffer: collect up to maxInline.
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > p.maxInline {
				return nil, protoErr("too big inline request")
			}
			line, err = p.r.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) > p.maxInline+2 {
		return nil, protoErr("too big inline request")
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, protoErr("line not terminated by CRLF")
	}
	return line[:len(line)-2], nil
}

// parseLen parses the length of a '*' or '$' header: -1 or a non-negative
// decimal without sign or leading zeros issues.
func parseLen(b []byte, max int64, what string) (int64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, protoErr("invalid %s length", what)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < -1 {
		return 0, protoErr("invalid %s length", what)
	}
	if n > max {
		return 0, protoErr("invalid %s length %d (limit %d)", what, n, max)
	}
	return n, nil
}

// Buffered reports whether a whole or partial next command is already
// buffered, so that a pipelining client's commands can be grouped.
func (p *respReader) Buffered() int { return p.r.Buffered() }

// ReadCommand reads one command and returns its arguments (nil for an
// empty inline line or a null array, which callers skip). Errors wrapping
// errProtocol mean malformed input; others are I/O errors.
func (p *respReader) ReadCommand() ([][]byte, error) {
	first, err := p.r.Peek(1)
	if err != nil {
		return nil, err
	}
	if first[0] != '*' {
		return p.readInline()
	}
	line, err := p.readLine()
	if err != nil {
		return nil, err
	}
	n, err := parseLen(line[1:], p.maxArgs, "multibulk")
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	args := make([][]byte, 0, min(n, 64))
	var total int64
	for i := int64(0); i < n; i++ {
		arg, err := p.readBulk(p.maxTotal - total)
		if err != nil {
			return nil, err
		}
		total += int64(len(arg))
		args = append(args, arg)
	}
	return args, nil
}

// readBulk reads one "$len\r\ndata\r\n" element of at most limit bytes. It
// grows the buffer as data arrives rather than allocating len up front, so
// that a client announcing a huge length and sending nothing holds no
// memory.
func (p *respReader) readBulk(limit int64) ([]byte, error) {
	line, err := p.readLine()
	if err != nil {
		return nil, err
	}
	if len(line) == 0 || line[0] != '$' {
		return nil, protoErr("expected '$', got '%s'", printable(line))
	}
	n, err := parseLen(line[1:], min(p.maxBulk, limit), "bulk")
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, protoErr("null bulk string in a command")
	}
	var buf bytes.Buffer
	buf.Grow(int(min(n+2, 64<<10)))
	if _, err := io.CopyN(&buf, p.r, n+2); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b := buf.Bytes()
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, protoErr("bulk string not terminated by CRLF")
	}
	return b[:n:n], nil
}

func (p *respReader) readInline() ([][]byte, error) {
	line, err := p.readLine()
	if err != nil {
		return nil, err
	}
	fields := bytes.Fields(line)
	if len(fields) == 0 {
		return nil, nil
	}
	args := make([][]byte, len(fields))
	for i, f := range fields {
		args[i] = append([]byte(nil), f...)
	}
	return args, nil
}

func printable(b []byte) string {
	if len(b) > 32 {
		b = b[:32]
	}
	return strconv.Quote(string(b))
}

// respWriter writes RESP2 replies into a buffer that the connection
// flushes once per batch of pipelined commands.
type respWriter struct {
	w *bufio.Writer
}

func (w respWriter) simple(s string) { w.w.WriteString("+" + s + "\r\n") }

// err writes an error reply; msg starts with its code ("ERR ...",
// "WRONGTYPE ..."), and any CR or LF in it is replaced.
func (w respWriter) err(msg string) {
	msg = string(bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, []byte(msg)))
	w.w.WriteString("-" + msg + "\r\n")
}

func (w respWriter) int(n int64) {
	w.w.WriteByte(':')
	w.w.WriteString(strconv.FormatInt(n, 10))
	w.w.WriteString("\r\n")
}

func (w respWriter) bulk(b []byte) {
	w.w.WriteByte('$')
	w.w.WriteString(strconv.Itoa(len(b)))
	w.w.WriteString("\r\n")
	w.w.Write(b)
	w.w.WriteString("\r\n")
}

func (w respWriter) null() { w.w.WriteString("$-1\r\n") }

func (w respWriter) array(n int) {
	w.w.WriteByte('*')
	w.w.WriteString(strconv.Itoa(n))
	w.w.WriteString("\r\n")
}
