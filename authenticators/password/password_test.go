package password

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"latchkey/flows"
	"latchkey/flows/flowstest"
)

// counter counts every key it is given, in one window.
type counter map[string]int

func (c counter) HitAll(_ context.Context, keys []string, window time.Duration, now time.Time) ([]int, []time.Time, error) {
	counts, ends := make([]int, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		c[k]++
		counts[i], ends[i] = c[k], now.Add(window)
	}
	return counts, ends, nil
}

// An account takes maxAttempts attempts in a window, a client address 5x
// that over all accounts; an attempt the account's limit refuses still
// counts toward its address's limit (both count in one call), and a
// limited attempt is refused even with the right password.
func TestAttemptLimits(t *testing.T) {
	hash, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	users := flowstest.NewUsers(flows.User{Email: "alice@example.com", PasswordHash: hash}, flows.User{Email: "bob@example.com", PasswordHash: hash})
	a, err := Factory{Counter: counter{}}.New(flows.Config{Values: map[string]any{"maxAttempts": 2, "attemptWindow": time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	try := func(email, password string) string {
		t.Helper()
		c := &flows.Context{Session: &flows.Session{}, Users: users, ClientIP: "192.0.2.1",
			Form: url.Values{"email": {email}, "password": {password}}}
		res, err := a.Action(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status == flows.Success {
			return "signed in"
		}
		return res.Data.(FormData).Error.ID
	}
	for i, want := range []string{"password.invalid", "password.invalid", "password.tooMany", "password.tooMany"} {
		pw := "wrong password"
		if i == 3 {
			pw = "correct horse"
		}
		if got := try("alice@example.com", pw); got != want {
			t.Fatalf("alice's attempt %d: %s, want %s", i+1, got, want)
		}
	}
	// Four attempts from the address so far, two of them refused by
	// alice's limit: six more reach the address's limit of ten.
	for i := range 5 {
		if got := try(fmt.Sprintf("user%d@example.com", i), "wrong password"); got != "password.invalid" {
			t.Fatalf("attempt %d for another account: %s", i+5, got)
		}
	}
	if got := try("bob@example.com", "correct horse"); got != "signed in" {
		t.Fatalf("the address's tenth attempt, with bob's password: %s", got)
	}
	if got := try("bob@example.com", "correct horse"); got != "password.tooMany" {
		t.Fatalf("the address's eleventh attempt: %s, want password.tooMany", got)
	}
}
