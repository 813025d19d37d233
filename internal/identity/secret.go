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
//   - bcrypt ("$2a$10$…", HashSecret): salted and slow on purpose (tens of milliseconds a
//     check), so a stolen hash resists guessing. pglink stores every password and client
//     secret this way.
//   - salted SHA-256 ("sha256$<salt>$<digest>", HashRandomSecret): what pglink once wrote for
//     generated client secrets. It is still read, so a data dir from then keeps working until
//     its next start rehashes the secret (directory.EnsureBootstrap); nothing writes it now.
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
// secret of at least 32 characters: the old fast form, kept to test that it is still read.
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
