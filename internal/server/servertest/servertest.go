// Package servertest starts real Warden servers for the tests of other
// packages. Only tests import it.
package servertest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/server"
)

// Dev returns a server on a temporary data dir, initialized and unsealed
// like `warden server --dev` (server.DevInit), without its listener
// started, closed when the test ends. Its log is discarded.
func Dev(t testing.TB) *server.Server {
	t.Helper()
	srv, err := server.New(server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", RateLimit: -1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := srv.DevInit(ctx); err != nil {
		t.Fatal(err)
	}
	return srv
}

// Started returns a server with its listener started and a leader
// elected, not initialized (mod, if set, changes its configuration first),
// closed when the test ends. Its background compliance loop is off (no
// evaluation commits while a test reads or counts); a test that needs an
// evaluation runs one (Server.EvaluateCompliance) or sets
// ComplianceInterval in mod.
func Started(t testing.TB, mod func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", RateLimit: -1, ComplianceInterval: -1}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Store().WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return srv
}

// Running is Started, then initialized and unsealed like Dev's; it
// returns the root token too.
func Running(t testing.TB, mod func(*server.Config)) (*server.Server, string) {
	t.Helper()
	srv := Started(t, mod)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, root, err := srv.DevInit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return srv, root.Reveal()
}
