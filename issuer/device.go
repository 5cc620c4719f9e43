package issuer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/limit"
	"github.com/tollgate/tollgate/session"
)

// deviceGrantType is RFC 8628's grant type; clients list it (or its alias
// device_code) to use the device flow.
const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// DeviceCodes is the device-authorization state the issuer keeps in the
// session store; *session.Memory and *session.Redis satisfy it.
type DeviceCodes interface {
	CreateDevice(ctx context.Context, deviceCode string, d session.DeviceCode) error
	DeviceByUserCode(ctx context.Context, userCode string) (session.DeviceCode, error)
	DecideDevice(ctx context.Context, userCode string, approve bool, userID, profile string) error
	PollDevice(ctx context.Context, deviceCode, clientID string) (session.DeviceCode, error)
}

// DeviceConfig configures the device authorization grant (RFC 8628): a
// set-top box shows a short code, the viewer signs in on a phone.
type DeviceConfig struct {
	// CodeTTL is how long a code can be approved. Zero means 10 minutes.
	CodeTTL time.Duration
	// Interval is how often a box may poll. Zero means 5 seconds.
	Interval time.Duration
	// PageURL is the public base URL of the sign-in page (/device is
	// appended). Empty means Config.Issuer.
	PageURL string
	// Product names the service on the page. Empty means "tollgate".
	Product string
	// LogoSVG, if set, is shown on the page (inline: no external asset).
	LogoSVG []byte
	// Texts overrides the page's strings by field name of DeviceTexts
	// (to translate or brand it).
	Texts map[string]string
	// Lang is the page's language tag. Empty means "en".
	Lang string
}

// DeviceTexts are every string the sign-in page shows, in one place.
type DeviceTexts struct {
	Lang, Title, EnterCode, Continue, Username, Password, Approve, Deny, CloseWindow string
	// Request is shown above the sign-in form; %s is the client.
	Request string
	// The outcome and error messages.
	Approved, Denied, BadCode, BadCredentials, TooMany, Expired, Retry string
}

func defaultDeviceTexts() DeviceTexts {
	return DeviceTexts{
		Lang:           "en",
		Title:          "Sign in your device",
		EnterCode:      "Enter the code shown on your TV",
		Continue:       "Continue",
		Username:       "E-mail or username",
		Password:       "Password",
		Approve:        "Sign in and allow",
		Deny:           "Sign in and deny",
		CloseWindow:    "You can close this window.",
		Request:        "%s asks to sign in to your account with this access:",
		Approved:       "Done: your device is signed in.",
		Denied:         "The device was not allowed to sign in.",
		BadCode:        "That code is not valid, or it has expired. Check the code on your TV.",
		BadCredentials: "Wrong e-mail, username or password.",
		TooMany:        "Too many attempts. Wait a moment and try again.",
		Expired:        "The page has expired. Please try again.",
		Retry:          "Something went wrong. Please try again.",
	}
}

//go:embed device/page.html device/page.css
var deviceFiles embed.FS

// device is the device flow's state of an Issuer.
type device struct {
	codes   DeviceCodes
	cfg     DeviceConfig
	texts   DeviceTexts
	page    *template.Template
	css     template.CSS
	csp     string
	logo    template.URL
	guesses limit.Limiter // wrong user codes per client IP; nil: unlimited
}

// WithDevice turns on the device authorization grant, keeping its codes in
// codes (the session store). guesses limits wrong user codes per client
// IP (nil: unlimited).
func WithDevice(codes DeviceCodes, cfg DeviceConfig, guesses limit.Limiter) Option {
	return func(i *Issuer) { i.deviceFlow = &device{codes: codes, cfg: cfg, guesses: guesses} }
}

// setUpDevice completes the device flow's configuration.
func (i *Issuer) setUpDevice() []error {
	d := i.deviceFlow
	if d == nil {
		return nil
	}
	var errs []error
	if d.cfg.CodeTTL <= 0 {
		d.cfg.CodeTTL = 10 * time.Minute
	}
	if d.cfg.Interval <= 0 {
		d.cfg.Interval = 5 * time.Second
	}
	if d.cfg.PageURL == "" {
		d.cfg.PageURL = i.cfg.Issuer
	}
	d.cfg.PageURL = strings.TrimRight(d.cfg.PageURL, "/")
	if d.cfg.Product == "" {
		d.cfg.Product = "tollgate"
	}
	d.texts = defaultDeviceTexts()
	if d.cfg.Lang != "" {
		d.texts.Lang = d.cfg.Lang
	}
	tv := reflect.ValueOf(&d.texts).Elem()
	for name, text := range d.cfg.Texts {
		f := tv.FieldByName(name)
		if !f.IsValid() || f.Kind() != reflect.String {
			errs = append(errs, fmt.Errorf("device texts: no string %q", name))
			continue
		}
		f.SetString(text)
	}
	css, _ := deviceFiles.ReadFile("device/page.css")
	d.css = template.CSS(css)
	sum := sha256.Sum256(css)
	// No script, no external asset, no framing: the page works without
	// JavaScript, and a strict policy keeps injected markup inert.
	d.csp = "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	if len(d.cfg.LogoSVG) > 0 {
		d.logo = template.URL("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(d.cfg.LogoSVG))
	}
	page, err := template.ParseFS(deviceFiles, "device/page.html")
	if err != nil {
		errs = append(errs, err)
	}
	d.page = page
	return errs
}

// serveDeviceCode is RFC 8628 §3.1: a box asks for a code.
func (i *Issuer) serveDeviceCode(w http.ResponseWriter, r *http.Request, _ string) {
	noStore(w)
	g, f, err := i.exchangeGrant(w, r, deviceGrantType)
	var resp map[string]any
	if err == nil {
		resp, err = i.deviceCode(r.Context(), g, f)
	}
	if err != nil {
		i.writeOAuthError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (i *Issuer) deviceCode(ctx context.Context, g *grant, f map[string]string) (map[string]any, error) {
	d := i.deviceFlow
	client, scope, err := i.exchangeClient(g)
	if err != nil {
		return nil, err
	}
	now := i.now()
	code := session.NewDeviceCode()
	rec := session.DeviceCode{ClientID: client.ID, Scope: scope, Created: now, Expires: now.Add(d.cfg.CodeTTL),
		Interval: d.cfg.Interval, DeviceName: boundedText(f["device_name"], 64)}
	for attempt := 0; ; attempt++ {
		rec.UserCode = session.NewUserCode()
		err = d.codes.CreateDevice(ctx, code, rec)
		if !errors.Is(err, session.ErrInvalidArgument) || attempt == 4 {
			break // a user code already live is retried with another
		}
	}
	if err != nil {
		return nil, storeError(err)
	}
	i.sessObs.DeviceEvent(ctx, "issued")
	page := d.cfg.PageURL + "/device"
	return map[string]any{
		"device_code": code, "user_code": rec.UserCode,
		"verification_uri":          page,
		"verification_uri_complete": page + "?user_code=" + url.QueryEscape(rec.UserCode),
		"expires_in":                int(d.cfg.CodeTTL.Seconds()), "interval": int(d.cfg.Interval.Seconds()),
	}, nil
}

// boundedText keeps a short, printable label.
func boundedText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len([]rune(s)) > n {
		s = string([]rune(s)[:n])
	}
	return s
}

// RFC 8628 §3.5 answers to a poll.
var (
	errAuthorizationPending = &Error{Code: "authorization_pending", Status: http.StatusBadRequest, Description: "the user has not answered yet"}
	errSlowDown             = &Error{Code: "slow_down", Status: http.StatusBadRequest, Description: "poll less often: the interval is raised by 5 seconds"}
	errAccessDenied         = &Error{Code: "access_denied", Status: http.StatusBadRequest, Description: "the user denied the request"}
	errExpiredToken         = &Error{Code: "expired_token", Status: http.StatusBadRequest, Description: "the code has expired; ask for a new one"}
)

// deviceGrant answers a box's poll: tokens once the user approved, in a
// new session counted against the user's limit.
func (i *Issuer) deviceGrant(ctx context.Context, client *Client, g *grant) (*Tokens, error) {
	if g.DeviceCode == "" {
		return nil, refuse(ErrInvalidRequest, "device_code is required")
	}
	rec, err := i.deviceFlow.codes.PollDevice(ctx, g.DeviceCode, client.ID)
	switch {
	case errors.Is(err, session.ErrAuthorizationPending):
		return nil, errAuthorizationPending
	case errors.Is(err, session.ErrSlowDown):
		i.sessObs.DeviceEvent(ctx, "slow_down")
		return nil, errSlowDown
	case errors.Is(err, session.ErrAccessDenied):
		return nil, errAccessDenied
	case errors.Is(err, session.ErrDeviceExpired):
		i.sessObs.DeviceEvent(ctx, "expired")
		return nil, errExpiredToken
	case errors.Is(err, session.ErrUnavailable):
		return nil, storeError(err)
	case err != nil:
		return nil, refuse(ErrInvalidGrant, "the device_code is not valid").because(err)
	}
	user, err := i.users.Lookup(ctx, rec.UserID)
	if err != nil {
		return nil, identityError(err)
	}
	profile := rec.Profile
	if !user.HasProfile(profile) {
		profile = user.DefaultProfile()
	}
	return i.startSession(ctx, client, user, rec.Scope, profile)
}

// devicePage is what the sign-in page shows.
type devicePage struct {
	T                      DeviceTexts
	Product, Action, CSRF  string
	Logo                   template.URL
	CSS                    template.CSS
	Step, UserCode         string
	Message, Kind, Request string
	Scopes                 []string
}

// csrfCookie names the double-submit CSRF cookie of the page.
const csrfCookie = "tollgate_device_csrf"

// serveDevicePage serves GET and POST /device: enter the code (or arrive
// with it from the QR code), see who asks for what, sign in, approve or
// deny, see the outcome.
func (i *Issuer) serveDevicePage(w http.ResponseWriter, r *http.Request, _ string) {
	d := i.deviceFlow
	h := w.Header()
	h.Set("Content-Security-Policy", d.csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	p := devicePage{T: d.texts, Product: d.cfg.Product, Logo: d.logo, CSS: d.css, Action: "/device", Step: "code"}
	csrf := newCSRF()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: csrf, Path: "/device", HttpOnly: true,
		Secure: i.overTLS(r), SameSite: http.SameSiteStrictMode, MaxAge: int(d.cfg.CodeTTL.Seconds())})
	p.CSRF = csrf
	status := http.StatusOK
	if r.Method == http.MethodGet {
		if code := r.URL.Query().Get("user_code"); code != "" {
			i.showCodeStep(r, &p, code, false)
		}
	} else {
		status = i.postDevicePage(r, &p)
	}
	w.WriteHeader(status)
	d.page.Execute(w, p)
}

// postDevicePage handles one form post and says which status to answer.
func (i *Issuer) postDevicePage(r *http.Request, p *devicePage) int {
	d := i.deviceFlow
	r.Body = http.MaxBytesReader(nil, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		p.Message, p.Kind = d.texts.Retry, "error"
		return http.StatusBadRequest
	}
	cookie, err := r.Cookie(csrfCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(r.PostFormValue("csrf"))) != 1 || cookie.Value == "" {
		p.Message, p.Kind = d.texts.Expired, "error"
		return http.StatusForbidden
	}
	switch r.PostFormValue("step") {
	case "code":
		i.showCodeStep(r, p, r.PostFormValue("user_code"), true)
		if p.Kind == "error" {
			return http.StatusBadRequest
		}
		return http.StatusOK
	case "decide":
		return i.decideDevice(r, p)
	}
	p.Message, p.Kind = d.texts.Retry, "error"
	return http.StatusBadRequest
}

// showCodeStep looks a user code up: a valid one moves on to sign-in, a
// wrong one counts against the client's guesses.
func (i *Issuer) showCodeStep(r *http.Request, p *devicePage, raw string, typed bool) {
	d := i.deviceFlow
	ctx := r.Context()
	p.UserCode = raw
	ip := edge.ClientIP(r, i.cfg.TrustedProxies)
	if d.guesses != nil && ip.IsValid() {
		if ok, _, err := d.guesses.Take(ctx, "device:"+ip.String()); err != nil || !ok {
			p.Message, p.Kind = d.texts.TooMany, "error"
			return
		}
	}
	code, ok := session.NormalizeUserCode(raw)
	var rec session.DeviceCode
	var err error
	if ok {
		rec, err = d.codes.DeviceByUserCode(ctx, code)
	}
	if !ok || err != nil || rec.Status != session.DevicePending {
		i.sessObs.DeviceEvent(ctx, "wrong_code")
		p.Message, p.Kind = d.texts.BadCode, "error"
		return
	}
	if d.guesses != nil && ip.IsValid() {
		d.guesses.Give(ctx, "device:"+ip.String()) // a right code costs no guess
	}
	p.Step, p.UserCode = "signin", rec.UserCode
	who := rec.ClientID
	if rec.DeviceName != "" {
		who = rec.DeviceName + " (" + rec.ClientID + ")"
	}
	p.Request = fmt.Sprintf(d.texts.Request, who)
	p.Scopes = strings.Fields(rec.Scope)
}

// decideDevice signs the user in (the password grant's backend and
// brute-force limits) and records the approval or the denial.
func (i *Issuer) decideDevice(r *http.Request, p *devicePage) int {
	d := i.deviceFlow
	ctx := r.Context()
	i.showCodeStep(r, p, r.PostFormValue("user_code"), false)
	if p.Step != "signin" {
		return http.StatusBadRequest
	}
	login, password := r.PostFormValue("username"), r.PostFormValue("password")
	release, err := i.limits.take(ctx, login, edge.ClientIP(r, i.cfg.TrustedProxies))
	if err != nil {
		p.Message, p.Kind = d.texts.TooMany, "error"
		return http.StatusTooManyRequests
	}
	var user *identity.User
	if err = i.waitForLogin(ctx); err == nil {
		user, err = i.users.Authenticate(ctx, login, []byte(password))
		<-i.logins
	}
	release(err == nil)
	code, _ := session.NormalizeUserCode(p.UserCode)
	rec, lookupErr := d.codes.DeviceByUserCode(ctx, code)
	switch {
	case errors.Is(err, identity.ErrInvalidCredentials), err == nil && lookupErr == nil && !i.deviceClientMayHave(rec, user):
		p.Message, p.Kind = d.texts.BadCredentials, "error"
		return http.StatusUnauthorized
	case err != nil || lookupErr != nil:
		p.Message, p.Kind = d.texts.Retry, "error"
		return http.StatusServiceUnavailable
	}
	approve := r.PostFormValue("decision") == "approve"
	if err := d.codes.DecideDevice(ctx, code, approve, user.ID, user.DefaultProfile()); err != nil {
		p.Step, p.Message, p.Kind = "code", d.texts.BadCode, "error"
		return http.StatusConflict
	}
	p.Step, p.Scopes = "done", nil
	if approve {
		i.sessObs.DeviceEvent(ctx, "approved")
		p.Message, p.Kind = d.texts.Approved, "success"
	} else {
		i.sessObs.DeviceEvent(ctx, "denied")
		p.Message, p.Kind = d.texts.Denied, "success"
	}
	return http.StatusOK
}

// deviceClientMayHave reports whether the requesting client may sign this
// user in with the requested scope (partner binding, scope restrictions):
// worded to the user like bad credentials, as at the token endpoint.
func (i *Issuer) deviceClientMayHave(rec session.DeviceCode, u *identity.User) bool {
	c, err := i.clientByID(rec.ClientID)
	return err == nil && partnerMatches(u, c, "") && i.userMayHave(u, rec.Scope) == nil
}

// overTLS reports whether the request reached tollgate over TLS, directly
// or (per X-Forwarded-Proto) through a trusted proxy.
func (i *Issuer) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !slices.ContainsFunc(i.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(peer.Addr().Unmap()) }) {
		return false
	}
	return strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// newCSRF returns a fresh token for the double-submit cookie.
func newCSRF() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// serveDeviceQR answers an SVG QR code of the complete verification URI,
// for box apps that cannot draw one.
func (i *Issuer) serveDeviceQR(w http.ResponseWriter, r *http.Request, _ string) {
	code, ok := session.NormalizeUserCode(r.URL.Query().Get("user_code"))
	if !ok {
		i.writeOAuthError(w, r, refuse(ErrInvalidRequest, "user_code is not a user code"))
		return
	}
	display := code[:4] + "-" + code[4:]
	qr, err := qrcode.New(i.deviceFlow.cfg.PageURL+"/device?user_code="+url.QueryEscape(display), qrcode.Medium)
	if err != nil {
		i.writeOAuthError(w, r, err)
		return
	}
	bits := qr.Bitmap()
	var b bytes.Buffer
	n := len(bits)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n, n, n)
	for y, row := range bits {
		for x, on := range row {
			if on {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(b.Bytes())
}
