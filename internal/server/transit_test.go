package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/transit"
)

// TestTransitWiring: the server's transit engine runs on its clock, the
// leader's schedule rotates a key that is due, and sealing drops the
// engine's cache of decoded keys.
func TestTransitWiring(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.TransitScheduleInterval = 5 * time.Millisecond })
	keys, _ := h.initUnseal(1, 1)
	eng := h.srv.Transit()
	if !eng.Now().Equal(h.clk.Now()) {
		t.Fatalf("the engine's clock %v is not the server's %v", eng.Now(), h.clk.Now())
	}
	ctx := context.Background()
	if _, _, err := eng.Create(h.audited(ctx, "transit.key.create"), "k", "", transit.Options{AutoRotatePeriod: time.Hour}); err != nil {
		t.Fatal(err)
	}
	h.clk.Add(time.Hour)
	waitFor(t, "the schedule to rotate the key", func() bool {
		k, err := eng.Key(ctx, "k")
		return err == nil && k.Latest == 2
	})

	before, err := eng.Key(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := eng.Key(ctx, "k"); again != before {
		t.Fatal("Key of an unchanged key is not the cached one")
	}
	h.srv.Core().Seal()
	if _, err := eng.Key(ctx, "k"); err == nil {
		t.Fatal("Key while sealed")
	}
	h.unseal(keys)
	after, err := eng.Key(ctx, "k")
	if err != nil || after == before || after.Latest != 2 {
		t.Fatalf("Key after seal and unseal: %v %v (the cached key kept: %v)", after, err, after == before)
	}
}
