package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/onevault/readiness/internal/api"
	"github.com/onevault/readiness/internal/auth"
)

// envelope is the one error shape of every error response.
type envelope struct {
	Success bool         `json:"success"`
	Error   envelopeBody `json:"error"`
}

type envelopeBody struct {
	Code      string       `json:"code"`
	Message   string       `json:"message"`
	Details   []api.Detail `json:"details"`
	RequestID string       `json:"requestId"`
}

// errorHandler writes every error, of handlers, of the validator and of echo's router (404,
// 405), in the envelope. Unexpected errors are logged with the request id and answered 500
// with a message that tells nothing of the internals.
func errorHandler(logger *slog.Logger, authn *authenticator) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var direct *api.Error
		var viaValidator *echo.HTTPError
		if errors.As(err, &direct) && !errors.As(err, &viaValidator) && direct.Status == http.StatusForbidden {
			// A handler's refusal (the authenticator records its own): a denial all the same.
			subject := ""
			if p, ok := auth.PrincipalFrom(c.Request().Context()); ok {
				subject = p.Subject
			}
			authn.recordDenial(c, eventUnauthorized, "MEDIUM", c.Request().Header.Get("X-Tenant-ID"), subject,
				authn.operations[c.Request().Method+" "+c.Path()], direct.Message)
		}
		body := envelopeBody{Details: []api.Detail{}, RequestID: requestID(c)}
		status := http.StatusInternalServerError
		var apiErr *api.Error
		var httpErr *echo.HTTPError
		switch {
		case errors.As(err, &apiErr):
			status, body.Code, body.Message = apiErr.Status, apiErr.Code, apiErr.Message
			if apiErr.Details != nil {
				body.Details = apiErr.Details
			}
		case errors.As(err, &httpErr):
			status = httpErr.Code
			body.Code = api.CodeForStatus(status)
			body.Message = strings.ToLower(http.StatusText(status))
			if m, ok := httpErr.Message.(string); ok && status < 500 {
				body.Message = m
			}
			switch httpErr {
			case echo.ErrNotFound:
				body.Message = fmt.Sprintf("no endpoint %s %s", c.Request().Method, c.Request().URL.Path)
			case echo.ErrMethodNotAllowed:
				body.Message = fmt.Sprintf("method %s is not allowed on %s", c.Request().Method, c.Request().URL.Path)
			}
		}
		if body.Code == "" {
			body.Code = api.CodeForStatus(status)
		}
		if status >= 500 && status != http.StatusNotImplemented {
			logger.Error("request failed", "request_id", body.RequestID, "method", c.Request().Method,
				"path", c.Path(), "error", err.Error())
			body.Code, body.Message = api.CodeInternal, "internal error; quote the request id to the operators"
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		if werr := c.JSON(status, envelope{Error: body}); werr != nil {
			logger.Error("write error response", "request_id", body.RequestID, "error", werr.Error())
		}
	}
}

// validationErrors turns the validator's findings into one error: an authentication or
// authorisation failure wins (401/403, found before the request is looked at); otherwise a 400
// whose details name each parameter or body field at fault.
func validationErrors(me openapi3.MultiError) *echo.HTTPError {
	var details []api.Detail
	for _, err := range me {
		var secErr *openapi3filter.SecurityRequirementsError
		if errors.As(err, &secErr) {
			for _, e := range secErr.Errors {
				var apiErr *api.Error
				if errors.As(e, &apiErr) {
					return &echo.HTTPError{Code: apiErr.Status, Message: apiErr.Message, Internal: apiErr}
				}
			}
			denied := &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: "authentication failed"}
			return &echo.HTTPError{Code: denied.Status, Internal: denied}
		}
		details = append(details, requestDetails(err)...)
	}
	msg := "request validation failed"
	if len(details) > 0 {
		first := details[0]
		if first.Field != "" {
			msg = fmt.Sprintf("request validation failed: %s: %s", first.Field, first.Message)
		} else {
			msg = "request validation failed: " + first.Message
		}
	}
	bad := api.BadRequest(msg, details...)
	return &echo.HTTPError{Code: bad.Status, Message: bad.Message, Internal: bad}
}

// requestDetails names the fields of one validator error.
func requestDetails(err error) []api.Detail {
	var reqErr *openapi3filter.RequestError
	if !errors.As(err, &reqErr) {
		return []api.Detail{{Message: firstLine(err.Error())}}
	}
	if reqErr.Parameter != nil {
		msg := reqErr.Reason
		if reqErr.Err != nil {
			var se *openapi3.SchemaError
			if errors.As(reqErr.Err, &se) {
				msg = se.Reason
			} else if msg == "" {
				msg = firstLine(reqErr.Err.Error())
			}
		}
		return []api.Detail{{Field: reqErr.Parameter.Name, Message: msg}}
	}
	var out []api.Detail
	var inner openapi3.MultiError
	errs := []error{reqErr.Err}
	if errors.As(reqErr.Err, &inner) {
		errs = inner
	}
	for _, e := range errs {
		var se *openapi3.SchemaError
		switch {
		case e == nil:
			out = append(out, api.Detail{Field: "body", Message: reqErr.Reason})
		case errors.As(e, &se):
			out = append(out, api.Detail{Field: fieldPath(se.JSONPointer()), Message: se.Reason})
		default:
			out = append(out, api.Detail{Field: "body", Message: firstLine(e.Error())})
		}
	}
	return out
}

// fieldPath renders a JSON pointer as the field name users write: a.b[2].c.
func fieldPath(ptr []string) string {
	if len(ptr) == 0 {
		return "body"
	}
	var b strings.Builder
	for _, p := range ptr {
		if p != "" && strings.Trim(p, "0123456789") == "" {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
