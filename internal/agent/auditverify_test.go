package agent

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/config"
	"github.com/warden-sec/warden/internal/auditcheck"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/witness"
	"github.com/warden-sec/warden/pkg/client"
)

// TestDaemonVerifiesAudit: the daemon verifies the audit log every
// interval with the node's certificate: refused until a policy lets nodes
// read the log (the state file is not written), then a checkpoint cosigned
// by the server's witness is kept in <data-dir>/audit-verify.json and
// replaced by newer ones as the log grows.
func TestDaemonVerifiesAudit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := server.New(server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Store().WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	admin, dir, _ := initAndEnroll(t, ctx, srv, "1h")
	cfg := &config.Config{Servers: []string{srv.Addr()}, CACert: srv.CAFile(), DataDir: dir, Enforce: config.EnforceNone}
	statePath := filepath.Join(dir, AuditStateFile)

	// Without a policy the node may not read the log.
	var ae *client.APIError
	if err := CheckAudit(ctx, AuditCheckConfig{Servers: cfg.Servers, CACert: cfg.CACert, DataDir: dir}); !errors.As(err, &ae) || ae.StatusCode != 403 {
		t.Fatalf("without a policy: %v, want 403", err)
	}
	if st, err := auditcheck.LoadState(statePath); err != nil || st != nil {
		t.Fatalf("state written after a refusal: %+v %v", st, err)
	}
	if _, err := admin.PolicyWrite(ctx, "warden", "nodes-verify-audit",
		`permit (principal is Node, action == Action::"audit.read", resource == AuditLog::"warden");`); err != nil {
		t.Fatal(err)
	}

	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Daemon(dctx, DaemonConfig{Load: func() (*config.Config, error) { return cfg, nil }, AuditVerifyInterval: 50 * time.Millisecond})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Daemon: %v", err)
		}
	}()
	v, err := admin.AuditVerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wl, err := admin.AuditWitnesses(ctx)
	if err != nil || len(wl.Servers) != 1 {
		t.Fatalf("witnesses: %+v %v", wl, err)
	}
	saved := func() *witness.Verified {
		st, err := auditcheck.LoadState(statePath)
		if err != nil || st == nil {
			return nil
		}
		vf, err := witness.VerifyCosigned([]byte(st.Checkpoint), v.VerifierKey, []string{wl.Servers[0].VerifierKey}, 1)
		if err != nil {
			t.Fatalf("the saved checkpoint: %v", err)
		}
		return vf
	}
	var first *witness.Verified
	deadline := time.Now().Add(30 * time.Second)
	for first = saved(); first == nil; first = saved() {
		if time.Now().After(deadline) {
			t.Fatal("the daemon kept no verified checkpoint")
		}
		time.Sleep(20 * time.Millisecond) // polling the state file, bounded by the deadline
	}
	if _, err := admin.KVPut(ctx, "app/db", map[string]any{"k": "v"}, nil); err != nil {
		t.Fatal(err)
	}
	for next := saved(); next.Size <= first.Size; next = saved() {
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not move to a newer checkpoint")
		}
		time.Sleep(20 * time.Millisecond) // polling the state file, bounded by the deadline
	}
}
