// Package nft enforces decisions in the kernel's nftables through netlink
// (github.com/google/nftables, no nft command): one table, inet warden,
// with interval sets whose elements carry the decisions' remaining time,
// so the kernel lifts a ban at its expiry without a round trip. It touches
// nothing else in the host's ruleset (docs/response.md, "Enforcement on
// hosts"). It does not know about decisions: the agent turns them into
// Elements.
package nft
