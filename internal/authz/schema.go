package authz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// MaxSchemaBytes is the largest schema accepted.
const MaxSchemaBytes = 1 << 20

// maxSchemaMessages bounds the validator messages reported per statement.
const maxSchemaMessages = 5

// ValidateSchema checks that text is a Cedar schema that [Compile] accepts:
// the human-readable format, or the JSON format if text starts with '{'
// (after white space). An empty text means "no schema". The error, if any,
// is a *SchemaError. It does not check existing policies against the schema;
// to do that, [Compile] them with it.
func ValidateSchema(text string) error {
	_, err := compileSchema(text)
	return err
}

// compileSchema parses and resolves a schema and returns a validator for it,
// or nil for an empty schema.
//
// The validator is cedar-go's x/exp/schema/validate (experimental in
// cedar-go v1.9.0), in strict mode, as Rust Cedar's default.
func compileSchema(text string) (*validate.Validator, error) {
	trimmed := strings.TrimSpace(text)
	if trimmed == "" {
		return nil, nil
	}
	if len(text) > MaxSchemaBytes {
		return nil, &SchemaError{Message: fmt.Sprintf("schema is larger than %d bytes", MaxSchemaBytes)}
	}
	var s schema.Schema
	if trimmed[0] == '{' {
		if err := s.UnmarshalJSON([]byte(text)); err != nil {
			return nil, &SchemaError{Message: err.Error()}
		}
	} else {
		// cedar-go's schema parser formats positions as NAME:LINE:COL.
		s.SetFilename("schema")
		if err := s.UnmarshalCedar([]byte(text)); err != nil {
			return nil, schemaParseError(err)
		}
	}
	r, err := s.Resolve()
	if err != nil {
		return nil, &SchemaError{Message: err.Error()}
	}
	return validate.New(r, validate.WithStrict()), nil
}

func schemaParseError(err error) *SchemaError {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "schema:"); ok {
		if line, col, rest, ok := scanLineCol(rest); ok {
			return &SchemaError{Line: line, Column: col, Message: strings.TrimPrefix(rest, ": ")}
		}
	}
	return &SchemaError{Message: msg}
}

// validateStatement checks one parsed statement against the schema. The
// validator's messages carry no positions, so the error points at the start
// of the statement.
func validateStatement(v *validate.Validator, name string, p *cedar.Policy) *PolicyError {
	err := v.Policy("", (*xast.Policy)(p.AST()))
	if err == nil {
		return nil
	}
	var msgs []string
	var flatten func(error)
	flatten = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				flatten(e)
			}
			return
		}
		msgs = append(msgs, e.Error())
	}
	flatten(err)
	// The validator's order follows map iteration; make it stable.
	slices.Sort(msgs)
	msgs = slices.Compact(msgs)
	if n := len(msgs); n > maxSchemaMessages {
		msgs = append(msgs[:maxSchemaMessages], fmt.Sprintf("and %d more", n-maxSchemaMessages))
	}
	pos := p.Position()
	return &PolicyError{
		Name:    name,
		Line:    pos.Line,
		Column:  pos.Column,
		Message: "does not match the schema: " + strings.Join(msgs, "; "),
	}
}
