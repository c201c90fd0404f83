package raft

import (
	"fmt"
	"strconv"
	"strings"
)

// The network commands of the scripted scenarios: deliver, drop, send,
// partition and isolate. Messages wait in the cluster's queue until a
// command moves them; a cut link drops them at delivery.

// parseLink parses FROM->TO; "*" on either side (returned as 0)
// matches any node.
func (e *scenEnv) parseLink(arg string) (from, to uint64, err error) {
	a, b, ok := strings.Cut(arg, "->")
	if !ok {
		return 0, 0, fmt.Errorf("bad link %q, want FROM->TO", arg)
	}
	parse := func(s string) (uint64, error) {
		if s == "*" {
			return 0, nil
		}
		n, err := e.node(s)
		if err != nil {
			return 0, err
		}
		return n.id, nil
	}
	if from, err = parse(a); err != nil {
		return 0, 0, err
	}
	to, err = parse(b)
	return from, to, err
}

// takeQueued removes and returns the queued messages on the links matching
// args (no argument or one FROM->TO), keeping the others in order.
func (e *scenEnv) takeQueued(args []string) ([]Message, error) {
	var from, to uint64
	switch len(args) {
	case 0:
	case 1:
		var err error
		if from, to, err = e.parseLink(args[0]); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("want at most one FROM->TO argument")
	}
	var taken, kept []Message
	for _, m := range e.c.queue {
		if (from == None || m.From == from) && (to == None || m.To == to) {
			taken = append(taken, m)
		} else {
			kept = append(kept, m)
		}
	}
	e.c.queue = kept
	return taken, nil
}

// cmdDeliver: deliver [FROM->TO] steps the queued messages into their
// recipients, in send order. Messages on a cut link or to a node that is
// down are lost.
func (e *scenEnv) cmdDeliver(args []string) error {
	msgs, err := e.takeQueued(args)
	if err != nil {
		return err
	}
	e.deliver(msgs, "")
	return nil
}

func (e *scenEnv) deliver(msgs []Message, indent string) {
	if len(msgs) == 0 {
		e.printf("%sno messages\n", indent)
		return
	}
	for _, m := range msgs {
		e.printf("%s%s", indent, scenFormatMessage(m))
		n := e.c.nodes[m.To]
		switch {
		case e.c.cut[[2]uint64{m.From, m.To}]:
			e.printf("  [dropped: link cut]\n")
		case n == nil || n.rn == nil:
			e.printf("  [dropped: %d is down]\n", m.To)
		default:
			if err := n.rn.Step(m); err != nil {
				e.printf("  [error: %v]", err)
			}
			e.printf("\n")
		}
	}
}

// cmdDrop: drop [FROM->TO] discards queued messages.
func (e *scenEnv) cmdDrop(args []string) error {
	msgs, err := e.takeQueued(args)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		e.printf("no messages\n")
	}
	for _, m := range msgs {
		e.printf("dropped %s\n", scenFormatMessage(m))
	}
	return nil
}

// cmdSend: send FROM->TO TYPE [term=N] [logterm=N] [index=N] [commit=N]
// [hint=N] [reject=true] queues a hand-made message, as if FROM had sent it
// (for instance a message delayed from an earlier term).
func (e *scenEnv) cmdSend(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: send FROM->TO TYPE [field=value...]")
	}
	from, to, err := e.parseLink(args[0])
	if err != nil || from == None || to == None {
		return fmt.Errorf("bad link %q", args[0])
	}
	m := Message{From: from, To: to, Type: numMessageTypes}
	for t, name := range messageTypeNames {
		if name == args[1] {
			m.Type = MessageType(t)
		}
	}
	if m.Type == numMessageTypes {
		return fmt.Errorf("unknown message type %q", args[1])
	}
	for _, kv := range args[2:] {
		k, v, _ := strings.Cut(kv, "=")
		if k == "reject" {
			m.Reject = v == "true"
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("bad field %q", kv)
		}
		switch k {
		case "term":
			m.Term = n
		case "logterm":
			m.LogTerm = n
		case "index":
			m.Index = n
		case "commit":
			m.Commit = n
		case "hint":
			m.RejectHint = n
		default:
			return fmt.Errorf("unknown field %q", kv)
		}
	}
	e.c.queue = append(e.c.queue, m)
	e.printf("queued %s\n", scenFormatMessage(m))
	return nil
}

// cmdPartition: partition 1 | 2 3 cuts every link between nodes of
// different groups; a node in no group is cut off from all groups.
func (e *scenEnv) cmdPartition(args []string) error {
	group := map[uint64]int{}
	g := 0
	for _, a := range args {
		if a == "|" {
			g++
			continue
		}
		n, err := e.node(a)
		if err != nil {
			return err
		}
		group[n.id] = g
	}
	if g == 0 {
		return fmt.Errorf("usage: partition IDS | IDS [| IDS...]")
	}
	for _, a := range e.c.ids {
		for _, b := range e.c.ids {
			ga, oka := group[a]
			gb, okb := group[b]
			if a != b && (!oka || !okb || ga != gb) {
				e.c.cut[[2]uint64{a, b}] = true
			}
		}
	}
	e.printCut()
	return nil
}

// cmdIsolate cuts every link to and from id.
func (e *scenEnv) cmdIsolate(id uint64) {
	e.c.isolate(id)
	e.printCut()
}

// printCut lists the cut links, sorted.
func (e *scenEnv) printCut() {
	var links []string
	for _, a := range e.c.ids {
		for _, b := range e.c.ids {
			if a < b && e.c.cut[[2]uint64{a, b}] && e.c.cut[[2]uint64{b, a}] {
				links = append(links, fmt.Sprintf("%d<->%d", a, b))
			} else if e.c.cut[[2]uint64{a, b}] && !e.c.cut[[2]uint64{b, a}] {
				links = append(links, fmt.Sprintf("%d->%d", a, b))
			}
		}
	}
	e.printf("cut: %s\n", strings.Join(links, " "))
}
