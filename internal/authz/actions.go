package authz

import (
	"slices"

	"github.com/cedar-policy/cedar-go/types"
)

// Warden's own actions: what the API asks the policy engine about. Each is
// the id of an entity of type Action ([ActionType]); use [ActionUID] to make
// the UID for a [Request].
const (
	ActionKVRead     = "kv.read"
	ActionKVWrite    = "kv.write"
	ActionKVDelete   = "kv.delete"
	ActionKVList     = "kv.list"
	ActionKVMetadata = "kv.metadata"

	ActionTokenCreate = "token.create"
	ActionTokenLookup = "token.lookup"
	ActionTokenRevoke = "token.revoke"

	ActionSysSeal      = "sys.seal"
	ActionSysRotate    = "sys.rotate"
	ActionSysKeyStatus = "sys.key-status"
	// ActionSysDualControl is turning dual control on or off
	// (docs/governance.md).
	ActionSysDualControl = "sys.dual-control"

	ActionRaftJoin            = "raft.join"
	ActionRaftRead            = "raft.read"
	ActionRaftRemove          = "raft.remove"
	ActionRaftSnapshotSave    = "raft.snapshot.save"
	ActionRaftSnapshotRestore = "raft.snapshot.restore"

	// ActionMetricsRead is reading /metrics (unless the server runs with
	// --metrics-public).
	ActionMetricsRead = "metrics.read"

	ActionPolicyRead   = "policy.read"
	ActionPolicyWrite  = "policy.write"
	ActionPolicyDelete = "policy.delete"
	ActionPolicyList   = "policy.list"

	ActionAuthzStoreCreate   = "authz.store.create"
	ActionAuthzStoreDelete   = "authz.store.delete"
	ActionAuthzStoreList     = "authz.store.list"
	ActionAuthzCheck         = "authz.check"
	ActionAuthzEntitiesWrite = "authz.entities.write"
	ActionAuthzSchemaWrite   = "authz.schema.write"

	ActionAuditRead    = "audit.read"
	ActionAuditHash    = "audit.hash"
	ActionAuditArchive = "audit.archive"
	ActionAuditPrune   = "audit.prune"
	// ActionAuditWitnessWrite is adding and removing the external witnesses
	// that cosign the audit log's checkpoints.
	ActionAuditWitnessWrite = "audit.witness.write"

	ActionNodeCreate = "node.create"
	ActionNodeRevoke = "node.revoke"
	ActionNodeList   = "node.list"
	ActionNodeRead   = "node.read"

	ActionCertList = "cert.list"

	ActionAuthWhoami = "auth.whoami"

	ActionZoneCreate    = "zone.create"
	ActionZoneList      = "zone.list"
	ActionConduitCreate = "conduit.create"
	ActionConduitCheck  = "conduit.check"
	// ActionConduitConnect is what conduit policies permit between nodes.
	ActionConduitConnect = "conduit.connect"

	// ActionEventsWrite is a node sending its own events (POST /v1/events,
	// on Node::"<the caller>"); the built-in policy of the warden store
	// grants it to every enrolled node on itself.
	ActionEventsWrite = "events.write"
	// ActionEventsRead is searching and following the event stream.
	ActionEventsRead = "events.read"
	ActionRulesRead  = "rules.read"
	ActionRulesWrite = "rules.write"
	ActionAlertsRead = "alerts.read"
	// ActionAlertsWrite is acknowledging and closing alerts.
	ActionAlertsWrite = "alerts.write"
	// ActionNotifyWrite is creating and deleting notification channels.
	ActionNotifyWrite = "notify.write"

	// Response (docs/response.md). ActionDecisionsRead is reading decisions
	// and following their stream (the built-in policy of the warden store
	// grants it to every enrolled node).
	ActionDecisionsRead    = "decisions.read"
	ActionDecisionsWrite   = "decisions.write"
	ActionDecisionsApprove = "decisions.approve"
	ActionPlaybooksRead    = "playbooks.read"
	ActionPlaybooksWrite   = "playbooks.write"
	ActionIncidentsRead    = "incidents.read"
	ActionIncidentsWrite   = "incidents.write"

	// Transit (docs/transit.md): operations and key management on
	// Key::"<name>". Listing keys is transit.key.read on Key::"*"; trimming
	// is transit.key.config.
	ActionTransitEncrypt   = "transit.encrypt"
	ActionTransitDecrypt   = "transit.decrypt"
	ActionTransitRewrap    = "transit.rewrap"
	ActionTransitSign      = "transit.sign"
	ActionTransitVerify    = "transit.verify"
	ActionTransitHMAC      = "transit.hmac"
	ActionTransitDataKey   = "transit.datakey"
	ActionTransitKeyCreate = "transit.key.create"
	ActionTransitKeyRead   = "transit.key.read"
	ActionTransitKeyRotate = "transit.key.rotate"
	ActionTransitKeyConfig = "transit.key.config"
	ActionTransitKeyDelete = "transit.key.delete"
	ActionTransitKeyExport = "transit.key.export"

	// Dual control (docs/governance.md): requests held until approved,
	// all on System::"warden". ActionRequestsApprove is approving and
	// denying a request; ActionRequestsRun is running an approved request
	// and cancelling one's own.
	ActionRequestsRead    = "requests.read"
	ActionRequestsApprove = "requests.approve"
	ActionRequestsRun     = "requests.run"

	// People (docs/people.md), on User::"<name>" (User::"*" to list and
	// create). ActionUsersSelf is what a user does to their own account
	// (password, second factors); the built-in policy grants it on
	// oneself. ActionUsersMFAReset removes a user's second factors.
	ActionUsersRead     = "users.read"
	ActionUsersWrite    = "users.write"
	ActionUsersMFAReset = "users.mfa.reset"
	ActionUsersSelf     = "users.self"
	// ActionAuthConfigRead and ActionAuthConfigWrite are reading and
	// changing the login methods' settings (OpenID Connect), on
	// System::"warden".
	ActionAuthConfigRead  = "auth.config.read"
	ActionAuthConfigWrite = "auth.config.write"

	// Compliance (docs/compliance.md). A node reports its own inventory
	// and assessment results (ActionInventoryWrite on itself) and fetches
	// the check policies it runs (ActionAssessmentRead on itself); the
	// built-in policy builtin/node-compliance grants both. Reading a
	// node's inventory and results is ActionInventoryRead on the node.
	// Reports, status, check policies and attestations are on
	// System::"warden".
	ActionInventoryRead    = "inventory.read"
	ActionInventoryWrite   = "inventory.write"
	ActionAssessmentRead   = "compliance.assessment.read"
	ActionComplianceRead   = "compliance.read"
	ActionComplianceWrite  = "compliance.write"
	ActionComplianceAttest = "compliance.attest"
)

// Entity types of Warden's own schema.
const (
	// ActionType is the type of every action UID.
	ActionType types.EntityType = "Action"

	// Principals.
	TypeUser    types.EntityType = "User"  // a person; parents are Groups
	TypeGroup   types.EntityType = "Group" // a set of users
	TypeNode    types.EntityType = "Node"  // an enrolled machine (agent)
	TypeService types.EntityType = "Service"
	TypeRoot    types.EntityType = "Root" // the root token's principal

	// Resources.
	TypeSecret      types.EntityType = "Secret" // attribute path: the KV path
	TypeToken       types.EntityType = "Token"
	TypeSystem      types.EntityType = "System" // the cluster itself (seal, rotate, key status)
	TypePolicy      types.EntityType = "Policy"
	TypePolicyStore types.EntityType = "PolicyStore"
	TypeAuditLog    types.EntityType = "AuditLog"    // the cluster's audit log
	TypeZone        types.EntityType = "Zone"        // an IEC 62443 zone
	TypeCertificate types.EntityType = "Certificate" // certificates the cluster issued
	TypeKey         types.EntityType = "Key"         // a transit key; attribute name
)

// Actions returns the names of Warden's actions, in the order of the
// constants above. The slice is new on every call.
func Actions() []string {
	return []string{
		ActionKVRead, ActionKVWrite, ActionKVDelete, ActionKVList, ActionKVMetadata,
		ActionTokenCreate, ActionTokenLookup, ActionTokenRevoke,
		ActionSysSeal, ActionSysRotate, ActionSysKeyStatus, ActionSysDualControl,
		ActionRaftJoin, ActionRaftRead, ActionRaftRemove, ActionRaftSnapshotSave, ActionRaftSnapshotRestore,
		ActionMetricsRead,
		ActionPolicyRead, ActionPolicyWrite, ActionPolicyDelete, ActionPolicyList,
		ActionAuthzStoreCreate, ActionAuthzStoreDelete, ActionAuthzStoreList,
		ActionAuthzCheck, ActionAuthzEntitiesWrite, ActionAuthzSchemaWrite,
		ActionAuditRead, ActionAuditHash, ActionAuditArchive, ActionAuditPrune, ActionAuditWitnessWrite,
		ActionNodeCreate, ActionNodeRevoke, ActionNodeList, ActionNodeRead,
		ActionCertList,
		ActionAuthWhoami,
		ActionZoneCreate, ActionZoneList, ActionConduitCreate, ActionConduitCheck, ActionConduitConnect,
		ActionEventsWrite, ActionEventsRead, ActionRulesRead, ActionRulesWrite, ActionAlertsRead, ActionAlertsWrite,
		ActionNotifyWrite,
		ActionDecisionsRead, ActionDecisionsWrite, ActionDecisionsApprove, ActionPlaybooksRead, ActionPlaybooksWrite,
		ActionIncidentsRead, ActionIncidentsWrite,
		ActionTransitEncrypt, ActionTransitDecrypt, ActionTransitRewrap, ActionTransitSign, ActionTransitVerify,
		ActionTransitHMAC, ActionTransitDataKey,
		ActionTransitKeyCreate, ActionTransitKeyRead, ActionTransitKeyRotate, ActionTransitKeyConfig,
		ActionTransitKeyDelete, ActionTransitKeyExport,
		ActionRequestsRead, ActionRequestsApprove, ActionRequestsRun,
		ActionUsersRead, ActionUsersWrite, ActionUsersMFAReset, ActionUsersSelf,
		ActionAuthConfigRead, ActionAuthConfigWrite,
		ActionInventoryRead, ActionInventoryWrite, ActionAssessmentRead,
		ActionComplianceRead, ActionComplianceWrite, ActionComplianceAttest,
	}
}

// ActionUID returns the entity UID of action name, Action::"name".
func ActionUID(name string) types.EntityUID {
	return types.NewEntityUID(ActionType, types.String(name))
}

// WardenSchema is the Cedar schema (human-readable format) of Warden's own
// authorization: the store that decides what callers of the Warden API may
// do. Every principal type may be named in any action; Users belong to
// Groups; a Secret carries its KV path, so that policies can say
// resource.path like "team-1/*", and a Policy its store and name (so that
// the default rule of dual control can name the warden store's policies);
// a User may carry its name and, as the resource of users.write, its
// groups (both optional: a policy tests them with has).
// Every action but conduit.connect sees the API's request context,
// RequestContext: the caller's address, whether it came with a client
// certificate, the time, and how the caller logged in (context.auth, so a
// policy can say `when { context.auth.mfa }`).
const WardenSchema = `// Warden's own authorization schema.

// The context of every request to the Warden API.
type RequestContext = {
  source_ip: String,
  mtls: Bool,
  time: Long,
  auth: {
    method: String,
    mfa: Bool,
    mfa_method: String,
    time: Long,
  },
};

// Principals.
entity Group;
// A User's name is set on principals and on the resource of a route that
// names one user; groups on the resource of users.write: the groups the
// user is in, or will be in after the change (create, update), so that a
// rule can hold changes that touch a group (Group::"security").
entity User in [Group] {
  name?: String,
  groups?: Set<String>,
};
entity Zone;
entity Node in [Zone] {
  name: String,
  zone: String,
};
entity Service;
entity Root;

// Resources.
entity Secret {
  path: String,
};
entity Token;
entity System;
entity Policy {
  store: String,
  name: String,
};
entity PolicyStore;
entity AuditLog;
entity Certificate;
entity Key {
  name: String,
};

action "kv.read", "kv.write", "kv.delete", "kv.list", "kv.metadata" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Secret],
  context: RequestContext,
};

action "token.create", "token.lookup", "token.revoke", "auth.whoami" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Token],
  context: RequestContext,
};

action "sys.seal", "sys.rotate", "sys.key-status", "sys.dual-control", "raft.join", "raft.read", "raft.remove",
       "raft.snapshot.save", "raft.snapshot.restore", "metrics.read",
       "requests.read", "requests.approve", "requests.run" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [System],
  context: RequestContext,
};

action "zone.create", "zone.list", "conduit.create", "conduit.check" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Zone],
  context: RequestContext,
};

action "conduit.connect" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Node],
  context: { port: Long, protocol: String },
};

action "node.create", "node.revoke", "node.list", "node.read" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Node],
  context: RequestContext,
};

action "cert.list" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Certificate],
  context: RequestContext,
};

action "audit.read", "audit.hash", "audit.archive", "audit.prune", "audit.witness.write" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [AuditLog],
  context: RequestContext,
};

action "policy.read", "policy.write", "policy.delete", "policy.list" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Policy],
  context: RequestContext,
};

action "events.write" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Node],
  context: RequestContext,
};

action "events.read", "rules.read", "rules.write", "alerts.read", "alerts.write", "notify.write",
       "decisions.read", "decisions.write", "decisions.approve", "playbooks.read", "playbooks.write",
       "incidents.read", "incidents.write" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [System],
  context: RequestContext,
};

action "transit.encrypt", "transit.decrypt", "transit.rewrap", "transit.sign", "transit.verify",
       "transit.hmac", "transit.datakey", "transit.key.create", "transit.key.read", "transit.key.rotate",
       "transit.key.config", "transit.key.delete", "transit.key.export" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Key],
  context: RequestContext,
};

action "users.read", "users.write", "users.mfa.reset", "users.self" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [User],
  context: RequestContext,
};

action "inventory.read", "inventory.write", "compliance.assessment.read" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [Node],
  context: RequestContext,
};

action "compliance.read", "compliance.write", "compliance.attest" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [System],
  context: RequestContext,
};

action "auth.config.read", "auth.config.write" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [System],
  context: RequestContext,
};

action "authz.store.create", "authz.store.delete", "authz.store.list", "authz.check",
       "authz.entities.write", "authz.schema.write" appliesTo {
  principal: [User, Node, Service, Root],
  resource: [PolicyStore],
  context: RequestContext,
};
`

// ZoneUID is the entity UID of a zone, Zone::"<name>".
func ZoneUID(zone string) types.EntityUID {
	return types.NewEntityUID(TypeZone, types.String(zone))
}

// NodeEntity is Node::"<name>" with attributes (name and zone are set
// here), a member of Zone::"<zone>" when it has a zone, so policies can say
// `principal in Zone::"dmz"` and the index can file them by zone.
func NodeEntity(name, zone string, attrs types.RecordMap) types.Entity {
	m := types.RecordMap{}
	for k, v := range attrs {
		m[k] = v
	}
	m["name"], m["zone"] = types.String(name), types.String(zone)
	e := types.Entity{UID: types.NewEntityUID(TypeNode, types.String(name)), Attributes: types.NewRecord(m)}
	if zone != "" {
		e.Parents = types.NewEntityUIDSet(ZoneUID(zone))
	}
	return e
}

// WithZones returns ents followed by a bare Zone entity for each zone they
// are members of and that is not among them, so `in Zone::"…"` sees the
// membership whatever the evaluator requires of parents.
func WithZones(ents ...types.Entity) []types.Entity {
	out := slices.Clip(ents) // appending never writes into the caller's array
	for _, e := range ents {
		for z := range e.Parents.All() {
			if z.Type == TypeZone && !slices.ContainsFunc(out, func(x types.Entity) bool { return x.UID == z }) {
				out = append(out, types.Entity{UID: z})
			}
		}
	}
	return out
}
