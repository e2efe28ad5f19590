package users

import (
	"container/list"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// BackoffConfig says how failed logins slow down the next ones. Failures
// are counted in memory, on each node, per user name (whether or not the
// user exists, so the answer does not tell) and per source address; once a
// name or an address has Failures of them, each further attempt must wait
// Initial, doubled with every failure since, at most Max, after the last
// failure. A successful login clears the name's count (not the address's:
// an attacker's own account must not reset the address it guesses from);
// so does Unlock, on every node. The zero value of each field is its
// default.
type BackoffConfig struct {
	UserFailures int           // failures of a user name before waits; 0: 5
	AddrFailures int           // failures from an address before waits; 0: 20
	Initial      time.Duration // the first wait; 0: 1 s
	Max          time.Duration // the longest wait; 0: 15 min
	AlertEvery   int           // OnLoginFailures at every multiple of this; 0: 5
	// Forget drops a name or an address whose last failure is older; 0:
	// 24 h.
	Forget time.Duration
	// MaxKeys bounds each of the two tables; when one is full, the entry
	// whose last failure is oldest is dropped. 0: 100,000.
	MaxKeys int
}

func (c BackoffConfig) withDefaults() BackoffConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.UserFailures, 5)
	def(&c.AddrFailures, 20)
	def(&c.AlertEvery, 5)
	def(&c.MaxKeys, 100_000)
	defD(&c.Initial, time.Second)
	defD(&c.Max, 15*time.Minute)
	defD(&c.Forget, 24*time.Hour)
	return c
}

// backoff is the failure count of each name and address. Safe for
// concurrent use.
type backoff struct {
	cfg   BackoffConfig
	mu    sync.Mutex
	users *table
	addrs *table
	// inflight counts the attempts of each name and address being checked
	// now: their failures are not counted yet, so a wave of attempts sent
	// at once must not all pass the check that counted none of them.
	inflightUsers, inflightAddrs map[string]int
}

func newBackoff(c BackoffConfig) *backoff {
	c = c.withDefaults()
	return &backoff{cfg: c, users: newTable(c.MaxKeys), addrs: newTable(c.MaxKeys),
		inflightUsers: make(map[string]int), inflightAddrs: make(map[string]int)}
}

// room reports whether one more attempt of a key with failures e may run
// beside the inflight ones: all of them failing must not take it past
// threshold, and once past it (its wait over) attempts run one at a time.
func room(e *entry, inflight, threshold int) bool {
	n := 0
	if e != nil {
		n = e.n
	}
	return inflight < max(1, threshold-n)
}

// reserve is check that also takes a place among the attempts in flight
// when the attempt may run: release gives it back (once its failure, if
// any, is counted). A wave beyond what the threshold allows waits a
// second.
func (b *backoff) reserve(user, addr string, unlock, now time.Time) (time.Time, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ue, ae := b.wait(user, addr, unlock, now)
	if !t.IsZero() {
		return t, nil
	}
	if !room(ue, b.inflightUsers[user], b.cfg.UserFailures) || (addr != "" && !room(ae, b.inflightAddrs[addr], b.cfg.AddrFailures)) {
		return now.Add(time.Second), nil
	}
	b.inflightUsers[user]++
	if addr != "" {
		b.inflightAddrs[addr]++
	}
	return time.Time{}, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		dec(b.inflightUsers, user)
		if addr != "" {
			dec(b.inflightAddrs, addr)
		}
	}
}

func dec(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// entry is the failures of one key since its window opened.
type entry struct {
	key         string
	n           int
	first, last time.Time
}

// table is a map bounded by dropping its least recently failed entry.
type table struct {
	max int
	m   map[string]*list.Element // of *entry
	l   *list.List               // front: the least recently failed
}

func newTable(max int) *table {
	return &table{max: max, m: make(map[string]*list.Element), l: list.New()}
}

// get returns the entry of key, or nil; an entry idle past forget is
// dropped.
func (t *table) get(key string, now time.Time, forget time.Duration) *entry {
	el, ok := t.m[key]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if now.Sub(e.last) > forget {
		t.remove(key)
		return nil
	}
	return e
}

func (t *table) remove(key string) {
	if el, ok := t.m[key]; ok {
		t.l.Remove(el)
		delete(t.m, key)
	}
}

// fail counts a failure of key at now and returns its count.
func (t *table) fail(key string, now time.Time, forget time.Duration) int {
	e := t.get(key, now, forget)
	if e == nil {
		e = &entry{key: key, first: now}
		t.m[key] = t.l.PushBack(e)
		for len(t.m) > t.max {
			old := t.l.Front()
			t.l.Remove(old)
			delete(t.m, old.Value.(*entry).key)
		}
	} else {
		t.l.MoveToBack(t.m[key])
	}
	e.n++
	if now.After(e.last) {
		e.last = now
	}
	return e.n
}

// until returns when e may try again, after threshold failures, or the
// zero time if it need not wait.
func (b *backoff) until(e *entry, threshold int) time.Time {
	if e == nil || e.n < threshold {
		return time.Time{}
	}
	d := b.cfg.Initial
	for i := threshold; i < e.n && d < b.cfg.Max; i++ {
		d *= 2
	}
	return e.last.Add(min(d, b.cfg.Max))
}

// applyUnlock voids the failures of a user entry older than an unlock at
// u. Only the count, the first and the last failure are kept, so when the
// unlock fell between them the failures after it are counted as one.
func (b *backoff) applyUnlock(key string, u, now time.Time) *entry {
	e := b.users.get(key, now, b.cfg.Forget)
	if e == nil || u.IsZero() || u.Before(e.first) {
		return e
	}
	if !e.last.After(u) {
		b.users.remove(key)
		return nil
	}
	e.n, e.first = 1, e.last
	return e
}

// check returns when the next login of user from addr may be tried (the
// later of the two waits), or the zero time if now is fine. unlock is the
// user's last Unlock.
func (b *backoff) check(user, addr string, unlock, now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, _, _ := b.wait(user, addr, unlock, now)
	return t
}

// wait is check with b.mu held; it also returns the entries it read.
func (b *backoff) wait(user, addr string, unlock, now time.Time) (time.Time, *entry, *entry) {
	ue := b.applyUnlock(user, unlock, now)
	t := b.until(ue, b.cfg.UserFailures)
	var ae *entry
	if addr != "" {
		ae = b.addrs.get(addr, now, b.cfg.Forget)
		if ta := b.until(ae, b.cfg.AddrFailures); ta.After(t) {
			t = ta
		}
	}
	if !t.After(now) {
		return time.Time{}, ue, ae
	}
	return t, ue, ae
}

// lockedUntil returns until when the user's own failures hold its logins
// back, or the zero time.
func (b *backoff) lockedUntil(user string, unlock, now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.until(b.applyUnlock(user, unlock, now), b.cfg.UserFailures)
	if !t.After(now) {
		return time.Time{}
	}
	return t
}

// alert is a call of OnLoginFailures to make.
type alert struct {
	user, addr string
	n          int
}

// fail counts a failed login of user from addr and returns the alerts it
// crossed.
func (b *backoff) fail(user, addr string, now time.Time) []alert {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []alert
	if n := b.users.fail(user, now, b.cfg.Forget); n%b.cfg.AlertEvery == 0 {
		out = append(out, alert{user, addr, n})
	}
	if addr != "" {
		if n := b.addrs.fail(addr, now, b.cfg.Forget); n%b.cfg.AlertEvery == 0 {
			out = append(out, alert{"", addr, n})
		}
	}
	return out
}

// success clears the user's failures.
func (b *backoff) success(user string) {
	b.mu.Lock()
	b.users.remove(user)
	b.mu.Unlock()
}

// unlock applies an Unlock at u to this node's table at once.
func (b *backoff) unlock(user string, u time.Time) {
	b.mu.Lock()
	b.applyUnlock(user, u, u)
	b.mu.Unlock()
}

// maxKeyLen bounds the keys of the tables: a name or an address longer
// than any valid one is cut (it names nothing that exists anyway).
const maxKeyLen = 256

// userKey is the backoff key of a user name as given: its canonical form
// when it has one, else the input lowered and cut.
func userKey(name string) string {
	if c, err := canonical("user", name); err == nil {
		return c
	}
	name = strings.ToLower(name)
	if len(name) > maxKeyLen {
		name = name[:maxKeyLen]
	}
	return name
}

// addrKey is the backoff key of a source address: the IP address without
// a port; for IPv6, its /64 (one host's usual allocation, which an
// attacker would otherwise walk through). Anything that does not parse is
// used as it is, cut.
func addrKey(src string) string {
	if src == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(src); err == nil {
		src = h
	}
	a, err := netip.ParseAddr(src)
	if err != nil {
		if len(src) > maxKeyLen {
			src = src[:maxKeyLen]
		}
		return src
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}
