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
	"golang.org/x/text/unicode/norm"
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
// itself where PostgreSQL falls back to the raw bytes: an ASCII password, one that is not valid
// UTF-8, one that SASLprep prohibits, or one mapped to nothing. It follows PostgreSQL rather than
// the letter of RFC 4013 where they differ: non-ASCII spaces (RFC 3454 C.1.2) become a space
// before characters mapped to nothing (B.1) are removed (U+200B is in both), and prohibited and
// unassigned characters and the bidirectional rules are checked on the mapped password before
// NFKC normalization, not on the normalized one.
func saslprep(password string) string {
	if isASCII(password) || !utf8.ValidString(password) {
		return password
	}
	mapped := make([]rune, 0, len(password))
	for _, r := range password {
		switch {
		case stringprep.TableC1_2.Contains(r):
			mapped = append(mapped, ' ')
		default:
			if _, nothing := stringprep.TableB1.Map(r); nothing {
				continue
			}
			mapped = append(mapped, r)
		}
	}
	if len(mapped) == 0 {
		return password
	}
	randAL := false
	for _, r := range mapped {
		for _, set := range prohibited {
			if set.Contains(r) {
				return password
			}
		}
		randAL = randAL || stringprep.TableD1.Contains(r)
	}
	if randAL {
		for _, r := range mapped {
			if stringprep.TableD2.Contains(r) {
				return password
			}
		}
		if !stringprep.TableD1.Contains(mapped[0]) || !stringprep.TableD1.Contains(mapped[len(mapped)-1]) {
			return password
		}
	}
	return norm.NFKC.String(string(mapped))
}

// prohibited are the characters SASLprep prohibits (RFC 4013 2.3, 2.5): RFC 3454 tables C.1.2
// to C.9 and the code points unassigned in Unicode 3.2 (A.1).
var prohibited = []stringprep.Set{
	stringprep.TableC1_2, stringprep.TableC2_1, stringprep.TableC2_2, stringprep.TableC3,
	stringprep.TableC4, stringprep.TableC5, stringprep.TableC6, stringprep.TableC7,
	stringprep.TableC8, stringprep.TableC9, stringprep.TableA1,
}

// scramVerifier returns the SCRAM-SHA-256 verifier of the prepared password, with a random
// salt.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("scram salt: %w", err)
	}
	return scramVerifierSalt(password, salt, scramIterations)
}

// scramVerifierSalt returns the SCRAM-SHA-256 verifier of the prepared password with salt.
func scramVerifierSalt(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("scram key: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
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
