// Package compliance turns a snapshot of Warden's live state into
// compliance reports: a catalog of ISO/IEC 27001:2022 Annex A controls and
// IEC 62443-3-3 system requirements, the automated checks that evidence
// them, the security level each zone achieves (SL-A) beside its target
// (SL-T), a risk score per node and per zone, and signed reports in JSON
// and self-contained HTML that an auditor verifies offline.
//
// The titles and descriptions of controls are Warden's own summaries, not
// the standards' text; the standards remain the reference.
//
// # What it must not do
//
// compliance is a pure core: no HTTP, no Raft, no storage, no files and no
// clock. Its input is a [State] the server assembles from live state
// (GeneratedAt is the only time it knows); its outputs are values and
// bytes. Signing takes the caller's key for the duration of one call.
//
// # Evaluation
//
// Every control has checks; each check states in words what it tests and
// evaluates to pass, fail or not_applicable, citing the records it looked
// at (nodes, conduits, policies, certificates, assessment results, keys)
// and, for audit records, their indexes in the audit log. A cited index
// names an entry of [State.Evidence], which carries the entry and its
// inclusion proof against the report's signed checkpoint.
//
// A control's status is:
//   - "fail" when any of its checks fails (an assessment result "error"
//     counts as a failure, never as a pass);
//   - for a manual control otherwise, "attested" while an unexpired
//     attestation exists, else "manual";
//   - "not_applicable" when every check is not applicable;
//   - "pass" otherwise.
//
// Results of the agents' configuration assessment contribute to every
// control they list (as "iso27001:8.5" or "iec62443-3-3:SR 1.1 RE 2"),
// through the check "host-assessment", which fails when a result fails or
// errs and when a node of the scope has no result for the control.
//
// # Security levels (IEC 62443-3-3)
//
// Each system requirement (SR) and requirement enhancement (RE) is one
// catalog entry with the lowest security level that requires it. For a
// zone and a foundational requirement FR n, SL-A[n] is the highest level L
// in 0..4 such that every requirement of FR n with a level at most L is
// satisfied for the zone: its status is pass, not_applicable (nothing in
// the zone for it to hold on) or attested. SL-T is the zone's target level
// (zone create --level) and applies to every FR. Requirements that keep an
// FR below its target are listed with the failing check and why.
//
// # Risk
//
// See [NodeRisk] and [ZoneRisk] for the formula.
package compliance
