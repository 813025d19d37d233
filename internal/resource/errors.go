package resource

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the edge that reports it: the ARM front door maps each kind to
// one HTTP status, the CLI to one exit code.
type Kind int

// The error kinds.
const (
	Internal           Kind = iota // a bug or an unexpected failure; detail is logged, not sent
	Invalid                        // the request is malformed or breaks a rule (400)
	Unauthenticated                // no valid credentials (401)
	Forbidden                      // authenticated but not allowed (403)
	NotFound                       // the resource or its parent does not exist (404)
	Conflict                       // the resource's current state forbids the request (409)
	PreconditionFailed             // If-Match / If-None-Match failed (412)
	TooManyRequests                // rate limited (429)
	TooLarge                       // the request is larger than the documented limit (413)
	Unavailable                    // a part pglink needs cannot be reached now; retry later (503)
)

// Error is an error meant for the user: a stable Azure-style code and a message that says what
// went wrong and what to do next.
// It marshals to JSON so that a failed long-running operation can keep it.
type Error struct {
	Kind    Kind   `json:"kind"`
	Code    string `json:"code"` // Azure error code, e.g. "ResourceNotFound"
	Message string `json:"message"`
	Target  string `json:"target,omitempty"` // optional: the offending parameter
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error of the given kind and code with a formatted message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf returns the kind of err: the kind of the *Error in its chain, or Internal.
func KindOf(err error) Kind {
	if e, ok := AsError(err); ok {
		return e.Kind
	}
	return Internal
}

// NotFoundError is Azure's ResourceNotFound for id.
func NotFoundError(id ID) *Error {
	if id.IsResourceGroup() {
		return Errorf(NotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", id.ResourceGroup)
	}
	if id.ResourceGroup == "" && id.Namespace == "" {
		return Errorf(NotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", id.Subscription)
	}
	rel := id.Namespace
	for i := range id.Types {
		rel += "/" + id.Types[i] + "/" + id.Names[i]
	}
	return Errorf(NotFound, "ResourceNotFound",
		"The Resource '%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
		rel, id.ResourceGroup)
}

// InvalidParameter is Azure's InvalidParameterValue for parameter name.
func InvalidParameter(name, format string, args ...any) *Error {
	e := Errorf(Invalid, "InvalidParameterValue", format, args...)
	e.Target = name
	return e
}
