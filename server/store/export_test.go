package store

import "context"

// Pragma reads an integer SQLite setting from the writer connection, for
// the tests in store_test.
func (s *Store) Pragma(ctx context.Context, name string) int {
	var v int
	_ = s.db(ctx).Raw("PRAGMA " + name).Scan(&v).Error
	return v
}
