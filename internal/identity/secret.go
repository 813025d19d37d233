package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Secrets are stored in one of two self-describing forms, and CheckSecret accepts both:
//
//   - bcrypt ("$2a$10$…", HashSecret): slow on purpose (tens of milliseconds a check), so a
//     stolen hash of a password a human chose resists guessing. Use it for user passwords.
//   - salted SHA-256 ("sha256$<salt>$<digest>", HashRandomSecret): one hash, microseconds a
//     check. Guessing gains nothing over a slow hash when the secret is long and random, as a
//     generated client secret is; and service principals authenticate on every token request
//     (az with a managed identity asks for 2–5 tokens per command), where bcrypt would add
//     its cost each time.
//
// Both are compared in constant time.

const (
	sha256Prefix       = "sha256$"
	minRandomSecretLen = 32
	saltLen            = 16
)

// HashSecret returns a bcrypt hash of secret, for user passwords and any secret a person may
// have chosen. secret must not be longer than 72 bytes.
func HashSecret(secret string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash secret: %w", err)
	}
	return string(h), nil
}

// HashRandomSecret returns a salted SHA-256 hash of secret, which must be a generated random
// secret of at least 32 characters (a client secret pglink made), for fast checks.
func HashRandomSecret(secret string) (string, error) {
	if len(secret) < minRandomSecretLen {
		return "", fmt.Errorf("hash random secret: %d characters are too few for a fast hash; use HashSecret", len(secret))
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash random secret: %w", err)
	}
	return sha256Prefix + b64(salt) + "$" + b64(saltedDigest(salt, secret)), nil
}

// CheckSecret reports whether secret matches hash, made by HashSecret or HashRandomSecret. A
// malformed hash matches nothing.
func CheckSecret(hash, secret string) bool {
	if rest, ok := strings.CutPrefix(hash, sha256Prefix); ok {
		salt64, digest64, ok := strings.Cut(rest, "$")
		if !ok {
			return false
		}
		salt, err1 := base64.RawURLEncoding.DecodeString(salt64)
		digest, err2 := base64.RawURLEncoding.DecodeString(digest64)
		if err1 != nil || err2 != nil || len(salt) == 0 || len(digest) != sha256.Size {
			return false
		}
		return subtle.ConstantTimeCompare(saltedDigest(salt, secret), digest) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) == nil
}

func saltedDigest(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}
