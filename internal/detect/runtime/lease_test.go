package runtime

import (
	"fmt"
	"slices"
	"testing"
)

func TestAssignBalanced(t *testing.T) {
	for _, tc := range []struct {
		members    int
		partitions int
	}{{1, 16}, {2, 16}, {3, 16}, {5, 16}, {16, 16}, {20, 16}, {3, 1}, {7, 256}} {
		t.Run(fmt.Sprintf("%d/%d", tc.members, tc.partitions), func(t *testing.T) {
			var live []string
			for i := range tc.members {
				live = append(live, fmt.Sprintf("node-%d", i))
			}
			got := assign(live, tc.partitions)
			if again := assign(slices.Clone(live), tc.partitions); !slices.Equal(got, again) {
				t.Fatalf("not deterministic: %v then %v", got, again)
			}
			count := map[string]int{}
			for p, m := range got {
				if !slices.Contains(live, m) {
					t.Fatalf("partition %d assigned to %q, not a live member", p, m)
				}
				count[m]++
			}
			lo, hi := tc.partitions/tc.members, (tc.partitions+tc.members-1)/tc.members
			for _, m := range live {
				if count[m] < lo || count[m] > hi {
					t.Errorf("%s has %d partitions, want %d to %d (%v)", m, count[m], lo, hi, count)
				}
			}
		})
	}
}

// TestAssignMovesLittle: when a member dies, the partitions of the
// survivors mostly stay where they were (rendezvous preference).
func TestAssignMovesLittle(t *testing.T) {
	three := assign([]string{"a", "b", "c"}, 64)
	two := assign([]string{"a", "c"}, 64)
	moved := 0
	for p := range three {
		if three[p] != "b" && three[p] != two[p] {
			moved++
		}
	}
	if moved > 64/4 {
		t.Errorf("%d of the survivors' partitions moved, want at most %d", moved, 64/4)
	}
}

func TestPartitionOf(t *testing.T) {
	// FNV-1a 32 of "" is 0x811c9dc5 = 2166136261; of "a" 0xe40c292c.
	for _, tc := range []struct {
		key  string
		n    int
		want int
	}{{"", 16, 2166136261 % 16}, {"a", 16, 0xe40c292c % 16}, {"a", 1, 0}, {"a", 7, 0xe40c292c % 7}} {
		if got := PartitionOf(tc.key, tc.n); got != tc.want {
			t.Errorf("PartitionOf(%q, %d) = %d, want %d", tc.key, tc.n, got, tc.want)
		}
	}
}
