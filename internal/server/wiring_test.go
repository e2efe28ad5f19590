package server_test

import (
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/policy"
	"github.com/warden-sec/warden/internal/secrets"
	"github.com/warden-sec/warden/internal/store"
)

// The services declare the narrow storage interfaces they use, in terms of
// internal/store/kv's types; the server wires in the encrypted view
// (core.Core) and the store's audit tree, which must keep satisfying them.
var (
	_ identity.Storage      = (*core.Core)(nil)
	_ secrets.Storage       = (*core.Core)(nil)
	_ policy.Storage        = (*core.Core)(nil)
	_ authority.Storage     = (*core.Core)(nil)
	_ authority.NodeStorage = (*core.Core)(nil)
	_ auditlog.Core         = (*core.Core)(nil)
	_ auditlog.Tree         = (*store.Store)(nil)
)
