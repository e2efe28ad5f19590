package compliance

// ConduitRef is how reports name a conduit in evidence ("conduit:<ref>"):
// "from->to:port/proto". The server uses it to say which audit records
// are about which conduit (AuditRecord.About).
func ConduitRef(c Conduit) string { return conduitRef(c) }
