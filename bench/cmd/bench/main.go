// Command bench runs every workload on this library (Keel), etcd raft
// v3.6.0 and v3.7.0 and hashicorp/raft, and prints one table of medians
// with each figure's ratio to this library measured in the same invocation.
//
//	cd bench && go run ./cmd/bench           # full run, a few minutes
//	cd bench && go run ./cmd/bench -quick    # smoke run, well under a minute
//
// Every run is a separate worker process (this binary with -worker, or the
// etcd v3.7 binary built from bench/etcd37, a module of its own because one
// module cannot hold two versions of go.etcd.io/raft/v3). The runs of one
// row are interleaved across libraries, so that a change of background load
// hits all libraries alike.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keelraft/raft/bench/internal/etcd36"
	"github.com/keelraft/raft/bench/internal/harness"
	"github.com/keelraft/raft/bench/internal/hashibench"
	"github.com/keelraft/raft/bench/internal/keelbench"
	"github.com/keelraft/raft/bench/internal/nodebench"
)

// The libraries, in table order; keel first, the reference of every ratio.
const (
	libKeel     = "keel"
	libKeelWAL  = "keel-wal"
	libKeelNode = "keel-node"
	libEtcd36   = "etcd36"
	libEtcd37   = "etcd37"
	libHashi    = "hashicorp"
)

// inProcess are the libraries this binary runs as a worker.
var inProcess = map[string]harness.Runner{
	libKeel:     keelbench.Lib.Run,
	libKeelWAL:  keelbench.WALLib.Run,
	libKeelNode: nodebench.Run,
	libEtcd36:   etcd36.Lib.Run,
	libHashi:    hashibench.Run,
}

// runsKind reports whether lib runs workloads of kind: keel-wal (Keel on
// its own write-ahead log) runs only the durable one.
func runsKind(lib, kind string) bool {
	return (lib != libKeelWAL && lib != libKeelNode) || kind == harness.Durable
}

// row is one line group of the table: a workload run on every library.
type row struct {
	label string
	w     harness.Workload
}

func rows(quick bool) []row {
	scale := func(n int) int {
		if quick {
			return max(n/10, 100)
		}
		return n
	}
	big := 1_000_000
	if quick {
		big = 100_000
	}
	var rs []row
	for _, win := range []int{1, 16, 256} {
		n := map[int]int{1: 20_000, 16: 60_000, 256: 100_000}[win]
		rs = append(rs, row{fmt.Sprintf("core, %d outstanding", win),
			harness.Workload{Kind: harness.Core, Window: win, N: scale(n)}})
	}
	rs = append(rs, row{"latency, 1 sequential proposer",
		harness.Workload{Kind: harness.Latency, Window: 1, N: scale(20_000)}})
	rs = append(rs, row{"durable (fdatasync), 256 outstanding",
		harness.Workload{Kind: harness.Durable, Window: 256, N: max(scale(8_000), 4_000)}})
	for _, size := range []int{10_000, big} {
		rs = append(rs, row{fmt.Sprintf("scale, %s entries in log, 256 outstanding", count(size)),
			harness.Workload{Kind: harness.Scale, Window: 256, N: scale(50_000), LogSize: size}})
	}
	return rs
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%d M", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%d k", n/1000)
	}
	return strconv.Itoa(n)
}

func main() {
	if harness.IsWorker(os.Args) {
		harness.WorkerMain(inProcess)
		return
	}
	quick := flag.Bool("quick", false, "smoke run: 1 run per row, a tenth of the proposals, 100 k instead of 1 M log entries")
	runs := flag.Int("runs", 5, "runs per row and library (the table shows medians); -quick sets 1 unless given")
	only := flag.String("only", "", "run only rows whose label contains this")
	libsFlag := flag.String("libs", "keel,keel-wal,keel-node,etcd36,etcd37,hashicorp", "libraries to run (keel-wal, keel-node: durable row only)")
	etcd37Dir := flag.String("etcd37", "", "directory of the bench/etcd37 module (default: found from the working directory)")
	tmp := flag.String("dir", "", "directory for durable runs' files (default: the system temp dir)")
	verbose := flag.Bool("v", false, "print every run")
	flag.Parse()
	if *quick && !isSet("runs") {
		*runs = 1
	}
	if err := run(*quick, *runs, *only, strings.Split(*libsFlag, ","), *etcd37Dir, *tmp, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func isSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// worker starts one worker process for a library.
type worker func(ctx context.Context, args []string) *exec.Cmd

func run(quick bool, runs int, only string, libs []string, etcd37Dir, tmp string, verbose bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	workDir, err := os.MkdirTemp(tmp, "keelbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)
	workers := map[string]worker{}
	for _, lib := range libs {
		switch lib {
		case libKeel, libKeelWAL, libKeelNode, libEtcd36, libHashi:
			workers[lib] = func(ctx context.Context, args []string) *exec.Cmd {
				return exec.CommandContext(ctx, self, append([]string{"-" + harness.WorkerFlag, "-lib", lib}, args...)...)
			}
		case libEtcd37:
			bin, err := buildEtcd37(etcd37Dir, workDir)
			if err != nil {
				return err
			}
			workers[lib] = func(ctx context.Context, args []string) *exec.Cmd {
				return exec.CommandContext(ctx, bin, append([]string{"-" + harness.WorkerFlag, "-lib", "etcd"}, args...)...)
			}
		default:
			return fmt.Errorf("unknown library %q", lib)
		}
	}
	if _, ok := workers[libKeel]; !ok {
		return fmt.Errorf("-libs must include %s, the reference of the ratios", libKeel)
	}
	start, loadStart := time.Now(), loadAvg()
	var groups []group
	for _, r := range rows(quick) {
		if !strings.Contains(r.label, only) {
			continue
		}
		g := group{row: r, results: map[string][]harness.Result{}}
		for i := range runs {
			for _, lib := range libs {
				if !runsKind(lib, r.w.Kind) {
					continue
				}
				res := runOne(workers[lib], r.w, workDir, i)
				if verbose {
					b, _ := json.Marshal(res)
					fmt.Fprintf(os.Stderr, "%s %s\n", lib, b)
				}
				g.results[lib] = append(g.results[lib], res)
			}
		}
		fmt.Fprintf(os.Stderr, "done: %s (%s)\n", r.label, time.Since(start).Round(time.Second))
		groups = append(groups, g)
	}
	printTable(os.Stdout, groups, libs, runs)
	fmt.Printf("\n%d run(s) per row; %s; %d CPUs (%s); %s; %s at start, %s at end; total %s\n",
		runs, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), cpuModel(),
		runtime.Version(), loadStart, loadAvg(), time.Since(start).Round(time.Second))
	return nil
}

// buildEtcd37 builds the etcd v3.7 worker from its module.
func buildEtcd37(dir, out string) (string, error) {
	if dir == "" {
		for _, d := range []string{"etcd37", "bench/etcd37", "../etcd37", "../../etcd37"} {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = d
				break
			}
		}
		if dir == "" {
			return "", fmt.Errorf("cannot find the bench/etcd37 module from here; run from bench/ or pass -etcd37")
		}
	}
	bin := filepath.Join(out, "etcd37bench")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", dir, err)
	}
	return bin, nil
}

func runOne(start worker, w harness.Workload, workDir string, i int) harness.Result {
	args := []string{"-kind", w.Kind, "-window", strconv.Itoa(w.Window), "-n", strconv.Itoa(w.N),
		"-logsize", strconv.Itoa(w.LogSize)}
	if w.Kind == harness.Durable {
		dir, err := os.MkdirTemp(workDir, "durable")
		if err != nil {
			return harness.Result{Workload: w, Invalid: err.Error()}
		}
		defer os.RemoveAll(dir)
		args = append(args, "-dir", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := start(ctx, args)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res harness.Result
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil || err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i > 0 {
			msg = msg[:i]
		}
		return harness.Result{Workload: w, Invalid: fmt.Sprintf("worker failed: %v %v %s", err, jerr, msg)}
	}
	return res
}

type group struct {
	row     row
	results map[string][]harness.Result
}

// summary is the medians of one library's valid runs of one row.
type summary struct {
	name                  string
	valid, runs           int
	invalid               string
	perSec, allocs, bytes float64
	cpu                   float64
	p50, p99, perEntry    float64
}

func summarize(rs []harness.Result) summary {
	var s summary
	var perSec, allocs, bytes, cpu, p50, p99, perEntry []float64
	for _, r := range rs {
		s.runs++
		if r.Lib != "" {
			s.name = r.Lib
		}
		if r.Invalid != "" {
			if s.invalid == "" {
				s.invalid = r.Invalid
			}
			continue
		}
		s.valid++
		perSec = append(perSec, r.PerSec)
		allocs = append(allocs, r.AllocsPerOp)
		bytes = append(bytes, r.BytesPerOp)
		cpu = append(cpu, r.CPUPerOp)
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		perEntry = append(perEntry, r.BytesPerEntry)
	}
	s.perSec, s.allocs, s.bytes, s.cpu = median(perSec), median(allocs), median(bytes), median(cpu)
	s.p50, s.p99, s.perEntry = median(p50), median(p99), median(perEntry)
	return s
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func printTable(out io.Writer, groups []group, libs []string, runs int) {
	fmt.Fprintln(out, "| workload | library | proposals/s | ÷ keel | CPU µs/proposal | ÷ keel | allocs/proposal | ÷ keel | bytes/proposal | p50 µs | p99 µs | p50 ÷ keel | heap B/entry held | valid runs |")
	fmt.Fprintln(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, g := range groups {
		ref := summarize(g.results[libKeel])
		for _, lib := range libs {
			if !runsKind(lib, g.row.w.Kind) {
				continue
			}
			s := summarize(g.results[lib])
			name := s.name
			if name == "" {
				name = lib
			}
			valid := fmt.Sprintf("%d/%d", s.valid, s.runs)
			if s.invalid != "" {
				valid += " INVALID: " + strings.ReplaceAll(s.invalid, "|", "/")
			}
			if s.valid == 0 {
				fmt.Fprintf(out, "| %s | %s | – | – | – | – | – | – | – | – | – | – | – | %s |\n", g.row.label, name, valid)
				continue
			}
			lat, latRatio, perEntry := "–", "–", "–"
			if g.row.w.Kind == harness.Latency {
				lat = fmt.Sprintf("%.1f | %.1f", s.p50, s.p99)
				latRatio = ratio(s.p50, ref.p50)
			} else {
				lat = "– | –"
			}
			if g.row.w.LogSize > 0 {
				perEntry = fmt.Sprintf("%.0f", s.perEntry)
			}
			fmt.Fprintf(out, "| %s | %s | %s | %s | %.2f | %s | %.1f | %s | %.0f | %s | %s | %s | %s |\n",
				g.row.label, name, thousands(s.perSec), ratio(s.perSec, ref.perSec),
				s.cpu, ratio(s.cpu, ref.cpu),
				s.allocs, ratio(s.allocs, ref.allocs), s.bytes, lat, latRatio, perEntry, valid)
		}
	}
}

func ratio(v, ref float64) string {
	if ref == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v/ref)
}

func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load unknown"
	}
	return "load average " + strings.Join(f[:3], "/")
}
