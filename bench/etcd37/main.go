// Command etcd37 is the worker that runs the bench's workloads on etcd raft
// v3.7. It is a module of its own because one module builds against one
// version of go.etcd.io/raft/v3 and the bench module uses v3.6.0; v3.7
// also changed the API (protobuf messages held by pointer), so its host
// loop (etcd.go) is a copy of internal/etcd36's adapted to pointers. The
// bench driver (cmd/bench) builds and runs it; it shares the harness with
// the bench module through a replace directive.
package main

import "github.com/keelraft/raft/bench/internal/harness"

func main() {
	harness.WorkerMain(map[string]harness.Runner{"etcd": Lib.Run})
}
