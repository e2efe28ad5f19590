package middleware

import (
	"crypto/x509"
	"net/http"
	"net/netip"

	"github.com/warden-sec/warden/pkg/client"
)

// banned refuses a request whose source address is banned in st for the
// service's zone (403); simulated bans and bans that hit the never-block
// list are logged, not enforced. A RemoteAddr that is not an IP address
// and port (not a TCP connection) is not checked. The zone is the
// service's own as last learnt; while it is unknown only bans for every
// zone apply (the request is refused later anyway, 503, until the zone is
// known).
func (a *Authorizer) banned(st *client.DecisionState, r *http.Request) (int, error) {
	if len(st.Decisions) == 0 {
		return 0, nil
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return 0, nil
	}
	self, _ := a.self()
	for _, d := range st.MatchIP(ap.Addr(), self.Zone, a.cfg.Now()) {
		if d.Simulated {
			a.log.Info("simulated ban matched; not enforced", "remote", r.RemoteAddr, "decision", d.ID, "simulated", true)
			continue
		}
		if e, hit := st.AllowHit(d); hit {
			a.log.Warn("ban hits the never-block list; not enforced", "remote", r.RemoteAddr, "decision", d.ID, "allow", e.ID)
			continue
		}
		a.log.Info("refused: banned source address", "remote", r.RemoteAddr, "decision", d.ID, "expires", d.ExpiresAt)
		return http.StatusForbidden, ErrBanned
	}
	return 0, nil
}

// refusedPeer refuses an authenticated peer whose certificate is revoked
// per the stream (401, like a serial on the CRL) or that is a quarantined
// node (403).
func (a *Authorizer) refusedPeer(st *client.DecisionState, p Principal, leaf *x509.Certificate, r *http.Request) (int, error) {
	if st.RevokedSerial(leaf.SerialNumber.Text(16)) {
		a.log.Info("peer refused: certificate revoked (decision stream)", "principal", p.String(), "serial", leaf.SerialNumber.Text(16), "remote", r.RemoteAddr)
		return http.StatusUnauthorized, ErrRevoked
	}
	if p.Kind != KindNode {
		return 0, nil
	}
	if d, ok := st.Quarantined(p.Name, a.cfg.Now()); ok {
		a.log.Info("peer refused: quarantined node", "principal", p.String(), "decision", d.ID, "remote", r.RemoteAddr)
		return http.StatusForbidden, ErrQuarantined
	}
	return 0, nil
}
