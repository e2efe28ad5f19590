package agent

import (
	"context"

	"github.com/warden-sec/warden/internal/compliance/assess"
	"github.com/warden-sec/warden/pkg/client"
)

// newAssessor returns the assessor the daemon runs policies with: the
// check engine of internal/compliance/assess on this host (root "/").
func newAssessor() assessor { return engineAssessor{} }

type engineAssessor struct{}

var _ assessor = engineAssessor{}

// Assess parses a policy the servers signed and runs it on this host. A
// check that cannot be evaluated is "error", never "pass".
func (engineAssessor) Assess(ctx context.Context, name string, policy []byte) ([]client.AssessmentResult, error) {
	p, err := assess.Parse(name, policy)
	if err != nil {
		return nil, err
	}
	rs := assess.Run(ctx, p, assess.Env{Root: "/"})
	out := make([]client.AssessmentResult, len(rs))
	for i, r := range rs {
		out[i] = client.AssessmentResult(r)
	}
	return out, nil
}
