package compliance

import (
	"fmt"
	"testing"
)

// fleet returns the seeded state with its nodes repeated to n nodes, each
// with the seeded nodes' inventory and 15 assessment results, spread over
// the seeded zones.
func fleet(b *testing.B, n int) *State {
	st := seededState(b)
	base := st.Nodes
	nodes := make([]Node, 0, n)
	for i := range n {
		nd := base[i%len(base)]
		nd.Name = fmt.Sprintf("node-%05d", i)
		results := make([]AssessmentResult, 0, 15)
		for len(results) < 15 {
			results = append(results, nd.Assessment...)
			if len(nd.Assessment) == 0 {
				break
			}
		}
		nd.Assessment = results[:min(15, len(results))]
		nodes = append(nodes, nd)
	}
	st.Nodes = nodes
	return st
}

// BenchmarkEvaluate10kNodes: one evaluation of each framework over a
// 10,000-node state (what a report or a status costs besides reading the
// state, and what the leader runs every --compliance-interval).
func BenchmarkEvaluate10kNodes(b *testing.B) {
	st := fleet(b, 10_000)
	for _, fw := range Frameworks() {
		b.Run(string(fw), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Evaluate(st, fw, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
