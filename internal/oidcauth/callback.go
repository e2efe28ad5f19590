package oidcauth

import (
	"net/url"

	"github.com/warden-sec/warden/internal/errs"
)

// maxCallbackQuery bounds the callback's query string.
const maxCallbackQuery = 16 << 10

// ParseCallback reads the provider's answer on the redirect URI (OpenID
// Connect Core 3.1.2.5 and 3.1.2.6): the raw query string of the callback
// request. It returns the state and code to pass to Exchange.
//
// When the provider reports an error, ParseCallback returns
// errs.Unauthenticated naming only a well-formed error code (such as
// "access_denied"), never the provider's description. A missing, repeated,
// oversized or malformed parameter is errs.Invalid. It never returns a code
// without a state.
func ParseCallback(rawQuery string) (state, code string, err error) {
	if len(rawQuery) > maxCallbackQuery {
		return "", "", errs.E(errs.Invalid, "callback: query longer than %d bytes", maxCallbackQuery)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", "", errs.E(errs.Invalid, "callback: malformed query")
	}
	for _, k := range []string{"state", "code", "error"} {
		if len(q[k]) > 1 {
			return "", "", errs.E(errs.Invalid, "%s: repeated", k)
		}
	}
	if e, ok := q["error"]; ok {
		if c := safeErrorCode(e[0]); c != "" {
			return "", "", errs.E(errs.Unauthenticated, "oidc: the provider refused the login (%s)", c)
		}
		return "", "", errs.E(errs.Unauthenticated, "oidc: the provider refused the login")
	}
	state, code = q.Get("state"), q.Get("code")
	switch {
	case state == "":
		return "", "", errs.E(errs.Invalid, "state: required")
	case len(state) > maxStateText || !token(state):
		return "", "", errs.E(errs.Invalid, "state: must be at most %d printable ASCII characters", maxStateText)
	}
	if err := checkCode(code); err != nil {
		return "", "", err
	}
	return state, code, nil
}
