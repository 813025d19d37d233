package engine

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/xdg-go/stringprep"
)

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// Verifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for password (RFC 5802,
// RFC 7677), with a random salt: what CREATE ROLE … PASSWORD stores when given password in
// clear, so that a role given the verifier accepts password at login. Like PostgreSQL
// (pg_saslprep), it prepares the password with SASLprep (RFC 4013) first, unless the password
// is ASCII, is not valid UTF-8, or SASLprep refuses it or maps it to nothing: then the
// password's bytes are hashed as they are. A password with a NUL character is refused.
func Verifier(password string) (string, error) {
	if strings.ContainsRune(password, 0) {
		return "", errors.New("password contains a NUL character")
	}
	return scramVerifier(saslprep(password))
}

// saslprep returns password as PostgreSQL's pg_saslprep prepares it for SCRAM, or password
// itself where PostgreSQL falls back to the raw bytes.
func saslprep(password string) string {
	if isASCII(password) || !utf8.ValidString(password) {
		return password
	}
	p, err := stringprep.SASLprep.Prepare(password)
	if err != nil || p == "" {
		return password
	}
	return p
}

// scramVerifier returns the SCRAM-SHA-256 verifier of the prepared password, with a random
// salt.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("scram salt: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("scram key: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

// checkVerifier returns an error unless v has the form of a SCRAM-SHA-256 verifier
// (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>), so that nothing else, a
// password in clear least of all, is ever sent as one.
func checkVerifier(v string) error {
	bad := errors.New("not a SCRAM-SHA-256 verifier")
	rest, ok := strings.CutPrefix(v, "SCRAM-SHA-256$")
	if !ok {
		return bad
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return bad
	}
	iter, salt, ok := strings.Cut(params, ":")
	if !ok {
		return bad
	}
	if n, err := strconv.Atoi(iter); err != nil || n < 1 {
		return bad
	}
	stored, server, ok := strings.Cut(keys, ":")
	if !ok {
		return bad
	}
	dec := base64.StdEncoding.DecodeString
	if b, err := dec(salt); err != nil || len(b) == 0 {
		return bad
	}
	for _, k := range []string{stored, server} {
		if b, err := dec(k); err != nil || len(b) != sha256.Size {
			return bad
		}
	}
	return nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// quoteLiteral quotes s as an SQL string literal. A string with a backslash becomes an escape
// string (E'...'), which means the same whatever standard_conforming_strings says.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		q = "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
