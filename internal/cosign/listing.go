package cosign

import "context"

// Listing is the witness configuration with what the serving node last
// heard from each witness.
type Listing struct {
	Servers  []ServerView   `json:"servers"`
	External []ExternalView `json:"external"`
}

// ServerView is a server witness; Member says whether its node is in the
// cluster's configuration (only members are asked to cosign).
type ServerView struct {
	ServerWitness
	Member bool           `json:"member"`
	Status *WitnessStatus `json:"status,omitempty"`
}

// ExternalView is an external witness (its CA certificate, if any, is
// returned as given).
type ExternalView struct {
	ExternalWitness
	Status *WitnessStatus `json:"status,omitempty"`
}

// ServerID and ExternalID are the target IDs of witnesses.
func ServerID(node string) string   { return "server " + node }
func ExternalID(name string) string { return "external " + name }

// List returns the configuration read with ctx, members saying which node
// IDs are members, status what a Cosigner heard (Cosigner.Status).
func (c *Config) List(ctx context.Context, members map[string]bool, status map[string]WitnessStatus) (*Listing, error) {
	srvs, err := c.Servers(ctx)
	if err != nil {
		return nil, err
	}
	exts, err := c.Externals(ctx)
	if err != nil {
		return nil, err
	}
	out := &Listing{Servers: []ServerView{}, External: []ExternalView{}}
	for _, s := range srvs {
		v := ServerView{ServerWitness: s, Member: members[s.Node]}
		if st, ok := status[ServerID(s.Node)]; ok {
			v.Status = &st
		}
		out.Servers = append(out.Servers, v)
	}
	for _, e := range exts {
		v := ExternalView{ExternalWitness: e}
		if st, ok := status[ExternalID(e.Name)]; ok {
			v.Status = &st
		}
		out.External = append(out.External, v)
	}
	return out, nil
}
