// Package harness holds what every library's benchmark shares: the
// workloads, the payloads, the verifying state machine, the measurement
// (time, allocations, latency) and the result format a worker prints.
//
// It imports no Raft library, so that the etcd v3.7 module (bench/etcd37)
// can use it while the bench module itself builds against etcd v3.6.
package harness

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"syscall"
	"time"
)

// Workload kinds.
const (
	// Core is the in-memory 3-node cycle with Window outstanding proposals.
	Core = "core"
	// Latency is one sequential proposer (Window 1), timing every proposal.
	Latency = "latency"
	// Durable is Core with every node's log written to a file and synced.
	Durable = "durable"
	// Scale is Core (Window 256) on a log that already holds LogSize
	// entries; it also measures the heap bytes per held entry.
	Scale = "scale"
)

// PayloadSize is the size of every proposal's data.
const PayloadSize = 128

// Workload says what one run does.
type Workload struct {
	Kind string `json:"kind"`
	// Window is the number of proposals kept outstanding: proposed but
	// not yet applied on the leader.
	Window int `json:"window"`
	// N is the number of proposals.
	N int `json:"n"`
	// LogSize is the number of entries preloaded into every node's log
	// (Scale only).
	LogSize int `json:"log_size,omitempty"`
	// Dir is where durable runs keep their files.
	Dir string `json:"dir,omitempty"`
}

// Result is what one run measured. A worker prints it as one JSON line.
type Result struct {
	Lib      string   `json:"lib"`
	Workload Workload `json:"workload"`
	Seconds  float64  `json:"seconds"`
	// PerSec is proposals committed and applied on the leader per second.
	PerSec      float64 `json:"per_sec"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	// CPUPerOp is the process's CPU time (user and system, all threads)
	// per proposal, in microseconds: unlike PerSec, it hardly moves when
	// other processes load the machine.
	CPUPerOp float64 `json:"cpu_us_per_op"`
	// P50 and P99 are proposal latencies in microseconds (Latency only).
	P50 float64 `json:"p50_us,omitempty"`
	P99 float64 `json:"p99_us,omitempty"`
	// BytesPerEntry is the heap held per preloaded log entry, all nodes
	// counted, payload included (Scale only).
	BytesPerEntry float64 `json:"bytes_per_entry,omitempty"`
	// Invalid says why the run does not count; empty for a valid run.
	Invalid string `json:"invalid,omitempty"`
}

// Payloads returns n proposal payloads of PayloadSize bytes, carved from one
// allocation so that building them costs the measured region nothing.
// Payload i starts with i (little endian) and kind 0.
func Payloads(n int) [][]byte {
	buf := make([]byte, n*PayloadSize)
	out := make([][]byte, n)
	for i := range out {
		p := buf[i*PayloadSize : (i+1)*PayloadSize : (i+1)*PayloadSize]
		binary.LittleEndian.PutUint64(p, uint64(i))
		for j := 9; j < PayloadSize; j++ {
			p[j] = byte(i + j)
		}
		out[i] = p
	}
	return out
}

// PreloadPayload returns a freshly allocated payload for preloaded log entry
// i; the state machine does not count it.
func PreloadPayload(i int) []byte {
	p := make([]byte, PayloadSize)
	binary.LittleEndian.PutUint64(p, uint64(i))
	p[8] = 1
	return p
}

// SM is the verifying state machine every node applies to: it checks that
// each of the workload's proposals is applied exactly once, and hashes what
// it applied, in order, so that nodes can be compared. (Proposals need not
// apply in the order of their numbers: hashicorp's are proposed by
// concurrent goroutines.)
type SM struct {
	// seen has bit i set once proposal i was applied.
	seen []uint64
	// Applied counts the workload's proposals applied.
	Applied uint64
	// Preloaded counts preloaded entries applied (hashicorp re-applies its
	// log after a restart; the other libraries are told it is applied).
	Preloaded uint64
	Hash      uint64
	Err       error
}

// Init prepares the state machine for n proposals (outside the measured
// region).
func (s *SM) Init(n int) { s.seen = make([]uint64, (n+63)/64) }

// Apply applies one command.
func (s *SM) Apply(data []byte) {
	if len(data) != PayloadSize {
		s.fail(fmt.Errorf("payload of %d bytes", len(data)))
		return
	}
	if data[8] == 1 {
		s.Preloaded++
		return
	}
	seq := binary.LittleEndian.Uint64(data)
	switch {
	case seq/64 >= uint64(len(s.seen)):
		s.fail(fmt.Errorf("applied proposal %d, beyond the %d proposed", seq, len(s.seen)*64))
	case s.seen[seq/64]&(1<<(seq%64)) != 0:
		s.fail(fmt.Errorf("applied proposal %d twice", seq))
	default:
		s.seen[seq/64] |= 1 << (seq % 64)
	}
	s.Applied++
	// FNV-1a over the first 16 bytes is enough to tell logs apart.
	h := s.Hash
	if h == 0 {
		h = 14695981039346656037
	}
	for _, b := range data[:16] {
		h ^= uint64(b)
		h *= 1099511628211
	}
	s.Hash = h
}

func (s *SM) fail(err error) {
	if s.Err == nil {
		s.Err = err
	}
}

// Verify reports why the state machines do not all hold exactly n
// proposals with equal hashes, or nil.
func Verify(sms []SM, n int) error {
	for i := range sms {
		if sms[i].Err != nil {
			return fmt.Errorf("node %d: %w", i+1, sms[i].Err)
		}
		if sms[i].Applied != uint64(n) {
			return fmt.Errorf("node %d applied %d of %d proposals", i+1, sms[i].Applied, n)
		}
		if sms[i].Hash != sms[0].Hash {
			return fmt.Errorf("node %d state differs from node 1", i+1)
		}
	}
	return nil
}

// AwaitVerify waits, up to timeout, until every state machine that states
// returns applied all n proposals (followers apply once a later append or
// heartbeat carries the commit index), then verifies them with Verify.
func AwaitVerify(states func() []SM, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		sms := states()
		all := true
		for i := range sms {
			all = all && sms[i].Applied == uint64(n)
		}
		if all || time.Now().After(deadline) {
			return Verify(sms, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Meter measures a region: wall time and the process's allocations.
type Meter struct {
	start  time.Time
	cpu    time.Duration
	before runtime.MemStats
}

// Start collects garbage and starts measuring.
func (m *Meter) Start() {
	runtime.GC()
	runtime.ReadMemStats(&m.before)
	m.cpu = cpuTime()
	m.start = time.Now()
}

// Stop ends the region and fills res's time and per-proposal figures for n
// proposals.
func (m *Meter) Stop(res *Result, n int) {
	elapsed := time.Since(m.start)
	cpu := cpuTime() - m.cpu
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	res.Seconds = elapsed.Seconds()
	res.PerSec = float64(n) / elapsed.Seconds()
	res.AllocsPerOp = float64(after.Mallocs-m.before.Mallocs) / float64(n)
	res.BytesPerOp = float64(after.TotalAlloc-m.before.TotalAlloc) / float64(n)
	res.CPUPerOp = float64(cpu) / float64(time.Microsecond) / float64(n)
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// HeapInUse returns the live heap after a full collection.
func HeapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Percentile returns the p-th percentile (0..100) of the sorted durations,
// in microseconds.
func Percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return float64(sorted[i]) / float64(time.Microsecond)
}

// Latencies fills res's P50 and P99 from lat, which it sorts.
func Latencies(res *Result, lat []time.Duration) {
	slices.Sort(lat)
	res.P50 = Percentile(lat, 50)
	res.P99 = Percentile(lat, 99)
}

// ModuleVersion returns the version of module path built into this binary.
func ModuleVersion(path string) string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == path {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "(unknown version)"
}
