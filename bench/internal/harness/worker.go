package harness

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
)

// Runner runs one workload on one library.
type Runner func(Workload) Result

// WorkerFlag is the flag that makes a bench binary a worker.
const WorkerFlag = "worker"

// IsWorker reports whether the arguments ask for a worker.
func IsWorker(args []string) bool {
	return len(args) > 1 && args[1] == "-"+WorkerFlag
}

// WorkerMain runs one workload on one of libs as the arguments say and
// prints the Result as one JSON line:
//
//	-worker -lib NAME -kind KIND -window W -n N [-logsize L] [-dir DIR] [-cpuprofile FILE]
//
// Every run is its own process, so that no run inherits another's heap,
// goroutines or files.
func WorkerMain(libs map[string]Runner) {
	fs := flag.NewFlagSet("worker", flag.ExitOnError)
	fs.Bool(WorkerFlag, true, "run one workload and print its result")
	lib := fs.String("lib", "", "library")
	var w Workload
	fs.StringVar(&w.Kind, "kind", Core, "workload")
	fs.IntVar(&w.Window, "window", 1, "outstanding proposals")
	fs.IntVar(&w.N, "n", 1000, "proposals")
	fs.IntVar(&w.LogSize, "logsize", 0, "preloaded log entries")
	fs.StringVar(&w.Dir, "dir", "", "directory for durable runs")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	_ = fs.Parse(os.Args[1:])
	run, ok := libs[*lib]
	if !ok {
		fmt.Fprintf(os.Stderr, "worker: unknown library %q\n", *lib)
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
	}
	res := run(w)
	pprof.StopCPUProfile()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
