package identity

import (
	"context"
	"encoding/json"

	"github.com/warden-sec/warden/internal/store/kv"
)

// GeneratedRootName is the display name of root tokens made by root
// generation (the root token of init is "root").
const GeneratedRootName = "generated-root"

// CreateRoot makes a new root token, as init makes the first one: no
// parent, no expiry, the root policy. It is committed through the storage
// view, so with the pending audit record of ctx. named, if not nil, is
// called with the new record (never the token) before the commit, so the
// caller can name the accessor in that record. Root generation
// (core.GenerateRootUpdate) is its only caller: a quorum of unseal keys
// authorizes it, not a token.
func (s *Service) CreateRoot(ctx context.Context, named func(*Token)) (Secret, *Token, error) {
	secret, sum, err := s.mint()
	if err != nil {
		return "", nil, err
	}
	tok := &Token{Accessor: accessorOf(sum), DisplayName: GeneratedRootName, Policies: []string{"root"},
		Root: true, CreatedTime: s.now().UTC(), Hash: sum}
	rec, err := json.Marshal(tok)
	if err != nil {
		return "", nil, err
	}
	if named != nil {
		named(tok)
	}
	idx, err := s.st.Txn(ctx, kv.Txn{
		Conds: []kv.Cond{{Key: prefixToken + tok.Accessor, Version: 0}},
		Ops:   []kv.Op{{Type: kv.OpPut, Key: prefixToken + tok.Accessor, Value: rec}},
	})
	if err != nil {
		return "", nil, err
	}
	tok.version = idx
	return secret, tok, nil
}
