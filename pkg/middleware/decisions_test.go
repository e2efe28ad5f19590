package middleware

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/pkg/client"
)

// staticDecisions is a DecisionSource with a fixed state.
type staticDecisions struct{ st *client.DecisionState }

func (s staticDecisions) State() *client.DecisionState { return s.st }

// TestHandlerDecisions: with Config.Decisions, banned sources (for every
// zone or the service's own) are 403 before anything else, quarantined
// nodes 403, serials revoked per the stream 401; simulated bans, bans of
// other zones and bans hitting the never-block list are served, the
// simulated ones logged.
func TestHandlerDecisions(t *testing.T) {
	now := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	exp := now.Add(time.Hour).Format(time.RFC3339)
	ban := func(id, ip, cidr, zone string, sim bool) client.DecisionRecord {
		return client.DecisionRecord{ID: id, Type: "ban", Target: client.DecisionTarget{IP: ip, CIDR: cidr}, Zone: zone,
			Simulated: sim, ExpiresAt: exp}
	}
	st := &client.DecisionState{Revision: 9, Decisions: map[string]client.DecisionRecord{}, Allow: map[string]client.AllowEntry{
		"allow-1": {ID: "allow-1", CIDR: "10.0.0.0/8"}}, Revoked: map[string]client.Revocation{"2a": {Serial: "2a"}}}
	for _, d := range []client.DecisionRecord{
		ban("dec-ip", "203.0.113.7", "", "", false),
		ban("dec-plant", "203.0.113.8", "", "plant", false),
		ban("dec-dmz", "203.0.113.9", "", "dmz", false),
		ban("dec-sim", "203.0.113.10", "", "", true),
		ban("dec-range", "", "198.51.100.0/24", "", false),
		ban("dec-office", "10.1.2.3", "", "", false),
		{ID: "dec-old", Type: "ban", Target: client.DecisionTarget{IP: "203.0.113.11"}, ExpiresAt: now.Add(-time.Second).Format(time.RFC3339)},
		{ID: "dec-q", Type: "quarantine", Target: client.DecisionTarget{Node: "web-3"}, ExpiresAt: exp},
	} {
		st.Decisions[d.ID] = d
	}
	logs := &strings.Builder{}
	c, _ := client.New(client.Config{Address: "https://127.0.0.1:1"}) // never reached
	self := func(*http.Request, Principal) (Target, error) {
		return Target{Action: "conduit.connect", Resource: Principal{Kind: KindNode, Name: "api-1", Zone: "plant"}.Entity()}, nil
	}
	a, err := New(Config{Client: c, TrustDomain: "warden.local", Self: "api-1", Decisions: staticDecisions{st}, Map: self,
		Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.selfZone, a.selfKnow = "plant", true
	a.zones["web-1"], a.zones["web-3"] = "plant", "plant"
	if err := a.setPolicies(map[string]string{"all": `permit (principal, action, resource);`}, now); err != nil {
		t.Fatal(err)
	}
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("served")) }))
	node := func(name string, serial int64) *x509.Certificate {
		c := certWithURIs("spiffe://warden.local/node/" + name)
		c.SerialNumber = big.NewInt(serial)
		return c
	}
	for _, tc := range []struct {
		name, remote string
		leaf         *x509.Certificate
		status       int
		body         string
	}{
		{"served", "192.0.2.1:5000", node("web-1", 1), 200, "served"},
		{"banned address", "203.0.113.7:5000", node("web-1", 1), 403, "source address is banned"},
		{"banned, no certificate", "203.0.113.7:5000", nil, 403, "banned"},
		{"banned, IPv4-mapped", "[::ffff:203.0.113.7]:5000", node("web-1", 1), 403, "banned"},
		{"banned in this zone", "203.0.113.8:5000", node("web-1", 1), 403, "banned"},
		{"banned in another zone", "203.0.113.9:5000", node("web-1", 1), 200, "served"},
		{"simulated", "203.0.113.10:5000", node("web-1", 1), 200, "served"},
		{"expired", "203.0.113.11:5000", node("web-1", 1), 200, "served"},
		{"banned range", "198.51.100.200:5000", node("web-1", 1), 403, "banned"},
		{"never-block list", "10.1.2.3:5000", node("web-1", 1), 200, "served"},
		{"quarantined node", "192.0.2.1:5000", node("web-3", 1), 403, "quarantined"},
		{"revoked per the stream", "192.0.2.1:5000", node("web-1", 42), 401, "revoked"},
		{"not TCP", "@", node("web-1", 1), 200, "served"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://api-1/", nil)
			r.RemoteAddr = tc.remote
			if tc.leaf != nil {
				r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{tc.leaf},
					VerifiedChains: [][]*x509.Certificate{{tc.leaf}}}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("%d %s, want %d %q", rec.Code, rec.Body, tc.status, tc.body)
			}
		})
	}
	for _, want := range []string{"decision=dec-sim simulated=true", "decision=dec-office allow=allow-1", "decision=dec-ip", "decision=dec-q"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}

	// A nil *Follower is no decision source.
	var f *client.Follower
	b, err := New(Config{Client: c, TrustDomain: "warden.local", Self: "api-1", Decisions: f})
	if err != nil || b.cfg.Decisions != nil {
		t.Fatalf("nil follower: %v %v", b.cfg.Decisions, err)
	}
}
