package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/server/servertest"
	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/internal/transit"
	"github.com/warden-sec/warden/internal/transit/engine"
)

// clock is a clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// env is a real server's core over its store in a temp dir, initialized
// and unsealed (server.DevInit), its audit log, and engines over them.
type env struct {
	srv   *server.Server
	clock *clock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := servertest.Dev(t)
	return &env{srv: srv, clock: &clock{t: t0}}
}

// engine returns a new engine over the server's core, on the test's clock.
func (v *env) engine() *engine.Engine {
	return engine.New(engine.Config{Storage: v.srv.Core(), Audit: v.srv.Audit(), Node: "test-node", Now: v.clock.Now})
}

// rec returns a context carrying a fresh pending record, as the API
// pipeline gives a change.
func (v *env) rec(action, name string) context.Context {
	ctx, _ := v.srv.Audit().Pending(context.Background(),
		auditlog.SystemEntry(v.clock.Now(), "test-node", action, `Key::"`+name+`"`))
	return ctx
}

// stored returns the stored record of key name (decrypted by the barrier).
func (v *env) stored(t testing.TB, name string) kv.Entry {
	t.Helper()
	ent, err := v.srv.Core().Get(context.Background(), "transit/keys/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return ent
}

// records returns the audit records appended since size before.
func (v *env) records(t testing.TB, before uint64) []audit.Entry {
	t.Helper()
	size, err := v.srv.Audit().Size()
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	for start := before; start < size; start += auditlog.MaxEntries {
		es, err := v.srv.Audit().Entries(start, auditlog.MaxEntries)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, e.Entry)
		}
	}
	return out
}

func (v *env) auditSize(t testing.TB) uint64 {
	t.Helper()
	size, err := v.srv.Audit().Size()
	if err != nil {
		t.Fatal(err)
	}
	return size
}

// create creates key name through e, with its record.
func (v *env) create(t testing.TB, e *engine.Engine, name string, typ transit.Type, opts transit.Options) {
	t.Helper()
	if _, _, err := e.Create(v.rec("transit.key.create", name), name, typ, opts); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](x T) *T { return &x }

func TestKeyRoundTrips(t *testing.T) {
	v := newEnv(t)
	e := v.engine()
	ctx := context.Background()

	if names, err := e.List(ctx); err != nil || len(names) != 0 {
		t.Fatalf("List of no keys: %v %v", names, err)
	}
	k, created, err := e.Create(v.rec("transit.key.create", "b"), "b", "", transit.Options{})
	if err != nil || !created || k.Type != transit.AES256GCM96 || k.Latest != 1 {
		t.Fatalf("Create b: %v created=%v %v", k, created, err)
	}
	v.create(t, e, "a", transit.Ed25519, transit.Options{})
	// Created again, with other options: the key as it is.
	before := v.stored(t, "b")
	again, created, err := e.Create(v.rec("transit.key.create", "b"), "b", transit.ChaCha20Poly1305, transit.Options{Exportable: true})
	if err != nil || created || again.Type != transit.AES256GCM96 || again.Exportable {
		t.Fatalf("Create of an existing key: %v created=%v %v", again, created, err)
	}
	if after := v.stored(t, "b"); after.Version != before.Version || !bytes.Equal(after.Value, before.Value) {
		t.Fatal("Create of an existing key changed it")
	}
	if names, err := e.List(ctx); err != nil || strings.Join(names, ",") != "a,b" {
		t.Fatalf("List: %v %v", names, err)
	}

	ct, err := k.Encrypt([]byte("hello"), nil, 0, e.Rand())
	if err != nil {
		t.Fatal(err)
	}
	if k, err = e.Rotate(v.rec("transit.key.rotate", "b"), "b"); err != nil || k.Latest != 2 {
		t.Fatalf("Rotate: %v %v", k, err)
	}
	read, err := e.Key(ctx, "b")
	if err != nil || read.Latest != 2 || len(read.Versions) != 2 {
		t.Fatalf("Key after Rotate: %v %v", read, err)
	}
	if pt, n, err := read.Decrypt(ct, nil); err != nil || string(pt) != "hello" || n != 1 {
		t.Fatalf("Decrypt of v1 after Rotate: %q %d %v", pt, n, err)
	}
	k, err = e.Configure(v.rec("transit.key.config", "b"), "b", transit.Config{MinDecryptionVersion: ptr(2), AutoRotatePeriod: ptr(48 * time.Hour)})
	if err != nil || k.MinDecryptionVersion != 2 || k.AutoRotatePeriod != 48*time.Hour {
		t.Fatalf("Configure: %v %v", k, err)
	}
	// read is the key before Configure, unchanged.
	if _, _, err := read.Decrypt(ct, nil); err != nil {
		t.Fatalf("the key read before Configure changed: %v", err)
	}
	if read, _ = e.Key(ctx, "b"); read.MinDecryptionVersion != 2 {
		t.Fatalf("Key after Configure: %v", read)
	}
	if _, _, err := read.Decrypt(ct, nil); err == nil {
		t.Fatal("v1 decrypts below min_decryption_version")
	}
	if k, err = e.Trim(v.rec("transit.key.config", "b"), "b", 2); err != nil || k.MinAvailableVersion() != 2 || len(k.Versions) != 1 {
		t.Fatalf("Trim: %v %v", k, err)
	}
	if read, _ = e.Key(ctx, "b"); read.MinAvailableVersion() != 2 {
		t.Fatalf("Key after Trim: %v", read)
	}

	err = e.Delete(v.rec("transit.key.delete", "b"), "b")
	if !errs.Is(err, errs.Invalid) || err.Error() != "deletion_allowed: the key b may not be deleted; set deletion_allowed with its config first" {
		t.Fatalf("Delete without deletion_allowed: %v", err)
	}
	if _, err := e.Configure(v.rec("transit.key.config", "b"), "b", transit.Config{DeletionAllowed: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if err := e.Delete(v.rec("transit.key.delete", "b"), "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Key(ctx, "b"); !errs.Is(err, errs.NotFound) || err.Error() != "key b: not found" {
		t.Fatalf("Key after Delete: %v", err)
	}
	if names, err := e.List(ctx); err != nil || strings.Join(names, ",") != "a" {
		t.Fatalf("List after Delete: %v %v", names, err)
	}
	// A deleted name can be created anew, from version 1.
	if k, created, err := e.Create(v.rec("transit.key.create", "b"), "b", transit.HMAC, transit.Options{}); err != nil || !created || k.Latest != 1 || k.Type != transit.HMAC {
		t.Fatalf("Create after Delete: %v %v %v", k, created, err)
	}
}

func TestNotFoundAndBadNames(t *testing.T) {
	v := newEnv(t)
	e := v.engine()
	ctx := v.rec("transit.key.rotate", "nope")
	for name, call := range map[string]func(string) error{
		"Key":       func(n string) error { _, err := e.Key(ctx, n); return err },
		"Rotate":    func(n string) error { _, err := e.Rotate(ctx, n); return err },
		"Configure": func(n string) error { _, err := e.Configure(ctx, n, transit.Config{}); return err },
		"Trim":      func(n string) error { _, err := e.Trim(ctx, n, 1); return err },
		"Delete":    func(n string) error { return e.Delete(ctx, n) },
	} {
		t.Run(name, func(t *testing.T) {
			if err := call("nope"); !errs.Is(err, errs.NotFound) || err.Error() != "key nope: not found" {
				t.Errorf("missing key: %v", err)
			}
			if err := call("a/b"); !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), "name: ") {
				t.Errorf("bad name: %v", err)
			}
		})
	}
	if _, _, err := e.Create(ctx, "../x", "", transit.Options{}); !errs.Is(err, errs.Invalid) {
		t.Errorf("Create with a bad name: %v", err)
	}
	if _, _, err := e.Create(ctx, "x", "des", transit.Options{}); !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), "type: ") {
		t.Errorf("Create with a bad type: %v", err)
	}
	if _, _, err := e.Create(ctx, "x", transit.Ed25519, transit.Options{Derived: true}); !errs.Is(err, errs.Invalid) {
		t.Errorf("Create of a derived ed25519 key: %v", err)
	}
	if names, _ := e.List(context.Background()); len(names) != 0 {
		t.Errorf("refused creates stored keys: %v", names)
	}
}

// TestRefusedChangesLeaveTheStoredKey: every refused change leaves the
// stored record byte for byte as it was, at the same store version.
func TestRefusedChangesLeaveTheStoredKey(t *testing.T) {
	v := newEnv(t)
	e := v.engine()
	v.create(t, e, "k", "", transit.Options{})
	for range 2 {
		if _, err := e.Rotate(v.rec("transit.key.rotate", "k"), "k"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Configure(v.rec("transit.key.config", "k"), "k", transit.Config{MinDecryptionVersion: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		field string
		do    func(ctx context.Context) error
	}{
		{"exportable on", "exportable: ", func(ctx context.Context) error {
			_, err := e.Configure(ctx, "k", transit.Config{Exportable: ptr(true), DeletionAllowed: ptr(true)})
			return err
		}},
		{"min_decryption_version above latest", "min_decryption_version: ", func(ctx context.Context) error {
			_, err := e.Configure(ctx, "k", transit.Config{MinDecryptionVersion: ptr(4), DeletionAllowed: ptr(true)})
			return err
		}},
		{"min_encryption_version below min_decryption_version", "min_encryption_version: ", func(ctx context.Context) error {
			_, err := e.Configure(ctx, "k", transit.Config{MinEncryptionVersion: ptr(1)})
			return err
		}},
		{"auto_rotate_period too short", "auto_rotate_period: ", func(ctx context.Context) error {
			_, err := e.Configure(ctx, "k", transit.Config{AutoRotatePeriod: ptr(time.Minute)})
			return err
		}},
		{"trim above min_decryption_version", "min_available_version: ", func(ctx context.Context) error {
			_, err := e.Trim(ctx, "k", 3)
			return err
		}},
		{"trim below min_available_version", "min_available_version: ", func(ctx context.Context) error {
			_, err := e.Trim(ctx, "k", 0)
			return err
		}},
		{"delete without deletion_allowed", "deletion_allowed: ", func(ctx context.Context) error { return e.Delete(ctx, "k") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := v.stored(t, "k")
			err := c.do(v.rec("transit.key.config", "k"))
			if !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), c.field) {
				t.Fatalf("got %v, want Invalid naming %q", err, c.field)
			}
			after := v.stored(t, "k")
			if after.Version != before.Version || !bytes.Equal(after.Value, before.Value) {
				t.Fatal("a refused change changed the stored key")
			}
		})
	}
	// A change that changes nothing commits nothing either.
	before := v.stored(t, "k")
	if _, err := e.Trim(v.rec("transit.key.config", "k"), "k", 1); err != nil {
		t.Fatal(err)
	}
	if after := v.stored(t, "k"); after.Version != before.Version {
		t.Fatal("a trim to the current min_available_version wrote the key")
	}
}

func TestExportableIsNeverReenabled(t *testing.T) {
	v := newEnv(t)
	e := v.engine()
	v.create(t, e, "x", transit.Ed25519, transit.Options{Exportable: true})
	k, err := e.Configure(v.rec("transit.key.config", "x"), "x", transit.Config{Exportable: ptr(false)})
	if err != nil || k.Exportable {
		t.Fatalf("turning exportable off: %v %v", k, err)
	}
	for _, name := range []string{"x", "fresh"} {
		if name == "fresh" {
			v.create(t, e, name, "", transit.Options{})
		}
		_, err := e.Configure(v.rec("transit.key.config", name), name, transit.Config{Exportable: ptr(true)})
		if !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), "exportable: ") {
			t.Fatalf("%s made exportable: %v", name, err)
		}
		if k, _ := e.Key(context.Background(), name); k.Exportable {
			t.Fatalf("%s is exportable", name)
		}
	}
}

// TestConcurrentRotationsAllLand: rotations racing from many goroutines,
// each retried after a lost race, all commit: none is lost or doubled, and
// each one's record (WithRecord) names the version that rotation made.
func TestConcurrentRotationsAllLand(t *testing.T) {
	v := newEnv(t)
	e := v.engine()
	v.create(t, e, "k", "", transit.Options{})
	// Each rotation commits once, so one loses at most n-1 races: within
	// the engine's 16 retries.
	const n = 12
	errc := make(chan error, n)
	var start sync.WaitGroup
	start.Add(1)
	entries := make([]*audit.Entry, n)
	for i := range n {
		entries[i] = auditlog.SystemEntry(v.clock.Now(), "test-node", "transit.key.rotate", `Key::"k"`)
		ctx, _ := v.srv.Audit().Pending(context.Background(), entries[i])
		ctx = engine.WithRecord(ctx, entries[i])
		go func() {
			start.Wait()
			_, err := e.Rotate(ctx, "k")
			errc <- err
		}()
	}
	start.Done()
	for range n {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// A second engine decodes the stored key afresh.
	k, err := v.engine().Key(context.Background(), "k")
	if err != nil || k.Latest != 1+n || len(k.Versions) != 1+n {
		t.Fatalf("after %d concurrent rotations: %v %v", n, k, err)
	}
	seen := map[uint64]bool{}
	for _, e := range entries {
		if e.KeyVersion < 2 || e.KeyVersion > 1+n || seen[e.KeyVersion] {
			t.Fatalf("rotation records name versions %v, then %d", seen, e.KeyVersion)
		}
		seen[e.KeyVersion] = true
	}
}

// TestCache: Key returns the decoded key shared until the record changes,
// whichever engine changes it.
func TestCache(t *testing.T) {
	v := newEnv(t)
	e1, e2 := v.engine(), v.engine()
	ctx := context.Background()
	v.create(t, e1, "k", "", transit.Options{})
	a, err := e1.Key(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := e1.Key(ctx, "k"); b != a {
		t.Fatal("Key of an unchanged key decoded it again")
	}
	if _, err := e2.Rotate(v.rec("transit.key.rotate", "k"), "k"); err != nil {
		t.Fatal(err)
	}
	c, err := e1.Key(ctx, "k")
	if err != nil || c == a || c.Latest != 2 {
		t.Fatalf("Key after another engine rotated: %v %v", c, err)
	}
	if a.Latest != 1 {
		t.Fatal("the shared key changed under its readers")
	}
	e1.Forget()
	if d, _ := e1.Key(ctx, "k"); d == c || d.Latest != 2 {
		t.Fatal("Forget kept the cached key")
	}
	// Deleted through the other engine: gone for this one too.
	if _, err := e2.Configure(v.rec("transit.key.config", "k"), "k", transit.Config{DeletionAllowed: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if err := e2.Delete(v.rec("transit.key.delete", "k"), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := e1.Key(ctx, "k"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("Key after another engine deleted it: %v", err)
	}
}

// TestTickRotatesAndRetires: with the clock moved forward, one pass of the
// schedule rotates the key whose auto_rotate_period passed and retires the
// version whose successor has been current for auto_retire_after, each a
// change of its own with its own record, made by this server.
func TestTickRotatesAndRetires(t *testing.T) {
	v := newEnv(t)
	e := v.engine()
	ctx := context.Background()
	v.create(t, e, "r", "", transit.Options{AutoRotatePeriod: time.Hour})
	v.create(t, e, "x", "", transit.Options{AutoRetireAfter: 30 * time.Minute})
	v.create(t, e, "plain", "", transit.Options{})
	if rotated, retired, err := e.Tick(ctx); err != nil || rotated != 0 || retired != 0 {
		t.Fatalf("Tick with nothing due: %d %d %v", rotated, retired, err)
	}
	v.clock.set(t0.Add(20 * time.Minute))
	if _, err := e.Rotate(v.rec("transit.key.rotate", "x"), "x"); err != nil {
		t.Fatal(err)
	}
	plain := v.stored(t, "plain")

	v.clock.set(t0.Add(time.Hour))
	before := v.auditSize(t)
	rotated, retired, err := e.Tick(ctx)
	if err != nil || rotated != 1 || retired != 1 {
		t.Fatalf("Tick: rotated %d, retired %d, %v; want 1, 1", rotated, retired, err)
	}
	if k, _ := e.Key(ctx, "r"); k.Latest != 2 || !k.LatestCreated().Equal(t0.Add(time.Hour)) {
		t.Fatalf("r after Tick: %v", k)
	}
	if k, _ := e.Key(ctx, "x"); k.MinDecryptionVersion != 2 || k.Latest != 2 {
		t.Fatalf("x after Tick: %v", k)
	}
	if after := v.stored(t, "plain"); after.Version != plain.Version {
		t.Fatal("Tick wrote a key with no schedule")
	}
	got := map[string]audit.Entry{}
	for _, r := range v.records(t, before) {
		got[r.Action+" "+r.Resource] = r
	}
	if len(got) != 2 {
		t.Fatalf("Tick left %d records, want 2: %+v", len(got), got)
	}
	for _, want := range []struct {
		action, resource string
		version          uint64
	}{{"transit.key.rotate", `Key::"r"`, 2}, {"transit.key.retire", `Key::"x"`, 2}} {
		r, ok := got[want.action+" "+want.resource]
		if !ok {
			t.Fatalf("no %s record of %s: %+v", want.action, want.resource, got)
		}
		if r.KeyVersion != want.version || r.AuthMethod != "system" || r.Principal != `Server::"test-node"` || r.Time != audit.FormatTime(t0.Add(time.Hour)) {
			t.Errorf("%s record: %+v", want.action, r)
		}
	}

	// Done: the same pass again changes nothing and records nothing.
	before = v.auditSize(t)
	if rotated, retired, err := e.Tick(ctx); err != nil || rotated != 0 || retired != 0 {
		t.Fatalf("Tick again: %d %d %v", rotated, retired, err)
	}
	if rs := v.records(t, before); len(rs) != 0 {
		t.Fatalf("a Tick with nothing due left records: %+v", rs)
	}
}

// TestRunSchedule: the schedule ticks only while leader() holds. leader
// is asked before each tick, so its third call comes after the one tick
// it allowed has ended.
func TestRunSchedule(t *testing.T) {
	v := newEnv(t)
	e := v.engine()
	v.create(t, e, "r", "", transit.Options{AutoRotatePeriod: time.Hour})
	v.clock.set(t0.Add(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	e.RunSchedule(ctx, time.Millisecond, func() bool {
		calls++
		switch calls {
		case 1:
			return false
		case 2:
			return true
		}
		cancel()
		return false
	}, func(msg string, args ...any) { t.Errorf("schedule: %s %v", msg, args) })
	if k, _ := e.Key(context.Background(), "r"); k.Latest != 2 {
		t.Fatalf("after one tick as leader: %v", k)
	}
}

// TestErrorsCarryNoMaterial: a stored record that does not decode is an
// error that names the key and the field, never the record's bytes.
func TestErrorsCarryNoMaterial(t *testing.T) {
	v := newEnv(t)
	e := v.engine()
	v.create(t, e, "k", "", transit.Options{})
	good := v.stored(t, "k").Value
	var rec struct {
		Versions []struct {
			Material string `json:"material"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(good, &rec); err != nil || len(rec.Versions) != 1 || rec.Versions[0].Material == "" {
		t.Fatalf("the stored form: %v", err)
	}
	material := rec.Versions[0].Material
	// The material of version 1 made 3 bytes too long: a record that
	// decodes as JSON but fails the key's checks.
	bad := bytes.Replace(good, []byte(`"`+material+`"`), []byte(`"AAAA`+material+`"`), 1)
	if _, err := v.srv.Core().Txn(v.rec("test.corrupt", "k"), kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: "transit/keys/k", Value: bad}}}); err != nil {
		t.Fatal(err)
	}
	_, err := e.Key(context.Background(), "k")
	if err == nil {
		t.Fatal("a corrupt record decoded")
	}
	msg := fmt.Sprintf("%v %+v %#v", err, err, err)
	if !strings.Contains(msg, "stored key k ") || !strings.Contains(msg, "material of version 1") {
		t.Fatalf("the error does not name the key and field: %s", msg)
	}
	for i := 0; i+8 <= len(material); i++ {
		if strings.Contains(msg, material[i:i+8]) {
			t.Fatalf("the error shows material: %s", msg)
		}
	}
}

// BenchmarkKey is the hot path of every operation: Key of an unchanged
// key (a linearizable read and a cache hit).
func BenchmarkKey(b *testing.B) {
	v := newEnv(b)
	e := v.engine()
	v.create(b, e, "k", "", transit.Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Key(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncrypt is an encrypt of 1 KiB through Key.
func BenchmarkEncrypt(b *testing.B) {
	v := newEnv(b)
	e := v.engine()
	v.create(b, e, "k", "", transit.Options{})
	ctx := context.Background()
	pt := make([]byte, 1024)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		k, err := e.Key(ctx, "k")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.Encrypt(pt, nil, 0, e.Rand()); err != nil {
			b.Fatal(err)
		}
	}
}
