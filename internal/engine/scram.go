package engine

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// passwordLiteral returns the SQL string literal to put after PASSWORD in CREATE or ALTER ROLE.
// An ASCII password is hashed here into a SCRAM-SHA-256 verifier, so the clear text never
// reaches the server (nor its log, should the statement fail). PostgreSQL prepares other
// passwords with SASLprep before hashing; those are sent in clear for the server to hash.
func passwordLiteral(password string) (string, error) {
	if strings.ContainsRune(password, 0) {
		return "", errors.New("password contains a NUL character")
	}
	if !isASCII(password) {
		return quoteLiteral(password), nil
	}
	v, err := scramVerifier(password)
	if err != nil {
		return "", err
	}
	return quoteLiteral(v), nil
}

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for password (RFC 5802,
// RFC 7677), with a random salt.
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
