package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"latchkey/e2e/testkit"
	"latchkey/server/testenv"
)

// adminClient is a service-account client holding Keycloak's
// realm-management roles, as Keycloak admin tooling logs in.
const adminClient = `  - clientId: admin-tool
    secret: admin-tool-secret-0123456789-abcdef
    serviceAccountsEnabled: true
    redirectUris: []
    serviceAccount:
      clientRoles:
        realm-management: [view-users, manage-users]
`

func withAdminClient(doc string) string {
	return strings.Replace(doc, "clients:\n", "clients:\n"+adminClient, 1)
}

// kcAdmin runs e2e/kcadmin/run.mjs (the real @keycloak/keycloak-admin-client)
// against s and decodes what it saw.
func kcAdmin(t *testing.T, s *setup, out any) {
	t.Helper()
	testenv.NPMPackageFile(t, "keycloak-admin-client", "kcadmin", "@keycloak/keycloak-admin-client/package.json")
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "keycloak-admin-client", "node is not installed")
	}
	base := strings.TrimSuffix(s.LK.Issuer, "/realms/test")
	arg, _ := json.Marshal(map[string]string{"baseUrl": base, "realm": "test", "clientId": "admin-tool", "clientSecret": "admin-tool-secret-0123456789-abcdef"})
	cmd := exec.Command(node, "kcadmin/run.mjs", string(arg))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("keycloak-admin-client: %v\n%s\nlatchkey log:\n%s", err, stderr.String(), s.LK.Logs())
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("keycloak-admin-client output %q: %v", raw, err)
	}
}

// TestKeycloakAdminClientManagesUsers: the real Keycloak admin client logs in
// with client_credentials and finds, creates, updates, disables and deletes
// users; the disabled user's refresh token stops working at once.
func TestKeycloakAdminClientManagesUsers(t *testing.T) {
	s := startDoc(t, withAdminClient(realm), opts{})
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	tok := s.App.Last().Token
	tok, err := refresh(t, s, tok.RefreshToken) // works before; the rotated one is alice's live token
	if err != nil {
		t.Fatalf("refresh before disabling: %v", err)
	}

	type user struct {
		ID, Username, Email, FirstName, LastName string
		Enabled, EmailVerified                   bool
		Attributes                               map[string][]string
	}
	var got struct {
		Found []struct {
			ID, Username, FirstName string
			Enabled                 bool
		}
		Searched      []string
		CreatedID     string
		Duplicate     int
		UnknownField  int
		Updated       user
		Count         int
		AliceSessions int
		AliceAfter    user
		DisabledList  []string
		AfterDelete   *user
		DeleteAgain   int
	}
	kcAdmin(t, s, &got)

	if len(got.Found) != 1 || got.Found[0].Username != "alice@example.com" || got.Found[0].FirstName != "Alice" || !got.Found[0].Enabled {
		t.Errorf("find by email: %+v", got.Found)
	}
	if strings.Join(got.Searched, ",") != "alice@example.com" {
		t.Errorf("search ali: %v", got.Searched)
	}
	if got.CreatedID == "" || got.Duplicate != 409 || got.UnknownField != 400 {
		t.Errorf("create: id %q, duplicate %d (want 409), unknown field %d (want 400)", got.CreatedID, got.Duplicate, got.UnknownField)
	}
	u := got.Updated
	if u.ID != got.CreatedID || u.FirstName != "Caroline" || u.LastName != "Jones" || u.Email != "carol@example.com" || !u.Enabled || !u.EmailVerified ||
		len(u.Attributes["locale"]) != 1 || u.Attributes["locale"][0] != "de" {
		t.Errorf("after a partial update: %+v (only firstName should have changed)", u)
	}
	if got.Count != 3 {
		t.Errorf("count = %d, want 3 (alice, newbie, carol)", got.Count)
	}
	if got.AliceSessions != 1 {
		t.Errorf("alice has %d sessions, want 1", got.AliceSessions)
	}
	if got.AliceAfter.Enabled || strings.Join(got.DisabledList, ",") != "alice@example.com" {
		t.Errorf("disable: %+v, disabled users %v", got.AliceAfter, got.DisabledList)
	}
	if got.AfterDelete != nil || got.DeleteAgain != 404 {
		t.Errorf("after delete: findOne %+v, second delete %d (want null and 404)", got.AfterDelete, got.DeleteAgain)
	}
	if _, err := refresh(t, s, tok.RefreshToken); err == nil {
		t.Fatal("the disabled user's refresh token still works")
	}
	// The disable ended alice's session as a logout does (Logout.EndUserSessions).
	if code, evs := apiList(t, s, "/admin/realms/test/events?type=LOGOUT&user="+got.Found[0].ID, peopleKey); code != 200 || len(evs) != 1 ||
		evs[0]["sessionId"] != s.App.Last().Claims["sid"] {
		t.Errorf("LOGOUT events of alice after the disable: %d %v", code, evs)
	}
	if !strings.Contains(s.LK.Logs(), "caller=service-account:admin-tool") {
		t.Error("the log does not name the service account that changed users")
	}
}

const peopleKey = "people-api-key-0123456789-0123456789-abcd"

// apiList calls the API for a JSON array.
func apiList(t *testing.T, s *setup, path, key string) (int, []map[string]any) {
	t.Helper()
	code, _, b := call(t, http.MethodGet, strings.TrimSuffix(s.LK.Issuer, "/realms/test")+path, key, nil)
	var out []map[string]any
	_ = json.Unmarshal(b, &out)
	return code, out
}

// adminCall calls /admin/realms/test/... and returns status, Location and body.
func adminCall(t *testing.T, s *setup, method, path, key, body string) (int, string, string) {
	t.Helper()
	code, h, b := call(t, method, strings.TrimSuffix(s.LK.Issuer, "/realms/test")+"/admin/realms/test"+path, key, strings.NewReader(body))
	return code, h.Get("Location"), string(b)
}

// TestUsersAPIWithAPIKeys: the users API answers API keys by their
// operations, mails required actions as a login link, and deleting a user
// removes their links and the mail that carried them.
func TestUsersAPIWithAPIKeys(t *testing.T) {
	s := start(t, magic(nil))
	if code, _, _ := adminCall(t, s, "GET", "/users", "", ""); code != 401 {
		t.Errorf("no key: %d, want 401", code)
	}
	if code, _, body := adminCall(t, s, "GET", "/users", apiKey, ""); code != 403 || !strings.Contains(body, "users:read") {
		t.Errorf("links-only key: %d %s, want 403 naming users:read", code, body)
	}
	code, loc, body := adminCall(t, s, "POST", "/users/", peopleKey, `{"email":"Erin@Example.com","firstName":"Erin"}`)
	if code != 201 || !strings.HasPrefix(loc, s.LK.Issuer[:strings.Index(s.LK.Issuer, "/realms/")]+"/admin/realms/test/users/") {
		t.Fatalf("create: %d Location %q %s", code, loc, body)
	}
	id := loc[strings.LastIndex(loc, "/")+1:]
	for path, want := range map[string]string{
		"/admin/realms/test/users?email=erin%40example.com&exact=true": id,
		"/admin/realms/test/users/?search=*rin*":                       id,
		"/admin/realms/test/users?firstName=ERIN":                      id,
	} {
		if code, users := apiList(t, s, path, peopleKey); code != 200 || len(users) != 1 || users[0]["id"] != want || users[0]["username"] != "erin@example.com" {
			t.Errorf("GET %s: %d %v", path, code, users)
		}
	}
	if code, users := apiList(t, s, "/admin/realms/test/users?first=1&max=1", peopleKey); code != 200 || len(users) != 1 || users[0]["email"] != "erin@example.com" {
		t.Errorf("second page of one: %d %v (want erin, sorted after alice)", code, users)
	}
	for body, field := range map[string]string{
		`{"email":"not-an-address"}`:                             "email",
		`{"email":"x@example.com","attributes":{"shoe":["44"]}}`: "attributes.shoe",
		`{"email":"x@example.com","requiredActions":["DANCE"]}`:  "requiredActions[0]",
		`{"email":"x@example.com","username":"y@example.com"}`:   "username",
	} {
		if code, _, got := adminCall(t, s, "POST", "/users", peopleKey, body); code != 400 || !strings.Contains(got, `"field":"`+field+`"`) {
			t.Errorf("POST %s: %d %s, want 400 on %s", body, code, got, field)
		}
	}

	if code, _, body := adminCall(t, s, "PUT", "/users/"+id+"/execute-actions-email?lifespan=3600", peopleKey, `["UPDATE_PROFILE"]`); code != 204 {
		t.Fatalf("execute-actions-email: %d %s", code, body)
	}
	msg := s.SMTP.WaitFor(t, "erin@example.com", 1, 10*time.Second)[0]
	if msg.Link() == "" {
		t.Fatalf("the actions mail has no link: %s", msg.Text)
	}
	if _, u := api(t, s, "GET", "/magic-links?email=erin@example.com", apiKey, nil); u["total"] != float64(1) {
		t.Fatalf("links of erin: %v", u)
	}
	if code, _, body := adminCall(t, s, "GET", "/users/"+id, peopleKey, ""); code != 200 || !strings.Contains(body, `"requiredActions":["UPDATE_PROFILE"]`) {
		t.Errorf("after execute-actions-email: %d %s", code, body)
	}
	if code, _, _ := adminCall(t, s, "DELETE", "/users/"+id, peopleKey, ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if _, u := api(t, s, "GET", "/magic-links?email=erin@example.com", apiKey, nil); u["total"] != float64(0) {
		t.Errorf("erin's links survived her deletion: %v", u)
	}
	p := testkit.NewClient(t).Get(msg.Link())
	if p.Status != 410 && p.Status != 404 {
		t.Errorf("the deleted user's link answers %d", p.Status)
	}
}
