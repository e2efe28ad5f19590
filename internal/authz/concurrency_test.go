package authz

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// TestAuthorizeConcurrent runs decisions from several goroutines on one
// shared set (run with -race) and checks each against the sequential answer.
func TestAuthorizeConcurrent(t *testing.T) {
	ps := mustCompile(t, benchPolicies(300), "")
	ents := benchEntities(t, 300)
	var reqs []Request
	var want []Decision
	for u := range 40 {
		for _, a := range []string{ActionKVRead, ActionKVWrite, ActionKVList} {
			r := Request{
				Principal: mustUID(t, fmt.Sprintf(`User::"u%d"`, u)),
				Action:    ActionUID(a),
				Resource:  mustUID(t, fmt.Sprintf(`Secret::"team-%d/db"`, (u*7)%40)),
			}
			reqs = append(reqs, r)
			want = append(want, ps.Authorize(r, ents))
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 20 {
				for i := range reqs {
					j := (i + g*31 + round) % len(reqs)
					got := ps.Authorize(reqs[j], ents)
					if got.Allow != want[j].Allow || !slices.Equal(got.Reasons, want[j].Reasons) || !slices.Equal(got.Errors, want[j].Errors) {
						t.Errorf("request %d: %+v, want %+v", j, got, want[j])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
