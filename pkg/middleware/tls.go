package middleware

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// TLSConfig returns a server TLS configuration for the Handler, made from
// base (which holds the service's certificate: Certificates or
// GetCertificate; nil is an empty config): TLS 1.2 or later, and client
// certificates required and verified against the Warden trust bundle the
// Authorizer holds at the time of each handshake (the latest fetched, or
// the cached one). Until a bundle is loaded every handshake fails.
//
// Each handshake uses a copy of base as it was when TLSConfig was called,
// through GetConfigForClient: change base before calling, not the result.
// The result's own ClientCAs is an empty pool, so a copy that loses
// GetConfigForClient verifies no client at all rather than too many.
// For HTTP/2, set base.NextProtos to []string{"h2", "http/1.1"}: the
// handshake uses base's, not those http.Server adds to the result.
func (a *Authorizer) TLSConfig(base *tls.Config) *tls.Config {
	tmpl := base.Clone()
	if tmpl == nil {
		tmpl = &tls.Config{}
	}
	if tmpl.MinVersion < tls.VersionTLS12 {
		tmpl.MinVersion = tls.VersionTLS12
	}
	tmpl.ClientAuth = tls.RequireAndVerifyClientCert
	tmpl.GetConfigForClient = nil
	tmpl.ClientCAs = x509.NewCertPool()
	out := tmpl.Clone()
	out.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		s := a.rev.Load()
		if s == nil {
			return nil, errors.New("middleware: no Warden trust bundle loaded yet")
		}
		c := tmpl.Clone()
		c.ClientCAs = s.pool
		return c, nil
	}
	return out
}
