package postgresql

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/operation"
)

func TestGoal(t *testing.T) {
	p := New(nil, nil, nil, nil, slog.New(slog.NewTextHandler(t.Output(), nil)))
	other := New(nil, nil, nil, nil, slog.New(slog.NewTextHandler(t.Output(), nil)))
	const pw = "Пароль-Secret1"
	body := []byte(`{"location":"westeurope","properties":{"administratorLogin":"a","administratorLoginPassword":"` + pw + `","version":"16"}}`)
	same := []byte(`{"properties":{"version":"16","AdministratorLoginPassword":"` + pw + `","administratorLogin":"a"},"location":"westeurope"}`)
	otherPw := []byte(`{"location":"westeurope","properties":{"administratorLogin":"a","administratorLoginPassword":"Other-Secret1","version":"16"}}`)
	g := p.goal("create", body, pw)
	for _, tc := range []struct {
		name string
		got  string
		same bool
	}{
		{"an identical retry", p.goal("create", body, pw), true},
		{"the same request, keys reordered and cased", p.goal("create", same, pw), true},
		{"another password", p.goal("create", otherPw, "Other-Secret1"), false},
		{"an update", p.goal("update", body, pw), false},
		{"another process", other.goal("create", body, pw), false},
		{"the old, unkeyed goal", operation.Digest("create", string(body)), false},
	} {
		if (tc.got == g) != tc.same {
			t.Errorf("goal of %s = %s, first goal %s; want equal = %v", tc.name, tc.got, g, tc.same)
		}
	}
	if strings.Contains(g, pw) {
		t.Errorf("goal %q holds the password", g)
	}
}

func TestServerInputHoldsNoPassword(t *testing.T) {
	const pw = "Pässwörd-Secret1"
	in, err := newServerInput(pw)
	if err != nil {
		t.Fatal(err)
	}
	if in.Password != "" || !strings.HasPrefix(in.Verifier, "SCRAM-SHA-256$4096:") {
		t.Errorf("newServerInput(%q) = %+v; want a SCRAM verifier and no password", pw, in)
	}
	if v, err := in.verifier(); err != nil || v != in.Verifier {
		t.Errorf("verifier() = %q, %v; want %q", v, err, in.Verifier)
	}
	// An operation stored by an older version holds the password: its verifier is made now.
	old := serverInput{Password: pw}
	if v, err := old.verifier(); err != nil || !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") {
		t.Errorf("verifier() of an old input = %q, %v; want a SCRAM verifier", v, err)
	}
	if _, err := newServerInput("a\x00b"); err == nil {
		t.Errorf("newServerInput with NUL succeeded; want an error")
	}
}
