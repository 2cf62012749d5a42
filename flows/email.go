package flows

import (
	"errors"
	"net/mail"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Errors of ParseEmail; their texts are safe to show users.
var (
	ErrInvalidEmail   = errors.New("enter a valid email address, like name@example.com")
	ErrLookalikeEmail = errors.New("this address contains invisible or unusual characters, or mixes alphabets (for example a Cyrillic letter among Latin ones): type it again in one alphabet")
)

// EmailMsg is the message to show for an error of ParseEmail.
func EmailMsg(err error) Msg {
	if errors.Is(err, ErrLookalikeEmail) {
		return M("email.lookalike")
	}
	return M("email.invalid")
}

// ParseEmail validates what a person typed and returns the canonical address.
// Control characters (CR/LF header injection) and display-name forms are
// refused; the result is NFC-normalised and lower-cased, because SQLite's
// case folding is ASCII-only and look-alikes must not match another account.
// Addresses that could pass for another are refused (ErrLookalikeEmail):
// invisible and bidi control characters, compatibility forms (fullwidth
// letters), mixed scripts within the local part or a domain label, domains
// that are not valid IDNA, and domain literals.
func ParseEmail(input string) (string, error) {
	s := strings.TrimSpace(input)
	if s == "" || len(s) > 254 {
		return "", ErrInvalidEmail
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return "", ErrInvalidEmail
		}
	}
	if err := checkConfusable(s); err != nil {
		return "", err
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", ErrInvalidEmail
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || !strings.Contains(s[at+1:], ".") {
		return "", ErrInvalidEmail
	}
	return canonicalEmail(s), nil
}

// checkConfusable refuses addresses built to look like another one.
func checkConfusable(s string) error {
	for _, r := range s {
		if unicode.Is(unicode.Cf, r) { // zero-width characters, bidi overrides
			return ErrLookalikeEmail
		}
	}
	if norm.NFKC.String(s) != norm.NFC.String(s) { // fullwidth and other compatibility forms
		return ErrLookalikeEmail
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 {
		return ErrInvalidEmail
	}
	local, domain := s[:at], s[at+1:]
	if strings.HasPrefix(domain, "[") { // domain literal: a@[127.0.0.1]
		return ErrLookalikeEmail
	}
	if _, err := idna.Lookup.ToASCII(strings.ToLower(domain)); err != nil {
		return ErrLookalikeEmail
	}
	if !isASCII(local) {
		// PRECIS IdentifierClass: letters and digits of any script, ASCII
		// punctuation; no symbols, no unassigned code points.
		if out, err := precis.UsernameCasePreserved.String(local); err != nil || out != local {
			return ErrLookalikeEmail
		}
	}
	for _, part := range append([]string{local}, strings.Split(domain, ".")...) {
		if !singleScript(part) {
			return ErrLookalikeEmail
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// singleScript reports whether s's letters come from one script, or from
// one of the combinations a language writes together (Unicode TR 39's
// "highly restrictive" level: Latin with Han and Japanese kana, with Han
// and Bopomofo, or with Han and Hangul).
func singleScript(s string) bool {
	if isASCII(s) {
		return true
	}
	var scripts []string
	for _, r := range s {
		name := scriptOf(r)
		if name == "" || name == "Common" || name == "Inherited" {
			continue
		}
		found := false
		for _, x := range scripts {
			found = found || x == name
		}
		if !found {
			scripts = append(scripts, name)
		}
	}
	if len(scripts) <= 1 {
		return true
	}
	for _, allowed := range [][]string{{"Latin", "Han", "Hiragana", "Katakana"}, {"Latin", "Han", "Bopomofo"}, {"Latin", "Han", "Hangul"}} {
		if subset(scripts, allowed) {
			return true
		}
	}
	return false
}

func scriptOf(r rune) string {
	if r < 0x80 {
		if unicode.IsLetter(r) {
			return "Latin"
		}
		return "Common"
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

func subset(xs, of []string) bool {
	for _, x := range xs {
		ok := false
		for _, y := range of {
			ok = ok || x == y
		}
		if !ok {
			return false
		}
	}
	return true
}

func canonicalEmail(s string) string {
	return strings.ToLower(norm.NFC.String(strings.TrimSpace(s)))
}
