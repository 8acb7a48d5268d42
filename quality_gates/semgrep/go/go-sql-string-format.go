package main

import (
	"context"
	"database/sql"
	"fmt"
)

func bad(ctx context.Context, db *sql.DB, name, order string) {
	// ruleid: go-sql-string-format
	db.Query(fmt.Sprintf("SELECT * FROM users WHERE name = '%s'", name))
	// ruleid: go-sql-string-format
	db.Exec("DELETE FROM users WHERE name = '" + name + "'")
	q := "SELECT * FROM users ORDER BY " + order
	// ruleid: go-sql-string-format
	db.QueryContext(ctx, q)
	// ruleid: go-sql-string-format
	db.QueryRowContext(ctx, fmt.Sprintf("SELECT id FROM t WHERE n = %s", name))
}

func good(ctx context.Context, db *sql.DB, name string) {
	// ok: go-sql-string-format
	db.Query("SELECT * FROM users WHERE name = $1", name)
	// ok: go-sql-string-format
	db.ExecContext(ctx, "DELETE FROM users WHERE name = ?", name)
	// ok: go-sql-string-format
	db.QueryRow("SELECT id FROM users " + "WHERE active")
}
