package sigma

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Mapping maps Sigma log sources to Warden datasets (event.dataset) and
// Sigma field names to ECS field names. It is written in YAML:
//
//	logsources:
//	  - {product: linux, service: sshd, datasets: [sshd]}
//	  - {category: webserver, datasets: [nginx.access, apache.access]}
//	fields:
//	  c-ip: source.ip
//
// A rule's logsource matches an entry when its category and service equal
// the entry's (an empty one matches only an empty one) and the entry's
// product is empty or equal to the rule's. Of the matching entries the
// ones that name a product win over those that do not; the rule applies
// to the union of their datasets. A logsource no entry matches applies to
// the dataset named by joining its product, category and service with
// dots (product: linux, category: process_creation →
// "linux.process_creation"); Set.Warnings lists those. A rule without any
// logsource key applies to every event.
//
// A field no entry names is looked up under its own name. A Mapping must
// not be modified after it is passed to Compile.
type Mapping struct {
	Logsources []LogsourceMapping
	Fields     map[string]string
}

// LogsourceMapping is one entry of Mapping.Logsources.
type LogsourceMapping struct {
	Product, Category, Service string
	Datasets                   []string
}

//go:embed mapping.yml
var defaultMappingYAML []byte

// DefaultMapping returns Warden's mapping (mapping.yml in this package,
// reproduced in docs/detection-sigma.md). Each call returns a new copy.
func DefaultMapping() *Mapping {
	return (&Mapping{Fields: map[string]string{}}).Merge(defaultMapping())
}

// defaultMapping is the embedded mapping, parsed once; never modified.
var defaultMapping = sync.OnceValue(func() *Mapping {
	m, err := ParseMapping("mapping.yml", defaultMappingYAML)
	if err != nil {
		panic("sigma: the embedded mapping does not parse: " + err.Error())
	}
	return m
})

// ParseMapping parses a mapping file (see Mapping). Unknown keys are
// errors with their line.
func ParseMapping(file string, data []byte) (*Mapping, error) {
	p := parser{file}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Msg: "empty mapping"}
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{File: file, Line: extra.Line, Msg: "a mapping file holds one document"}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, p.errf(&doc, "a mapping must be a YAML mapping with logsources and fields")
	}
	root := doc.Content[0]
	m := &Mapping{Fields: map[string]string{}}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "logsources":
			if v.Kind != yaml.SequenceNode {
				return nil, p.errf(v, "logsources must be a list")
			}
			for _, e := range v.Content {
				lm, err := p.logsourceMapping(e)
				if err != nil {
					return nil, err
				}
				m.Logsources = append(m.Logsources, lm)
			}
		case "fields":
			if v.Kind != yaml.MappingNode {
				return nil, p.errf(v, "fields must be a mapping of Sigma name to ECS name")
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				fk, fv := v.Content[j], v.Content[j+1]
				if fk.Kind != yaml.ScalarNode || fv.Kind != yaml.ScalarNode || fk.Value == "" || fv.Value == "" {
					return nil, p.errf(fk, "fields: each entry maps a field name to a field name")
				}
				if _, dup := m.Fields[fk.Value]; dup {
					return nil, p.errf(fk, "field %q is mapped twice", fk.Value)
				}
				m.Fields[fk.Value] = fv.Value
			}
		default:
			return nil, p.errf(k, "unknown key %q (want logsources, fields)", k.Value)
		}
	}
	seen := map[[3]string]bool{}
	for _, l := range m.Logsources {
		key := [3]string{l.Product, l.Category, l.Service}
		if seen[key] {
			return nil, &Error{File: file, Msg: fmt.Sprintf("logsource product=%q category=%q service=%q is mapped twice", l.Product, l.Category, l.Service)}
		}
		seen[key] = true
	}
	return m, nil
}

func (p parser) logsourceMapping(e *yaml.Node) (LogsourceMapping, error) {
	var l LogsourceMapping
	if e.Kind != yaml.MappingNode {
		return l, p.errf(e, "a logsource entry must be a mapping")
	}
	for i := 0; i+1 < len(e.Content); i += 2 {
		k, v := e.Content[i], e.Content[i+1]
		var err error
		switch k.Value {
		case "product":
			l.Product, err = p.str(v, k.Value)
		case "category":
			l.Category, err = p.str(v, k.Value)
		case "service":
			l.Service, err = p.str(v, k.Value)
		case "datasets":
			l.Datasets, err = p.strList(v, k.Value)
		default:
			err = p.errf(k, "unknown key %q (want product, category, service, datasets)", k.Value)
		}
		if err != nil {
			return l, err
		}
	}
	if l.Product == "" && l.Category == "" && l.Service == "" {
		return l, p.errf(e, "a logsource entry needs product, category or service")
	}
	if len(l.Datasets) == 0 {
		return l, p.errf(e, "a logsource entry needs datasets")
	}
	for _, d := range l.Datasets {
		if d == "" {
			return l, p.errf(e, "empty dataset name")
		}
	}
	return l, nil
}

// Merge returns a new Mapping: m with o's entries added; an entry of o for
// the same (product, category, service) or the same field replaces m's.
func (m *Mapping) Merge(o *Mapping) *Mapping {
	out := &Mapping{Fields: map[string]string{}}
	replaced := map[[3]string]LogsourceMapping{}
	for _, l := range o.Logsources {
		replaced[[3]string{l.Product, l.Category, l.Service}] = l
	}
	for _, l := range m.Logsources {
		k := [3]string{l.Product, l.Category, l.Service}
		if r, ok := replaced[k]; ok {
			l = r
			delete(replaced, k)
		}
		out.Logsources = append(out.Logsources, l)
	}
	for _, l := range o.Logsources {
		if _, ok := replaced[[3]string{l.Product, l.Category, l.Service}]; ok {
			out.Logsources = append(out.Logsources, l)
		}
	}
	for i := range out.Logsources {
		out.Logsources[i].Datasets = append([]string(nil), out.Logsources[i].Datasets...)
	}
	for k, v := range m.Fields {
		out.Fields[k] = v
	}
	for k, v := range o.Fields {
		out.Fields[k] = v
	}
	return out
}

// field returns the ECS name of a Sigma field name.
func (m *Mapping) field(name string) string {
	if f, ok := m.Fields[name]; ok {
		return f
	}
	return name
}

// datasets returns the datasets of a logsource (nil: every event) and
// whether an entry mapped it.
func (m *Mapping) datasets(ls Logsource) ([]string, bool) {
	if ls.Product == "" && ls.Category == "" && ls.Service == "" {
		return nil, true
	}
	var best []LogsourceMapping
	bestScore := -1
	for _, l := range m.Logsources {
		if l.Category != ls.Category || l.Service != ls.Service || (l.Product != "" && l.Product != ls.Product) {
			continue
		}
		score := 0
		if l.Product != "" {
			score = 1
		}
		if score > bestScore {
			best, bestScore = nil, score
		}
		if score == bestScore {
			best = append(best, l)
		}
	}
	if len(best) == 0 {
		var parts []string
		for _, s := range []string{ls.Product, ls.Category, ls.Service} {
			if s != "" {
				parts = append(parts, s)
			}
		}
		return []string{strings.Join(parts, ".")}, false
	}
	seen := map[string]bool{}
	var out []string
	for _, l := range best {
		for _, d := range l.Datasets {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	sort.Strings(out)
	return out, true
}
