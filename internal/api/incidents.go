package api

import (
	"context"

	oapi "github.com/onevault/readiness/gen/api"
)

// The incidents operations are routed, authenticated and validated; they answer 501 until
// phase 2 builds them.

// CreateIncident answers 501 until it is built.
func (h *Handlers) CreateIncident(_ context.Context, _ oapi.CreateIncidentRequestObject) (oapi.CreateIncidentResponseObject, error) {
	return nil, notImplemented("createIncident")
}

// ListIncidents answers 501 until it is built.
func (h *Handlers) ListIncidents(_ context.Context, _ oapi.ListIncidentsRequestObject) (oapi.ListIncidentsResponseObject, error) {
	return nil, notImplemented("listIncidents")
}

// UpdateIncidentStatus answers 501 until it is built.
func (h *Handlers) UpdateIncidentStatus(_ context.Context, _ oapi.UpdateIncidentStatusRequestObject) (oapi.UpdateIncidentStatusResponseObject, error) {
	return nil, notImplemented("updateIncidentStatus")
}
