package cli

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

// "warden auth oidc config|show": the OpenID Connect login configuration.

// maxConfigFile bounds the client secret and CA files read by "auth oidc config".
const maxConfigFile = 1 << 20

func newAuthCmd(g *globals) *cobra.Command {
	oidc := newGroupCmd("oidc", "Configure login with an OpenID Connect provider",
		newOIDCConfigCmd(g), newOIDCShowCmd(g))
	return newGroupCmd("auth", "Login methods", oidc)
}

func newOIDCConfigCmd(g *globals) *cobra.Command {
	var cfg client.OIDCConfig
	var secretFile, caFile string
	cmd := &cobra.Command{
		Use: "config --issuer URL --client-id ID --client-secret-file F [--user-claim email] [--groups-claim groups] " +
			"[--allowed-domains d1,d2] [--redirect-uri U]... [--scopes s1,s2] [--mfa-acr V]... [--ca-cert-file F]",
		Short: "Write the OpenID Connect login configuration (replacing the current one)",
		Long: `Write the OpenID Connect login configuration, replacing the current one.
Warden is the OpenID client: it holds the client secret, read from the first
line of --client-secret-file and never printed. "warden login --method oidc"
comes back to http://localhost:PORT/oidc/callback; a loopback redirect URI
matches any port. Users are named by --user-claim; --allowed-domains limits
them to e-mail domains; --mfa-acr lists the acr values that mean the provider
checked a second factor.`,
		Args: args(cobra.NoArgs),
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Issuer, "issuer", "", "the provider's issuer URL (its discovery document is at ISSUER/.well-known/openid-configuration)")
	fl.StringVar(&cfg.ClientID, "client-id", "", "Warden's client ID at the provider")
	fl.StringVar(&secretFile, "client-secret-file", "", "file holding Warden's client secret")
	fl.StringVar(&cfg.UserClaim, "user-claim", "email", "the ID token claim that names the user")
	fl.StringVar(&cfg.GroupsClaim, "groups-claim", "groups", "the ID token claim that lists the user's groups (\"\": none)")
	fl.StringSliceVar(&cfg.AllowedDomains, "allowed-domains", nil, "e-mail domains users must belong to, comma-separated (default: any)")
	fl.StringArrayVar(&cfg.RedirectURIs, "redirect-uri", nil, "an allowed redirect URI (repeatable)")
	fl.StringSliceVar(&cfg.Scopes, "scopes", nil, "scopes to ask for, comma-separated (default: the server's)")
	fl.StringArrayVar(&cfg.MFAACRValues, "mfa-acr", nil, "an acr value that means multi-factor authentication (repeatable)")
	fl.StringVar(&caFile, "ca-cert-file", "", "PEM file of CAs to trust when reaching the issuer (default: the system roots)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		for _, name := range []string{"issuer", "client-id", "client-secret-file"} {
			if !fl.Changed(name) {
				return usagef("--%s is required", name)
			}
		}
		if u, err := url.Parse(cfg.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return usagef("--issuer: want the provider's URL, https://host[/path], got %q", cfg.Issuer)
		}
		if cfg.ClientID == "" {
			return usagef("--client-id: empty")
		}
		for _, r := range cfg.RedirectURIs {
			if u, err := url.Parse(r); err != nil || !u.IsAbs() || u.Host == "" {
				return usagef("--redirect-uri: want an absolute URL, got %q", r)
			}
		}
		secret, err := readConfigFile("--client-secret-file", secretFile)
		if err != nil {
			return err
		}
		if cfg.ClientSecret = strings.TrimSpace(secret); cfg.ClientSecret == "" {
			return usagef("--client-secret-file %s: empty", secretFile)
		}
		if caFile != "" {
			if cfg.CAPEM, err = readConfigFile("--ca-cert-file", caFile); err != nil {
				return err
			}
			if !x509.NewCertPool().AppendCertsFromPEM([]byte(cfg.CAPEM)) {
				return usagef("--ca-cert-file %s: no PEM certificate in it", caFile)
			}
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		if err := c.OIDCConfigWrite(cmd.Context(), cfg); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "Success! Wrote the OpenID Connect configuration.")
		return nil
	}
	return cmd
}

// readConfigFile reads a small file named by flag.
func readConfigFile(flag, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	if len(b) > maxConfigFile {
		return "", usagef("%s %s: larger than %d bytes", flag, path, maxConfigFile)
	}
	return string(b), nil
}

func newOIDCShowCmd(g *globals) *cobra.Command {
	return newShowCmd(g, "show", "Show the OpenID Connect login configuration (without the client secret)",
		func(cmd *cobra.Command, c *client.Client) (any, []row, error) {
			cfg, err := c.OIDCConfigRead(cmd.Context())
			if client.IsStatus(err, http.StatusNotFound) {
				return nil, nil, &wrapped{msg: err.Error() + " (warden auth oidc config sets it up)", err: err}
			}
			if err != nil {
				return nil, nil, err
			}
			cfg.ClientSecret = "" // never sent by the server; never printed
			return cfg, oidcRows(cfg), nil
		})
}

func oidcRows(cfg client.OIDCConfig) []row {
	list := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	return []row{{"Issuer", cfg.Issuer}, {"Client ID", cfg.ClientID}, {"Client Secret Set", cfg.ClientSecretSet},
		{"Redirect URIs", list(cfg.RedirectURIs)}, {"Scopes", list(cfg.Scopes)}, {"User Claim", cfg.UserClaim},
		{"Groups Claim", cfg.GroupsClaim}, {"Allowed Domains", list(cfg.AllowedDomains)},
		{"MFA ACR Values", list(cfg.MFAACRValues)}, {"CA Certificates", pemCount(cfg.CAPEM)}}
}

// pemCount is the number of certificates in a PEM text.
func pemCount(s string) int {
	n, rest := 0, []byte(s)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return n
		}
		if b.Type == "CERTIFICATE" {
			n++
		}
	}
}
