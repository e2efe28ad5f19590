// Package cosign gets the audit log's checkpoints cosigned by its
// witnesses (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature): every
// server node of the cluster is one, and an operator may add external ones.
//
// It keeps the witness configuration (stored through core, in Raft: one
// entry per server node, one per external witness), submits a node's
// checkpoints to the witnesses with consistency proofs from what each has
// seen (Cosigner: rounds coalesced, one in flight at a time, results kept
// per checkpoint), and serves a node's own witness to the other members
// over the cluster port (PeerHandler), reporting every refusal that is a
// fork (Guard).
//
// It must not: decide whether a checkpoint is consistent (the witness
// does, package witness), keep a witness's state (the witness keeps its
// own, outside Raft), or depend on Raft or bbolt (it takes the store's
// plain types from internal/store/kv).
package cosign
