package users_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/users"
)

// superiority is the Mann-Whitney U statistic of xs against ys, normalized:
// the probability that a random x is longer than a random y, ties counting
// half (the "common language effect size"). 0.5: neither kind is slower;
// near 0 or 1: one kind is told apart from the other almost every time.
func superiority(xs, ys []time.Duration) float64 {
	type obs struct {
		d time.Duration
		x bool
	}
	all := make([]obs, 0, len(xs)+len(ys))
	for _, d := range xs {
		all = append(all, obs{d, true})
	}
	for _, d := range ys {
		all = append(all, obs{d, false})
	}
	slices.SortFunc(all, func(a, b obs) int { return int(a.d - b.d) })
	// Rank sum of xs, with the mean rank for ties.
	rankSum := 0.0
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].d == all[i].d {
			j++
		}
		mean := float64(i+j+1) / 2 // ranks i+1 .. j
		for k := i; k < j; k++ {
			if all[k].x {
				rankSum += mean
			}
		}
		i = j
	}
	n1, n2 := float64(len(xs)), float64(len(ys))
	u := rankSum - n1*(n1+1)/2
	return u / (n1 * n2)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestLoginTimingHidesExistence: a failed login takes as long for a user
// name that does not exist (or cannot), a disabled user or a user without
// a password as for an existing user with a wrong password, because all run the same
// Argon2 work (against a dummy hash with the current parameters).
//
// The attempts of every kind are interleaved in a shuffled order, so that
// load on the machine (the race detector, other builds) falls on all kinds
// alike. Each kind is compared with the existing user by the Mann-Whitney
// U statistic as a probability of superiority A (0.5: no difference):
// the test fails when A leaves [0.25, 0.75], that is when one kind is
// slower in three comparisons out of four. (Under A = 0.5 with 200 + 200
// attempts, A's standard deviation is 0.029, so the band is more than 8
// of them wide: load does not make it flaky. The medians are logged, not
// compared: the times are often bimodal on a shared machine, and the
// median of one kind can land in the other mode while A stays at 0.5.)
// A login that skipped Argon2 is told apart every time (A near 0): the
// control at the end shows the statistic seeing exactly that, so the test
// can fail. The small differences no attacker could use (decoding a
// record that exists: microseconds against the Argon2 work, which is about
// 100 ms with the default parameters and about 1 ms with these) stay well
// inside.
func TestLoginTimingHidesExistence(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	never := users.BackoffConfig{UserFailures: 1 << 30, AddrFailures: 1 << 30}
	v := newEnv(t, func(c *users.Config) { c.Backoff = never })
	v.create(t, "alice", nil, pw)
	v.create(t, "dora", nil, pw)
	v.create(t, "nopass", nil, "")
	if err := v.svc.SetDisabled(v.rec("users.disable"), "dora", true); err != nil {
		t.Fatal(err)
	}
	kinds := []struct {
		name string
		req  users.LoginRequest
	}{
		{"existing, wrong password", users.LoginRequest{User: "alice", Password: "wrong password!!"}},
		{"unknown user", users.LoginRequest{User: "ghost", Password: "wrong password!!"}},
		{"disabled, right password", users.LoginRequest{User: "dora", Password: pw}},
		{"no password", users.LoginRequest{User: "nopass", Password: "wrong password!!"}},
		{"not a user name", users.LoginRequest{User: "Not A Name!", Password: "wrong password!!"}},
	}
	const n = 200
	order := make([]int, 0, n*len(kinds))
	for i := range kinds {
		for range n {
			order = append(order, i)
		}
	}
	rand.New(rand.NewPCG(16, 6238)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	// A warm-up of each kind first (the dummy hash is made on first use,
	// caches fill).
	for _, k := range kinds {
		_, err := v.login(k.req)
		invalidLogin(t, err)
	}
	times := make([][]time.Duration, len(kinds))
	for _, i := range order {
		ctx := v.rec("auth.login")
		start := time.Now()
		_, err := v.svc.Login(ctx, kinds[i].req)
		times[i] = append(times[i], time.Since(start))
		invalidLogin(t, err)
	}
	base := times[0]
	for i, k := range kinds {
		a := superiority(times[i], base)
		ratio := float64(median(times[i])) / float64(median(base))
		t.Logf("%-26s median %v, A against the existing user %.3f, median ratio %.3f", k.name, median(times[i]), a, ratio)
		if i == 0 {
			continue
		}
		if a < 0.25 || a > 0.75 {
			t.Errorf("%s: told apart from an existing user (A=%.3f, median ratio %.3f)", k.name, a, ratio)
		}
	}

	// Control: a refusal without Argon2 work (the backoff's, which is the
	// same for every name and needs none) is told apart by the same
	// statistic, so the test above can fail.
	locked := v.service(func(c *users.Config) { c.Backoff = users.BackoffConfig{UserFailures: 1, Initial: time.Hour} })
	_, err := locked.Login(v.rec("auth.login"), users.LoginRequest{User: "ghost", Password: "x"})
	invalidLogin(t, err)
	var fast, slow []time.Duration
	for i := range 2 * 50 {
		var d time.Duration
		if i%2 == 0 {
			start := time.Now()
			_, err = locked.Login(v.rec("auth.login"), users.LoginRequest{User: "ghost", Password: "x"})
			d = time.Since(start)
			fast = append(fast, d)
		} else {
			start := time.Now()
			_, err = v.svc.Login(v.rec("auth.login"), users.LoginRequest{User: "ghost", Password: "x"})
			d = time.Since(start)
			slow = append(slow, d)
		}
		if err == nil {
			t.Fatal("a login succeeded")
		}
	}
	if a := superiority(fast, slow); a > 0.1 {
		t.Fatalf("control: a refusal without Argon2 is not told apart (A=%.3f, medians %v and %v)", a, median(fast), median(slow))
	}
}

func TestSuperiority(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, c := range []struct {
		xs, ys []time.Duration
		want   float64
	}{
		{ms(1, 2, 3), ms(4, 5, 6), 0},
		{ms(4, 5, 6), ms(1, 2, 3), 1},
		{ms(1, 2, 3), ms(1, 2, 3), 0.5},
		{ms(5, 5), ms(5, 5), 0.5},
		{ms(1, 4), ms(2, 3), 0.5},
		{ms(3), ms(1, 2, 3, 4), 0.625}, // beats 1 and 2, ties 3, loses to 4
	} {
		if got := superiority(c.xs, c.ys); got != c.want {
			t.Errorf("superiority(%v, %v) = %v, want %v", c.xs, c.ys, got, c.want)
		}
	}
}
