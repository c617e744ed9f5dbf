package testenv

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestPostgres(t *testing.T) {
	pg := StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	wrong, err := url.Parse(pg.DSN())
	if err != nil {
		t.Fatalf("DSN %s does not parse: %v", pg, err)
	}
	wrong.User = url.UserPassword(pg.User, "not-"+pg.Password)

	tests := []struct {
		name    string
		dsn     string
		wantErr bool
	}{
		{"DSN connects", pg.DSN(), false},
		{"fields connect", "host=" + pg.Host + " port=" + strconv.Itoa(pg.Port) + " user=" + pg.User +
			" password=" + pg.Password + " dbname=" + pg.Database + " sslmode=disable", false},
		{"wrong password is refused", wrong.String(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, tc.dsn)
			if tc.wantErr {
				if err == nil {
					conn.Close(ctx)
					t.Fatal("connected, want an authentication error")
				}
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer conn.Close(ctx)
			var db string
			if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
				t.Fatalf("query: %v", err)
			}
			if db != pg.Database {
				t.Fatalf("current_database() = %q, want %q", db, pg.Database)
			}
		})
	}

	t.Run("data survives Stop and Start", func(t *testing.T) {
		if _, err := pg.Conn().Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)"); err != nil {
			t.Fatalf("write: %v", err)
		}
		pg.Stop()
		addr := net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still accepts connections after Stop", addr)
		}
		pg.Stop() // a second Stop is a no-op
		pg.Start()
		var v int
		if err := pg.Conn().QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 7 {
			t.Fatalf("after restart: v=%d err=%v, want 7", v, err)
		}
	})
}
