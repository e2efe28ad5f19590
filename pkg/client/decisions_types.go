package client

// The wire types of decisions, the never-block list and the decision
// stream (docs/response.md).

// DecisionRecord is a decision of the response (a countermeasure): a ban of an address, a range or a user, or
// the quarantine of a node.
type DecisionRecord struct {
	ID       string         `json:"id"`
	Revision uint64         `json:"revision"`
	Type     string         `json:"type"` // "ban" or "quarantine"
	Target   DecisionTarget `json:"target"`
	// Zone limits the decision to the nodes of a zone; empty: everywhere.
	Zone        string `json:"zone"`
	Reason      string `json:"reason"`
	Origin      string `json:"origin"` // "manual" or "playbook:NAME"
	AlertID     string `json:"alert_id"`
	CreatedBy   string `json:"created_by"`
	CreatedTime string `json:"created_time"`
	ExpiresAt   string `json:"expires_at"`
	Simulated   bool   `json:"simulated"`
	// Duration is the effective duration, after escalation.
	Duration string `json:"duration,omitempty"`
	// Escalation counts the earlier bans of the same value within the
	// escalation window.
	Escalation int `json:"escalation,omitempty"`
	// Addresses are a quarantined node's reported addresses.
	Addresses []string `json:"addresses,omitempty"`
	// WithheldAddresses are a quarantined node's reported addresses that
	// are a server's or on the never-block list: never dropped.
	WithheldAddresses []string `json:"withheld_addresses,omitempty"`
	PendingApproval   bool     `json:"pending_approval,omitempty"`
	ApprovedBy        string   `json:"approved_by,omitempty"`
	// Deleted marks a removal in the stream; DeletedTime is when.
	Deleted     bool   `json:"deleted,omitempty"`
	DeletedTime string `json:"deleted_time,omitempty"`
}

// DecisionTarget names what a decision applies to: exactly one field is
// set.
type DecisionTarget struct {
	IP   string `json:"ip,omitempty"`
	CIDR string `json:"cidr,omitempty"`
	Node string `json:"node,omitempty"`
	User string `json:"user,omitempty"`
}

// AllowEntry is an entry of the never-block list: a range, or a node.
type AllowEntry struct {
	ID          string `json:"id"`
	Revision    uint64 `json:"revision"`
	CIDR        string `json:"cidr,omitempty"`
	Node        string `json:"node,omitempty"`
	Reason      string `json:"reason,omitempty"`
	CreatedBy   string `json:"created_by"`
	CreatedTime string `json:"created_time"`
	Deleted     bool   `json:"deleted,omitempty"`
	DeletedTime string `json:"deleted_time,omitempty"`
}

// Revocation is a revoked certificate, as the decision stream carries it.
type Revocation struct {
	Serial    string `json:"serial"` // lower-case hex
	RevokedAt string `json:"revoked_at"`
	ExpiresAt string `json:"expires_at"`
	Revision  uint64 `json:"revision"`
}
