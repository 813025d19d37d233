package pgtest

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStartWith: settings given to StartWith are in force, over the test settings.
func TestStartWith(t *testing.T) {
	c, err := StartWith(map[string]string{"fsync": "on", "work_mem": "7MB"})
	Require(t, err)
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("Stop() = %v", err)
		}
	})
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for name, want := range map[string]string{"fsync": "on", "work_mem": "7MB", "synchronous_commit": "off"} {
		var got string
		if err := conn.QueryRow(t.Context(), "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s; want %s", name, got, want)
		}
	}
}
