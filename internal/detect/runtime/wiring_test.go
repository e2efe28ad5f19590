package runtime

import (
	"context"

	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/sigma"
)

// How internal/server wires the runtime: the plane is the Stream (checked
// in runtime.go) and gives the KV bucket, detect.Rules the rule source with placeholders
// and a local version, detect.Alerts the sink.
var (
	_ RuleSource                     = (*detect.Rules)(nil)
	_ ruleSetSource                  = (*detect.Rules)(nil)
	_ ruleVersioner                  = (*detect.Rules)(nil)
	_ func(*detect.Alerts) AlertSink = alertsSink
)

func alertsSink(a *detect.Alerts) AlertSink {
	return AlertFunc(func(ctx context.Context, h sigma.Hit) error {
		_, err := a.Record(ctx, h)
		return err
	})
}
