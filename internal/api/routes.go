package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/api/transitapi"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/console"
	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/users"
)

// auditClass says what a route records in the audit log. Its zero value is
// "undeclared", which registration refuses: every route states its class.
type auditClass int

const (
	auditUndeclared auditClass = iota
	// auditChange: the route changes state; its record rides in the
	// change's Raft command (or, when nothing carried it, is committed
	// before the response leaves).
	auditChange
	// auditRead: the route returns protected data; its record is committed
	// before the response leaves, or the request fails.
	auditRead
	// auditNone: a success is not recorded (failures of authenticated
	// requests still are). Allowed only for the routes notAudited lists.
	auditNone
)

func (c auditClass) String() string {
	switch c {
	case auditChange:
		return "change"
	case auditRead:
		return "read"
	case auditNone:
		return "none"
	}
	return "undeclared"
}

// JoinTimeout bounds POST /v1/sys/raft/join (see route.timeout).
const JoinTimeout = 55 * time.Second // under the client's default 60 s, so the caller reads why

// notAudited lists the routes whose successes are not recorded, each with
// the reason. Registering an auditNone route that is not here fails, so
// leaving a route unaudited is a reviewed decision, never a default.
func notAudited() map[string]string {
	m := map[string]string{
		"sys.health":              "public status, polled by load balancers",
		"sys.seal-status":         "public status",
		"sys.init":                "runs before the audit log exists",
		"sys.unseal":              "runs while sealed, when no record can be committed",
		"raft.join-cluster":       "runs on a node without state, which has no audit log",
		"pki.ca":                  "the public trust bundle",
		"pki.crl":                 "the public revocation list",
		"pki.ocsp":                "public revocation status (RFC 6960)",
		"auth.whoami":             "tells the caller only who it is",
		"token.lookup-self":       "tells the caller only about its own token",
		"authz.check":             "decisions for applications, at their rate; counted in metrics",
		"authz.check-batch":       "decisions for applications, at their rate; counted in metrics",
		"conduit.check":           "a decision, counted in metrics",
		"audit.verifier":          "the log's public key, which verifiers must read",
		"audit.checkpoint":        "the signed root, which witnesses poll; recording each poll would grow the log it proves",
		"audit.proof.inclusion":   "hashes only, for verifiers",
		"audit.proof.consistency": "hashes only, for verifiers",
		"audit.witness.list":      "the witnesses' public keys and status, which verifiers (agents, every few minutes) read with the checkpoint",
		"metrics.read":            "counters, scraped every few seconds",
		"events.write":            "agents' telemetry, at their rate: the event stream is its record; counted in metrics (warden_events_*)",
	}
	m["auth.oidc.auth-url"] = "seals a state for the browser's round trip to the provider; stores nothing, and the callback that uses it is recorded"
	m["auth.oidc.device"] = "asks the provider for a device code; stores nothing, and the poll that opens the session is recorded"
	m["console"] = "the web console's static files, the same for everyone; its data comes through this API, audited as from any client"
	m["compliance.assessment"] = "the check policies the servers sign for agents, fetched by every agent at each assessment (hourly); no secrets; the policy writes are recorded"
	m["sys.generate-root.status"] = "public progress of this node's root generation attempt (never its nonce, a share or the token in clear)"
	return m
}

// route is one entry of the route table. Every field but maxBody is
// declared by its registration; nothing is inferred from names.
type route struct {
	// method and pattern are http.ServeMux's ("GET", "/v1/kv/data/{path...}").
	method, pattern string
	// name labels metrics and logs, and is the action of the records of
	// public routes.
	name string
	// target computes the action and resource a policy must permit; nil
	// only when public is set.
	target targetFunc
	// public: no credentials are checked by the pipeline (the handler may
	// check its own, as enrollment does).
	public bool
	// audit is the route's audit class; auditUndeclared is refused.
	audit auditClass
	// status is the status a success answers with (200, 201 or 204).
	status int
	h      handlerFunc
	// maxBody overrides the server's request size limit (0: the limit).
	maxBody int64
	// streaming: the response lasts as long as the client stays (no
	// request deadline; the body limit still applies).
	streaming bool
	// timeout, when not 0, replaces the server's request timeout for the
	// handler (the body must still arrive within the server's): for a
	// handler that waits on the cluster by design.
	timeout time.Duration
}

// check returns why rt cannot be registered, or nil.
func (rt *route) check() error {
	id := rt.method + " " + rt.pattern
	switch {
	case rt.method == "" || !strings.HasPrefix(rt.pattern, "/"):
		return fmt.Errorf("route %q: method and pattern are required", id)
	case rt.name == "":
		return fmt.Errorf("route %s: no name", id)
	case rt.h == nil:
		return fmt.Errorf("route %s: no handler", id)
	case rt.public == (rt.target != nil):
		return fmt.Errorf("route %s: declare either a target or public, exactly one", id)
	case rt.audit == auditUndeclared || rt.audit > auditNone:
		return fmt.Errorf("route %s: no audit class declared", id)
	case rt.status != http.StatusOK && rt.status != http.StatusCreated && rt.status != http.StatusNoContent:
		return fmt.Errorf("route %s: success status %d is not 200, 201 or 204", id, rt.status)
	}
	if _, ok := notAudited()[rt.name]; rt.audit == auditNone && !ok {
		return fmt.Errorf("route %s (%s): audit class none is allowed only for the routes notAudited lists", id, rt.name)
	}
	return nil
}

// routeTable is every route of the API. Each states its target (or that it
// is public), its audit class and its success status.
func (s *Server) routeTable() []route {
	const ok, noContent = http.StatusOK, http.StatusNoContent
	system := func(action string) targetFunc { return fixed(action, authz.TypeSystem, "warden") }
	rs := []route{
		{method: "GET", pattern: "/v1/sys/health", name: "sys.health", public: true, audit: auditNone, status: ok, h: s.health},
		{method: "GET", pattern: "/v1/sys/seal-status", name: "sys.seal-status", public: true, audit: auditNone, status: ok, h: s.sealStatus},
		{method: "POST", pattern: "/v1/sys/init", name: "sys.init", public: true, audit: auditNone, status: ok, h: s.initialize},
		{method: "POST", pattern: "/v1/sys/unseal", name: "sys.unseal", public: true, audit: auditNone, status: ok, h: s.unseal},
		// Root token generation (docs/governance.md): a quorum of unseal
		// keys authorizes it, not a token, so it is public like unseal;
		// every step that changes the attempt is recorded (generateroot.go).
		{method: "POST", pattern: "/v1/sys/generate-root/attempt", name: "sys.generate-root.init", public: true, audit: auditChange, status: ok, h: s.generateRootInit},
		{method: "GET", pattern: "/v1/sys/generate-root/attempt", name: "sys.generate-root.status", public: true, audit: auditNone, status: ok, h: s.generateRootStatus},
		{method: "DELETE", pattern: "/v1/sys/generate-root/attempt", name: "sys.generate-root.cancel", public: true, audit: auditChange, status: noContent, h: s.generateRootCancel},
		{method: "POST", pattern: "/v1/sys/generate-root/update", name: "sys.generate-root.update", public: true, audit: auditChange, status: ok, h: s.generateRootUpdate},
		{method: "GET", pattern: "/v1/pki/ca", name: "pki.ca", public: true, audit: auditNone, status: ok, h: s.pkiCA},
		{method: "GET", pattern: "/v1/pki/crl", name: "pki.crl", public: true, audit: auditNone, status: ok, h: s.pkiCRL},
		{method: "POST", pattern: "/v1/pki/ocsp", name: "pki.ocsp", public: true, audit: auditNone, status: ok, h: s.pkiOCSP},
		{method: "GET", pattern: "/v1/pki/ocsp/{req...}", name: "pki.ocsp", public: true, audit: auditNone, status: ok, h: s.pkiOCSP},
		// Enrollment, renewal and re-enrollment are public: their handlers
		// check the join token, the client certificate or the proof of
		// possession. A success is recorded with the issuance; failures
		// are counted and aggregated (see authFailures).
		{method: "POST", pattern: "/v1/pki/enroll", name: "pki.enroll", public: true, audit: auditChange, status: ok, h: s.enroll},
		{method: "POST", pattern: "/v1/pki/renew", name: "pki.renew", public: true, audit: auditChange, status: ok, h: s.renew},
		{method: "POST", pattern: "/v1/pki/reenroll", name: "pki.reenroll", public: true, audit: auditChange, status: ok, h: s.reenroll},
		{method: "GET", pattern: "/v1/pki/certs", name: "cert.list", target: fixed(authz.ActionCertList, authz.TypeCertificate, "*"), audit: auditRead, status: ok, h: s.certList},

		{method: "POST", pattern: "/v1/zones", name: "zone.create", target: fixed(authz.ActionZoneCreate, authz.TypeZone, "*"), audit: auditChange, status: ok, h: s.zoneCreate},
		{method: "GET", pattern: "/v1/zones", name: "zone.list", target: fixed(authz.ActionZoneList, authz.TypeZone, "*"), audit: auditRead, status: ok, h: s.zoneList},
		// Reading the conduits is reading the zone topology: zone.list.
		{method: "GET", pattern: "/v1/conduits", name: "conduit.list", target: fixed(authz.ActionZoneList, authz.TypeZone, "*"), audit: auditRead, status: ok, h: s.conduitList},
		{method: "POST", pattern: "/v1/conduits", name: "conduit.create", target: fixed(authz.ActionConduitCreate, authz.TypeZone, "*"), audit: auditChange, status: ok, h: s.conduitCreate},
		{method: "POST", pattern: "/v1/conduits/check", name: "conduit.check", target: fixed(authz.ActionConduitCheck, authz.TypeZone, "*"), audit: auditNone, status: ok, h: s.conduitCheck},
		{method: "POST", pattern: "/v1/nodes/tokens", name: "node.create", target: nodeTokenTarget, audit: auditChange, status: ok, h: s.nodeToken},
		{method: "POST", pattern: "/v1/nodes/{name}/revoke", name: "node.revoke", target: nodeTarget(authz.ActionNodeRevoke), audit: auditChange, status: noContent, h: s.nodeRevoke},
		{method: "GET", pattern: "/v1/nodes", name: "node.list", target: nodeTarget(authz.ActionNodeList), audit: auditRead, status: ok, h: s.nodeList},
		// Not under /v1/nodes/: a node may be named "counts".
		{method: "GET", pattern: "/v1/fleet/counts", name: "node.count", target: nodeTarget(authz.ActionNodeList), audit: auditRead, status: ok, h: s.nodeCount},
		{method: "GET", pattern: "/v1/nodes/{name}", name: "node.read", target: nodeTarget(authz.ActionNodeRead), audit: auditRead, status: ok, h: s.nodeRead},

		{method: "POST", pattern: "/v1/sys/seal", name: "sys.seal", target: system(authz.ActionSysSeal), audit: auditChange, status: noContent, h: s.seal},
		{method: "POST", pattern: "/v1/sys/rotate", name: "sys.rotate", target: system(authz.ActionSysRotate), audit: auditChange, status: ok, h: s.rotate},
		{method: "GET", pattern: "/v1/sys/key-status", name: "sys.key-status", target: system(authz.ActionSysKeyStatus), audit: auditRead, status: ok, h: s.keyStatus},
		// A join waits for the leader to admit, replicate to and promote
		// this node: on a loaded cluster longer than a request's 10 s.
		{method: "POST", pattern: "/v1/sys/raft/join", name: "raft.join-cluster", public: true, audit: auditNone, status: ok, h: s.raftJoin,
			timeout: JoinTimeout},
		{method: "POST", pattern: "/v1/sys/raft/peers", name: "raft.join", target: system(authz.ActionRaftJoin), audit: auditChange, status: ok, h: s.raftAdmit},
		{method: "GET", pattern: "/v1/sys/raft/peers", name: "raft.read", target: system(authz.ActionRaftRead), audit: auditRead, status: ok, h: s.raftPeers},
		{method: "DELETE", pattern: "/v1/sys/raft/peers/{id}", name: "raft.remove", target: system(authz.ActionRaftRemove), audit: auditChange, status: noContent, h: s.raftRemove},
		{method: "GET", pattern: "/v1/sys/raft/snapshot", name: "raft.snapshot.save", target: system(authz.ActionRaftSnapshotSave), audit: auditRead, status: ok, h: s.raftSnapshotSave},
		{method: "POST", pattern: "/v1/sys/raft/snapshot", name: "raft.snapshot.restore", target: system(authz.ActionRaftSnapshotRestore), audit: auditChange, status: ok, h: s.raftSnapshotRestore, maxBody: MaxSnapshotBytes},

		{method: "POST", pattern: "/v1/auth/token/create", name: "token.create", target: tokenCreateTarget, audit: auditChange, status: ok, h: s.tokenCreate},
		{method: "GET", pattern: "/v1/auth/token/lookup-self", name: "token.lookup-self", target: selfTarget, audit: auditNone, status: ok, h: s.tokenLookupSelf},
		{method: "POST", pattern: "/v1/auth/token/lookup", name: "token.lookup", target: fixed(authz.ActionTokenLookup, authz.TypeToken, "*"), audit: auditRead, status: ok, h: s.tokenLookup},
		{method: "GET", pattern: "/v1/auth/whoami", name: "auth.whoami", target: fixed(authz.ActionAuthWhoami, authz.TypeToken, "self"), audit: auditNone, status: ok, h: s.whoami},
		{method: "POST", pattern: "/v1/auth/token/revoke", name: "token.revoke", target: fixed(authz.ActionTokenRevoke, authz.TypeToken, "*"), audit: auditChange, status: noContent, h: s.tokenRevoke},
		{method: "POST", pattern: "/v1/auth/token/renew-self", name: "token.renew-self", target: selfUser, audit: auditChange, status: ok, h: s.renewSelf},
		{method: "POST", pattern: "/v1/auth/logout", name: "auth.logout", target: selfUser, audit: auditChange, status: noContent, h: s.logout},

		// People (docs/people.md). Logins are public: their handlers check
		// the password, the second factor, the passkey or the provider's
		// word; a success commits its record with the session, failures
		// are counted against the address and the user name.
		{method: "POST", pattern: "/v1/auth/login", name: "auth.login", public: true, audit: auditChange, status: ok, h: s.login},
		{method: "POST", pattern: "/v1/auth/webauthn/login/begin", name: "auth.webauthn.begin", public: true, audit: auditChange, status: ok, h: s.passkeyLoginBegin},
		{method: "POST", pattern: "/v1/auth/webauthn/login/finish", name: "auth.webauthn.finish", public: true, audit: auditChange, status: ok, h: s.passkeyLoginFinish},
		{method: "POST", pattern: "/v1/auth/oidc/auth_url", name: "auth.oidc.auth-url", public: true, audit: auditNone, status: ok, h: s.oidcAuthURL},
		{method: "POST", pattern: "/v1/auth/oidc/callback", name: "auth.oidc.callback", public: true, audit: auditChange, status: ok, h: s.oidcCallback},
		{method: "POST", pattern: "/v1/auth/oidc/device", name: "auth.oidc.device", public: true, audit: auditNone, status: ok, h: s.oidcDeviceStart},
		{method: "POST", pattern: "/v1/auth/oidc/device/poll", name: "auth.oidc.device-poll", public: true, audit: auditChange, status: ok, h: s.oidcDevicePoll,
			timeout: s.cfg.DevicePollWait + 5*time.Second},
		{method: "GET", pattern: "/v1/auth/oidc/config", name: "auth.config.read", target: system(authz.ActionAuthConfigRead), audit: auditRead, status: ok, h: s.oidcConfigRead},
		{method: "PUT", pattern: "/v1/auth/oidc/config", name: "auth.config.write", target: system(authz.ActionAuthConfigWrite), audit: auditChange, status: noContent, h: s.oidcConfigWrite},

		{method: "GET", pattern: "/v1/users", name: "users.list", target: userTarget(authz.ActionUsersRead), audit: auditRead, status: ok, h: userCall(s, userList)},
		{method: "POST", pattern: "/v1/users", name: "users.create", target: s.userWriteTarget(createRequested), audit: auditChange, status: ok, h: userCall(s, userCreate)},
		{method: "GET", pattern: "/v1/users/{name}", name: "users.read", target: userTarget(authz.ActionUsersRead), audit: auditRead, status: ok, h: userCall(s, userRead)},
		{method: "PATCH", pattern: "/v1/users/{name}", name: "users.update", target: s.userWriteTarget(updateRequested), audit: auditChange, status: ok, h: userCall(s, userUpdate)},
		{method: "DELETE", pattern: "/v1/users/{name}", name: "users.delete", target: s.userWriteTarget(nil), audit: auditChange, status: noContent,
			h: s.userAction(func(svc *users.Service, req *request, name string) error { return svc.Delete(req.Context(), name) })},
		{method: "POST", pattern: "/v1/users/{name}/disable", name: "users.disable", target: s.userWriteTarget(nil), audit: auditChange, status: noContent,
			h: s.userAction(func(svc *users.Service, req *request, name string) error {
				return svc.SetDisabled(req.Context(), name, true)
			})},
		{method: "POST", pattern: "/v1/users/{name}/enable", name: "users.enable", target: s.userWriteTarget(nil), audit: auditChange, status: noContent,
			h: s.userAction(func(svc *users.Service, req *request, name string) error {
				return svc.SetDisabled(req.Context(), name, false)
			})},
		{method: "POST", pattern: "/v1/users/{name}/unlock", name: "users.unlock", target: s.userWriteTarget(nil), audit: auditChange, status: noContent,
			h: s.userAction(func(svc *users.Service, req *request, name string) error { return svc.Unlock(req.Context(), name) })},
		{method: "POST", pattern: "/v1/users/{name}/mfa/reset", name: "users.mfa.reset", target: userTarget(authz.ActionUsersMFAReset), audit: auditChange, status: noContent,
			h: s.userAction(func(svc *users.Service, req *request, name string) error { return svc.ResetMFA(req.Context(), name) })},
		{method: "POST", pattern: "/v1/users/{name}/password", name: "users.password", target: s.passwordTarget, audit: auditChange, status: noContent, h: userCall(s, userPassword)},
		{method: "POST", pattern: "/v1/users/{name}/mfa/totp", name: "users.mfa.totp.enroll", target: userTarget(authz.ActionUsersSelf), audit: auditChange, status: ok, h: userCall(s, totpEnroll)},
		{method: "POST", pattern: "/v1/users/{name}/mfa/totp/confirm", name: "users.mfa.totp.confirm", target: userTarget(authz.ActionUsersSelf), audit: auditChange, status: ok, h: userCall(s, totpConfirm)},
		{method: "POST", pattern: "/v1/users/{name}/mfa/recovery-codes", name: "users.mfa.recovery-codes", target: userTarget(authz.ActionUsersSelf), audit: auditChange, status: ok, h: userCall(s, newRecoveryCodes)},
		{method: "POST", pattern: "/v1/users/{name}/mfa/webauthn/begin", name: "users.mfa.webauthn.begin", target: userTarget(authz.ActionUsersSelf), audit: auditChange, status: ok, h: userCall(s, s.passkeyRegisterBegin)},
		{method: "POST", pattern: "/v1/users/{name}/mfa/webauthn/finish", name: "users.mfa.webauthn.finish", target: userTarget(authz.ActionUsersSelf), audit: auditChange, status: noContent, h: userCall(s, s.passkeyRegisterFinish)},
		{method: "DELETE", pattern: "/v1/users/{name}/mfa/webauthn/{passkey}", name: "users.mfa.webauthn.remove", target: userTarget(authz.ActionUsersSelf), audit: auditChange, status: noContent, h: userCall(s, passkeyRemove)},

		{method: "GET", pattern: "/v1/kv/data/{path...}", name: "kv.read", target: secret(authz.ActionKVRead), audit: auditRead, status: ok, h: s.kvGet},
		{method: "PUT", pattern: "/v1/kv/data/{path...}", name: "kv.write", target: secret(authz.ActionKVWrite), audit: auditChange, status: ok, h: s.kvPut},
		{method: "POST", pattern: "/v1/kv/data/{path...}", name: "kv.write", target: secret(authz.ActionKVWrite), audit: auditChange, status: ok, h: s.kvPut},
		{method: "DELETE", pattern: "/v1/kv/data/{path...}", name: "kv.delete", target: secret(authz.ActionKVDelete), audit: auditChange, status: noContent, h: s.kvDelete},
		{method: "GET", pattern: "/v1/kv/metadata/{path...}", name: "kv.metadata", target: kvMetadataTarget, audit: auditRead, status: ok, h: s.kvMetadata},
		{method: "LIST", pattern: "/v1/kv/metadata/{path...}", name: "kv.list", target: secret(authz.ActionKVList), audit: auditRead, status: ok, h: s.kvList},

		{method: "GET", pattern: "/v1/authz/stores", name: "authz.store.list", target: fixed(authz.ActionAuthzStoreList, authz.TypePolicyStore, "*"), audit: auditRead, status: ok, h: s.storeList},
		{method: "POST", pattern: "/v1/authz/stores", name: "authz.store.create", target: fixed(authz.ActionAuthzStoreCreate, authz.TypePolicyStore, "*"), audit: auditChange, status: noContent, h: s.storeCreate},
		{method: "DELETE", pattern: "/v1/authz/stores/{store}", name: "authz.store.delete", target: storeTarget(authz.ActionAuthzStoreDelete), audit: auditChange, status: noContent, h: s.storeDelete},
		{method: "GET", pattern: "/v1/authz/stores/{store}/policies", name: "policy.list", target: storeTarget(authz.ActionPolicyList), audit: auditRead, status: ok, h: s.policyList},
		{method: "GET", pattern: "/v1/authz/stores/{store}/policies/{name}", name: "policy.read", target: policyTarget(authz.ActionPolicyRead), audit: auditRead, status: ok, h: s.policyRead},
		{method: "PUT", pattern: "/v1/authz/stores/{store}/policies/{name}", name: "policy.write", target: policyTarget(authz.ActionPolicyWrite), audit: auditChange, status: ok, h: s.policyWrite},
		{method: "DELETE", pattern: "/v1/authz/stores/{store}/policies/{name}", name: "policy.delete", target: policyTarget(authz.ActionPolicyDelete), audit: auditChange, status: noContent, h: s.policyDelete},
		{method: "PUT", pattern: "/v1/authz/stores/{store}/schema", name: "authz.schema.write", target: storeTarget(authz.ActionAuthzSchemaWrite), audit: auditChange, status: noContent, h: s.schemaWrite},
		{method: "PUT", pattern: "/v1/authz/stores/{store}/entities", name: "authz.entities.write", target: storeTarget(authz.ActionAuthzEntitiesWrite), audit: auditChange, status: ok, h: s.entitiesWrite},
		{method: "POST", pattern: "/v1/authz/stores/{store}/check", name: "authz.check", target: storeTarget(authz.ActionAuthzCheck), audit: auditNone, status: ok, h: s.check},
		{method: "POST", pattern: "/v1/authz/stores/{store}/check-batch", name: "authz.check-batch", target: storeTarget(authz.ActionAuthzCheck), audit: auditNone, status: ok, h: s.checkBatch},

		{method: "GET", pattern: "/v1/audit/verifier", name: "audit.verifier", target: auditLog, audit: auditNone, status: ok, h: s.auditVerifier},
		{method: "GET", pattern: "/v1/audit/checkpoint", name: "audit.checkpoint", target: auditLog, audit: auditNone, status: ok, h: s.auditCheckpoint},
		{method: "GET", pattern: "/v1/audit/entries", name: "audit.entries", target: auditLog, audit: auditRead, status: ok, h: s.auditEntries},
		{method: "GET", pattern: "/v1/audit/proof/inclusion", name: "audit.proof.inclusion", target: auditLog, audit: auditNone, status: ok, h: s.auditInclusion},
		{method: "GET", pattern: "/v1/audit/proof/consistency", name: "audit.proof.consistency", target: auditLog, audit: auditNone, status: ok, h: s.auditConsistency},
		// The HMAC of a guessed value is what confirms a guess against the
		// log: every use is recorded.
		{method: "POST", pattern: "/v1/audit/hash", name: "audit.hash", target: fixed(authz.ActionAuditHash, authz.TypeAuditLog, "warden"), audit: auditRead, status: ok, h: s.auditHash},
		// Archiving exports entries (a read of the whole range) and records
		// the archived bound (a change); pruning removes entry bodies from
		// every node. Both are changes: their records ride with them.
		{method: "POST", pattern: "/v1/audit/archive", name: "audit.archive", target: fixed(authz.ActionAuditArchive, authz.TypeAuditLog, "warden"), audit: auditChange, status: ok, h: s.auditArchive},
		{method: "POST", pattern: "/v1/audit/prune", name: "audit.prune", target: fixed(authz.ActionAuditPrune, authz.TypeAuditLog, "warden"), audit: auditChange, status: ok, h: s.auditPrune},
		// Witnesses (docs/governance.md "Witnesses"): the list is
		// verification material, like the checkpoint; adding and removing
		// an external witness are changes.
		{method: "GET", pattern: "/v1/audit/witnesses", name: "audit.witness.list", target: auditLog, audit: auditNone, status: ok, h: s.auditWitnessList},
		{method: "POST", pattern: "/v1/audit/witnesses", name: "audit.witness.add", target: auditWitnessWrite, audit: auditChange, status: ok, h: s.auditWitnessAdd},
		{method: "DELETE", pattern: "/v1/audit/witnesses/{name}", name: "audit.witness.remove", target: auditWitnessWrite, audit: auditChange, status: noContent, h: s.auditWitnessRemove},

		// Detection (docs/detection.md). Every resource is System::"warden".
		{method: "PUT", pattern: "/v1/rules/{id}", name: "rules.write", target: system(authz.ActionRulesWrite), audit: auditChange, status: ok, h: s.detectH(s.rulesPut)},
		{method: "GET", pattern: "/v1/rules", name: "rules.list", target: system(authz.ActionRulesRead), audit: auditRead, status: ok, h: s.detectH(s.rulesList)},
		{method: "GET", pattern: "/v1/rules/{id}", name: "rules.read", target: system(authz.ActionRulesRead), audit: auditRead, status: ok, h: s.detectH(s.rulesGet)},
		{method: "DELETE", pattern: "/v1/rules/{id}", name: "rules.delete", target: system(authz.ActionRulesWrite), audit: auditChange, status: noContent, h: s.detectH(s.rulesDelete)},
		{method: "GET", pattern: "/v1/placeholders", name: "placeholders.read", target: system(authz.ActionRulesRead), audit: auditRead, status: ok, h: s.detectH(s.placeholdersGet)},
		{method: "PUT", pattern: "/v1/placeholders", name: "placeholders.write", target: system(authz.ActionRulesWrite), audit: auditChange, status: ok, h: s.detectH(s.placeholdersPut)},
		{method: "GET", pattern: "/v1/mapping", name: "mapping.read", target: system(authz.ActionRulesRead), audit: auditRead, status: ok, h: s.detectH(s.mappingGet)},
		{method: "PUT", pattern: "/v1/mapping", name: "mapping.write", target: system(authz.ActionRulesWrite), audit: auditChange, status: ok, h: s.detectH(s.mappingPut)},
		{method: "GET", pattern: "/v1/alerts", name: "alerts.list", target: system(authz.ActionAlertsRead), audit: auditRead, status: ok, h: s.detectH(s.alertsList)},
		{method: "GET", pattern: "/v1/alerts/stream", name: "alerts.stream", target: system(authz.ActionAlertsRead), audit: auditRead, status: ok, h: s.detectH(s.alertsStream),
			streaming: true},
		{method: "GET", pattern: "/v1/alerts/counts", name: "alerts.count", target: system(authz.ActionAlertsRead), audit: auditRead, status: ok, h: s.detectH(s.alertsCount)},
		{method: "GET", pattern: "/v1/alerts/{id}", name: "alerts.read", target: system(authz.ActionAlertsRead), audit: auditRead, status: ok, h: s.detectH(s.alertsGet)},
		{method: "POST", pattern: "/v1/alerts/{id}/ack", name: "alerts.ack", target: system(authz.ActionAlertsWrite), audit: auditChange, status: ok, h: s.detectH(s.alertsSetStatus(detect.StatusAcknowledged))},
		{method: "POST", pattern: "/v1/alerts/{id}/close", name: "alerts.close", target: system(authz.ActionAlertsWrite), audit: auditChange, status: ok, h: s.detectH(s.alertsSetStatus(detect.StatusClosed))},
		{method: "POST", pattern: "/v1/notifiers", name: "notify.write", target: system(authz.ActionNotifyWrite), audit: auditChange, status: ok, h: s.detectH(s.notifyPut)},
		{method: "GET", pattern: "/v1/notifiers", name: "notify.list", target: system(authz.ActionNotifyWrite), audit: auditRead, status: ok, h: s.detectH(s.notifyList)},
		{method: "DELETE", pattern: "/v1/notifiers/{name}", name: "notify.delete", target: system(authz.ActionNotifyWrite), audit: auditChange, status: noContent, h: s.detectH(s.notifyDelete)},
		// Events: a node posts its own batches; searching and following
		// the stream are reads, recorded when asked (a tail at its open).
		{method: "POST", pattern: "/v1/events", name: "events.write", target: eventsWriteTarget, audit: auditNone, status: ok, h: s.eventsWrite,
			maxBody: s.cfg.EventsMaxBatchBytes},
		{method: "GET", pattern: "/v1/events", name: "events.search", target: system(authz.ActionEventsRead), audit: auditRead, status: ok, h: s.eventsSearch},
		{method: "GET", pattern: "/v1/events/tail", name: "events.tail", target: system(authz.ActionEventsRead), audit: auditRead, status: ok, h: s.eventsTail,
			streaming: true},

		// Response: decisions, the never-block list and the decision stream
		// (docs/response.md). Every resource is System::"warden".
		{method: "POST", pattern: "/v1/decisions", name: "decisions.create", target: system(authz.ActionDecisionsWrite), audit: auditChange, status: ok, h: s.decisionsH(s.decisionAdd)},
		{method: "GET", pattern: "/v1/decisions", name: "decisions.list", target: system(authz.ActionDecisionsRead), audit: auditRead, status: ok, h: s.decisionsH(s.decisionList)},
		{method: "GET", pattern: "/v1/decisions/stream", name: "decisions.stream", target: system(authz.ActionDecisionsRead), audit: auditRead, status: ok, h: s.decisionsH(s.decisionsStream),
			streaming: true},
		{method: "POST", pattern: "/v1/decisions/allow", name: "decisions.allow.create", target: system(authz.ActionDecisionsWrite), audit: auditChange, status: ok, h: s.decisionsH(s.allowAdd)},
		{method: "GET", pattern: "/v1/decisions/allow", name: "decisions.allow.list", target: system(authz.ActionDecisionsRead), audit: auditRead, status: ok, h: s.decisionsH(s.allowList)},
		{method: "DELETE", pattern: "/v1/decisions/allow/{id}", name: "decisions.allow.delete", target: system(authz.ActionDecisionsWrite), audit: auditChange, status: noContent, h: s.decisionsH(s.allowDelete)},
		{method: "GET", pattern: "/v1/decisions/{id}", name: "decisions.read", target: system(authz.ActionDecisionsRead), audit: auditRead, status: ok, h: s.decisionsH(s.decisionGet)},
		{method: "DELETE", pattern: "/v1/decisions/{id}", name: "decisions.delete", target: system(authz.ActionDecisionsWrite), audit: auditChange, status: noContent, h: s.decisionsH(s.decisionDelete)},
		// Incidents (H4): a change's record carries its timeline items'
		// hashes; the report is an audit read. Updates are POST on the
		// incident (the route table's methods: GET, POST, PUT, DELETE, LIST).
		{method: "POST", pattern: "/v1/incidents", name: "incidents.create", target: system(authz.ActionIncidentsWrite), audit: auditChange, status: ok, h: s.incidentsH(s.incidentsCreate)},
		{method: "GET", pattern: "/v1/incidents", name: "incidents.list", target: system(authz.ActionIncidentsRead), audit: auditRead, status: ok, h: s.incidentsH(s.incidentsList)},
		{method: "GET", pattern: "/v1/incidents/{id}", name: "incidents.read", target: system(authz.ActionIncidentsRead), audit: auditRead, status: ok, h: s.incidentsH(s.incidentsGet)},
		{method: "POST", pattern: "/v1/incidents/{id}", name: "incidents.update", target: system(authz.ActionIncidentsWrite), audit: auditChange, status: ok, h: s.incidentsH(s.incidentsUpdate)},
		{method: "POST", pattern: "/v1/incidents/{id}/comments", name: "incidents.comment", target: system(authz.ActionIncidentsWrite), audit: auditChange, status: ok, h: s.incidentsH(s.incidentsComment)},
		{method: "POST", pattern: "/v1/incidents/{id}/close", name: "incidents.close", target: system(authz.ActionIncidentsWrite), audit: auditChange, status: ok, h: s.incidentsH(s.incidentsClose)},
		{method: "GET", pattern: "/v1/incidents/{id}/report", name: "incidents.report", target: system(authz.ActionIncidentsRead), audit: auditRead, status: ok, h: s.incidentsH(s.incidentsReport)},
		// Playbooks and the approval of the decisions they leave pending
		// (docs/response.md "Playbooks"). Every resource is System::"warden".
		{method: "POST", pattern: "/v1/playbooks", name: "playbooks.write", target: system(authz.ActionPlaybooksWrite), audit: auditChange, status: ok, h: s.playbooksH(s.playbooksPut)},
		{method: "GET", pattern: "/v1/playbooks", name: "playbooks.list", target: system(authz.ActionPlaybooksRead), audit: auditRead, status: ok, h: s.playbooksH(s.playbooksList)},
		{method: "GET", pattern: "/v1/playbooks/{name}", name: "playbooks.read", target: system(authz.ActionPlaybooksRead), audit: auditRead, status: ok, h: s.playbooksH(s.playbooksGet)},
		{method: "DELETE", pattern: "/v1/playbooks/{name}", name: "playbooks.delete", target: system(authz.ActionPlaybooksWrite), audit: auditChange, status: noContent, h: s.playbooksH(s.playbooksDelete)},
		{method: "POST", pattern: "/v1/decisions/{id}/approve", name: "decisions.approve", target: system(authz.ActionDecisionsApprove), audit: auditChange, status: ok, h: s.playbooksH(s.decisionsApprove)},
	}
	rs = append(rs, s.transitRoutes()...)
	rs = append(rs, s.complianceRoutes()...)
	// The web console (internal/console): static files under /ui/, with
	// their own security headers; every page calls this API with the
	// user's token.
	rs = append(rs, route{method: "GET", pattern: console.Prefix, name: "console", public: true, audit: auditNone, status: ok,
		h: func(*request) (int, any, error) { return http.StatusOK, s.console, nil }})
	rs = append(rs, s.requestRoutes()...)
	if s.cfg.Gather != nil {
		m := route{method: "GET", pattern: "/metrics", name: "metrics.read", audit: auditNone, status: ok, h: s.metricsRead}
		if s.cfg.MetricsPublic {
			m.public = true
		} else {
			m.target = system(authz.ActionMetricsRead)
		}
		rs = append(rs, m)
	}
	return append(rs, s.cfg.testRoutes...)
}

// MaxTransitBody bounds the body of a transit operation (a batch of up to
// 1,000 items, or one large plaintext).
const MaxTransitBody = 16 << 20

// transitRoutes are Vault's transit API under /v1/transit
// (internal/api/transitapi). Every POST is also a PUT, which is what
// Vault's client sends. Key management changes ride with their record;
// every operation, export included, is a read whose record commits before
// the answer.
func (s *Server) transitRoutes() []route {
	const ok, noContent = http.StatusOK, http.StatusNoContent
	t := transitapi.New(s.cfg.Transit)
	write := func(pattern, name, action string, class auditClass, h handler.Func, maxBody int64) []route {
		rt := route{method: "POST", pattern: pattern, name: name, target: keyTarget(action), audit: class, status: ok, h: handle(h), maxBody: maxBody}
		put := rt
		put.method = "PUT"
		return []route{rt, put}
	}
	op := func(verb, action string, h handler.Func) []route {
		return write("/v1/transit/"+verb+"/{name}", action, action, auditRead, h, MaxTransitBody)
	}
	keys := "/v1/transit/keys/{name}"
	rs := []route{
		{method: "GET", pattern: keys, name: "transit.key.read", target: keyTarget(authz.ActionTransitKeyRead), audit: auditRead, status: ok, h: handle(t.ReadKey)},
		{method: "GET", pattern: "/v1/transit/keys", name: "transit.key.list", target: keyTarget(authz.ActionTransitKeyRead), audit: auditRead, status: ok, h: handle(t.ListKeys)},
		{method: "LIST", pattern: "/v1/transit/keys", name: "transit.key.list", target: keyTarget(authz.ActionTransitKeyRead), audit: auditRead, status: ok, h: handle(t.ListKeys)},
		{method: "DELETE", pattern: keys, name: "transit.key.delete", target: keyTarget(authz.ActionTransitKeyDelete), audit: auditChange, status: noContent, h: handle(t.DeleteKey)},
		{method: "GET", pattern: "/v1/transit/export/{type}/{name}", name: "transit.key.export", target: keyTarget(authz.ActionTransitKeyExport), audit: auditRead, status: ok, h: handle(t.Export)},
		{method: "GET", pattern: "/v1/transit/export/{type}/{name}/{version}", name: "transit.key.export", target: keyTarget(authz.ActionTransitKeyExport), audit: auditRead, status: ok, h: handle(t.Export)},
	}
	rs = append(rs, write(keys, "transit.key.create", authz.ActionTransitKeyCreate, auditChange, t.CreateKey, 0)...)
	rs = append(rs, write(keys+"/rotate", "transit.key.rotate", authz.ActionTransitKeyRotate, auditChange, t.RotateKey, 0)...)
	rs = append(rs, write(keys+"/config", "transit.key.config", authz.ActionTransitKeyConfig, auditChange, t.ConfigKey, 0)...)
	rs = append(rs, write(keys+"/trim", "transit.key.trim", authz.ActionTransitKeyConfig, auditChange, t.TrimKey, 0)...)
	rs = append(rs, op("encrypt", authz.ActionTransitEncrypt, t.Encrypt)...)
	rs = append(rs, op("decrypt", authz.ActionTransitDecrypt, t.Decrypt)...)
	rs = append(rs, op("rewrap", authz.ActionTransitRewrap, t.Rewrap)...)
	rs = append(rs, op("datakey/plaintext", authz.ActionTransitDataKey, t.DataKey(false))...)
	rs = append(rs, op("datakey/wrapped", authz.ActionTransitDataKey, t.DataKey(true))...)
	rs = append(rs, op("sign", authz.ActionTransitSign, t.Sign)...)
	rs = append(rs, op("verify", authz.ActionTransitVerify, t.Verify)...)
	rs = append(rs, op("hmac", authz.ActionTransitHMAC, t.HMAC)...)
	return rs
}

// register adds every route of the table to the mux. A route that does not
// declare what it is (check) panics: that is a programming error, caught
// by the first test that builds a Server.
func (s *Server) register() {
	for _, rt := range s.routeTable() {
		if err := rt.check(); err != nil {
			panic("api: " + err.Error())
		}
		s.routes = append(s.routes, &rt)
		s.mux.Handle(rt.method+" "+rt.pattern, s.wrap(&rt))
	}
	// Anything else: a JSON 404, and a JSON 405 for a known path with another method.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		for _, rt := range s.routes {
			if s.patternMatches(rt.pattern, r.URL.Path) {
				writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path))
				return
			}
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API endpoint at %s", r.URL.Path))
	})
}

// Routes lists the registered routes (for tests that must walk every
// endpoint, and for the documentation's route table).
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, RouteInfo{Method: rt.method, Pattern: rt.pattern, Name: rt.name, Auth: !rt.public,
			Audit: rt.audit.String(), Status: rt.status})
	}
	return out
}

// RouteInfo describes a route.
type RouteInfo struct {
	Method, Pattern, Name string
	Auth                  bool   // the pipeline authenticates and authorizes the caller
	Audit                 string // "change", "read" or "none"
	Status                int    // the status of a success
}
