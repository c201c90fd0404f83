package script

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseAndRender(t *testing.T) {
	tests := []struct {
		name   string
		script string
		// cmds lists each command with its recorded output ("!" prefix:
		// not recorded).
		cmds []string
		// rendered is Render's output when every command outputs "out:"
		// and the command.
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
			blocks, err := Parse(tt.script)
			if err != nil {
				t.Fatal(err)
			}
			var cmds []string
			for i := range blocks {
				b := &blocks[i]
				if b.Cmd == nil {
					continue
				}
				if b.Recorded {
					cmds = append(cmds, b.Cmd.Text+"="+b.Want)
				} else {
					cmds = append(cmds, "!"+b.Cmd.Text)
				}
				b.Got = "out:" + b.Cmd.Text
			}
			if !reflect.DeepEqual(cmds, tt.cmds) {
				t.Fatalf("commands %q, want %q", cmds, tt.cmds)
			}
			rendered := Render(blocks)
			if rendered != tt.rendered {
				t.Fatalf("rendered %q, want %q", rendered, tt.rendered)
			}
			// Rendering is a fixed point: parse and render again.
			again, err := Parse(rendered)
			if err != nil {
				t.Fatal(err)
			}
			for i := range again {
				again[i].Got = again[i].Want
			}
			if got := Render(again); got != rendered {
				t.Fatalf("rendering again gives %q, want %q", got, rendered)
			}
		})
	}
}

func TestParseSplitsCommandWords(t *testing.T) {
	blocks, err := Parse("\n  propose 1   some-data \n----\nok\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 || blocks[1].Cmd == nil {
		t.Fatalf("blocks %+v, want a blank line and a command", blocks)
	}
	want := Command{Text: "propose 1   some-data", Name: "propose", Args: []string{"1", "some-data"}, Line: 2}
	if got := *blocks[1].Cmd; !reflect.DeepEqual(got, want) {
		t.Fatalf("command %+v, want %+v", got, want)
	}
	if blocks[1].Want != "ok" || !blocks[1].Recorded {
		t.Fatalf("recording %q (recorded %v), want \"ok\"", blocks[1].Want, blocks[1].Recorded)
	}
}

func TestParseRejectsSeparatorWithoutCommand(t *testing.T) {
	if _, err := Parse("----\nx\n"); err == nil {
		t.Fatal("a separator without a command must be rejected")
	}
}

func TestDiff(t *testing.T) {
	if got, want := Diff("a\nb\nd", "a\nc\nd"), "  a\n- b\n+ c\n  d\n"; got != want {
		t.Fatalf("Diff = %q, want %q", got, want)
	}
	if got, want := Diff("a", "a\nb"), "  a\n+ b\n"; got != want {
		t.Fatalf("Diff = %q, want %q", got, want)
	}
}

// errFatal ends a run through recorder at its first fatal failure.
var errFatal = errors.New("fatal")

// recorder is a testing.TB that records failures instead of reporting
// them.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(errFatal)
}

// run runs the script text through h on a recorder, returning the failures
// and the file's content afterwards.
func run(t *testing.T, text string, h Handler, update bool) (failures []string, after string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.txt")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != errFatal {
				panic(p)
			}
		}()
		runFile(rec, path, h, update)
	}()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return rec.errors, string(data)
}

// echo outputs each command's arguments, one a line.
func echo(c Command) (string, error) {
	if c.Name == "bad" {
		return "", errors.New("malformed")
	}
	return strings.Join(c.Args, "\n") + "\n", nil
}

func TestRunFileComparesOutputs(t *testing.T) {
	const text = "# echo\necho a b\n----\na\nb\n\necho c\n----\nx\n\necho d\n"
	failures, after := run(t, text, echo, false)
	if after != text {
		t.Fatalf("the file changed without -update:\n%s", after)
	}
	if len(failures) != 2 {
		t.Fatalf("failures %q, want a mismatch and a missing recording", failures)
	}
	if !strings.Contains(failures[0], ":7:") || !strings.Contains(failures[0], "- x\n+ c") {
		t.Errorf("mismatch reported as %q", failures[0])
	}
	if !strings.Contains(failures[1], ":11:") || !strings.Contains(failures[1], "no recorded output") {
		t.Errorf("missing recording reported as %q", failures[1])
	}
}

func TestRunFileUpdateRewritesRecordings(t *testing.T) {
	const text = "# echo\necho a b\n----\na\nb\n\necho c\n----\nx\n\necho d\n"
	failures, after := run(t, text, echo, true)
	if len(failures) != 0 {
		t.Fatalf("failures %q with -update", failures)
	}
	const want = "# echo\necho a b\n----\na\nb\n\necho c\n----\nc\n\necho d\n----\nd\n"
	if after != want {
		t.Fatalf("rewritten as %q, want %q", after, want)
	}
	// The rewritten file passes.
	if failures, again := run(t, after, echo, false); len(failures) != 0 || again != after {
		t.Fatalf("the rewritten script fails: %q", failures)
	}
}

func TestRunFileStopsAtMalformedCommand(t *testing.T) {
	ran := 0
	h := func(c Command) (string, error) {
		ran++
		return echo(c)
	}
	failures, _ := run(t, "bad 1\n----\n\necho a\n----\na\n", h, false)
	if ran != 1 || len(failures) != 1 || !strings.Contains(failures[0], ":1: \"bad 1\": malformed") {
		t.Fatalf("ran %d commands, failures %q; want one failure at the malformed command", ran, failures)
	}
}

func TestRunDir(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"one.txt": "echo 1\n----\n1\n", "two.txt": "echo 2\n----\n2\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var ran []string
	RunDir(t, filepath.Join(dir, "*.txt"), func(sub testing.TB) Handler {
		ran = append(ran, sub.Name())
		return echo
	})
	if want := []string{t.Name() + "/one", t.Name() + "/two"}; !reflect.DeepEqual(ran, want) {
		t.Fatalf("ran %q, want %q", ran, want)
	}
}

func TestUpdatingFollowsTheFlag(t *testing.T) {
	f := flag.Lookup(UpdateFlag)
	if f == nil {
		t.Fatal("the update flag is not registered")
	}
	old := f.Value.String()
	defer func() { _ = f.Value.Set(old) }()
	if err := f.Value.Set("true"); err != nil {
		t.Fatal(err)
	}
	if !Updating() {
		t.Fatal("Updating() = false with -update")
	}
	if err := f.Value.Set("false"); err != nil {
		t.Fatal(err)
	}
	if Updating() {
		t.Fatal("Updating() = true without -update")
	}
}
