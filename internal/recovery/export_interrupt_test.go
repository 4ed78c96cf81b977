package recovery

import (
	"context"

	"github.com/google/uuid"
)

// RunJob does the work of a recovery job on ctx, for the tests that cancel a job midway as river
// does on a job timeout or a shutdown.
func (s *Service) RunJob(ctx context.Context, tenant string, id uuid.UUID) error {
	return s.run(ctx, RunArgs{RecoveryID: id, Tenant: tenant})
}
