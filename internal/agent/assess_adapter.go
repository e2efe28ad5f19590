package agent

import (
	"context"
	"errors"

	"github.com/warden-sec/warden/pkg/client"
)

// ErrNoAssessEngine is returned by the placeholder assessor while the
// assessment engine (internal/compliance/assess) is not linked in.
var ErrNoAssessEngine = errors.New("agent: the assessment engine is not built into this agent")

// newAssessor returns the assessor the daemon runs policies with.
//
// TO FINISH WHEN MERGING (lead): internal/compliance/assess is written on
// another branch. Replace the body of engineAssessor.Assess with
//
//	p, err := assess.Parse(name, policy)
//	if err != nil {
//		return nil, err
//	}
//	rs := assess.Run(ctx, p, assess.Env{Root: "/"})
//	out := make([]client.AssessmentResult, len(rs))
//	for i, r := range rs {
//		out[i] = client.AssessmentResult(r) // same fields and types
//	}
//	return out, nil
//
// (the conversion compiles while assess.Result keeps the fields of
// client.AssessmentResult; otherwise copy field by field).
func newAssessor() assessor { return engineAssessor{} }

type engineAssessor struct{}

var _ assessor = engineAssessor{}

func (engineAssessor) Assess(ctx context.Context, name string, policy []byte) ([]client.AssessmentResult, error) {
	return nil, ErrNoAssessEngine
}
