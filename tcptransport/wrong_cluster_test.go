package tcptransport

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap/zapcore"
)

// A node of another cluster learns why it is refused, in decimal IDs, on
// the dialing side as on the accepting one.
func TestWrongClusterIsExplainedOnBothSides(t *testing.T) {
	tc := newTestCluster(t, 2, func(id uint64, c *Config) {
		if id == 2 {
			c.ClusterID = 7
		}
		c.Peers = map[uint64]string{}
	})
	tc.nodes[2].tr.AddPeer(1, tc.peers[1])
	tc.nodes[1].tr.AddPeer(2, tc.peers[2])
	tc.nodes[2].tr.Send(nil)
	dialer := waitLog(t, tc.nodes[2], "peer refused the connection")
	assert.Contains(t, dialer, "refused by the peer: wrong cluster", "dialer: %s", dialer)
	acceptor := waitLog(t, tc.nodes[1], "cluster ID 7, want 193")
	assert.Contains(t, acceptor, "refused handshake", "acceptor: %s", acceptor)
	for _, e := range tc.nodes[2].logs.FilterMessage("tcptransport: peer refused the connection").All() {
		assert.Equal(t, zapcore.WarnLevel, e.Level, "a refusal is worth a warning even before any connection succeeded")
	}
}
