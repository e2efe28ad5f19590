// Package nft enforces decisions in the kernel's nftables through netlink
// (github.com/google/nftables): one table, inet warden, with interval sets
// whose elements carry the decisions' timeouts. It touches nothing else in
// the host's ruleset (docs/response.md).
package nft

import _ "github.com/google/nftables" // the netlink client this package is built on
