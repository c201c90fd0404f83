package tcptransport_test

import (
	"fmt"
	"net"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/tcptransport"
)

// inbox is a TransportHandler that passes messages to the goroutine owning
// the RawNode over a buffered channel, dropping them if it is full.
type inbox chan raft.Message

func (in inbox) HandleMessage(m raft.Message) {
	select {
	case in <- m:
	default: // the node is behind: Raft recovers from the loss
	}
}
func (inbox) ReportUnreachable(id uint64)                {}
func (inbox) ReportSnapshot(uint64, raft.SnapshotStatus) {}

func Example() {
	// Listen first, so that each node can be told the other's address.
	ln1, _ := net.Listen("tcp", "127.0.0.1:0")
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	in1, in2 := make(inbox, 64), make(inbox, 64)
	// Every node of the cluster shares this secret: in a real deployment,
	// 32 random bytes read from a file only the node's user can read (or use
	// TLS with node certificates; see NodeURI).
	secret := []byte("an example secret, not a real one")
	t1, err := tcptransport.New(tcptransport.Config{
		ID: 1, ClusterID: 42, Listener: ln1, Handler: in1, PeerSecret: secret,
		Peers: map[uint64]string{2: ln2.Addr().String()},
	})
	if err != nil {
		panic(err)
	}
	defer t1.Close()
	t2, err := tcptransport.New(tcptransport.Config{
		ID: 2, ClusterID: 42, Listener: ln2, Handler: in2, PeerSecret: secret,
		Peers: map[uint64]string{1: ln1.Addr().String()},
	})
	if err != nil {
		panic(err)
	}
	defer t2.Close()

	// In a host loop: t1.Send(rd.Messages) after each Ready; here by hand.
	t1.Send([]raft.Message{{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 3, Commit: 10}})
	m := <-in2 // the host of node 2 would call rawNode.Step(m)
	fmt.Println(m.Type, "from", m.From, "term", m.Term, "commit", m.Commit)
	// Output: MsgHeartbeat from 1 term 3 commit 10
}
