package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/store"
)

// change is an op a command must hold: its type and a key prefix (services
// add versions and suffixes to their keys).
type change struct {
	typ    store.OpType
	prefix string
}

// TestEveryChangeCommitsWithItsRecord: for every path that changes state,
// the change and its audit record are one committed Raft command. The
// record's stored Raft index names a command of the log that holds both the
// record's leaf and the change's ops, and every key the command put has
// that index as its version. A restore is not a log command: its record is
// installed with the restored state, at the index the restore answers, and
// the audit log keeps growing across it.
func TestEveryChangeCommitsWithItsRecord(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	st := h.srv.Store()
	snap := h.want(h.do("GET", "/v1/sys/raft/snapshot", root, nil), 200).body

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	var accessor, joinToken string
	var restoredAt uint64

	cases := []struct {
		name   string
		action string // the record's action
		do     func(t *testing.T) []change
	}{
		{"init", "sys.init", func(*testing.T) []change {
			return []change{{store.OpPut, "sys/seal-config"}, {store.OpPut, "sys/keyring"}, {store.OpPut, "audit/signer-key"}}
		}},
		{"kv put", "kv.write", func(t *testing.T) []change {
			h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"password": "p1"}}), 200)
			return []change{{store.OpPut, "kv/meta/app/db"}, {store.OpPut, "kv/data/app/db#"}}
		}},
		{"kv delete", "kv.delete", func(t *testing.T) []change {
			h.want(h.do("DELETE", "/v1/kv/data/app/db", root, nil), 204)
			return []change{{store.OpPut, "kv/meta/app/db"}}
		}},
		{"token create", "token.create", func(t *testing.T) []change {
			accessor = h.want(h.do("POST", "/v1/auth/token/create", root, map[string]any{"ttl": "1h"}), 200).json(t)["accessor"].(string)
			return []change{{store.OpPut, "identity/token/" + accessor}}
		}},
		{"token revoke", "token.revoke", func(t *testing.T) []change {
			h.want(h.do("POST", "/v1/auth/token/revoke", root, map[string]string{"accessor": accessor}), 204)
			return []change{{store.OpDelete, "identity/token/" + accessor}}
		}},
		{"policy write", "policy.write", func(t *testing.T) []change {
			h.want(h.writePolicy(root, "warden", "ops", `permit (principal in Group::"ops", action == Action::"kv.read", resource);`), 200)
			return []change{{store.OpPut, "authz/policy/warden/ops"}}
		}},
		{"policy delete", "policy.delete", func(t *testing.T) []change {
			h.want(h.do("DELETE", "/v1/authz/stores/warden/policies/ops", root, nil), 204)
			return []change{{store.OpDelete, "authz/policy/warden/ops"}}
		}},
		{"key rotation", "sys.rotate", func(t *testing.T) []change {
			h.want(h.do("POST", "/v1/sys/rotate", root, nil), 200)
			return []change{{store.OpPut, "sys/keyring"}}
		}},
		{"zone create", "zone.create", func(t *testing.T) []change {
			h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 3}), 200)
			return []change{{store.OpPut, "pki/zone/dmz"}}
		}},
		{"node join token", "node.create", func(t *testing.T) []change {
			joinToken = h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "web-1", "zone": "dmz"}), 200).json(t)["token"].(string)
			return []change{{store.OpPut, "pki/node/web-1"}, {store.OpPut, "pki/join/"}}
		}},
		{"node enrollment", "pki.enroll", func(t *testing.T) []change {
			h.want(h.do("POST", "/v1/pki/enroll", "", map[string]any{"name": "web-1", "token": joinToken, "csr": csr}), 200)
			return []change{{store.OpPut, "pki/node/web-1"}, {store.OpPut, "pki/cert/"}, {store.OpDelete, "pki/join/"}}
		}},
		{"node revocation", "node.revoke", func(t *testing.T) []change {
			h.want(h.do("POST", "/v1/nodes/web-1/revoke", root, nil), 204)
			return []change{{store.OpPut, "pki/node/web-1"}, {store.OpPut, "pki/revoked/"}}
		}},
		{"snapshot restore", "raft.snapshot.restore", func(t *testing.T) []change {
			out := h.want(h.do("POST", "/v1/sys/raft/snapshot", root, snap), 200).json(t)
			restoredAt = uint64(out["index"].(float64))
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := auditSize(t, h)
			want := tc.do(t)
			e := onlyEntry(t, h, tc.action, before)
			if tc.action == "raft.snapshot.restore" {
				if e.RaftIndex != restoredAt || restoredAt == 0 {
					t.Fatalf("the restore's record is at index %d, the restore installed at %d", e.RaftIndex, restoredAt)
				}
				return
			}
			cmd, err := st.Command(e.RaftIndex)
			if err != nil {
				t.Fatalf("the command of the record: %v", err)
			}
			hash := audit.LeafHash(e.Leaf)
			carried := false
			for _, l := range cmd.Audit {
				carried = carried || bytes.Equal(l.Hash, hash)
			}
			if !carried {
				t.Fatalf("command %d does not carry the record (%d leaves)", e.RaftIndex, len(cmd.Audit))
			}
			for _, w := range want {
				if !hasOp(cmd, w) {
					t.Errorf("command %d has no %s of %s*: %v", e.RaftIndex, opName(w.typ), w.prefix, opKeys(cmd))
				}
			}
			for _, op := range cmd.Ops {
				if op.Type != store.OpPut {
					continue
				}
				got, err := st.GetStale(op.Key)
				if err != nil || got.Version != e.RaftIndex {
					t.Errorf("%s: version %d (%v), want the record's index %d", op.Key, got.Version, err, e.RaftIndex)
				}
			}
		})
	}

	// The restore brought the snapshot's data back, not its audit log: the
	// log kept every record, and the records from before still prove
	// against the current tree.
	h.want(h.do("GET", "/v1/kv/data/app/db", root, nil), 404)
	h.want(h.do("GET", "/v1/zones", root, nil), 200)
	if _, err := st.GetStale("pki/zone/dmz"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a zone created after the snapshot survived its restore: %v", err)
	}
	auditSize(t, h) // merges what the journal holds
	// One view of the tree: records of reads are merged in the background
	// and may grow it, so its size and root are taken together.
	tree, err := st.AuditState()
	if err != nil {
		t.Fatal(err)
	}
	size := tree.Size
	all, err := h.srv.Audit().Entries(0, int(size))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range all {
		seen[e.Entry.Action] = true
	}
	for _, tc := range cases {
		if !seen[tc.action] {
			t.Errorf("after the restore the audit log has no %s record", tc.action)
		}
	}
	rootHash, err := tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		p, err := h.srv.Audit().InclusionProof(e.Index, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyInclusion(e.Leaf, e.Index, size, rootHash, p); err != nil {
			t.Fatalf("entry %d (%s) does not prove after the restore: %v", e.Index, e.Entry.Action, err)
		}
	}
}

func auditSize(t *testing.T, h *harness) uint64 {
	t.Helper()
	n, err := h.srv.Audit().Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// onlyEntry returns the one record of action from index from on (the
// init's from the start of the log).
func onlyEntry(t *testing.T, h *harness, action string, from uint64) auditlog.StoredEntry {
	t.Helper()
	if action == "sys.init" {
		from = 0
	}
	size := auditSize(t, h)
	es, err := h.srv.Audit().Entries(from, int(size-from))
	if err != nil {
		t.Fatal(err)
	}
	var found []auditlog.StoredEntry
	for _, e := range es {
		if e.Entry.Action == action {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d records of %s in entries %d..%d, want 1", len(found), action, from, size)
	}
	return found[0]
}

func hasOp(cmd store.Txn, w change) bool {
	for _, op := range cmd.Ops {
		if op.Type == w.typ && strings.HasPrefix(op.Key, w.prefix) {
			return true
		}
	}
	return false
}

func opName(t store.OpType) string {
	if t == store.OpDelete {
		return "delete"
	}
	return "put"
}

func opKeys(cmd store.Txn) []string {
	var ks []string
	for _, op := range cmd.Ops {
		ks = append(ks, opName(op.Type)+" "+op.Key)
	}
	return ks
}
