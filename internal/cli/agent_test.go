package cli

import (
	"strings"
	"testing"
)

// TestAgentConfigAndFlags: the agent takes its settings from --config, the
// flags override the file, and bad settings fail naming what and where.
func TestAgentConfigAndFlags(t *testing.T) {
	dir := t.TempDir()
	good := tempFile(t, "agent.yml", "server: https://127.0.0.1:1\ndata_dir: "+dir+"\nsources:\n  - {type: file, path: /var/log/auth.log, parser: sshd}\n")
	bad := tempFile(t, "bad.yml", "server: https://127.0.0.1:1\nsources:\n  - {type: file, path: auth.log}\n")
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"nothing", []string{"agent"}, 2, "--server and --data-dir are required"},
		{"file values", []string{"agent", "--config", good}, 2, "no svid.pem in " + dir},
		{"flag overrides", []string{"agent", "--config", good, "--data-dir", "/nonexistent/x"}, 2, "no svid.pem in /nonexistent/x"},
		{"bad file", []string{"agent", "--config", bad}, 1, "bad.yml: line 3: path: want an absolute file path"},
		{"missing file", []string{"agent", "--config", dir + "/none.yml"}, 1, "none.yml"},
		{"bad size", []string{"agent", "--config", good, "--spool-max-bytes", "lots"}, 2, "--spool-max-bytes: want a size"},
		{"bad enforce", []string{"agent", "--config", good, "--enforce", "iptables"}, 2, `--enforce: want nftables or none, got "iptables"`},
		{"negative inventory interval", []string{"agent", "--config", good, "--inventory-interval", "-1h"}, 2, "--inventory-interval: must be 0 (never) or positive"},
		{"negative assessment interval", []string{"agent", "--config", good, "--assessment-interval", "-1m"}, 2, "--assessment-interval: must be 0 (never) or positive"},
		{"bad interval", []string{"agent", "--config", good, "--inventory-interval", "often"}, 2, "often"},
		{"plain http", []string{"agent", "--server", "http://127.0.0.1:1,https://127.0.0.1:2", "--data-dir", dir}, 2, `"http://127.0.0.1:1" is not an https`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, env{}, "", tc.args...)
			checkErr(t, r, tc.code, tc.contains)
			if strings.Contains(r.stderr, "sshd") {
				t.Fatalf("stderr %q", r.stderr)
			}
		})
	}
}
