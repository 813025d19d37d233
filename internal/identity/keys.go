package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// keyBits is the size of keys made by GenerateKey.
const keyBits = 2048

// GenerateKey returns a new 2048-bit RSA signing key.
func GenerateKey() (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return k, nil
}

// MarshalKey returns key as a PKCS #8 "PRIVATE KEY" PEM block.
func MarshalKey(key *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey parses an RSA private key from the first PEM block of data, PKCS #8 ("PRIVATE KEY",
// as MarshalKey writes) or PKCS #1 ("RSA PRIVATE KEY").
func ParseKey(data []byte) (*rsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("parse signing key: no PEM block")
	}
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse signing key: %w", err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse signing key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("parse signing key: %T is not an RSA key", k)
		}
		return rk, nil
	default:
		return nil, fmt.Errorf("parse signing key: unexpected PEM block %q", b.Type)
	}
}

// jwk is an RSA public key as a JSON Web Key, in the shape of Microsoft's JWKS entries.
type jwk struct {
	KeyType string `json:"kty"`
	Use     string `json:"use"`
	KeyID   string `json:"kid"`
	Alg     string `json:"alg"`
	N       string `json:"n"`
	E       string `json:"e"`
	Issuer  string `json:"issuer,omitempty"`
}

func newJWK(pub *rsa.PublicKey, kid, issuer string) jwk {
	return jwk{
		KeyType: "RSA",
		Use:     "sig",
		KeyID:   kid,
		Alg:     "RS256",
		N:       b64(pub.N.Bytes()),
		E:       b64(big.NewInt(int64(pub.E)).Bytes()),
		Issuer:  issuer,
	}
}

// keyID returns the RFC 7638 JWK thumbprint of pub: stable for a key, different across keys.
func keyID(pub *rsa.PublicKey) string {
	// Members in lexicographic order, no whitespace (RFC 7638 §3.2).
	canonical := fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64(big.NewInt(int64(pub.E)).Bytes()), b64(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(canonical))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
