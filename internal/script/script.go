package script

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// UpdateFlag is the name of the flag that makes RunFile rewrite recordings.
const UpdateFlag = "update"

func init() {
	// A test file of the importing package may define the same flag;
	// share it rather than panic on the second definition.
	if flag.Lookup(UpdateFlag) == nil {
		flag.Bool(UpdateFlag, false, "rewrite the recorded outputs of scripted scenarios")
	}
}

// Updating reports whether the -update flag is set.
func Updating() bool {
	f := flag.Lookup(UpdateFlag)
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

// Command is one command of a script.
type Command struct {
	// Text is the command line with surrounding space trimmed.
	Text string
	// Name is the first word of Text and Args the words after it.
	Name string
	Args []string
	// Line is the 1-based line number of the command in its file.
	Line int
}

// String returns the command line.
func (c Command) String() string { return c.Text }

// Handler carries out one command and returns its output. An error means
// that the command itself is malformed (a bug in the script, not in the
// code under test); it ends the run.
type Handler func(cmd Command) (string, error)

// Block is one element of a script: a raw line (a comment or a blank line)
// when Cmd is nil, otherwise a command with its recorded output.
type Block struct {
	// Raw is the line as written, for a comment or blank line.
	Raw string
	// Cmd is the command, or nil for a raw line.
	Cmd *Command
	// Recorded reports whether the script holds an output for Cmd (a
	// "----" line follows it); Want is that output, without its final
	// newline.
	Recorded bool
	Want     string
	// Got is the output of the latest run, without its final newline;
	// Render writes it as the recording.
	Got string
}

// Parse splits a script into blocks. It fails on a "----" line without a
// command above it.
func Parse(text string) ([]Block, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	var blocks []Block
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimSpace(l)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			blocks = append(blocks, Block{Raw: l})
			continue
		case trimmed == "----":
			return nil, fmt.Errorf("line %d: \"----\" without a command", i+1)
		}
		fields := strings.Fields(trimmed)
		b := Block{Cmd: &Command{Text: trimmed, Name: fields[0], Args: fields[1:], Line: i + 1}}
		if i+1 < len(lines) && strings.TrimSpace(lines[i+1]) == "----" {
			b.Recorded = true
			i++
			var out []string
			for i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != "" {
				i++
				out = append(out, strings.TrimRight(lines[i], " \t"))
			}
			b.Want = strings.Join(out, "\n")
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// Render writes blocks back as a script, with each command's Got as its
// recording and a blank line after every command block that is followed
// by anything but a blank line.
func Render(blocks []Block) string {
	var b strings.Builder
	for i, bl := range blocks {
		if bl.Cmd == nil {
			b.WriteString(bl.Raw)
			b.WriteByte('\n')
			continue
		}
		b.WriteString(bl.Cmd.Text)
		b.WriteString("\n----\n")
		if bl.Got != "" {
			b.WriteString(bl.Got)
			b.WriteByte('\n')
		}
		if i+1 < len(blocks) && (blocks[i+1].Cmd != nil || strings.TrimSpace(blocks[i+1].Raw) != "") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Diff returns a line diff of want and got: lines only in want start with
// "- ", lines only in got with "+ ", lines in both with two spaces.
func Diff(want, got string) string {
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

// RunFile runs the script at path through h and reports, through t, every
// command whose output differs from its recording or has none. With the
// -update flag it rewrites the file with the actual outputs instead. A
// malformed script, or a command h returns an error for, fails t at once.
func RunFile(t testing.TB, path string, h Handler) {
	t.Helper()
	runFile(t, path, h, Updating())
}

func runFile(t testing.TB, path string, h Handler, update bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	blocks, err := Parse(string(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for i := range blocks {
		b := &blocks[i]
		if b.Cmd == nil {
			continue
		}
		out, err := h(*b.Cmd)
		if err != nil {
			t.Fatalf("%s:%d: %q: %v", path, b.Cmd.Line, b.Cmd.Text, err)
		}
		b.Got = strings.TrimRight(out, "\n")
		switch {
		case update:
		case !b.Recorded:
			t.Errorf("%s:%d: %q has no recorded output; run the test with -%s", path, b.Cmd.Line, b.Cmd.Text, UpdateFlag)
		case b.Got != b.Want:
			t.Errorf("%s:%d: output of %q differs from the recording (-recorded +actual):\n%s",
				path, b.Cmd.Line, b.Cmd.Text, Diff(b.Want, b.Got))
		}
	}
	if update {
		if rendered := Render(blocks); rendered != string(data) {
			if err := os.WriteFile(path, []byte(rendered), 0o644); err != nil {
				t.Fatalf("%v", err)
			}
		}
	}
}

// RunDir runs every file matching pattern (a filepath.Glob pattern, such as
// "testdata/*.txt") as a subtest of t named after the file without its
// extension. newHandler returns the handler for one file, on a fresh
// environment. RunDir fails t if no file matches.
func RunDir(t *testing.T, pattern string, newHandler func(t testing.TB) Handler) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if len(files) == 0 {
		t.Fatalf("no script matches %s", pattern)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		t.Run(name, func(t *testing.T) {
			RunFile(t, file, newHandler(t))
		})
	}
}
