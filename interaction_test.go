package raft

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Scripted protocol scenarios.
//
// Every testdata/*.txt file is a script of commands, each followed by the
// output it produced when the script was recorded:
//
//	# a comment: lines starting with '#' explain the scenario
//	campaign 1
//	----
//	1 campaigns: StatePreCandidate term=1
//
// A block is a command line, a "----" line and the recorded output, up to
// the next blank line (the output itself never contains a blank line). A
// command written without "----" has no recorded output yet.
//
// TestInteraction runs every script on a fresh scenEnv (interaction_env_test.go)
// and compares each command's output with the recording. With -update
//
//	go test -run TestInteraction -update
//
// it rewrites the recordings instead; review the diff before committing it.
//
// Commands (IDs are node IDs; nothing happens unless a command does it):
//
//	add-nodes N [opt=v...]   bootstrap voters 1..N; options: prevote,
//	                         checkquorum, forwarding, step-down-on-removal
//	                         (true/false), read-only (safe/lease), election,
//	                         heartbeat, max-msg-size, max-inflight,
//	                         max-uncommitted (numbers)
//	campaign ID              start an election (pre-vote first if enabled)
//	propose ID DATA          propose DATA at ID
//	tick ID [N], tick-all [N]  tick N times, printing timers that fired
//	process-ready ID...      print one Ready of each node and carry it out
//	deliver [FROM->TO]       step queued messages ("*" matches any node)
//	drop [FROM->TO]          discard queued messages
//	send FROM->TO TYPE [term=N logterm=N index=N commit=N hint=N reject=true]
//	                         queue a hand-made message
//	partition A.. | B.. [| C..], isolate ID, heal   cut and restore links
//	stabilize                handle Readies and deliver until quiet
//	status [ID...], raft-log [ID...]   print state and logs
//	crash ID, restart ID [opt=v...]    lose a node's memory, restart it
//	                         from its storage (options as in add-nodes)
//
// interaction_ext_test.go adds the commands for leadership transfer, reads,
// snapshots and membership changes (elect, transfer-leader, read-index,
// snapshot, report-snapshot, report-unreachable, propose-conf-change,
// leave-joint, add-node, delay, duplicate, release).

func init() {
	// Another test file of the package may define the same flag; share it.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the recorded outputs of the testdata/*.txt scenarios")
	}
}

// scenUpdating reports whether -update was given.
func scenUpdating() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	b, _ := g.Get().(bool)
	return b
}

// scenItem is one element of a script: a raw line (comment or blank) when
// cmd is empty, otherwise a command with its recorded output.
type scenItem struct {
	raw  string
	cmd  string
	line int // 1-based line number of cmd in the file
	// recorded reports whether the script holds an output for cmd ("----").
	recorded bool
	want     string
	got      string
}

// scenParse splits a script into items. It fails on a "----" without a
// command above it.
func scenParse(text string) ([]scenItem, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	var items []scenItem
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimSpace(l)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			items = append(items, scenItem{raw: l})
			continue
		case trimmed == "----":
			return nil, fmt.Errorf("line %d: \"----\" without a command", i+1)
		}
		it := scenItem{cmd: trimmed, line: i + 1}
		if i+1 < len(lines) && strings.TrimSpace(lines[i+1]) == "----" {
			it.recorded = true
			i++
			var out []string
			for i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != "" {
				i++
				out = append(out, strings.TrimRight(lines[i], " \t"))
			}
			it.want = strings.Join(out, "\n")
		}
		items = append(items, it)
	}
	return items, nil
}

// scenRender writes the items back as a script, with each command's actual
// output as its recording and a blank line after every block.
func scenRender(items []scenItem) string {
	var b strings.Builder
	for i, it := range items {
		if it.cmd == "" {
			b.WriteString(it.raw)
			b.WriteByte('\n')
			continue
		}
		b.WriteString(it.cmd)
		b.WriteString("\n----\n")
		if it.got != "" {
			b.WriteString(it.got)
			b.WriteByte('\n')
		}
		if i+1 < len(items) && (items[i+1].cmd != "" || strings.TrimSpace(items[i+1].raw) != "") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// scenDiff returns a line diff of want and got: "-" lines only in want, "+"
// lines only in got, " " lines in both.
func scenDiff(want, got string) string {
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	// lcs[i][j] is the length of the longest common subsequence of a[i:]
	// and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			fmt.Fprintf(&out, "  %s\n", a[i])
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&out, "- %s\n", a[i])
			i++
		default:
			fmt.Fprintf(&out, "+ %s\n", b[j])
			j++
		}
	}
	return out.String()
}

func TestInteraction(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no scenario scripts in testdata")
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			scenRunFile(t, file)
		})
	}
}

// scenRunFile runs one script, reporting every output that differs from its
// recording (or rewriting the recordings with -update).
func scenRunFile(t testing.TB, file string) {
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	items, err := scenParse(string(data))
	require.NoError(t, err, "%s", file)
	env := newScenEnv(t)
	update := scenUpdating()
	for i := range items {
		it := &items[i]
		if it.cmd == "" {
			continue
		}
		out, err := env.run(it.cmd)
		if err != nil {
			t.Fatalf("%s:%d: %q: %v", file, it.line, it.cmd, err)
		}
		it.got = strings.TrimRight(out, "\n")
		switch {
		case update:
		case !it.recorded:
			t.Errorf("%s:%d: %q has no recorded output; run go test -run TestInteraction -update", file, it.line, it.cmd)
		case it.got != it.want:
			t.Errorf("%s:%d: output of %q differs from the recording (-recorded +actual):\n%s",
				file, it.line, it.cmd, scenDiff(it.want, it.got))
		}
	}
	if update {
		if rendered := scenRender(items); rendered != string(data) {
			require.NoError(t, os.WriteFile(file, []byte(rendered), 0o644))
		}
	}
}

func TestInteractionScriptFormat(t *testing.T) {
	tests := []struct {
		name   string
		script string
		// cmds lists each command with its recorded output ("!" prefix:
		// not recorded).
		cmds []string
		// rendered is scenRender's output when every command outputs
		// "out:" + the command.
		rendered string
	}{
		{
			name:     "recorded blocks and comments",
			script:   "# c\ncmd a\n----\nx\ny\n\ncmd b\n----\n\n# end\n",
			cmds:     []string{"cmd a=x\ny", "cmd b="},
			rendered: "# c\ncmd a\n----\nout:cmd a\n\ncmd b\n----\nout:cmd b\n\n# end\n",
		},
		{
			name:     "commands without recordings",
			script:   "cmd a\ncmd b\n# tail\n",
			cmds:     []string{"!cmd a", "!cmd b"},
			rendered: "cmd a\n----\nout:cmd a\n\ncmd b\n----\nout:cmd b\n\n# tail\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := scenParse(tt.script)
			require.NoError(t, err)
			var cmds []string
			for i := range items {
				it := &items[i]
				if it.cmd == "" {
					continue
				}
				if it.recorded {
					cmds = append(cmds, it.cmd+"="+it.want)
				} else {
					cmds = append(cmds, "!"+it.cmd)
				}
				it.got = "out:" + it.cmd
			}
			require.Equal(t, tt.cmds, cmds)
			rendered := scenRender(items)
			require.Equal(t, tt.rendered, rendered)
			// Rendering is a fixed point: parse and render again.
			again, err := scenParse(rendered)
			require.NoError(t, err)
			for i := range again {
				again[i].got = again[i].want
			}
			require.Equal(t, rendered, scenRender(again))
		})
	}
	_, err := scenParse("----\nx\n")
	require.Error(t, err, "a separator without a command must be rejected")
	require.Equal(t, "  a\n- b\n+ c\n  d\n", scenDiff("a\nb\nd", "a\nc\nd"))
}

func TestInteractionDurableCheck(t *testing.T) {
	tests := []struct {
		name    string
		durable HardState
		last    uint64
		msg     Message
		wantErr bool
	}{
		{"grant with the vote durable", HardState{Term: 2, Vote: 1}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, false},
		{"grant before the term is durable", HardState{Term: 1}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, true},
		{"grant while another vote is durable", HardState{Term: 2, Vote: 3}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, true},
		{"grant overtaken by a later durable term", HardState{Term: 3, Vote: 3}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2}, false},
		{"refusal promises nothing", HardState{Term: 1}, 1,
			Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2, Reject: true}, false},
		{"request with the own vote durable", HardState{Term: 2, Vote: 1}, 1,
			Message{Type: MsgVote, From: 1, To: 2, Term: 2}, false},
		{"request before the own vote is durable", HardState{Term: 1}, 1,
			Message{Type: MsgVote, From: 1, To: 2, Term: 2}, true},
		{"ack of a durable index", HardState{Term: 2}, 3,
			Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 3}, false},
		{"ack beyond the durable log", HardState{Term: 2}, 2,
			Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemoryStorage()
			require.NoError(t, s.SetHardState(tt.durable))
			for i := uint64(1); i <= tt.last; i++ {
				require.NoError(t, s.Append([]Entry{{Term: 1, Index: i}}))
			}
			err := scenCheckDurable(s, tt.msg)
			if tt.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
		})
	}
}
