package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/warden-sec/warden/pkg/client"
)

// TestShutdownEndsStreams: a server that shuts down ends its decision
// streams at once rather than waiting for them (they are never idle), so
// Close completes its graceful shutdown and the followers are free to
// reconnect elsewhere.
func TestShutdownEndsStreams(t *testing.T) {
	ctx := context.Background()
	nodes := []*clusterNode{{t: t, id: "n1", dir: t.TempDir(), clusterAddr: freeAddr(t)}}
	nodes[0].start()
	_, root := initJoin(ctx, t, nodes)
	admin := nodes[0].client(root)
	svid := enrollSVID(ctx, t, admin, nodes[0].client(""), "web-1")
	f := runFollower(t, client.FollowerConfig{Clients: []*client.Client{svidClient(t, nodes[0], svid)}})
	select {
	case <-f.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("no sync from the server")
	}
	srv := nodes[0].srv
	nodes[0].srv = nil
	if err := srv.Close(); err != nil {
		t.Fatalf("Close with a decision stream open: %v (the stream held the graceful shutdown)", err)
	}
}
