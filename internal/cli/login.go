package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/warden-sec/warden/pkg/client"
)

// "warden login" and "warden logout", the token file they share with
// globals.client, and the prompter the login and user commands read
// answers and secrets with.

// Where "warden login" saves its token, under the home directory.
const (
	tokenDirName  = ".warden"
	tokenFileName = "token"
	maxTokenFile  = 64 << 10
)

// oidcLoginTimeout bounds the wait for the browser in the OIDC code flow.
const oidcLoginTimeout = 5 * time.Minute

// homeDir is os.UserHomeDir over the command's environment: Main passes
// os.Getenv, so it is the same there, and tests that pass their own
// environment never read the real ~/.warden.
func (g *globals) homeDir() (string, error) {
	name, shown := "HOME", "$HOME"
	switch runtime.GOOS {
	case "windows":
		name, shown = "USERPROFILE", "%userprofile%"
	case "plan9":
		name, shown = "home", "$home"
	}
	if v := g.getenv(name); v != "" {
		return v, nil
	}
	return "", errors.New(shown + " is not defined")
}

// tokenFile returns the path of the saved token, ~/.warden/token.
func (g *globals) tokenFile() (string, error) {
	home, err := g.homeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, tokenDirName, tokenFileName), nil
}

// savedToken returns the token saved by "warden login", or "" when there is
// none (or no home directory to look in).
func (g *globals) savedToken() (string, error) {
	path, err := g.tokenFile()
	if err != nil {
		return "", nil
	}
	t, _, err := readTokenFile(path)
	if t != "" {
		g.savedFrom = path
	}
	return t, err
}

// sessionHint returns advice for an error of a command that sent the token
// saved by "warden login": a 401 means that session is over (expired,
// logged out, or revoked when its user was disabled).
func (g *globals) sessionHint(err error) string {
	if g.savedFrom == "" || !client.IsStatus(err, http.StatusUnauthorized) {
		return ""
	}
	return " (the session saved in " + g.savedFrom + " has expired or was revoked: run warden login)"
}

// readTokenFile returns the trimmed token in the file at path, and whether
// the file exists; a missing file is no error. A file that others than its
// owner may read or write is refused: the token in it may be known to them.
func readTokenFile(path string) (string, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", true, fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", true, fmt.Errorf("token file %s: not a regular file", path)
	}
	// Windows has no such mode bits (Go reports 0666 for every file there).
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return "", true, fmt.Errorf("token file %s has mode %04o: other users may read or replace it, so it is not used; "+
			"run chmod 600 %s (and warden login again if someone else may have read it)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", true, fmt.Errorf("token file: %w", err)
	}
	if len(b) > maxTokenFile {
		return "", true, fmt.Errorf("token file %s: larger than %d bytes, not a token", path, maxTokenFile)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", true, fmt.Errorf("token file %s is empty: run warden login, or remove the file", path)
	}
	return t, true, nil
}

// writeTokenFile saves token at path, readable by its owner only: a
// temporary file in the same directory (created 0700 if missing) renamed
// over path, so that a reader sees the old token or the new one, never a
// part. The directory's mode is left as it is, with a warning when others
// may write to it.
func writeTokenFile(path, token string, warn io.Writer) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o022 != 0 && runtime.GOOS != "windows" {
		fmt.Fprintf(warn, "Warning: others may write to %s (mode %04o), so they could replace the saved token; run chmod 700 %s\n",
			dir, fi.Mode().Perm(), dir)
	}
	tmp, err := os.CreateTemp(dir, "."+tokenFileName+"-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	return nil
}

// prompter reads what a command asks its user for: lines from stdin, and,
// when stdin is a terminal, answers to prompts written to stderr, secrets
// without echo.
type prompter struct {
	lines *bufio.Reader // over stdin: consecutive lines share one buffer
	out   io.Writer     // prompts
	tty   bool          // stdin is a terminal
	// readSecret reads one line from the terminal without echo.
	readSecret func() ([]byte, error)
}

// prompter returns the prompter of cmd, one per command run.
func (g *globals) prompter(cmd *cobra.Command) *prompter {
	p := &prompter{
		lines: bufio.NewReaderSize(g.stdin, maxKeyLine+2),
		out:   cmd.ErrOrStderr(),
	}
	if f, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		p.readSecret = func() ([]byte, error) { return term.ReadPassword(int(f.Fd())) }
	}
	return p
}

// ErrNoInput is the error of prompter.line at the end of stdin.
var ErrNoInput = errors.New("no input on stdin")

// line reads the next line of stdin, without its line ending; ErrNoInput
// when there is none.
func (p *prompter) line() (string, error) {
	b, err := p.lines.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("input line longer than %d bytes", maxKeyLine)
	case errors.Is(err, io.EOF) && len(b) == 0:
		return "", ErrNoInput
	case err != nil && !errors.Is(err, io.EOF):
		return "", fmt.Errorf("read stdin: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// prompt asks for a visible answer at a terminal, or reads the next line
// of stdin without asking.
func (p *prompter) prompt(label string) (string, error) {
	if p.tty {
		fmt.Fprint(p.out, label)
	}
	return p.line()
}

// secret asks for a secret at the terminal, without echo. Callers check
// tty first, to say what to do instead.
func (p *prompter) secret(label string) (string, error) {
	if !p.tty {
		return "", errors.New("stdin is not a terminal: cannot ask for a secret")
	}
	fmt.Fprint(p.out, label)
	b, err := p.readSecret()
	fmt.Fprintln(p.out)
	if err != nil {
		return "", fmt.Errorf("read from the terminal: %w", err)
	}
	return string(b), nil
}

// newPassword reads a new password: the next line of stdin when fromStdin,
// else asked twice at the terminal.
func (p *prompter) newPassword(fromStdin bool, label string) (string, error) {
	if fromStdin {
		pw, err := p.line()
		if err != nil {
			return "", fmt.Errorf("--password-stdin: %w", err)
		}
		if pw == "" {
			return "", usagef("--password-stdin: the password line is empty")
		}
		return pw, nil
	}
	pw, err := p.secret(label + ": ")
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", usagef("password: empty")
	}
	again, err := p.secret("Again, to confirm: ")
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare([]byte(pw), []byte(again)) != 1 {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return pw, nil
}

// loginOptions are the flags of "warden login".
type loginOptions struct {
	method, user, totp                           string
	passwordStdin, device, noBrowser, printToken bool
	listenPort                                   int
}

func newLoginCmd(g *globals) *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login [--method password|oidc] [--user U] [--password-stdin] [--totp CODE] [--device] [--no-browser] [--listen-port 8250] [--print-token]",
		Short: "Log in (password or single sign-on) and save the session's token in ~/.warden/token",
		Long: `Log in and save the new session's token in ~/.warden/token (mode 0600), where
later commands find it when neither --token nor WARDEN_TOKEN is given.

--method password (the default) asks for the user name (unless --user) and the
password at the terminal, or reads the password from the first line of stdin
with --password-stdin. When the account has a second factor, the code is
--totp, else asked for, or the next line of stdin with --password-stdin; a
recovery code works in place of a TOTP code.

--method oidc logs in with the configured OpenID Connect provider: the URL to
open is printed (and opened in a browser unless --no-browser), and the browser
comes back to http://localhost:PORT/oidc/callback on this machine, PORT being
--listen-port (0: any free port; the provider must allow that redirect URI).
--device uses the device flow instead, for a machine without a browser: open
the printed address anywhere and enter the code shown. --device, --no-browser
and --listen-port imply --method oidc.

The token is printed only with --print-token.`,
		Args: args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	fl := cmd.Flags()
	fl.StringVar(&o.method, "method", "password", "password or oidc")
	fl.StringVar(&o.user, "user", "", "user name (password; asked for at a terminal when not given)")
	fl.BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from the first line of stdin (and a second factor's code from the next)")
	fl.StringVar(&o.totp, "totp", "", "TOTP or recovery code, when the account asks for a second factor")
	fl.BoolVar(&o.device, "device", false, "oidc: use the device flow (enter a code in a browser anywhere)")
	fl.BoolVar(&o.noBrowser, "no-browser", false, "oidc: print the login URL without opening a browser")
	fl.IntVar(&o.listenPort, "listen-port", 8250, "oidc: port on 127.0.0.1 the browser comes back to (0: any free port)")
	fl.BoolVar(&o.printToken, "print-token", false, "also print the new token")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := o.check(cmd); err != nil {
			return err
		}
		c, err := g.newClient(cmd, false)
		if err != nil {
			return err
		}
		ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
		var res client.LoginResponse
		switch {
		case o.method == "password":
			res, err = o.passwordLogin(ctx, c, g.prompter(cmd))
		case o.device:
			res, err = deviceLogin(ctx, c, stderr)
		default:
			res, err = o.codeLogin(ctx, c, stderr)
		}
		if err != nil {
			return loginError(err, o)
		}
		if res.Token == "" {
			return errors.New("the server's login answer holds no token")
		}
		g.token = res.Token // scrubbed from any error from here on
		path, err := g.tokenFile()
		if err == nil {
			err = writeTokenFile(path, res.Token, stderr)
		}
		if err != nil {
			if o.printToken {
				_ = printLogin(cmd.OutOrStdout(), f, res, "", true)
			}
			return fmt.Errorf("save the token: %w (the session stays open until it expires)", err)
		}
		if err := printLogin(cmd.OutOrStdout(), f, res, path, o.printToken); err != nil {
			return err
		}
		if res.Scope == "mfa-enroll" {
			fmt.Fprintln(stderr, "Note: your account must have a second factor, so this session may only enroll one: "+
				"run warden user mfa enroll totp, then log in again.")
		}
		if g.getenv(client.EnvToken) != "" {
			fmt.Fprintf(stderr, "Warning: %s is set and takes precedence over the saved token; unset it to use this login.\n",
				client.EnvToken)
		}
		return nil
	}
	return cmd
}

// loginError says when to try again for a login the server refused
// under its backoff after failed logins (a 429, which the client does not
// wait out); other errors are returned as they are.
func loginError(err error, o loginOptions) error {
	var rl *client.RateLimitError
	if !errors.As(err, &rl) {
		return err
	}
	wait := "later"
	if rl.RetryAfter > 0 {
		wait = fmt.Sprintf("in %d s", int64(math.Ceil(rl.RetryAfter.Seconds())))
	}
	msg := "too many failed logins; retry " + wait
	if o.method == "password" && o.user != "" {
		msg += " (or an administrator can end the wait: warden user unlock " + o.user + ")"
	}
	return &wrapped{msg: msg, err: err}
}

// wrapped is an error with a message of its own that unwraps to err.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// check validates the flag combination; the OIDC-only flags imply
// --method oidc when --method is not given.
func (o *loginOptions) check(cmd *cobra.Command) error {
	fl := cmd.Flags()
	oidcOnly := []string{"device", "no-browser", "listen-port"}
	if !fl.Changed("method") && slices.ContainsFunc(oidcOnly, fl.Changed) {
		o.method = "oidc"
	}
	var wrong []string
	switch o.method {
	case "password":
		wrong = oidcOnly
	case "oidc":
		wrong = []string{"user", "password-stdin", "totp"}
	default:
		return usagef("--method: want password or oidc, got %q", o.method)
	}
	for _, name := range wrong {
		if fl.Changed(name) {
			return usagef("--%s does not apply to --method %s", name, o.method)
		}
	}
	if o.device && fl.Changed("listen-port") {
		return usagef("--listen-port does not apply to --device: nothing listens for a browser")
	}
	if o.listenPort < 0 || o.listenPort > 65535 {
		return usagef("--listen-port: want 0 (any free port) to 65535, got %d", o.listenPort)
	}
	return nil
}

// passwordLogin logs in with a user name and password, and a second
// factor's code when the server asks for one.
func (o *loginOptions) passwordLogin(ctx context.Context, c *client.Client, p *prompter) (client.LoginResponse, error) {
	var none client.LoginResponse
	user := o.user
	if user == "" {
		if !p.tty {
			return none, usagef("--user is required when stdin is not a terminal")
		}
		u, err := p.prompt("User: ")
		if err != nil {
			return none, fmt.Errorf("user name: %w", err)
		}
		if user = strings.TrimSpace(u); user == "" {
			return none, usagef("user name: empty")
		}
	}
	var pw string
	var err error
	switch {
	case o.passwordStdin:
		if pw, err = p.line(); err != nil {
			return none, fmt.Errorf("--password-stdin: %w", err)
		}
	case p.tty:
		if pw, err = p.secret("Password: "); err != nil {
			return none, err
		}
	default:
		return none, usagef("no password: give --password-stdin, or run in a terminal to be asked")
	}
	if pw == "" {
		return none, usagef("password: empty")
	}
	req := client.LoginRequest{User: user, Password: pw}
	res, err := c.Login(ctx, req)
	if err != nil || !res.MFARequired {
		return res, err
	}
	if !slices.Contains(res.Methods, "totp") {
		return none, fmt.Errorf("the account needs a second factor this command cannot give (%s): log in with a browser",
			strings.Join(res.Methods, ", "))
	}
	code := o.totp
	switch {
	case code != "":
	case o.passwordStdin:
		if code, err = p.line(); err != nil {
			return none, fmt.Errorf("the account needs a second factor: give --totp, or the code on the line after the password: %w", err)
		}
	case p.tty:
		if code, err = p.prompt("TOTP or recovery code: "); err != nil {
			return none, fmt.Errorf("second factor: %w", err)
		}
	default:
		return none, usagef("the account needs a second factor: give --totp CODE")
	}
	if req.TOTP = strings.TrimSpace(code); req.TOTP == "" {
		return none, usagef("second factor: empty code")
	}
	if res, err = c.Login(ctx, req); err != nil {
		return none, err
	}
	if res.MFARequired {
		return none, errors.New("the server asked for a second factor again after the code")
	}
	return res, nil
}

// codeLogin is the OIDC authorization code flow: the browser comes back to
// a listener on 127.0.0.1 with the code, which the server exchanges.
func (o *loginOptions) codeLogin(ctx context.Context, c *client.Client, w io.Writer) (client.LoginResponse, error) {
	var none client.LoginResponse
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.listenPort)))
	if err != nil {
		return none, fmt.Errorf("--listen-port %d: %w (choose another port the provider allows, or 0 for any)", o.listenPort, err)
	}
	defer ln.Close()
	redirect := fmt.Sprintf("http://localhost:%d/oidc/callback", ln.Addr().(*net.TCPAddr).Port)
	nonce, err := randomNonce()
	if err != nil {
		return none, err
	}
	authURL, state, err := c.OIDCAuthURL(ctx, redirect, nonce)
	if err != nil {
		return none, err
	}
	if u, err := url.Parse(authURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || state == "" {
		return none, fmt.Errorf("the server's answer holds no usable login URL and state (auth_url %q)", authURL)
	}

	cb := newCallbackServer(state)
	go cb.srv.Serve(ln) //nolint:errcheck // ends with Shutdown below
	defer func() {
		// Let the browser's page be written, then stop.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if cb.srv.Shutdown(sctx) != nil {
			cb.srv.Close()
		}
	}()

	fmt.Fprintf(w, "Complete the login in your browser:\n\n    %s\n\nWaiting for it to come back to %s ...\n", authURL, redirect)
	if !o.noBrowser {
		openBrowser(authURL)
	}
	wctx, cancel := context.WithTimeout(ctx, oidcLoginTimeout)
	defer cancel()
	var r callbackResult
	select {
	case r = <-cb.got:
	case <-wctx.Done():
		if ctx.Err() != nil {
			return none, fmt.Errorf("login canceled: %w", ctx.Err())
		}
		return none, fmt.Errorf("the browser did not come back within %v; run warden login again", oidcLoginTimeout)
	}
	if r.err != nil {
		cb.page <- "Warden login failed: " + r.err.Error() + "\n"
		return none, r.err
	}
	res, err := c.OIDCCallback(ctx, state, r.code, nonce)
	if err != nil {
		cb.page <- "Warden refused the login; the terminal says why.\n"
		return none, err
	}
	cb.page <- "Logged in to Warden as " + res.User + ". You can close this window.\n"
	return res, nil
}

// callbackResult is what the browser brought back: the code, or why not.
type callbackResult struct {
	code string
	err  error
}

// callbackServer answers the one browser redirect of a code flow.
type callbackServer struct {
	srv  *http.Server
	got  chan callbackResult // the first callback's result
	page chan string         // the text to answer it with
}

// newCallbackServer returns the redirect listener's server for a login
// whose state is state. Only its first GET /oidc/callback counts: a state
// other than the login's fails the login (someone else's redirect); later
// ones are told the login is over.
func newCallbackServer(state string) *callbackServer {
	cb := &callbackServer{got: make(chan callbackResult, 1), page: make(chan string, 1)}
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oidc/callback", func(w http.ResponseWriter, r *http.Request) {
		first := false
		once.Do(func() { first = true })
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !first {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, "This Warden login is already over; close this window.\n")
			return
		}
		q := r.URL.Query()
		var res callbackResult
		switch {
		case q.Get("error") != "":
			reason := q.Get("error")
			if d := q.Get("error_description"); d != "" {
				reason += ": " + d
			}
			res.err = fmt.Errorf("the identity provider refused the login: %s", shorten(oneLine(reason), 200))
		case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1:
			res.err = errors.New("the browser came back with another login's state; refused (run warden login again)")
		case q.Get("code") == "":
			res.err = errors.New("the browser came back without an authorization code")
		default:
			res.code = q.Get("code")
		}
		cb.got <- res
		select {
		case text := <-cb.page:
			io.WriteString(w, text)
		case <-r.Context().Done():
		}
	})
	cb.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	return cb
}

// shorten cuts s to at most n bytes (on a rune boundary), marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// deviceLogin is the OIDC device flow: print where to go and the code to
// enter, then poll until the login is approved, refused or expired.
func deviceLogin(ctx context.Context, c *client.Client, w io.Writer) (client.LoginResponse, error) {
	var none client.LoginResponse
	da, err := c.OIDCDeviceStart(ctx)
	if err != nil {
		return none, err
	}
	if da.State == "" || da.UserCode == "" || da.VerificationURI == "" {
		return none, errors.New("the server's device login answer lacks the code, address or state")
	}
	fmt.Fprintf(w, "Open %s and enter %s\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(w, "(or open %s)\n", da.VerificationURIComplete)
	}
	fmt.Fprintln(w, "Waiting for the login to be approved ...")
	pctx := ctx
	if da.ExpiresIn > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, time.Duration(da.ExpiresIn)*time.Second)
		defer cancel()
	}
	interval := time.Duration(max(da.Interval, 0)) * time.Second
	for {
		start := time.Now()
		res, err := c.OIDCDevicePoll(pctx, da.State)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return none, fmt.Errorf("login canceled: %w", ctx.Err())
		}
		if pctx.Err() != nil {
			return none, fmt.Errorf("the code expired after %d s before the login was approved; run warden login --device again", da.ExpiresIn)
		}
		var rl *client.RateLimitError
		if errors.As(err, &rl) {
			// Rate limited: wait as asked (at least the interval),
			// within the code's lifetime, then poll again (a poll past
			// that reports the expiry or the cancel).
			sleepCtx(pctx, max(rl.RetryAfter, interval, time.Second))
			continue
		}
		if !errors.Is(err, client.ErrAuthorizationPending) {
			return none, err
		}
		// The server waits before it answers "pending", so poll again at
		// once; only an answer faster than the provider's interval (a
		// server that does not wait) is spaced out, not to poll in a loop.
		if rest := interval - time.Since(start); rest > 0 {
			sleepCtx(pctx, rest)
		}
	}
}

// sleepCtx waits d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// randomNonce returns 32 random bytes, base64url.
func randomNonce() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("client nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// openBrowser tries to open u in the desktop's browser, without waiting and
// ignoring failure: the URL is printed anyway.
func openBrowser(u string) {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if cmd.Start() == nil {
		go cmd.Wait() //nolint:errcheck // reaps the opener; its outcome does not matter
	}
}

// printLogin prints who logged in and how; the token only when printToken.
func printLogin(w io.Writer, f *format, res client.LoginResponse, path string, printToken bool) error {
	if !printToken {
		res.Token = ""
	}
	if *f == "json" {
		return writeJSON(w, res)
	}
	auth := client.AuthInfo{}
	if res.Auth != nil {
		auth = *res.Auth
	}
	mfa := "none"
	if auth.MFA {
		mfa = auth.MFAMethod
		if mfa == "" {
			mfa = "yes"
		}
	}
	groups := res.Groups
	if groups == nil {
		groups = []string{}
	}
	fmt.Fprintf(w, "Success! Logged in as %s.\n\n", res.User)
	rows := []row{{"User", res.User}, {"Groups", groups}, {"Auth Method", auth.Method}, {"MFA", mfa},
		{"Expire Time", res.ExpireTime}}
	if res.MaxExpireTime != "" {
		rows = append(rows, row{"Max Expire Time", res.MaxExpireTime})
	}
	if res.Scope != "" {
		rows = append(rows, row{"Scope", res.Scope})
	}
	rows = append(rows, row{"Accessor", res.Accessor})
	if path != "" {
		rows = append(rows, row{"Token File", path})
	}
	if printToken {
		rows = append(rows, row{"Token", res.Token})
	}
	return writeTable(w, rows)
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke the current token and remove ~/.warden/token if it holds it",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			token := c.Token()
			if token == "" {
				return errors.New("not logged in: no --token, " + client.EnvToken + " or saved token")
			}
			w := cmd.OutOrStdout()
			err = c.Logout(cmd.Context())
			switch {
			case client.IsStatus(err, http.StatusUnauthorized):
				fmt.Fprintln(w, "The token had already expired or been revoked.")
			case err != nil:
				return err
			default:
				fmt.Fprintln(w, "Success! Revoked the token.")
			}
			if path, err := g.tokenFile(); err == nil {
				saved, _, err := readTokenFile(path)
				switch {
				case err != nil:
					fmt.Fprintf(cmd.ErrOrStderr(), "Warning: %v\n", err)
				case saved != "" && subtle.ConstantTimeCompare([]byte(saved), []byte(token)) == 1:
					if err := os.Remove(path); err != nil {
						return fmt.Errorf("remove the saved token: %w", err)
					}
					fmt.Fprintf(w, "Removed %s.\n", path)
				}
			}
			if g.getenv(client.EnvToken) == token {
				fmt.Fprintf(cmd.ErrOrStderr(), "Note: %s still holds the revoked token; unset it.\n", client.EnvToken)
			}
			return nil
		},
	}
}

func newTokenRenewCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "renew",
		Short: "Renew the current login session (its idle timeout starts again, within its maximum lifetime)",
		Long: `Renew the current login session: it now ends after the server's idle timeout
(--session-idle) from now, but never past its maximum lifetime (--session-ttl
from the login). Prints the new expiry. Only login sessions are renewable; a
token from "token create" is not.`,
		Args: args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		t, err := c.RenewSelf(cmd.Context())
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), t)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Success! Renewed the session of %s.\n\n", t.User)
		return writeTable(cmd.OutOrStdout(), []row{{"Expire Time", t.ExpireTime}, {"TTL", t.TTL}, {"Accessor", t.Accessor}})
	})
	return cmd
}
