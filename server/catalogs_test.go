package server

import (
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"latchkey/flows"
	"latchkey/server/i18n"
	"latchkey/server/web"
)

// Every shipped locale has every message the built-in catalogs have, and
// nothing else: a message added in English only fails here.
func TestShippedCatalogsAreComplete(t *testing.T) {
	rnd, err := web.NewRenderer(web.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)), StepTemplates(Registry(Deps{}))...)
	if err != nil {
		t.Fatal(err)
	}
	cat := rnd.Catalog()
	en := cat.IDs("en")
	if len(en) < 100 {
		t.Fatalf("only %d English messages: are the catalogs loaded?", len(en))
	}
	for _, l := range i18n.Shipped[1:] {
		ids := cat.IDs(l)
		for _, id := range en {
			if !slices.Contains(ids, id) {
				t.Errorf("%s lacks %s", l, id)
			}
		}
		for _, id := range ids {
			if !slices.Contains(en, id) {
				t.Errorf("%s has %s, which English does not", l, id)
			}
		}
	}
}

// Plural messages have every form each shipped locale's rules ask for
// (French and Portuguese count 0 as one, Spanish has a "many" for
// millions): rendering every count in every locale leaves nothing missing.
func TestPluralsAndDurationsInEveryLocale(t *testing.T) {
	rnd, err := web.NewRenderer(web.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)), StepTemplates(Registry(Deps{}))...)
	if err != nil {
		t.Fatal(err)
	}
	cat := rnd.Catalog()
	for _, l := range i18n.Shipped {
		for _, n := range []int{0, 1, 2, 5, 21, 1000000} {
			for _, id := range []string{"otp.wrong", "otp.replayed", "sent.resendIn", "link.sentMomentsAgo"} {
				if out := rnd.Text(l, flows.M(id, "Count", n)); out == id || !strings.Contains(out, strconv.Itoa(n)) {
					t.Errorf("%s %s(%d) = %q", l, id, n, out)
				}
			}
		}
	}
	if m := cat.Missing(); len(m) > 0 {
		t.Errorf("missing plural forms or messages: %v", m)
	}
	for _, c := range []struct {
		locale string
		d      time.Duration
		want   string
	}{
		{"en", 20 * time.Minute, "20 minutes ago"}, {"de", 20 * time.Minute, "vor 20 Minuten"},
		{"de", 72 * time.Hour, "vor 3 Tagen"}, {"fr", time.Hour, "il y a 1 heure"},
		{"es", 2 * time.Hour, "hace 2 horas"}, {"pt-BR", time.Minute, "há 1 minuto"},
	} {
		if got := cat.Ago(c.locale, c.d); got != c.want {
			t.Errorf("Ago(%s, %v) = %q, want %q", c.locale, c.d, got, c.want)
		}
	}
	if got := cat.Duration("de", 15*time.Minute); got != "15 Minuten" {
		t.Errorf("Duration(de, 15m) = %q", got)
	}
}

// Every message a person reads starts as a sentence does, in every shipped
// locale. A message that opens with a value ("{{.App}} ...") is left to its
// value; fragments shown inside a sentence are listed with where they go.
func TestMessagesStartWithACapital(t *testing.T) {
	fragments := map[string]string{
		"totp.keyKind": "in parentheses after the secret key",
		"ago.seconds":  "{{ago}} inside a sentence", "ago.minutes": "{{ago}}", "ago.hours": "{{ago}}", "ago.days": "{{ago}}",
	}
	d := time.Minute
	rnd, err := web.NewRenderer(web.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)), StepTemplates(Registry(Deps{}))...)
	if err != nil {
		t.Fatal(err)
	}
	cat := rnd.Catalog()
	for _, l := range i18n.Shipped {
		for _, id := range cat.IDs(l) {
			if _, ok := fragments[id]; ok {
				continue
			}
			out := rnd.Text(l, flows.M(id, "Count", 2, "Ago", d, "Wait", d, "Lifetime", d))
			first, _ := utf8.DecodeRuneInString(out)
			if strings.HasPrefix(out, "<no value>") || unicode.IsUpper(first) || unicode.IsDigit(first) || unicode.IsPunct(first) && first != ',' {
				continue
			}
			t.Errorf("%s %s starts in lower case: %q", l, id, out)
		}
	}
}
