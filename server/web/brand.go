package web

import (
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
)

// Brand is how a page and its mails look: the realm's branding, overridden
// by the client's and by a minted link's settings. URLs are absolute or
// rooted at the realm's static folder; colours and fonts were validated at
// load (or by the management API).
type Brand struct {
	Name    string // the company or realm name in the header (branding.displayName)
	AppName string // the client's name: "Sign in to Acme Reports"
	AppURL  string // the client's home page (clients[].baseUrl): "Back to ..."
	// AccountURL is the realm's account page: where a page with no app to
	// go back to (an unknown link) sends a person to sign in again.
	AccountURL string

	LogoURL, FaviconURL, HeaderImageURL, CustomCSSURL    string
	PrimaryColor, BackgroundColor, TextColor, FontFamily string

	Title, Description string // the sign-in page's heading and text
	HelperLinks        []HelperLink
	SupportEmail       string
	PrivacyURL         string
	TermsURL           string
}

// Settings a minted link may carry (Leaf's names), over the client's and
// the realm's branding.
const (
	SettingCompanyName     = "companyName"
	SettingCompanyLogo     = "companyLogo"
	SettingBackgroundColor = "backgroundColor"
	SettingHeaderImage     = "headerImage"
	SettingPrimaryColor    = "primaryColor"
)

// WithSettings returns b with a link's settings applied.
func (b Brand) WithSettings(settings map[string]string) Brand {
	for key, dst := range map[string]*string{SettingCompanyName: &b.Name, SettingCompanyLogo: &b.LogoURL,
		SettingBackgroundColor: &b.BackgroundColor, SettingHeaderImage: &b.HeaderImageURL, SettingPrimaryColor: &b.PrimaryColor} {
		if v := settings[key]; v != "" {
			*dst = v
		}
	}
	return b
}

// HelperLink is a link under the sign-in form.
type HelperLink struct{ Label, URL string }

// Styled reports whether the brand sets any colour or font: the page then
// carries a style block (with the response's CSP nonce).
func (b Brand) Styled() bool {
	return b.PrimaryColor != "" || b.BackgroundColor != "" || b.TextColor != "" || b.FontFamily != ""
}

// imageOrigins are the https origins the brand's images come from, for the
// Content-Security-Policy's img-src.
func (b Brand) imageOrigins() []string {
	var out []string
	for _, raw := range []string{b.LogoURL, b.FaviconURL, b.HeaderImageURL} {
		if u, err := url.Parse(raw); err == nil && u.Scheme == "https" && u.Host != "" {
			if o := "https://" + u.Host; !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	return out
}

// csp is the page's Content-Security-Policy: the realm's own scripts, styles from the
// realm and the one nonce'd block of brand colours, images from the realm
// and the brand's origins.
func csp(nonce string, imgOrigins []string) string {
	style := "style-src 'self'"
	if nonce != "" {
		style += " 'nonce-" + nonce + "'"
	}
	img := strings.Join(append([]string{"img-src 'self' data:"}, imgOrigins...), " ")
	// script-src 'self': the realm's static scripts (the resend countdown);
	// no inline script, no other origin.
	return "default-src 'none'; script-src 'self'; connect-src 'self'; " + style + "; " + img + "; frame-ancestors 'none'; base-uri 'none'"
}

func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}
