// Command auditcheck verifies a Warden audit log from its public API using
// only the transparency-log ecosystem's own libraries
// (github.com/transparency-dev/merkle and golang.org/x/mod/sumdb/note): no
// Warden code. It shows that third parties can check the log.
//
//	auditcheck -addr https://127.0.0.1:8200 -cacert ca.pem -token $WARDEN_TOKEN [-old old-checkpoint.txt]
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	addr := flag.String("addr", os.Getenv("WARDEN_ADDR"), "server URL")
	ca := flag.String("cacert", os.Getenv("WARDEN_CACERT"), "CA certificate (PEM)")
	token := flag.String("token", os.Getenv("WARDEN_TOKEN"), "token allowed audit.read")
	old := flag.String("old", "", "an older checkpoint to check consistency with")
	flag.Parse()
	if err := run(os.Stdout, *addr, *ca, *token, *old); err != nil {
		fmt.Fprintln(os.Stderr, "auditcheck:", err)
		os.Exit(1)
	}
}

type api struct {
	addr, token string
	http        *http.Client
}

func (a *api) get(path string) ([]byte, error) {
	req, err := http.NewRequest("GET", a.addr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	res, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", path, res.StatusCode, b)
	}
	return b, nil
}

func (a *api) getJSON(path string, v any) error {
	b, err := a.get(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

type checkpoint struct {
	size uint64
	root []byte
}

func openCheckpoint(msg []byte, vkey string) (checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return checkpoint{}, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return checkpoint{}, err
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 || lines[0] != v.Name() {
		return checkpoint{}, errors.New("checkpoint body: bad origin or shape")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return checkpoint{}, err
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		return checkpoint{}, err
	}
	return checkpoint{size: size, root: root}, nil
}

func (a *api) proof(path string) ([][]byte, error) {
	var p struct {
		Hashes []string `json:"hashes"`
	}
	if err := a.getJSON(path, &p); err != nil {
		return nil, err
	}
	out := make([][]byte, len(p.Hashes))
	for i, h := range p.Hashes {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func run(w io.Writer, addr, caFile, token, oldFile string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	a := &api{addr: addr, token: token, http: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}

	var v struct {
		Origin      string `json:"origin"`
		VerifierKey string `json:"verifier_key"`
	}
	if err := a.getJSON("/v1/audit/verifier", &v); err != nil {
		return err
	}
	msg, err := a.get("/v1/audit/checkpoint")
	if err != nil {
		return err
	}
	cp, err := openCheckpoint(msg, v.VerifierKey)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	h := rfc6962.DefaultHasher
	// The root over all entries, recomputed from the leaf bytes (RFC 6962
	// MTH, by stack of perfect subtrees). An entry archived and pruned from
	// the live log comes with its leaf hash only: it counts by that hash
	// (its bytes are checked offline, in its archive).
	var hashes [][]byte
	for start := uint64(0); start < cp.size; {
		var page struct {
			Entries []struct {
				Index    uint64 `json:"index"`
				Leaf     string `json:"leaf"`
				Archived bool   `json:"archived"`
				LeafHash string `json:"leaf_hash"`
			} `json:"entries"`
		}
		if err := a.getJSON(fmt.Sprintf("/v1/audit/entries?start=%d&count=%d", start, min(cp.size-start, 1000)), &page); err != nil {
			return err
		}
		if len(page.Entries) == 0 {
			return fmt.Errorf("no entries at %d", start)
		}
		for _, e := range page.Entries {
			if e.Archived {
				lh, err := base64.StdEncoding.DecodeString(e.LeafHash)
				if err != nil || len(lh) != 32 {
					return fmt.Errorf("entry %d: archived without a leaf hash", e.Index)
				}
				hashes = append(hashes, lh)
				continue
			}
			b, err := base64.StdEncoding.DecodeString(e.Leaf)
			if err != nil {
				return err
			}
			hashes = append(hashes, h.HashLeaf(b))
		}
		start += uint64(len(page.Entries))
	}
	if root := mth(hashes); !bytes.Equal(root, cp.root) {
		return fmt.Errorf("root over %d entries does not match the checkpoint", len(hashes))
	}
	r := rand.New(rand.NewPCG(1, cp.size))
	for k := 0; k < min(int(cp.size), 20); k++ {
		i := uint64(r.IntN(int(cp.size)))
		p, err := a.proof(fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&tree_size=%d", i, cp.size))
		if err != nil {
			return err
		}
		if err := proof.VerifyInclusion(h, i, cp.size, hashes[i], p, cp.root); err != nil {
			return fmt.Errorf("inclusion of entry %d: %w", i, err)
		}
	}
	fmt.Fprintf(w, "checkpoint %s size %d: signature, root over all entries and inclusion proofs verified\n", v.Origin, cp.size)
	if oldFile != "" {
		b, err := os.ReadFile(oldFile)
		if err != nil {
			return err
		}
		old, err := openCheckpoint(b, v.VerifierKey)
		if err != nil {
			return fmt.Errorf("old checkpoint: %w", err)
		}
		p, err := a.proof(fmt.Sprintf("/v1/audit/proof/consistency?old=%d&new=%d", old.size, cp.size))
		if err != nil {
			return err
		}
		if err := proof.VerifyConsistency(h, old.size, cp.size, p, old.root, cp.root); err != nil {
			return fmt.Errorf("consistency with the old checkpoint: %w", err)
		}
		fmt.Fprintf(w, "consistent with the checkpoint of size %d\n", old.size)
	}
	return nil
}

// mth computes the RFC 6962 Merkle tree hash over leaf hashes.
func mth(hashes [][]byte) []byte {
	h := rfc6962.DefaultHasher
	if len(hashes) == 0 {
		return h.EmptyRoot()
	}
	if len(hashes) == 1 {
		return hashes[0]
	}
	k := 1
	for k*2 < len(hashes) {
		k *= 2
	}
	return h.HashChildren(mth(hashes[:k]), mth(hashes[k:]))
}
