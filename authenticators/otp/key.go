package otp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// params are how codes are made: what the authenticator app is told.
type params struct {
	Digits    int
	Period    time.Duration
	Algorithm string // SHA1, SHA256 or SHA512
}

func (p params) algorithm() otp.Algorithm {
	switch p.Algorithm {
	case "SHA256":
		return otp.AlgorithmSHA256
	case "SHA512":
		return otp.AlgorithmSHA512
	}
	return otp.AlgorithmSHA1
}

// String and parseParams carry params in a session note, from the step
// that found TOTP missing to CONFIGURE_TOTP.
func (p params) String() string { return fmt.Sprintf("%d,%s,%s", p.Digits, p.Period, p.Algorithm) }

func parseParams(s string) (params, bool) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return params{}, false
	}
	var p params
	if _, err := fmt.Sscanf(parts[0], "%d", &p.Digits); err != nil {
		return params{}, false
	}
	d, err := time.ParseDuration(parts[1])
	if err != nil {
		return params{}, false
	}
	p.Period, p.Algorithm = d, parts[2]
	return p, checkParams(p) == nil
}

func checkParams(p params) error {
	switch {
	case p.Digits != 6 && p.Digits != 8:
		return errors.New("digits must be 6 or 8")
	case p.Period < 15*time.Second || p.Period > 5*time.Minute || p.Period%time.Second != 0:
		return errors.New("period must be whole seconds between 15s and 5m")
	case p.Algorithm != "SHA1" && p.Algorithm != "SHA256" && p.Algorithm != "SHA512":
		return errors.New("algorithm must be SHA1, SHA256 or SHA512")
	}
	return nil
}

// defaults are what every authenticator app supports.
var defaults = params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1"}

// newKey makes a fresh random key (from the library's crypto/rand).
// The credential stores its otpauth:// URL, which keeps its params.
func newKey(issuer, account string, p params) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Period: uint(p.Period / time.Second),
		Digits: otp.Digits(p.Digits), Algorithm: p.algorithm(), SecretSize: 20,
	})
}

// match returns the time step whose code the user typed, looking lookAround
// steps to either side of now for clock drift. Comparison is the library's,
// in constant time.
func match(key *otp.Key, code string, now time.Time, lookAround int) (step int64, ok bool) {
	period := int64(key.Period())
	if period == 0 {
		period = 30
	}
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	current := now.Unix() / period
	for i := -lookAround; i <= lookAround; i++ {
		s := current + int64(i)
		if s < 0 {
			continue
		}
		good, err := hotp.ValidateCustom(code, uint64(s), key.Secret(), hotp.ValidateOpts{Digits: key.Digits(), Algorithm: key.Algorithm()})
		if err == nil && good {
			return s, true
		}
	}
	return 0, false
}

// qrImage is the key's otpauth:// URL as a QR code, rendered here as a PNG
// data URL: the secret never reaches a third-party QR service.
func qrImage(key *otp.Key) (template.URL, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return "", fmt.Errorf("render QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("encode QR code: %w", err)
	}
	// A data: URL built from our own PNG bytes: safe to mark as a URL.
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

// grouped writes the secret in groups of four, to type it by hand.
func grouped(secret string) string {
	var b strings.Builder
	for i, r := range secret {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
