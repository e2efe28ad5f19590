package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// standIn is an in-memory stand-in for the Warden server that implements the
// endpoints the CLI tests use, following docs/api.md: strict JSON bodies,
// {"errors": [...]} error bodies, Bearer authentication, versioned KV with
// check-and-set and soft delete. It is not a reference implementation.
type standIn struct {
	mu          sync.Mutex
	initialized bool
	sealed      bool
	progress    int
	threshold   int
	keys        []string
	root        string
	tokens      map[string]string // token -> accessor
	kv          map[string][]kvVer
	now         time.Time
}

type kvVer struct {
	data    map[string]any
	created time.Time
	deleted bool
}

const testRoot = "wdn_rootROOTrootROOTrootROOTrootROOTrootROOT123"

func newStandIn(t *testing.T) (*standIn, *httptest.Server) {
	s := &standIn{sealed: true, tokens: map[string]string{}, kv: map[string][]kvVer{},
		now: time.Date(2026, 11, 22, 14, 0, 0, 123456789, time.UTC)}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *standIn) ts() string { return s.now.Format(time.RFC3339Nano) }

func writeErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

func writeOK(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %v", err)
	}
	if dec.More() {
		return fmt.Errorf("request body: unexpected data after the JSON object")
	}
	return nil
}

func (s *standIn) sealStatus() map[string]any {
	m := map[string]any{"type": "shamir", "initialized": s.initialized, "sealed": s.sealed,
		"shares": 0, "threshold": 0, "progress": s.progress, "version": "0.1.0"}
	if s.initialized {
		m["shares"], m["threshold"], m["cluster_id"] = len(s.keys), s.threshold, "c-1"
	}
	return m
}

func (s *standIn) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := r.URL.Path
	route := r.Method + " " + p
	switch route {
	case "GET /v1/sys/seal-status":
		writeOK(w, 200, s.sealStatus())
		return
	case "GET /v1/sys/health":
		code := 200
		if !s.initialized {
			code = 501
		} else if s.sealed {
			code = 503
		}
		writeOK(w, code, map[string]any{"initialized": s.initialized, "sealed": s.sealed, "standby": false,
			"version": "0.1.0", "server_time_utc": s.now.Unix()})
		return
	case "POST /v1/sys/init":
		var in struct {
			KeyShares    int `json:"key_shares"`
			KeyThreshold int `json:"key_threshold"`
		}
		if err := decodeStrict(r, &in); err != nil {
			writeErr(w, 400, err.Error())
			return
		}
		if s.initialized {
			writeErr(w, 400, "already initialized")
			return
		}
		if in.KeyThreshold < 1 || in.KeyThreshold > in.KeyShares || in.KeyShares > 255 {
			writeErr(w, 400, "key_threshold: need 1 <= key_threshold <= key_shares <= 255")
			return
		}
		s.initialized, s.root, s.threshold = true, testRoot, in.KeyThreshold
		s.tokens[testRoot] = "acc-root"
		for i := range in.KeyShares {
			s.keys = append(s.keys, fmt.Sprintf("a2V5%d", i))
		}
		writeOK(w, 200, map[string]any{"unseal_keys": s.keys, "root_token": s.root})
		return
	case "POST /v1/sys/unseal":
		var in struct {
			Key   string `json:"key"`
			Reset bool   `json:"reset"`
		}
		if err := decodeStrict(r, &in); err != nil {
			writeErr(w, 400, err.Error())
			return
		}
		if in.Reset {
			s.progress = 0
		} else if !strings.HasPrefix(in.Key, "a2V5") {
			writeErr(w, 400, "unseal key does not match any share of this server")
			return
		} else if s.progress++; s.progress >= s.threshold {
			s.sealed, s.progress = false, 0
		}
		writeOK(w, 200, s.sealStatus())
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	acc, ok := s.tokens[tok]
	if !ok {
		writeErr(w, 401, "missing or unknown token")
		return
	}
	if s.sealed {
		writeErr(w, 503, "Warden is sealed")
		return
	}
	view := func(token, acc string) map[string]any {
		m := map[string]any{"accessor": acc, "display_name": "ci", "policies": []string{}, "parent_accessor": "acc-root",
			"created_time": s.ts(), "expire_time": s.ts(), "ttl": "1h0m0s", "root": false, "user": "", "groups": []string{}, "principal": `User::"token:` + acc + `"`}
		if token != "" {
			m["token"] = token
		}
		return m
	}
	switch route {
	case "POST /v1/sys/seal":
		s.sealed = true
		w.WriteHeader(204)
		return
	case "POST /v1/sys/rotate", "GET /v1/sys/key-status":
		writeOK(w, 200, map[string]any{"term": 2, "install_time": s.ts()})
		return
	case "POST /v1/auth/token/create":
		var in struct {
			TTL         string `json:"ttl"`
			DisplayName string `json:"display_name"`
		}
		if err := decodeStrict(r, &in); err != nil {
			writeErr(w, 400, err.Error())
			return
		}
		n := len(s.tokens)
		nt, na := fmt.Sprintf("wdn_child%038d", n), fmt.Sprintf("acc-%d", n)
		s.tokens[nt] = na
		writeOK(w, 200, view(nt, na))
		return
	case "GET /v1/auth/token/lookup-self":
		writeOK(w, 200, view("", acc))
		return
	case "POST /v1/auth/token/lookup", "POST /v1/auth/token/revoke":
		var in struct {
			Token    string `json:"token"`
			Accessor string `json:"accessor"`
		}
		if err := decodeStrict(r, &in); err != nil || (in.Token == "") == (in.Accessor == "") {
			writeErr(w, 400, "give exactly one of token or accessor")
			return
		}
		for t, a := range s.tokens {
			if t == in.Token || a == in.Accessor {
				if strings.HasSuffix(p, "revoke") {
					delete(s.tokens, t)
					w.WriteHeader(204)
				} else {
					writeOK(w, 200, view("", a))
				}
				return
			}
		}
		writeErr(w, 404, "no such token")
		return
	}
	if path, ok := strings.CutPrefix(p, "/v1/kv/data/"); ok {
		s.kvData(w, r, path)
		return
	}
	if path, ok := strings.CutPrefix(p, "/v1/kv/metadata/"); ok && r.Method == "GET" {
		if r.URL.Query().Get("list") == "true" {
			s.kvList(w, strings.Trim(path, "/"))
			return
		}
		vs := s.kv[path]
		if len(vs) == 0 {
			writeErr(w, 404, "no secret at "+path)
			return
		}
		versions := map[string]any{}
		for i, v := range vs {
			dt := ""
			if v.deleted {
				dt = s.ts()
			}
			versions[strconv.Itoa(i+1)] = map[string]any{"created_time": s.ts(), "deletion_time": dt, "destroyed": false}
		}
		writeOK(w, 200, map[string]any{"path": path, "current_version": len(vs), "oldest_version": 1, "max_versions": 10,
			"created_time": s.ts(), "updated_time": s.ts(), "versions": versions})
		return
	}
	writeErr(w, 404, "no API endpoint at "+p)
}

func (s *standIn) kvData(w http.ResponseWriter, r *http.Request, path string) {
	vs := s.kv[path]
	switch r.Method {
	case "PUT", "POST":
		var in struct {
			Data map[string]any `json:"data"`
			CAS  *uint64        `json:"cas"`
		}
		if err := decodeStrict(r, &in); err != nil || in.Data == nil {
			writeErr(w, 400, "data: required (a JSON object)")
			return
		}
		if in.CAS != nil && *in.CAS != uint64(len(vs)) {
			writeErr(w, 409, fmt.Sprintf("check-and-set: current version is %d, not %d", len(vs), *in.CAS))
			return
		}
		s.kv[path] = append(vs, kvVer{data: in.Data, created: s.now})
		writeOK(w, 200, map[string]any{"version": len(vs) + 1, "created_time": s.ts()})
	case "GET":
		n := len(vs)
		if q := r.URL.Query().Get("version"); q != "" && q != "0" {
			n, _ = strconv.Atoi(q)
		}
		if n < 1 || n > len(vs) || vs[n-1].deleted {
			writeErr(w, 404, "no such secret or version")
			return
		}
		writeOK(w, 200, map[string]any{"data": vs[n-1].data, "version": n, "created_time": s.ts(), "deletion_time": ""})
	case "DELETE":
		if len(vs) == 0 {
			writeErr(w, 404, "no secret at "+path)
			return
		}
		vs[len(vs)-1].deleted = true
		w.WriteHeader(204)
	default:
		writeErr(w, 405, "method not allowed")
	}
}

func (s *standIn) kvList(w http.ResponseWriter, prefix string) {
	if prefix != "" {
		prefix += "/"
	}
	seen := map[string]bool{}
	keys := []string{}
	for k := range s.kv {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		if !seen[rest] {
			seen[rest] = true
			keys = append(keys, rest)
		}
	}
	if len(keys) == 0 {
		writeErr(w, 404, "nothing under "+strings.TrimSuffix(prefix, "/"))
		return
	}
	sort.Strings(keys)
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(map[string]any{"keys": keys})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b.Bytes())
}
