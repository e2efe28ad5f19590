// Package middleware is net/http middleware for services in a Warden fleet:
// it authenticates the peer by its X.509-SVID (the client certificate of a
// mutual-TLS connection), maps it to a Cedar principal with its zone, and
// decides the request with a locally cached copy of a Warden policy store.
// The identity model is docs/pki.md's ("Nodes as API callers", "Zones and
// conduits"); the design is written down there under "Services:
// pkg/middleware".
//
// A request is decided in the service's own process, without a round trip
// to the cluster: the policies, the trust bundle and CRL, and the zones of
// the peers seen so far are fetched in the background ([Authorizer.Run],
// [Authorizer.Refresh]) and kept when the cluster is unreachable, optionally
// on disk ([Config.CacheFile]), so that a service keeps authorizing through
// an outage and across a restart during one.
//
// Fail-safe defaults: a request without a verified client certificate, with
// a certificate outside the trust domain, or with a revoked serial is 401;
// before any policy set has been loaded every request is 503; a request that
// no policy permits, or that a policy forbids, or whose evaluation errs, is
// 403. With [Config.Decisions] (a follower of the cluster's decision
// stream), a request from a banned source address or a quarantined node is
// 403 and one with a serial revoked per the stream 401, decided from the
// follower's last state (docs/response.md, "Enforcement in services").
// Nothing here ever allows a request because something failed.
//
// What it does not do: it does not terminate TLS or verify certificate
// chains itself (the http.Server's TLS configuration must verify client
// certificates against the Warden trust bundle; [Authorizer.TLSConfig] makes
// one that does), it does not renew the service's own certificate (the agent
// does), and it does not read a store's stored entities (the API has no read
// endpoint for them): policies are evaluated against the entities the
// middleware builds, the principal and the resource.
package middleware
