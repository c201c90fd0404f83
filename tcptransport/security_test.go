package tcptransport

// testSecret is the peer secret of the secured test clusters.
var testSecret = []byte("keel test peer secret, 32 bytes")

// withSecret configures a test node to authenticate its peers with secret.
func withSecret(secret []byte) func(id uint64, c *Config) {
	return func(id uint64, c *Config) {
		c.Insecure = false
		c.PeerSecret = secret
	}
}
