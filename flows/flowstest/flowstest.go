// Package flowstest has in-memory implementations of the flows interfaces,
// for unit tests of the engine's consumers and of authenticators.
package flowstest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"latchkey/flows"
)

// Users is an in-memory flows.Users.
type Users struct {
	mu     sync.Mutex
	byID   map[string]flows.User
	nextID int
}

var _ flows.Users = (*Users)(nil)

// NewUsers returns a directory holding users (their IDs are assigned when empty).
func NewUsers(users ...flows.User) *Users {
	d := &Users{byID: map[string]flows.User{}}
	for i := range users {
		if err := d.CreateUser(context.Background(), &users[i]); err != nil {
			panic(err)
		}
	}
	return d
}

func clone(u flows.User) *flows.User {
	u.RequiredActions = slices.Clone(u.RequiredActions)
	return &u
}

func (d *Users) UserByID(_ context.Context, id string) (*flows.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.byID[id]
	if !ok {
		return nil, flows.ErrUserNotFound
	}
	return clone(u), nil
}

func (d *Users) UserByEmail(_ context.Context, email string) (*flows.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.byID {
		if u.Email == email {
			return clone(u), nil
		}
	}
	return nil, flows.ErrUserNotFound
}

func (d *Users) CreateUser(_ context.Context, u *flows.User) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.byID {
		if o.Email == u.Email {
			return flows.ErrUserExists
		}
	}
	if u.ID == "" {
		d.nextID++
		u.ID = fmt.Sprintf("user-%d", d.nextID)
	}
	d.byID[u.ID] = *clone(*u)
	return nil
}

func (d *Users) UpdateUser(_ context.Context, u *flows.User) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.byID[u.ID]; !ok {
		return flows.ErrUserNotFound
	}
	d.byID[u.ID] = *clone(*u)
	return nil
}

// Credentials is an in-memory flows.Credentials.
type Credentials struct {
	mu     sync.Mutex
	byID   map[string]flows.Credential
	nextID int
}

var _ flows.Credentials = (*Credentials)(nil)

// NewCredentials returns an empty credential store.
func NewCredentials() *Credentials { return &Credentials{byID: map[string]flows.Credential{}} }

func (s *Credentials) CredentialsOf(_ context.Context, userID, typ string) ([]flows.Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []flows.Credential
	for _, c := range s.byID {
		if c.UserID == userID && c.Type == typ {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b flows.Credential) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

func (s *Credentials) SaveCredential(_ context.Context, c *flows.Credential) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID == "" {
		s.nextID++
		c.ID = fmt.Sprintf("cred-%d", s.nextID)
	}
	s.byID[c.ID] = *c
	return nil
}

func (s *Credentials) UseCounter(_ context.Context, id string, n int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[id]
	if !ok || c.Counter >= n {
		return false, nil
	}
	c.Counter = n
	s.byID[id] = c
	return true, nil
}

func (s *Credentials) DeleteCredential(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
	return nil
}
