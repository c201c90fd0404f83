module github.com/keelraft/raft/bench/etcd37

go 1.26

require (
	github.com/keelraft/raft/bench v0.0.0-00010101000000-000000000000
	go.etcd.io/raft/v3 v3.7.0
)

require google.golang.org/protobuf v1.36.12 // indirect

replace (
	github.com/keelraft/raft => ../../
	github.com/keelraft/raft/bench => ../
)
