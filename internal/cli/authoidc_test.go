package cli

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestAuthOIDCConfig: "auth oidc config" sends the whole configuration with
// the trimmed client secret from its file and the CA file's PEM, and never
// prints the secret; "auth oidc show" prints what the server returns.
func TestAuthOIDCConfig(t *testing.T) {
	const secret = "s3cret-client-value"
	s, e := newStandIn(t, map[string]route{
		"PUT /v1/auth/oidc/config": answer(204, ""),
		"GET /v1/auth/oidc/config": answer(200, `{"issuer":"https://idp.example","client_id":"warden","redirect_uris":["http://localhost/oidc/callback"],
"scopes":["openid","email"],"user_claim":"email","groups_claim":"groups","allowed_domains":["example.com"],"mfa_acr_values":["mfa"],
"ca_pem":"","client_secret_set":true}`),
	})
	e["WARDEN_TOKEN"] = "wdn_admin"
	caBytes, err := os.ReadFile(e["WARDEN_CACERT"]) // any certificate will do
	if err != nil {
		t.Fatal(err)
	}
	caPEM := string(caBytes)
	secretFile := tempFile(t, "client-secret", "  "+secret+"\n")
	r := runCLI(t, e, "", "auth", "oidc", "config", "--issuer", "https://idp.example", "--client-id", "warden",
		"--client-secret-file", secretFile, "--allowed-domains", "example.com,example.org",
		"--redirect-uri", "http://localhost/oidc/callback", "--redirect-uri", "https://warden.example/ui/callback",
		"--scopes", "openid,email", "--mfa-acr", "mfa", "--mfa-acr", "phr", "--ca-cert-file", tempFile(t, "ca.pem", caPEM))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatal("the client secret was printed")
	}
	calls := s.requests()
	want := map[string]any{"issuer": "https://idp.example", "client_id": "warden", "client_secret": secret,
		"redirect_uris": []any{"http://localhost/oidc/callback", "https://warden.example/ui/callback"},
		"scopes":        []any{"openid", "email"}, "user_claim": "email", "groups_claim": "groups",
		"allowed_domains": []any{"example.com", "example.org"}, "mfa_acr_values": []any{"mfa", "phr"}, "ca_pem": caPEM}
	if len(calls) != 1 || calls[0].method != "PUT" || calls[0].auth != "Bearer wdn_admin" || !reflect.DeepEqual(calls[0].body, want) {
		t.Fatalf("requests %+v\nwant body %v", calls, want)
	}

	r = runCLI(t, e, "", "auth", "oidc", "show")
	for _, want := range []string{"https://idp.example", "Client Secret Set", "true", `["example.com"]`, "CA Certificates"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	mustJSON(t, runCLI(t, e, "", "auth", "oidc", "show", "--format", "json"), "issuer", "client_id", "client_secret_set",
		"redirect_uris", "scopes", "user_claim", "groups_claim", "allowed_domains", "mfa_acr_values", "ca_pem")

	n := len(s.requests())
	for _, tc := range []struct {
		argv     []string
		contains string
	}{
		{[]string{"--client-id", "w", "--client-secret-file", secretFile}, "--issuer is required"},
		{[]string{"--issuer", "https://i", "--client-secret-file", secretFile}, "--client-id is required"},
		{[]string{"--issuer", "https://i", "--client-id", "w"}, "--client-secret-file is required"},
		{[]string{"--issuer", "idp.example", "--client-id", "w", "--client-secret-file", secretFile}, "--issuer: want the provider's URL"},
		{[]string{"--issuer", "https://i", "--client-id", "w", "--client-secret-file", tempFile(t, "empty", "\n")}, "empty"},
		{[]string{"--issuer", "https://i", "--client-id", "w", "--client-secret-file", secretFile, "--ca-cert-file", secretFile}, "no PEM certificate"},
		{[]string{"--issuer", "https://i", "--client-id", "w", "--client-secret-file", secretFile, "--redirect-uri", "/cb"}, "--redirect-uri: want an absolute URL"},
	} {
		checkErr(t, runCLI(t, e, "", append([]string{"auth", "oidc", "config"}, tc.argv...)...), 2, tc.contains)
	}
	checkErr(t, runCLI(t, e, "", "auth", "oidc", "config", "--issuer", "https://i", "--client-id", "w",
		"--client-secret-file", "/nonexistent/secret"), 1, "--client-secret-file: open /nonexistent/secret")
	if len(s.requests()) != n {
		t.Fatal("a refused config was sent")
	}
}
