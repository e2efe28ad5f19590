package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
)

// TestDoubleSpend: many clients spend from one balance with check-and-set
// retries. The final balance is the start minus the successful spends, and
// never negative.
func TestDoubleSpend(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	const startBalance, price, clients, tries = 1000, 7, 16, 12
	h.want(h.do("PUT", "/v1/kv/data/acct/a", root, map[string]any{"data": map[string]any{"balance": strconv.Itoa(startBalance)}, "cas": 0}), 200)
	var spent, conflicts atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < tries; i++ {
				for {
					r := h.do("GET", "/v1/kv/data/acct/a", root, nil)
					if r.status != 200 {
						t.Errorf("get: %d %s", r.status, r.body)
						return
					}
					var got struct {
						Data    map[string]string `json:"data"`
						Version uint64            `json:"version"`
					}
					json.Unmarshal(r.body, &got)
					bal, _ := strconv.Atoi(got.Data["balance"])
					if bal < price {
						return // cannot afford: stop
					}
					w := h.do("PUT", "/v1/kv/data/acct/a", root, map[string]any{
						"data": map[string]any{"balance": strconv.Itoa(bal - price)}, "cas": got.Version})
					if w.status == 200 {
						spent.Add(1)
						break
					}
					if w.status != 409 {
						t.Errorf("put: %d %s", w.status, w.body)
						return
					}
					conflicts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	r := h.want(h.do("GET", "/v1/kv/data/acct/a", root, nil), 200).json(t)
	final, _ := strconv.Atoi(r["data"].(map[string]any)["balance"].(string))
	if final != startBalance-price*int(spent.Load()) || final < 0 {
		t.Fatalf("final balance %d after %d spends of %d from %d", final, spent.Load(), price, startBalance)
	}
	t.Logf("%d spends, %d CAS conflicts retried, final balance %d", spent.Load(), conflicts.Load(), final)
}

// TestRevokeRacesChildCreation: children created while their parent is being
// revoked are either refused or revoked with it; none survives.
func TestRevokeRacesChildCreation(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		acc := h.want(h.do("POST", "/v1/auth/token/create", root, map[string]any{"ttl": "1h"}), 200).json(t)["accessor"].(string)
		parent, err := h.srv.Tokens().LookupAccessor(acc)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var children []identity.Secret
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 5; j++ {
					s, _, err := h.srv.Tokens().Create(h.audited(ctx, "token.create"), parent, identity.CreateRequest{DisplayName: fmt.Sprint(j)})
					if errs.Is(err, errs.Internal) {
						t.Errorf("create a child: %v", err) // refused, not raced (an unaudited change is internal)
					}
					if err == nil {
						mu.Lock()
						children = append(children, s)
						mu.Unlock()
					}
				}
			}()
		}
		h.want(h.do("POST", "/v1/auth/token/revoke", root, map[string]string{"accessor": acc}), 204)
		wg.Wait()
		for _, c := range children {
			if _, err := h.srv.Tokens().Authenticate(c.Reveal()); err == nil {
				// Created after the revocation committed? Then its parent was
				// gone and Create must have failed: a live child is an orphan.
				t.Fatalf("round %d: a child of a revoked token still authenticates", round)
			}
		}
	}
}

// TestConcurrentChildrenOfOneParent: children created at once under one
// parent token do not conflict with each other: every creation succeeds
// the first time, and each is a child the parent's revocation takes along.
func TestConcurrentChildrenOfOneParent(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	ctx := context.Background()
	acc := h.want(h.do("POST", "/v1/auth/token/create", root, map[string]any{"ttl": "1h"}), 200).json(t)["accessor"].(string)
	parent, err := h.srv.Tokens().LookupAccessor(acc)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var children []identity.Secret
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				s, _, err := h.srv.Tokens().Create(h.audited(ctx, "token.create"), parent, identity.CreateRequest{DisplayName: fmt.Sprint(j)})
				if err != nil {
					t.Errorf("create a child: %v", err)
					return
				}
				mu.Lock()
				children = append(children, s)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	h.want(h.do("POST", "/v1/auth/token/revoke", root, map[string]string{"accessor": acc}), 204)
	for _, c := range children {
		if _, err := h.srv.Tokens().Authenticate(c.Reveal()); err == nil {
			t.Fatal("a child outlived its parent's revocation")
		}
	}
}
