package server_test

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warden-sec/warden/internal/server"
)

// TestRaftTimeouts checks the defaults Config documents for the heartbeat,
// election and leader lease timeouts, and that Raft accepts what they give.
func TestRaftTimeouts(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		name                    string
		hb, election, lease     time.Duration // asked
		wantHB, wantEl, wantLse time.Duration
	}{
		{"defaults", 0, 0, 0, server.DefaultHeartbeatTimeout, server.DefaultHeartbeatTimeout, server.DefaultHeartbeatTimeout},
		{"heartbeat only", ms(300), 0, 0, ms(300), ms(300), ms(300)},
		{"election only sets the heartbeat too, as before", 0, ms(500), 0, ms(500), ms(500), ms(500)},
		{"all three", ms(150), ms(400), ms(100), ms(150), ms(400), ms(100)},
		{"heartbeat and lease", ms(250), 0, ms(200), ms(250), ms(250), ms(200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hb, el, lse := server.RaftTimeouts(server.Config{HeartbeatTimeout: tc.hb, ElectionTimeout: tc.election, LeaderLeaseTimeout: tc.lease})
			if hb != tc.wantHB || el != tc.wantEl || lse != tc.wantLse {
				t.Fatalf("got heartbeat %s, election %s, lease %s; want %s, %s, %s", hb, el, lse, tc.wantHB, tc.wantEl, tc.wantLse)
			}
			rc := raft.DefaultConfig()
			rc.LocalID = "n1"
			rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = hb, el, lse
			if err := raft.ValidateConfig(rc); err != nil {
				t.Fatalf("raft refuses them: %v", err)
			}
		})
	}
}
