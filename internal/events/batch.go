package events

// Batch is one agent batch as the stream holds it: one JetStream message,
// stored atomically, whose stream sequence number is the reference alerts
// carry (event_refs). Events are in the order the agent sent them.
type Batch struct {
	StreamSeq uint64
	Node      string
	Events    []Event
}
