package raft

import (
	"errors"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"
)

// MaxAddressSize bounds the length in bytes of a member's address
// (ConfChangeSingle.Address, ConfState.Addresses, Peer.Address). An
// address must also be valid UTF-8 made of printable characters; its form
// is otherwise up to the transport. The core refuses anything else, from a
// host or from the network, with an error.
const MaxAddressSize = 1024

// checkAddress reports what is wrong with addr, or nil if it may be
// recorded; the empty address (none) is accepted.
func checkAddress(addr string) error {
	if len(addr) > MaxAddressSize {
		return fmt.Errorf("address of %d bytes exceeds the maximum %d", len(addr), MaxAddressSize)
	}
	if !utf8.ValidString(addr) {
		return errors.New("address is not valid UTF-8")
	}
	for _, r := range addr {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("address %q holds the unprintable character %U", addr, r)
		}
	}
	return nil
}

// checkConfStateAddresses checks the addresses of a configuration that did
// not come from nextConfState (a snapshot from the network): every entry
// names a member and holds a valid, non-empty address.
func checkConfStateAddresses(cs *ConfState) error {
	for id, addr := range cs.Addresses {
		if !slices.Contains(cs.Voters, id) && !slices.Contains(cs.VotersOutgoing, id) &&
			!slices.Contains(cs.Learners, id) && !slices.Contains(cs.LearnersNext, id) {
			return fmt.Errorf("address for node %d, which is not a member", id)
		}
		if addr == "" {
			return fmt.Errorf("empty address for node %d", id)
		}
		if err := checkAddress(addr); err != nil {
			return fmt.Errorf("node %d: %w", id, err)
		}
	}
	return nil
}

// Peer is a voter of a new cluster's first configuration (see
// RawNode.BootstrapPeers): its ID and, if not empty, the address its peers
// reach it at.
type Peer struct {
	ID      uint64
	Address string
}

// BootstrapPeers initialises a new cluster's first configuration with the
// given voters and records their addresses in it (ConfState.Addresses), as
// Bootstrap does without addresses. Every node of the new cluster should be
// bootstrapped with the same peers: a node that joins later learns every
// member's address from the log or a snapshot, not from its own
// bootstrap. A peer listed twice must have the same address each time.
func (rn *RawNode) BootstrapPeers(peers []Peer) error {
	voters := make([]uint64, 0, len(peers))
	var addrs map[uint64]string
	for _, p := range peers {
		if err := checkAddress(p.Address); err != nil {
			return fmt.Errorf("%w: Bootstrap voter %d: %w", ErrInvalidConfig, p.ID, err)
		}
		if old, dup := addrs[p.ID]; (dup || slices.Contains(voters, p.ID)) && old != p.Address {
			return fmt.Errorf("%w: Bootstrap voter %d is listed with two addresses", ErrInvalidConfig, p.ID)
		}
		voters = append(voters, p.ID)
		if p.Address != "" {
			if addrs == nil {
				addrs = map[uint64]string{}
			}
			addrs[p.ID] = p.Address
		}
	}
	return rn.bootstrap(voters, addrs)
}
