// Package config reads the agent's configuration file (`warden agent
// --config FILE`, YAML): the settings its flags also set, and the sources
// it ships events from. Parsing is strict: an unknown key, a wrong type or
// an invalid value is an error naming the file and line. It does not build
// sources or touch the network.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/warden-sec/warden/internal/events/parse"
)

// Config is the agent's configuration file.
type Config struct {
	// Servers are the Warden servers' URLs (https://host:port). "server"
	// takes one URL or a comma-separated list; "servers" a list; both add up.
	Servers       []string `yaml:"servers"`
	Server        string   `yaml:"server"`
	CACert        string   `yaml:"ca_cert"`         // CA of the servers' TLS certificates
	DataDir       string   `yaml:"data_dir"`        // identity files, spool, checkpoints
	SpoolMaxBytes ByteSize `yaml:"spool_max_bytes"` // default 1GiB
	Batch         Batch    `yaml:"batch"`
	MetricsListen string   `yaml:"metrics_listen"` // host:port of the Prometheus /metrics listener; "" none
	// Enforce is how decisions are enforced on the host: "nftables" (the
	// kernel's firewall, through netlink) or "none". Empty: nftables where
	// netlink can be used, else none with a warning.
	Enforce string `yaml:"enforce"`
	// Zone is the node's zone: decisions limited to another zone are not
	// enforced here. Empty: only decisions for every zone.
	Zone    string   `yaml:"zone"`
	Sources []Source `yaml:"sources"`

	file  string
	lines map[string]int // top-level key → line
}

// Batch bounds a batch of events.
type Batch struct {
	MaxEvents int           `yaml:"max_events"` // default 1000
	MaxBytes  ByteSize      `yaml:"max_bytes"`  // uncompressed; default 1MiB, at most 4MiB
	Interval  time.Duration `yaml:"interval"`   // a non-empty batch is sent at least this often; default 1s
}

// Source is one entry of "sources": exactly one of File, Journald, FIM is
// set, as Type says.
type Source struct {
	Type     string // file, journald, fim
	Line     int    // where it starts in the file
	File     *File
	Journald *Journald
	FIM      *FIM
}

// File is a tailed file.
type File struct {
	Path    string       `yaml:"path"`    // absolute
	Parser  string       `yaml:"parser"`  // sshd, nginx, apache, syslog, json, raw (default raw)
	Dataset string       `yaml:"dataset"` // overrides event.dataset
	JSON    *JSONOptions `yaml:"json"`    // parser json only
	Exclude []string     `yaml:"exclude"` // Go regular expressions; matching lines are skipped (counted)
}

// JSONOptions configure the json parser.
type JSONOptions struct {
	Mapping         map[string]string `yaml:"mapping"`          // the line's field → ECS field
	TimestampField  string            `yaml:"timestamp_field"`  // the line's field holding the time
	TimestampLayout string            `yaml:"timestamp_layout"` // Go layout; default RFC 3339
}

// Journald reads the systemd journal.
type Journald struct {
	Units      []string          `yaml:"units"`      // empty: every unit
	Parsers    map[string]string `yaml:"parsers"`    // unit → parser for its messages
	Journalctl string            `yaml:"journalctl"` // the journalctl program; default journalctl from PATH
}

// FIM is file integrity monitoring.
type FIM struct {
	Paths        []string      `yaml:"paths"`         // absolute files or directories
	Exclude      []string      `yaml:"exclude"`       // globs (filepath.Match) matched against the path and its base name
	ScanInterval time.Duration `yaml:"scan_interval"` // full scan period; default 10m
}

// Name is the source's name: unique among the sources, stable across
// restarts and reloads (it keys the source's saved state). It is
// "file:PATH", "journald:UNIT,UNIT" (or "journald:*") or "fim:PATH,PATH".
func (s Source) Name() string {
	switch {
	case s.File != nil:
		return "file:" + s.File.Path
	case s.Journald != nil:
		if len(s.Journald.Units) == 0 {
			return "journald:*"
		}
		return "journald:" + strings.Join(s.Journald.Units, ",")
	case s.FIM != nil:
		return "fim:" + strings.Join(s.FIM.Paths, ",")
	}
	return ""
}

// KnownParser reports whether name is a parser the agent has
// (parse.Names).
func KnownParser(name string) bool {
	for _, p := range parse.Names() {
		if p == name {
			return true
		}
	}
	return false
}

func parserNames() string { return strings.Join(parse.Names(), ", ") }

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a configuration file's content; file names it in errors.
func Parse(file string, data []byte) (*Config, error) {
	c := &Config{file: file, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(root.Content) == 0 {
		return c, nil // empty file
	}
	if doc := root.Content[0]; doc.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(doc.Content); i += 2 {
			c.lines[doc.Content[i].Value] = doc.Content[i].Line
		}
	} else {
		return nil, fmt.Errorf("%s:%d: want a mapping of settings", file, doc.Line)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %s", file, strings.Join(te.Errors, "; "))
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) errorf(key, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s: %s", c.file, c.lines[key], key, fmt.Sprintf(format, args...))
}

func (c *Config) validate() error {
	servers, err := SplitServers(append([]string{c.Server}, c.Servers...))
	if err != nil {
		key := "servers"
		if c.lines[key] == 0 {
			key = "server"
		}
		return c.errorf(key, "%v", err)
	}
	c.Servers, c.Server = servers, ""
	if c.DataDir != "" && !filepath.IsAbs(c.DataDir) {
		return c.errorf("data_dir", "%q is not an absolute path", c.DataDir)
	}
	if c.SpoolMaxBytes < 0 {
		return c.errorf("spool_max_bytes", "must not be negative")
	}
	if c.Batch.MaxEvents < 0 || c.Batch.MaxBytes < 0 || c.Batch.Interval < 0 {
		return c.errorf("batch", "values must not be negative")
	}
	if c.Batch.MaxBytes > 4<<20 {
		return c.errorf("batch", "max_bytes %d is over the servers' 4MiB batch limit", c.Batch.MaxBytes)
	}
	if err := CheckEnforce(c.Enforce); err != nil {
		return c.errorf("enforce", "%v", err)
	}
	seen := map[string]int{}
	for _, s := range c.Sources {
		name := s.Name()
		if first, ok := seen[name]; ok {
			return fmt.Errorf("%s:%d: source %s is already configured at line %d", c.file, s.Line, name, first)
		}
		seen[name] = s.Line
	}
	return nil
}

// Enforcement modes (Config.Enforce).
const (
	EnforceNFTables = "nftables"
	EnforceNone     = "none"
)

// CheckEnforce checks an enforcement mode: "", nftables or none.
func CheckEnforce(mode string) error {
	switch mode {
	case "", EnforceNFTables, EnforceNone:
		return nil
	}
	return fmt.Errorf("unknown mode %q (want %s or %s)", mode, EnforceNFTables, EnforceNone)
}

// SplitServers splits comma-separated lists, drops empty entries and
// checks each is an https URL.
func SplitServers(in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			u, err := url.Parse(p)
			if err != nil || u.Scheme != "https" || u.Host == "" {
				return nil, fmt.Errorf("%q is not an https://host:port URL", p)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// UnmarshalYAML decodes one source strictly: its keys must be those of
// its type.
func (s *Source) UnmarshalYAML(n *yaml.Node) error {
	s.Line = n.Line
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a source is a mapping with a type", n.Line)
	}
	var rest []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			s.Type = n.Content[i+1].Value
			continue
		}
		rest = append(rest, n.Content[i], n.Content[i+1])
	}
	body := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column, Content: rest}
	var allowed []string
	var target any
	switch s.Type {
	case "file":
		s.File = &File{}
		allowed, target = []string{"path", "parser", "dataset", "json", "exclude"}, s.File
	case "journald":
		s.Journald = &Journald{}
		allowed, target = []string{"units", "parsers", "journalctl"}, s.Journald
	case "fim":
		s.FIM = &FIM{}
		allowed, target = []string{"paths", "exclude", "scan_interval"}, s.FIM
	case "":
		return fmt.Errorf("line %d: the source has no type (file, journald or fim)", n.Line)
	default:
		return fmt.Errorf("line %d: unknown source type %q (want file, journald or fim)", n.Line, s.Type)
	}
	if err := strictKeys(body, allowed, s.Type+" source"); err != nil {
		return err
	}
	if err := body.Decode(target); err != nil {
		return err
	}
	return s.check(body)
}

// strictKeys refuses keys of n (a mapping) that are not in allowed.
func strictKeys(n *yaml.Node, allowed []string, what string) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ok := false
		for _, a := range allowed {
			ok = ok || k.Value == a
		}
		if !ok {
			return fmt.Errorf("line %d: unknown key %q in a %s (allowed: %s)", k.Line, k.Value, what, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func lineOf(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}

func (s *Source) check(body *yaml.Node) error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("line %d: %s: %s", lineOf(body, key), key, fmt.Sprintf(format, args...))
	}
	switch {
	case s.File != nil:
		f := s.File
		if f.Path == "" || !filepath.IsAbs(f.Path) {
			return bad("path", "want an absolute file path, got %q", f.Path)
		}
		f.Path = filepath.Clean(f.Path)
		if f.Parser == "" {
			f.Parser = "raw"
		}
		if !KnownParser(f.Parser) {
			return bad("parser", "unknown parser %q (want one of %s)", f.Parser, parserNames())
		}
		if f.JSON != nil && f.Parser != "json" {
			return bad("json", "json options need parser: json")
		}
		if f.JSON != nil {
			for i := 0; i+1 < len(body.Content); i += 2 {
				if body.Content[i].Value == "json" {
					if err := strictKeys(body.Content[i+1], []string{"mapping", "timestamp_field", "timestamp_layout"}, "json option set"); err != nil {
						return err
					}
				}
			}
		}
		for _, re := range f.Exclude {
			if _, err := regexp.Compile(re); err != nil {
				return bad("exclude", "%v", err)
			}
		}
	case s.Journald != nil:
		for unit, p := range s.Journald.Parsers {
			if !KnownParser(p) {
				return bad("parsers", "unit %s: unknown parser %q (want one of %s)", unit, p, parserNames())
			}
		}
	case s.FIM != nil:
		if len(s.FIM.Paths) == 0 {
			return bad("paths", "at least one path is required")
		}
		for i, p := range s.FIM.Paths {
			if !filepath.IsAbs(p) {
				return bad("paths", "%q is not absolute", p)
			}
			s.FIM.Paths[i] = filepath.Clean(p)
		}
		for _, p := range s.FIM.Exclude {
			if _, err := filepath.Match(p, ""); err != nil {
				return bad("exclude", "%q is not a valid glob", p)
			}
		}
		if s.FIM.ScanInterval < 0 {
			return bad("scan_interval", "must not be negative")
		}
	}
	return nil
}

// ByteSize is a size in bytes, written as an integer or with a unit: KiB,
// MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000).
type ByteSize int64

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseBytes(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = ByteSize(v)
	return nil
}

// ParseBytes parses a size such as "1GiB", "512MiB", "65536".
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, errors.New("want a size such as 1GiB, 512MiB or a number of bytes")
	}
	return v * mult, nil
}
