package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/secrets"
)

type kvPutRequest struct {
	Data json.RawMessage `json:"data"`
	CAS  *uint64         `json:"cas"`
}

type kvPutResponse struct {
	Version     uint64 `json:"version"`
	CreatedTime string `json:"created_time"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *Server) kvPut(req *request) (int, any, error) {
	var in kvPutRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.Data == nil || string(in.Data) == "null" {
		return 0, nil, errs.E(errs.Invalid, "data: required (a JSON object)")
	}
	if err := s.hashInto(req, "data", in.Data); err != nil {
		return 0, nil, err
	}
	v, created, err := s.cfg.KV.Put(req.Context(), req.PathValue("path"), in.Data, in.CAS)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, kvPutResponse{Version: v, CreatedTime: rfc3339(created)}, nil
}

type kvGetResponse struct {
	Data         json.RawMessage `json:"data"`
	Version      uint64          `json:"version"`
	CreatedTime  string          `json:"created_time"`
	DeletionTime string          `json:"deletion_time"`
}

func (s *Server) kvGet(req *request) (int, any, error) {
	v, err := queryUint(req.Request, "version")
	if err != nil {
		return 0, nil, err
	}
	sec, err := s.cfg.KV.Get(req.Context(), req.PathValue("path"), v)
	if err != nil {
		return 0, nil, err
	}
	if err := s.hashInto(req, "data", sec.Data); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, kvGetResponse{Data: sec.Data, Version: sec.Version,
		CreatedTime: rfc3339(sec.CreatedTime), DeletionTime: rfc3339(sec.DeletionTime)}, nil
}

func (s *Server) kvDelete(req *request) (int, any, error) {
	if err := s.cfg.KV.Delete(req.Context(), req.PathValue("path")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

type versionView struct {
	CreatedTime  string `json:"created_time"`
	DeletionTime string `json:"deletion_time"`
	Destroyed    bool   `json:"destroyed"`
}

type metadataResponse struct {
	Path           string                 `json:"path"`
	CurrentVersion uint64                 `json:"current_version"`
	OldestVersion  uint64                 `json:"oldest_version"`
	MaxVersions    int                    `json:"max_versions"`
	CreatedTime    string                 `json:"created_time"`
	UpdatedTime    string                 `json:"updated_time"`
	Versions       map[string]versionView `json:"versions"`
}

func (s *Server) kvMetadata(req *request) (int, any, error) {
	if list := req.URL.Query().Get("list"); list != "" {
		if _, err := strconv.ParseBool(list); err != nil {
			return 0, nil, errs.E(errs.Invalid, "list: must be true or false, got %q", list)
		}
	}
	if listRequested(req) {
		return s.kvList(req)
	}
	m, err := s.cfg.KV.Metadata(req.Context(), req.PathValue("path"))
	if err != nil {
		return 0, nil, err
	}
	out := metadataResponse{Path: m.Path, CurrentVersion: m.CurrentVersion, OldestVersion: m.OldestVersion,
		MaxVersions: m.MaxVersions, CreatedTime: rfc3339(m.CreatedTime), UpdatedTime: rfc3339(m.UpdatedTime),
		Versions: make(map[string]versionView, len(m.Versions))}
	for v, info := range m.Versions {
		out.Versions[secrets.VersionKey(v)] = versionView{CreatedTime: rfc3339(info.CreatedTime),
			DeletionTime: rfc3339(info.DeletionTime), Destroyed: info.Destroyed}
	}
	return http.StatusOK, out, nil
}

type listResponse struct {
	Keys []string `json:"keys"`
}

func (s *Server) kvList(req *request) (int, any, error) {
	keys, err := s.cfg.KV.List(req.Context(), req.PathValue("path"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listResponse{Keys: keys}, nil
}

// listRequested reports whether ?list=true was given.
func listRequested(r *request) bool {
	b, _ := strconv.ParseBool(r.URL.Query().Get("list"))
	return b
}

// hashInto puts the HMAC of a sensitive value into the request's audit
// record (compact JSON, so the same data always has the same hash).
func (s *Server) hashInto(req *request, name string, value json.RawMessage) error {
	if req.entry == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, value); err != nil {
		return errs.E(errs.Invalid, "%s: %s", name, err.Error())
	}
	return req.Hash(name, buf.Bytes())
}
