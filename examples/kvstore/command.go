package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Commands are encoded into log entries in a small binary format:
//
//	version(1) op(1) now(uvarint, ms since the epoch, chosen by the proposer) fields...
//
// Byte strings are a uvarint length then the bytes. Every length is checked
// against what remains of the entry before anything is allocated.
const cmdVersion = 1

type cmdOp byte

const (
	opSet    cmdOp = iota + 1 // Key, Val, Exp, Flags
	opDel                     // Keys
	opIncrBy                  // Key, Delta
	opMSet                    // Keys, Vals
	opExpire                  // deletes every key whose expiry is before Now
	opNode                    // ID, HTTP, RESP: a node announces its client addresses
	// Op 7 recorded a node's raft address before the raft configuration
	// carried them (raft.ConfState.Addresses); an old entry of it no
	// longer decodes, and applies as an error that changes nothing.
)

// isClientOp reports whether op is a write that clients ask for. The other
// ops (node addresses, expiry sweeps) are internal: a node proposes them
// itself, or has the leader append them over the authenticated raft
// transport, never through a client endpoint.
func (o cmdOp) isClientOp() bool {
	switch o {
	case opSet, opDel, opIncrBy, opMSet:
		return true
	}
	return false
}

// maxCommandOverhead is the room a write command needs in a log entry
// besides its largest value: the command's own fields (about 40 bytes for
// a SET) and a key. --max-bulk defaults to the largest entry less this,
// and may not exceed it.
const maxCommandOverhead = 64 << 10

// tooLargePrefix opens the error of a command that does not fit in a log
// entry; the HTTP API answers it with 413.
const tooLargePrefix = "ERR command too large"

// Flags of opSet.
const (
	setNX = 1 << iota
	setXX
)

// command is a write: what a client asked for, with the wall-clock time the
// proposer read. Apply uses Now, not its own clock, to decide whether a key
// has expired, so that every replica decides the same way.
type command struct {
	Op    cmdOp
	Now   int64 // ms since the epoch, at the proposer
	Key   []byte
	Val   []byte
	Exp   int64 // absolute expiry (ms since the epoch); 0 for none
	Flags byte
	Delta int64
	Keys  [][]byte
	Vals  [][]byte
	ID    uint64
	Addrs []string // opNode: HTTP, RESP
}

var errBadCommand = errors.New("kvstore: malformed command")

func putBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (c *command) encode() []byte {
	b := []byte{cmdVersion, byte(c.Op)}
	b = binary.AppendVarint(b, c.Now)
	switch c.Op {
	case opSet:
		b = append(b, c.Flags)
		b = binary.AppendVarint(b, c.Exp)
		b = putBytes(b, c.Key)
		b = putBytes(b, c.Val)
	case opDel:
		b = binary.AppendUvarint(b, uint64(len(c.Keys)))
		for _, k := range c.Keys {
			b = putBytes(b, k)
		}
	case opIncrBy:
		b = putBytes(b, c.Key)
		b = binary.AppendVarint(b, c.Delta)
	case opMSet:
		b = binary.AppendUvarint(b, uint64(len(c.Keys)))
		for i, k := range c.Keys {
			b = putBytes(b, k)
			b = putBytes(b, c.Vals[i])
		}
	case opExpire:
	case opNode:
		b = binary.AppendUvarint(b, c.ID)
		b = binary.AppendUvarint(b, uint64(len(c.Addrs)))
		for _, a := range c.Addrs {
			b = putBytes(b, []byte(a))
		}
	}
	return b
}

// decoder reads the fields of an encoded command; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errBadCommand
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a copy, so that the command does not keep the entry's Data.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := append([]byte{}, d.b[:n]...)
	d.b = d.b[n:]
	return v
}

// count reads an element count; each element takes at least one byte, so
// a count beyond the remaining bytes is malformed.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func decodeCommand(data []byte) (*command, error) {
	d := &decoder{b: data}
	if v := d.byte(); v != cmdVersion {
		return nil, fmt.Errorf("%w: version %d", errBadCommand, v)
	}
	c := &command{Op: cmdOp(d.byte()), Now: d.varint()}
	switch c.Op {
	case opSet:
		c.Flags = d.byte()
		c.Exp = d.varint()
		c.Key = d.bytes()
		c.Val = d.bytes()
	case opDel:
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			c.Keys = append(c.Keys, d.bytes())
		}
	case opIncrBy:
		c.Key = d.bytes()
		c.Delta = d.varint()
	case opMSet:
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			c.Keys = append(c.Keys, d.bytes())
			c.Vals = append(c.Vals, d.bytes())
		}
	case opExpire:
	case opNode:
		c.ID = d.uvarint()
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			c.Addrs = append(c.Addrs, string(d.bytes()))
		}
	default:
		return nil, fmt.Errorf("%w: op %d", errBadCommand, c.Op)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadCommand, len(d.b))
	}
	return c, nil
}
