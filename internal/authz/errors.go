package authz

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error this package returns for bad input:
// a policy document that does not parse or does not match the schema, a bad
// schema, a malformed entity, request or entity UID. The API maps it to
// 400 Bad Request. Check with errors.Is.
var ErrInvalid = errors.New("invalid input")

// PolicyError reports a policy document that cannot be accepted.
// Its text is "NAME:LINE:COL: MESSAGE", where NAME is the document name
// given by the caller and LINE and COL (1-based, COL counted in characters)
// point at the offending token, or at the start of the offending statement
// for schema validation errors. Line and Column are 0 if no position applies
// (for example an invalid document name); the text is then "NAME: MESSAGE".
// errors.Is(err, ErrInvalid) is true.
type PolicyError struct {
	Name    string
	Line    int
	Column  int
	Message string
}

// Error returns "NAME:LINE:COL: MESSAGE", or "NAME: MESSAGE" without a
// position.
func (e *PolicyError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.Name, e.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.Name, e.Line, e.Column, e.Message)
}

// Is reports whether target is ErrInvalid.
func (e *PolicyError) Is(target error) bool { return target == ErrInvalid }

// SchemaError reports a Cedar schema that cannot be accepted. Its text is
// "schema:LINE:COL: MESSAGE" when the position is known (the human-readable
// schema format) and "schema: MESSAGE" otherwise (the JSON format, and
// errors found while resolving type references). errors.Is(err, ErrInvalid)
// is true.
type SchemaError struct {
	Line    int
	Column  int
	Message string
}

// Error returns "schema:LINE:COL: MESSAGE", or "schema: MESSAGE" without a
// position.
func (e *SchemaError) Error() string {
	if e.Line == 0 {
		return "schema: " + e.Message
	}
	return fmt.Sprintf("schema:%d:%d: %s", e.Line, e.Column, e.Message)
}

// Is reports whether target is ErrInvalid.
func (e *SchemaError) Is(target error) bool { return target == ErrInvalid }

// FieldError reports a bad field in a request or an entity list. Field is a
// path such as "principal", "context" or "entities[2].parents[0]". Its text
// is "FIELD: MESSAGE". errors.Is(err, ErrInvalid) is true.
type FieldError struct {
	Field   string
	Message string
}

// Error returns "FIELD: MESSAGE", or MESSAGE alone for the whole request.
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Is reports whether target is ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}
