// Package authz is Warden's policy engine: it decides whether a principal may
// perform an action on a resource, using Cedar policies
// (https://docs.cedarpolicy.com) evaluated by github.com/cedar-policy/cedar-go.
//
// The semantics are Cedar's: deny unless some permit policy is satisfied, and
// any satisfied forbid policy overrides every permit. RBAC is expressed
// through the entity hierarchy (principal in Group::"ops"), ABAC through when
// and unless conditions on entity attributes and the request context. Warden
// adds one rule to Cedar: a policy whose scope matched the request but whose
// condition failed to evaluate (for example it reads a context attribute the
// request does not carry) makes the decision deny, and the error is reported
// in the [Decision]. Plain Cedar skips such a policy, which would let a broken
// forbid silently stop forbidding.
//
// A policy store is a named set of policy documents. [Compile] parses,
// checks (optionally against a Cedar schema) and indexes a store's documents
// once into an immutable [PolicySet]; [PolicySet.Authorize] is the hot path.
// The index selects, for each request, only the policies whose scope
// (principal, action, resource constraints) can match it, so a store of ten
// thousand per-user policies answers about as fast as a store of ten.
// [Cache] keeps one compiled set per store and version.
//
// Policy ids: a document named NAME with a single statement has the id NAME;
// a document with several statements has ids NAME#0, NAME#1, ... in source
// order. @id annotations are kept with the policy but do not change its id:
// ids derived from the document name are unique within a store by
// construction and cannot be forged by a policy author to impersonate another
// document in audit records.
//
// Approval rules (dual control): a permit policy annotated
// @approvals("M") and @approvers("Group::\"g\"") is also an approval rule;
// [PolicySet.Approvals] answers which rules bind a request (the principal
// scope set aside), so that the API can hold the request until M members of
// g approve it. Authorize ignores the annotations. Compile refuses malformed
// ones (see approval.go).
//
// A store may have a Cedar schema (human-readable or JSON format). Policies
// are then validated against it on write with cedar-go's validator
// (x/exp/schema/validate, experimental in cedar-go v1.9.0, used in strict
// mode). The validator's messages carry no positions, so a schema violation
// is reported at the start of the offending statement. Requests and entities
// are not validated against the schema; a request that does not match it
// simply finds no applicable policy, or fails to evaluate one (deny).
//
// Errors in input (policy documents, schemas, request fields, entities) wrap
// [ErrInvalid]; errors in policy documents are [*PolicyError] with the line
// and column of the offending token.
//
// This package is pure: it does no I/O, keeps no state outside the values it
// returns, and must not import net/http, the Raft library or the storage
// layer. The API package decodes requests with [DecodeCheckRequest], loads
// policies and entities from storage, and calls in here.
package authz
