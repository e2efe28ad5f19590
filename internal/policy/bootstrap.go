package policy

import (
	"encoding/json"
	"time"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Encrypter encrypts a value for a storage key (core.Encrypter, at init).
type Encrypter interface {
	Encrypt(aad string, plaintext []byte) ([]byte, error)
}

// BootstrapPolicy returns the operations, encrypted with enc, that store
// policy name of the warden store at init, before anything else is in it:
// the policy record (version 1) and the store's generation. The text is
// checked as WritePolicy checks it, with the built-in policies.
func BootstrapPolicy(enc Encrypter, name, text string, now time.Time) ([]kv.Op, error) {
	if err := authz.ValidatePolicy(name, text); err != nil {
		return nil, invalid(err)
	}
	if err := refuseBuiltin(WardenStore, name); err != nil {
		return nil, err
	}
	pols := BuiltinPolicies()
	pols[name] = text
	if _, err := authz.Compile(pols, ""); err != nil {
		return nil, invalid(err)
	}
	now = now.UTC()
	rec, err := json.Marshal(&Policy{Store: WardenStore, Name: name, Text: text, CreatedTime: now, UpdatedTime: now, Version: 1})
	if err != nil {
		return nil, err
	}
	var ops []kv.Op
	for _, op := range []kv.Op{{Type: kv.OpPut, Key: prefixPolicy + WardenStore + "/" + name, Value: rec},
		{Type: kv.OpPut, Key: prefixGen + WardenStore, Value: []byte{}}} {
		ct, err := enc.Encrypt(op.Key, op.Value)
		if err != nil {
			return nil, err
		}
		op.Value = ct
		ops = append(ops, op)
	}
	return ops, nil
}
