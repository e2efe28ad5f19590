package config

import (
	"strings"
	"testing"
	"time"
)

const example = `# the agent's configuration
servers: [https://w1.example:8200]
server: https://w2.example:8200,https://w3.example:8200
ca_cert: /etc/warden/ca.pem
data_dir: /var/lib/warden
spool_max_bytes: 512MiB
batch: {max_events: 500, max_bytes: 2MiB, interval: 2s}
metrics_listen: 127.0.0.1:9108
enforce: nftables
zone: dmz
sources:
  - {type: file, path: /var/log/auth.log, parser: sshd}
  - {type: file, path: /var/log/nginx/access.log, parser: nginx, exclude: ['GET /healthz']}
  - type: file
    path: /var/log/app.json
    parser: json
    dataset: app
    json: {mapping: {src: source.ip}, timestamp_field: time, timestamp_layout: "2006-01-02 15:04:05"}
  - {type: journald, units: [sshd.service, cron.service], parsers: {sshd.service: sshd}, journalctl: /usr/bin/journalctl}
  - {type: fim, paths: [/etc, /usr/local/bin], exclude: ["*.swp", /etc/mtab], scan_interval: 10m}
`

func TestExample(t *testing.T) {
	c, err := Parse("agent.yml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Servers, " ") != "https://w2.example:8200 https://w3.example:8200 https://w1.example:8200" {
		t.Fatalf("servers %v", c.Servers)
	}
	if c.SpoolMaxBytes != 512<<20 || c.Batch.MaxBytes != 2<<20 || c.Batch.Interval != 2*time.Second || c.Batch.MaxEvents != 500 {
		t.Fatalf("sizes %+v", c)
	}
	var names []string
	for _, s := range c.Sources {
		names = append(names, s.Name())
	}
	if got := strings.Join(names, " "); got != "file:/var/log/auth.log file:/var/log/nginx/access.log file:/var/log/app.json journald:sshd.service,cron.service fim:/etc,/usr/local/bin" {
		t.Fatalf("names %s", got)
	}
	if j := c.Sources[2].File.JSON; j == nil || j.Mapping["src"] != "source.ip" || j.TimestampField != "time" {
		t.Fatalf("json %+v", j)
	}
	if c.Sources[4].FIM.ScanInterval != 10*time.Minute || c.Sources[3].Journald.Parsers["sshd.service"] != "sshd" {
		t.Fatalf("sources %+v %+v", c.Sources[4].FIM, c.Sources[3].Journald)
	}
	if c.Enforce != "nftables" || c.Zone != "dmz" {
		t.Fatalf("enforce %q zone %q", c.Enforce, c.Zone)
	}
	if c.Sources[1].Line != 13 {
		t.Fatalf("line %d", c.Sources[1].Line)
	}
}

// TestErrors: every error names the file and the line.
func TestErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"unknown top key", "servers: [https://a:1]\nspool: 1\n", "agent.yml: line 2: field spool not found"},
		{"bad server", "data_dir: /x\nserver: http://a:1\n", "agent.yml:2: server: \"http://a:1\" is not an https"},
		{"relative data dir", "data_dir: x\n", "agent.yml:1: data_dir"},
		{"bad size", "spool_max_bytes: lots\n", "agent.yml: line 1: want a size"},
		{"no type", "sources:\n  - {path: /x}\n", "agent.yml: line 2: the source has no type"},
		{"unknown type", "sources:\n  - {type: kafka}\n", "line 2: unknown source type \"kafka\""},
		{"unknown key", "sources:\n  - type: file\n    path: /x\n    parsr: sshd\n", "agent.yml: line 4: unknown key \"parsr\" in a file source"},
		{"relative path", "sources:\n  - type: file\n    path: x.log\n", "line 3: path: want an absolute"},
		{"unknown parser", "sources:\n  - {type: file, path: /x, parser: cef}\n", "line 2: parser: unknown parser \"cef\""},
		{"bad regexp", "sources:\n  - type: file\n    path: /x\n    exclude: ['(']\n", "line 4: exclude: error parsing regexp"},
		{"json key", "sources:\n  - type: file\n    path: /x\n    parser: json\n    json: {mappings: {}}\n", "line 5: unknown key \"mappings\" in a json option set"},
		{"duplicate", "sources:\n  - {type: file, path: /x}\n  - {type: file, path: /x/}\n", "agent.yml:3: source file:/x is already configured at line 2"},
		{"fim no paths", "sources:\n  - {type: fim}\n", "line 2: paths: at least one path"},
		{"fim bad glob", "sources:\n  - type: fim\n    paths: [/etc]\n    exclude: ['[']\n", "line 4: exclude: \"[\" is not a valid glob"},
		{"bad duration", "sources:\n  - {type: fim, paths: [/etc], scan_interval: often}\n", "line 2: cannot unmarshal"},
		{"bad enforce", "servers: [https://a:1]\nenforce: iptables\n", "agent.yml:2: enforce: unknown mode \"iptables\" (want nftables or none)"},
		{"batch too big", "batch: {max_bytes: 8MiB}\n", "agent.yml:1: batch: max_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("agent.yml", []byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "64 KiB": 64 << 10, "1000": 1000, "2MB": 2e6, "5B": 5} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "1XB", "99999999999GiB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yml", data)
		if err != nil {
			return
		}
		for _, s := range c.Sources {
			if s.Name() == "" {
				t.Fatalf("source without a name: %+v", s)
			}
		}
	})
}
