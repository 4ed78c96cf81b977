package api

import (
	"fmt"
	"net/http"
)

// Detail names one field of a refused request and says why.
type Detail struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error is an expected failure with its HTTP status and envelope code. The server's one error
// handler writes it as {success: false, error: {code, message, details, requestId}}.
type Error struct {
	Status  int
	Code    string
	Message string
	Details []Detail
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Codes of the error envelope, one per status class.
const (
	CodeValidation     = "VALIDATION_FAILED"
	CodeUnauthorized   = "UNAUTHORIZED"
	CodeForbidden      = "FORBIDDEN"
	CodeNotFound       = "NOT_FOUND"
	CodeMethod         = "METHOD_NOT_ALLOWED"
	CodeConflict       = "CONFLICT"
	CodeUnprocessable  = "UNPROCESSABLE"
	CodeRateLimited    = "RATE_LIMITED"
	CodeNotImplemented = "NOT_IMPLEMENTED"
	CodeInternal       = "INTERNAL"
)

// CodeForStatus is the envelope code for an HTTP status.
func CodeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return CodeValidation
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethod
	case http.StatusConflict:
		return CodeConflict
	case http.StatusUnprocessableEntity:
		return CodeUnprocessable
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusNotImplemented:
		return CodeNotImplemented
	}
	return CodeInternal
}

// BadRequest refuses input, naming the fields at fault.
func BadRequest(message string, details ...Detail) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeValidation, Message: message, Details: details}
}

// NotFound says that a resource does not exist for this tenant.
func NotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: what + " not found"}
}

// Conflict refuses a change that clashes with the current state.
func Conflict(message string) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: message}
}

// Unprocessable refuses valid input that the domain does not accept.
func Unprocessable(message string, details ...Detail) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeUnprocessable, Message: message, Details: details}
}

// notImplemented answers an operation whose issue has not been built yet.
func notImplemented(operation string) *Error {
	return &Error{Status: http.StatusNotImplemented, Code: CodeNotImplemented,
		Message: operation + " is not implemented yet"}
}
