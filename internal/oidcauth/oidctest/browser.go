package oidctest

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// browser is a user agent with no session yet: it trusts the provider's
// certificate, keeps cookies and follows the provider's redirects, and
// stops at the first redirect that leaves the provider (to a redirect
// URI), keeping its URL instead of requesting it.
type browser struct {
	p    *Provider
	c    *http.Client
	left *url.URL // the redirect that left the provider, once there is one
}

func (p *Provider) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		panic(err) // cookiejar.New never fails with nil options
	}
	b := &browser{p: p}
	b.c = &http.Client{Transport: p.srv.Client().Transport, Jar: jar, Timeout: requestTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("oidctest: more than 10 redirects")
			}
			if req.URL.Scheme+"://"+req.URL.Host != p.Issuer {
				b.left = req.URL
				return http.ErrUseLastResponse
			}
			return nil
		}}
	return b
}

// do runs req and returns the page it ends on (status and body), or, with
// left set, the redirect that left the provider.
func (b *browser) do(req *http.Request) (int, string, error) {
	resp, err := b.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(body), nil
}

func (b *browser) get(u string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	return b.do(req)
}

func (b *browser) postForm(u string, form url.Values) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// page is the error of a page that is not the one expected: its status
// and the start of its text.
func page(what string, status int, body string) error {
	if len(body) > 300 {
		body = body[:300]
	}
	return fmt.Errorf("oidctest: %s: status %d: %q", what, status, body)
}

var loginFormID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// Authorize sends a browser with no session to authURL and returns the URL
// the provider redirects it to, without signing in: for requests the
// provider answers at once, such as one with prompt=none (which it answers
// on the redirect URI with error=login_required). It is an error if the
// provider shows a page instead.
func (p *Provider) Authorize(authURL string) (*url.URL, error) {
	b := p.browser()
	status, body, err := b.get(authURL)
	if err != nil {
		return nil, err
	}
	if b.left == nil {
		return nil, page("the provider did not redirect to the redirect URI", status, body)
	}
	return b.left, nil
}

// Login signs in at the provider as a user does: a browser with no session
// follows authURL to the login page and posts its form with user and
// password; the provider then redirects it to the redirect URI. Login
// returns that redirect's URL, whose query carries the code and state (or
// the provider's error): pass its RawQuery to the client's callback. If
// the provider answers on the redirect URI before showing the login page,
// Login returns that answer. It is an error if the sign-in fails (a wrong
// password: the provider shows its login page again) or a page is not the
// one expected.
//
// Login may be called from any goroutine.
func (p *Provider) Login(authURL, user, password string) (*url.URL, error) {
	b := p.browser()
	status, body, err := b.get(authURL)
	if err != nil {
		return nil, err
	}
	if b.left != nil {
		return b.left, nil
	}
	m := loginFormID.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		return nil, page("no login form at the provider", status, body)
	}
	status, body, err = b.postForm(p.Issuer+"/login/username",
		url.Values{"id": {html.UnescapeString(m[1])}, "username": {user}, "password": {password}})
	if err != nil {
		return nil, err
	}
	if b.left == nil {
		return nil, page("login as "+user+": the provider did not redirect to the redirect URI", status, body)
	}
	return b.left, nil
}

// ApproveDevice approves a device login on the provider's pages as a user
// does: a browser with no session opens verificationURI, enters userCode
// there unless the page has it filled in already (a
// verification_uri_complete), signs in with user and password and allows
// the device. It is an error if a page is not the one expected (a wrong
// password, an unknown code).
//
// ApproveDevice may be called from any goroutine.
func (p *Provider) ApproveDevice(verificationURI, userCode, user, password string) error {
	return p.device(verificationURI, userCode, user, password, "allowed")
}

// DenyDevice is ApproveDevice, but the user denies the device at the end.
func (p *Provider) DenyDevice(verificationURI, userCode, user, password string) error {
	return p.device(verificationURI, userCode, user, password, "denied")
}

func (p *Provider) device(verificationURI, userCode, user, password, action string) error {
	b := p.browser()
	status, body, err := b.get(verificationURI)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return page("device page", status, body)
	}
	filled := `name="user_code" value="` + html.EscapeString(userCode) + `"`
	if !strings.Contains(body, filled) {
		if !strings.Contains(body, `name="user_code"`) {
			return page("no user code form on the device page", status, body)
		}
		// The code form posts to the page itself.
		if status, body, err = b.postForm(verificationURI, url.Values{"user_code": {userCode}}); err != nil {
			return err
		}
		if status != http.StatusOK || !strings.Contains(body, filled) {
			return page("device page after entering the user code", status, body)
		}
	}
	status, body, err = b.postForm(p.Issuer+"/device/login", url.Values{"user_code": {userCode}, "username": {user}, "password": {password}})
	if err != nil {
		return err
	}
	if status != http.StatusOK || !strings.Contains(body, "access to the following scopes") {
		return page("device login as "+user, status, body)
	}
	status, body, err = b.get(p.Issuer + "/device/confirm?action=" + action)
	if err != nil {
		return err
	}
	if status != http.StatusOK || !strings.Contains(body, "Device authorization "+action) {
		return page("device confirmation", status, body)
	}
	return nil
}
