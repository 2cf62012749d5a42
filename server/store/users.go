package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"latchkey/flows"
)

// User is an account row.
type User struct {
	ID              string `gorm:"primaryKey;size:36"`
	Email           string `gorm:"uniqueIndex;size:254;not null"`
	FirstName       string
	LastName        string
	EmailVerified   bool
	Disabled        bool
	PasswordHash    string
	RequiredActions string // comma-separated
	Locale          string `gorm:"size:35"` // BCP 47, the user's choice
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

func (u *User) toFlows() *flows.User {
	var actions []string
	if u.RequiredActions != "" {
		actions = strings.Split(u.RequiredActions, ",")
	}
	return &flows.User{
		ID: u.ID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		EmailVerified: u.EmailVerified, Disabled: u.Disabled, PasswordHash: u.PasswordHash,
		RequiredActions: actions, Locale: u.Locale, CreatedAt: u.CreatedAt,
	}
}

func fromFlows(u *flows.User) *User {
	return &User{
		ID: u.ID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		EmailVerified: u.EmailVerified, Disabled: u.Disabled, PasswordHash: u.PasswordHash,
		RequiredActions: strings.Join(u.RequiredActions, ","), Locale: u.Locale, CreatedAt: u.CreatedAt,
	}
}

var _ flows.Users = (*Store)(nil)

// UserByID implements flows.Users.
func (s *Store) UserByID(ctx context.Context, id string) (*flows.User, error) {
	u, err := s.userWhere(ctx, userByID, id)
	if err != nil && !errors.Is(err, flows.ErrUserNotFound) {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	return u, err
}

// UserByEmail implements flows.Users; email must be canonical.
func (s *Store) UserByEmail(ctx context.Context, email string) (*flows.User, error) {
	u, err := s.userWhere(ctx, userByEmail, email)
	if err != nil && !errors.Is(err, flows.ErrUserNotFound) {
		return nil, fmt.Errorf("user by email: %w", err)
	}
	return u, err
}

// A login reads its user three times: plain SQL (plainsql.go).
var (
	userByID    = plain("SELECT " + userColumns + " FROM users WHERE id = ?")
	userByEmail = plain("SELECT " + userColumns + " FROM users WHERE email = ?")
)

// userColumns: a column added after a table's first release (locale) is
// NULL in the rows from before, and so may be any column no writer set (a
// row written by hand or another tool); those read as zero values, as gorm
// read them.
const userColumns = "id, email, COALESCE(first_name, ''), COALESCE(last_name, ''), COALESCE(email_verified, false), " +
	"COALESCE(disabled, false), COALESCE(password_hash, ''), COALESCE(required_actions, ''), COALESCE(locale, ''), created_at, updated_at"

func (s *Store) userWhere(ctx context.Context, q plainQuery, arg string) (*flows.User, error) {
	row, err := s.queryRow(ctx, q, arg)
	if err != nil {
		return nil, err
	}
	var u User
	err = row.Scan(&u.ID, &u.Email, &u.FirstName, &u.LastName, &u.EmailVerified, &u.Disabled, &u.PasswordHash,
		&u.RequiredActions, &u.Locale, &u.CreatedAt, &u.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, flows.ErrUserNotFound
	}
	if err != nil {
		return nil, err
	}
	return u.toFlows(), nil
}

// CreateUser implements flows.Users. It assigns ID and CreatedAt when empty
// and returns flows.ErrUserExists when the email is taken.
func (s *Store) CreateUser(ctx context.Context, fu *flows.User) error {
	if fu.ID == "" {
		fu.ID = NewID()
	}
	if fu.CreatedAt.IsZero() {
		fu.CreatedAt = time.Now().UTC()
	}
	res := s.db(ctx).Clauses(onConflictDoNothing).Create(fromFlows(fu))
	if res.Error != nil {
		return fmt.Errorf("create user: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return flows.ErrUserExists
	}
	return nil
}

// UpdateUser implements flows.Users: it saves every field.
func (s *Store) UpdateUser(ctx context.Context, fu *flows.User) error {
	u := fromFlows(fu)
	res := s.db(ctx).Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{
		"email": u.Email, "first_name": u.FirstName, "last_name": u.LastName,
		"email_verified": u.EmailVerified, "disabled": u.Disabled, "password_hash": u.PasswordHash,
		"required_actions": u.RequiredActions, "locale": u.Locale, "updated_at": time.Now().UTC(),
	})
	if res.Error != nil {
		return fmt.Errorf("update user %s: %w", u.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return flows.ErrUserNotFound
	}
	return nil
}

// CountUsers returns the number of accounts.
func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	err := s.read(ctx).Model(&User{}).Count(&n).Error
	return n, err
}

// NewID returns a random (version 4) UUID.
func NewID() string { return uuid.NewString() }

// ImportUsers inserts users in batches (bulk seeding); existing emails are
// skipped.
func (s *Store) ImportUsers(ctx context.Context, users []*flows.User) error {
	rows := make([]*User, 0, len(users))
	for _, fu := range users {
		if fu.ID == "" {
			fu.ID = NewID()
		}
		if fu.CreatedAt.IsZero() {
			fu.CreatedAt = time.Now().UTC()
		}
		rows = append(rows, fromFlows(fu))
	}
	if err := s.db(ctx).Clauses(onConflictDoNothing).CreateInBatches(rows, 500).Error; err != nil {
		return fmt.Errorf("import users: %w", err)
	}
	return nil
}
