package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRESPReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		maxBulk int64
		want    [][]string // commands read before the end or the error
		wantErr error      // errProtocol, io.EOF or io.ErrUnexpectedEOF
	}{
		{name: "one array", in: "*2\r\n$3\r\nGET\r\n$1\r\na\r\n", want: [][]string{{"GET", "a"}}, wantErr: io.EOF},
		{name: "pipelined", in: "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n", want: [][]string{{"PING"}, {"ECHO", "hi"}}, wantErr: io.EOF},
		{name: "inline", in: "SET  a   b\r\n", want: [][]string{{"SET", "a", "b"}}, wantErr: io.EOF},
		{name: "empty inline skipped", in: "\r\nPING\r\n", want: [][]string{nil, {"PING"}}, wantErr: io.EOF},
		{name: "binary bulk with CRLF inside", in: "*1\r\n$4\r\na\r\nb\r\n", want: [][]string{{"a\r\nb"}}, wantErr: io.EOF},
		{name: "empty bulk", in: "*2\r\n$3\r\nGET\r\n$0\r\n\r\n", want: [][]string{{"GET", ""}}, wantErr: io.EOF},
		{name: "zero-length array skipped", in: "*0\r\n", want: [][]string{nil}, wantErr: io.EOF},
		{name: "2 GiB bulk refused", in: "*2\r\n$3\r\nSET\r\n$2147483648\r\n", wantErr: errProtocol},
		{name: "bulk over the configured max", in: "*1\r\n$11\r\nhello world\r\n", maxBulk: 10, wantErr: errProtocol},
		{name: "bulk at the configured max", in: "*1\r\n$10\r\nhelloworld\r\n", maxBulk: 10, want: [][]string{{"helloworld"}}, wantErr: io.EOF},
		{name: "huge array count refused", in: "*100000000\r\n", wantErr: errProtocol},
		{name: "negative bulk length", in: "*1\r\n$-5\r\n", wantErr: errProtocol},
		{name: "null bulk in command", in: "*1\r\n$-1\r\n", wantErr: errProtocol},
		{name: "bulk length not a number", in: "*1\r\n$x\r\n", wantErr: errProtocol},
		{name: "array length not a number", in: "*abc\r\n", wantErr: errProtocol},
		{name: "integer instead of bulk", in: "*1\r\n:5\r\n", wantErr: errProtocol},
		{name: "bulk without CRLF", in: "*1\r\n$1\r\nabc", wantErr: errProtocol},
		{name: "LF-only line", in: "*1\n", wantErr: errProtocol},
		{name: "truncated bulk", in: "*1\r\n$5\r\nab", wantErr: io.ErrUnexpectedEOF},
		{name: "truncated header", in: "*1\r\n$5", wantErr: io.ErrUnexpectedEOF},
		{name: "huge inline line", in: strings.Repeat("a", defaultMaxInline+10) + "\r\n", wantErr: errProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRESPReader(strings.NewReader(tt.in), tt.maxBulk)
			var got [][]string
			var err error
			for {
				var args [][]byte
				args, err = r.ReadCommand()
				if err != nil {
					break
				}
				var cmd []string
				for _, a := range args {
					cmd = append(cmd, string(a))
				}
				got = append(got, cmd)
			}
			assert.Equal(t, tt.want, got)
			assert.True(t, errors.Is(err, tt.wantErr), "error %v, want %v", err, tt.wantErr)
		})
	}
}

// A client announcing a huge bulk and sending little holds little memory:
// the buffer grows with the data, not with the announced length.
func TestRESPReaderDoesNotPreallocate(t *testing.T) {
	in := "*1\r\n$" + strconv.Itoa(defaultMaxBulk) + "\r\nabc"
	r := newRESPReader(strings.NewReader(in), 0)
	var before, after runtimeMem
	before.read()
	_, err := r.ReadCommand()
	after.read()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Less(t, after.total-before.total, uint64(1<<20), "allocated %d bytes for a 3-byte body", after.total-before.total)
}

func TestRESPWriter(t *testing.T) {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	w := respWriter{bw}
	w.simple("OK")
	w.err("ERR bad\r\nthing")
	w.int(-42)
	w.bulk([]byte("a\r\nb"))
	w.null()
	w.array(2)
	require.NoError(t, bw.Flush())
	assert.Equal(t, "+OK\r\n-ERR bad  thing\r\n:-42\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n", b.String())
}

func FuzzRESPReader(f *testing.F) {
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\na\r\n", "PING\r\n", "*1\r\n$-1\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"$2147483648\r\n", "*-1\r\n", "*1\r\n$1\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newRESPReader(bytes.NewReader(in), 1024)
		var total int
		for i := 0; i < 1000; i++ {
			args, err := r.ReadCommand()
			if err != nil {
				return
			}
			for _, a := range args {
				// Bulks are bounded by maxBulk, inline words by maxInline.
				if len(a) > max(1024, defaultMaxInline) {
					t.Fatalf("argument of %d bytes beyond the limits", len(a))
				}
				total += len(a)
			}
			if total > len(in) {
				t.Fatalf("read %d argument bytes from %d input bytes", total, len(in))
			}
		}
	})
}
